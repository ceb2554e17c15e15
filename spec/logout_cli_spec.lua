-- `smartauth logout PROFILE [--browser]` (bin/smartauth) against the recording server:
-- after revoking it prints the provider's RP-Initiated Logout URL (the stored ID token as
-- id_token_hint) and, with --browser, opens it (a fake xdg-open records what it got).
local socket = require "socket"
local server = require "helpers.server"
local proc = require "helpers.proc"

local q = proc.shell_quote

describe("smartauth logout with an end-session endpoint", function()
  local s, tmp

  setup(function()
    s = server.start()
    tmp = proc.tmpdir("smartauth-logout.XXXXXX")
    os.execute("mkdir -p " .. q(tmp .. "/bin") .. " " .. q(tmp .. "/home") .. " " .. q(tmp .. "/tokens"))
    local fake = assert(io.open(tmp .. "/bin/xdg-open", "w"))
    fake:write("#!/bin/sh\nprintf '%s' \"$1\" > " .. q(tmp .. "/opened.tmp") .. "\n" ..
      "mv " .. q(tmp .. "/opened.tmp") .. " " .. q(tmp .. "/opened") .. "\n")
    fake:close()
    os.execute("chmod +x " .. q(tmp .. "/bin/xdg-open"))
    local cfg = assert(io.open(tmp .. "/config.lua", "w"))
    cfg:write(([[return { profiles = { svc = { token_endpoint = %q, revocation_endpoint = %q,
      end_session_endpoint = %q, client_id = "cid", client_secret = "csecret",
      grant = "client_credentials", store = { kind = "file", dir = %q } } } }]]):format(
      s.url .. "/token", s.url .. "/revoke", s.url .. "/end", tmp .. "/tokens"))
    cfg:close()
    os.execute("chmod 600 " .. q(tmp .. "/config.lua") .. " && chmod 700 " .. q(tmp .. "/tokens"))
  end)
  teardown(function()
    s:stop()
    proc.rmtree(tmp)
  end)
  before_each(function() s:reset() end)

  local function smartauth(args)
    local cmd = "env -u DISPLAY -u WAYLAND_DISPLAY HOME=" .. q(tmp .. "/home") ..
      " PATH=" .. q(tmp .. "/bin") .. ":\"$PATH\" SMARTAUTH_CONFIG=" .. q(tmp .. "/config.lua") .. " " ..
      proc.LUA_ENV .. proc.LUA .. " bin/smartauth " .. args
    local ok, code, out = proc.run(cmd)
    return ok, out, code
  end

  local function log_in()
    s:script("/token", { json = { access_token = "at-cli-1", refresh_token = "rt-cli-1", id_token = "h.i.t",
      token_type = "Bearer", expires_in = 3600 } })
    local ok, out, err = smartauth("token svc")
    assert.is_true(ok, tostring(err))
    assert.equal("at-cli-1\n", out)
    s:script("/revoke", { status = 200, body = "" }, 2)
  end

  local URL = function() return s.url .. "/end?client_id=cid&id_token_hint=h.i.t" end

  it("prints the end-session URL after revoking", function()
    log_in()
    os.remove(tmp .. "/opened")
    local ok, out, err = smartauth("logout svc")
    assert.is_true(ok, tostring(err))
    assert.matches("access token and refresh token revoked", out, 1, true)
    assert.matches("\nend the session at the provider: " .. URL() .. "\n", out, 1, true)
    socket.sleep(0.2)
    assert.is_nil(proc.read_file(tmp .. "/opened"))
  end)

  it("opens it with --browser", function()
    log_in()
    os.remove(tmp .. "/opened")
    local ok, out, err = smartauth("logout svc --browser")
    assert.is_true(ok, tostring(err))
    assert.matches(URL(), out, 1, true)
    local deadline = socket.gettime() + 5
    while not proc.read_file(tmp .. "/opened") and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.equal(URL(), proc.read_file(tmp .. "/opened"))
  end)

  it("shows --browser in its help", function()
    local ok, out = smartauth("logout --help")
    assert.is_true(ok)
    assert.matches("--browser", out, 1, true)
  end)
end)
