-- examples/love/stand_in.lua: just enough of LÖVE to run a game's main.lua
-- without a window, for CI: love.graphics.print records the text, and the
-- loop calls love.load once, then love.update(dt) and love.draw at 60 frames
-- a second, timing each frame (update + draw: the game's own work).
--
--   luajit examples/love/stand_in.lua [GAME_DIR [SECONDS]]
--
-- Prints "screen: ..." (the lines drawn, joined by " | ") whenever the
-- screen changes, then one line
--   result: state=done frames=N worst_frame_ms=X load_ms=Y waiting_frames=W
-- (waiting_frames: frames drawn while the game showed its code). Exits 0
-- when the game reached state "done" (main.lua returns its state table,
-- which LÖVE ignores), 1 when it failed or SECONDS (default 60) ran out.
-- Needs LuaSocket for the clock and the sleep between frames.
local socket = require "socket"

local dir = arg[1] or "examples/love"
local seconds = tonumber(arg[2] or "60")
io.stdout:setvbuf("line")

local drawn = {}
love = {
  graphics = {
    print = function(text) drawn[#drawn + 1] = tostring(text) end,
  },
  timer = { getTime = socket.gettime },
}

-- LÖVE loads main.lua with require, its directory on the path
package.path = dir .. "/?.lua;" .. package.path
local game = require "main"
if type(game) ~= "table" then error("main.lua must return its state table for the stand-in", 0) end

local FRAME = 1 / 60
local now = socket.gettime
local start = now()
love.load()
local load_ms = (now() - start) * 1000

local frames, waiting_frames, worst = 0, 0, 0
local shown
local last, next_frame = now(), now()
local deadline = next_frame + seconds
while game.state ~= "done" and game.state ~= "failed" and now() < deadline do
  local t0 = now()
  love.update(t0 - last)
  last = t0
  drawn = {}
  love.draw()
  local took = now() - t0
  frames = frames + 1
  if took > worst then worst = took end
  if game.state == "code" then waiting_frames = waiting_frames + 1 end

  local screen = table.concat(drawn, " | ")
  if screen ~= shown then
    print("screen: " .. screen)
    shown = screen
  end

  next_frame = next_frame + FRAME
  local wait = next_frame - now()
  if wait > 0 then socket.sleep(wait) else next_frame = now() end
end

print(("result: state=%s frames=%d worst_frame_ms=%.2f load_ms=%.2f waiting_frames=%d"):format(
  game.state, frames, worst * 1000, load_ms, waiting_frames))
os.exit(game.state == "done" and 0 or 1)
