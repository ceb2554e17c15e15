-- examples/love/main.lua: a LÖVE game that logs the player in with the
-- device flow (RFC 8628), shows the code on screen, then calls an API with
-- the token, without ever blocking a frame: the login runs in a smartauth
-- task and love.update gives it one smartauth.step(0) a frame.
--
-- Run it with LÖVE (`love examples/love`, smartauth installed for LuaJIT,
-- e.g. `luarocks --lua-version=5.1 install smartauth`), or without LÖVE:
-- `luajit examples/love/stand_in.lua examples/love` (what CI does).
--
-- Configuration, from the environment (the defaults are placeholders for
-- your own identity provider and API):
--   GAME_ISSUER     the OpenID provider's issuer (discovered)
--   GAME_CLIENT_ID  this game's client ID there (a public client: no secret)
--   GAME_SCOPE      the scope asked for (default "openid email")
--   GAME_API_URL    the API to call (default: the provider's userinfo endpoint)
local smartauth = require "smartauth"
local cjson = require "cjson.safe"

local config = {
  issuer = os.getenv("GAME_ISSUER") or "https://login.example.com",
  client_id = os.getenv("GAME_CLIENT_ID") or "my-game",
  scope = os.getenv("GAME_SCOPE") or "openid email",
  api_url = os.getenv("GAME_API_URL"),
}

-- What the game shows. `state` goes connecting -> code -> calling -> done,
-- or to failed from any of them.
local game = { state = "connecting", clock = 0, lines = {} }

local function show(state, lines)
  game.state, game.lines = state, lines
end

-- The whole login and API call, written as straight-line code: every
-- network call and the device flow's polling wait yield to the frame loop.
local function login_and_call()
  show("connecting", { "Connecting to " .. config.issuer .. " ..." })
  local p = assert(smartauth.discover(config.issuer, { client_id = config.client_id, scope = config.scope }))
  assert(p:login {
    flow = "device",
    show = function(info)
      game.code, game.code_shown_at = info, game.clock
      show("code", {
        "Log in: go to " .. info.verification_uri,
        "and enter the code: " .. info.user_code,
      })
    end,
  })
  game.code = nil
  show("calling", { "Logged in. Calling the API ..." })
  local url = config.api_url or p:endpoint("userinfo_endpoint")
  local res = assert(p:request { url = url, headers = { Accept = "application/json" } })
  local me = cjson.decode(res.body)
  if res.status ~= 200 or type(me) ~= "table" then
    error(("the API answered HTTP %d"):format(res.status), 0)
  end
  show("done", {
    ("API: HTTP %d"):format(res.status),
    "Welcome, " .. tostring(me.name or me.sub) .. " <" .. tostring(me.email) .. ">",
    ("(logged in after %.1f s)"):format(game.clock - game.code_shown_at),
  })
end

function love.load()
  smartauth.spawn({
    -- an error object from smartauth, or any other error the task raised
    on_error = function(err)
      show("failed", { "Login failed:", tostring(err) })
    end,
  }, login_and_call)
end

function love.update(dt)
  game.clock = game.clock + dt
  smartauth.step(0) -- runs whatever the network has ready; never waits
end

function love.draw()
  for i, line in ipairs(game.lines) do
    love.graphics.print(line, 20, 20 + 24 * (i - 1))
  end
  if game.code then
    local left = game.code.expires_in
      and math.max(0, math.floor(game.code.expires_in - (game.clock - game.code_shown_at)))
    love.graphics.print("Waiting for you to log in" ..
      (left and (" (the code expires in %d s)"):format(left) or ""), 20, 20 + 24 * #game.lines)
  end
end

-- LÖVE ignores what main.lua returns; the stand-in (stand_in.lua) reads the
-- state to know when the game has reached its end.
return game
