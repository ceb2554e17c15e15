-- examples/love: the LÖVE-style game logs in with the device flow against
-- oidc-provider, shows the code on its screen, calls the API, and keeps
-- drawing frames the whole time. It runs in its own process under LuaJIT
-- (what LÖVE embeds) through examples/love/stand_in.lua, and on Lua 5.4; the
-- spec plays the person: it reads the code off the game's screen and enters
-- it on the provider's verification page.
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

-- a generous bound: the point is that nothing waits on the network in a
-- frame (a blocking poll or request would take the provider's 5 s interval
-- or a round trip); a frame budget belongs to the benchmarks
local FRAME_LIMIT_MS = 50

local function have(cmd)
  return (proc.run("command -v " .. proc.shell_quote(cmd) .. " >/dev/null 2>&1"))
end

describe("#interop the LÖVE example (examples/love)", function()
  local op, userinfo

  setup(function()
    op = oidc.start()
    local status, meta = oidc.request_json(op.discovery_url)
    assert.equal(200, status)
    userinfo = assert(meta.userinfo_endpoint)
  end)
  teardown(function() if op then op:stop() end end)

  -- Runs the game until it ends, approving the code it shows; returns what
  -- happened.
  local function play(lua, cpath, env)
    local core = cpath:gsub("%?", "smartauth/core")
    if not io.open(core) and lua ~= "lua5.4" then
      -- a run that has not built this runtime yet (make sanitize, a lone
      -- busted): build it, a few seconds
      proc.run("make LUA=" .. lua .. " >/dev/null 2>&1")
    end
    assert.is_truthy(io.open(core), core .. " is missing: run make" .. (lua == "lua5.4" and "" or " LUA=" .. lua))
    local vars = {
      GAME_ISSUER = op.issuer, GAME_CLIENT_ID = "device-client",
      LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;", LUA_CPATH = cpath .. ";;",
    }
    for k, v in pairs(env or {}) do vars[k] = v end
    local words = {}
    for k, v in pairs(vars) do words[#words + 1] = k .. "=" .. proc.shell_quote(v) end
    local h = proc.popen("env " .. table.concat(words, " ") .. " " .. lua ..
      " examples/love/stand_in.lua examples/love 40 2>&1", "r")
    local run = { lines = {} }
    while true do
      local line = h:read("*l")
      if not line then break end
      run.lines[#run.lines + 1] = line
      local screen = line:match("^screen: (.*)$")
      if screen then
        run.screen = screen
        local uri = screen:match("go to (%S+)")
        local code = screen:match("enter the code: (%u%u%u%u%-%u%u%u%u)")
        if uri and code and not run.code then
          -- what a person does: opens the page shown, types the code shown
          run.code, run.uri = code, uri
          run.approved, run.approve_err = pcall(op.device_login, op, uri, { login = "alice", user_code = code })
        end
      end
      local result = line:match("^result: (.*)$")
      if result then
        run.result = {}
        for k, v in result:gmatch("(%w[%w_]*)=(%S+)") do run.result[k] = tonumber(v) or v end
      end
    end
    run.ok = h:close()
    run.output = table.concat(run.lines, "\n")
    return run
  end

  local function check(run, api_url)
    local out = run.output
    assert.is_truthy(run.code, "the game never showed a user code:\n" .. out)
    assert.equal(op.issuer .. "/device", run.uri)
    assert.is_true(run.approved, tostring(run.approve_err) .. "\n" .. out)
    assert.is_truthy(run.ok, "the stand-in failed:\n" .. out)
    local r = assert(run.result, out)
    assert.equal("done", r.state)
    -- the API's answer (userinfo for alice), as the game drew it
    local drawn = {}
    for line in (run.screen .. " | "):gmatch("(.-) | ") do drawn[#drawn + 1] = line end
    assert.equal("API: HTTP 200", drawn[1], out)
    assert.equal("Welcome, alice <alice@example.com>", drawn[2], out)
    assert.matches("^%(logged in after %d+%.%d s%)$", drawn[3])
    -- the frames went on while the game waited for the person: the provider
    -- asks for 5 s between polls, 300 frames at 60 a second
    assert.is_true(r.waiting_frames >= 240, out)
    assert.is_true(r.worst_frame_ms < FRAME_LIMIT_MS, out)
    assert.is_true(r.load_ms < FRAME_LIMIT_MS, out)
    print(("\n  love (%s): %d frames, worst %.2f ms, love.load %.2f ms"):format(
      api_url and "GAME_API_URL" or "userinfo", r.frames, r.worst_frame_ms, r.load_ms))
  end

  if have("luajit") then
    it("logs in under LuaJIT with the device flow and calls the API, never blocking a frame", function()
      check(play("luajit", "./build/luajit/?.so"))
    end)
  else
    pending("luajit is not installed: the LÖVE example runs under LuaJIT (apt install luajit2)")
  end

  it("runs the same game on Lua 5.4, the API named by GAME_API_URL", function()
    check(play("lua5.4", "./build/?.so", { GAME_API_URL = userinfo }), true)
  end)
end)
