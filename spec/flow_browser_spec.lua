-- Opening a browser (smartauth.flow.browser, through smartauth.flow's
-- public names): the browser gets neither the listener's descriptors nor
-- the secrets in this process's environment. A fake xdg-open records what
-- it inherited.
local socket = require "socket"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local q = proc.shell_quote

describe("opening a browser", function()
  local tmp

  setup(function() tmp = proc.tmpdir("smartauth-browser.XXXXXX") end)
  teardown(function() proc.rmtree(tmp) end)

  describe("the browser's environment", function()
    it("holds no SMARTAUTH_STORE_KEY and no variable a config expanded, but the ordinary ones", function()
      local bin = tmp .. "/envbin"
      os.execute("mkdir -p " .. q(bin))
      local fake = assert(io.open(bin .. "/xdg-open", "w"))
      fake:write("#!/bin/sh\nenv > " .. q(tmp .. "/browser-env.tmp") .. "\n" ..
        "mv " .. q(tmp .. "/browser-env.tmp") .. " " .. q(tmp .. "/browser-env") .. "\n")
      fake:close()
      os.execute("chmod +x " .. q(bin .. "/xdg-open"))
      local cfg = assert(io.open(tmp .. "/envcfg.lua", "w"))
      cfg:write([[return { profiles = { x = { token_endpoint = "https://idp.example/token",
        client_id = "${SA_TEST_CLIENT}", client_secret = "${SA_TEST_SECRET}",
        store = { kind = "memory" } } } }]])
      cfg:close()
      local script = [[
        local config = require "smartauth.config"
        local flow = require "smartauth.flow"
        local cfg = assert(config.load(nil, { warn = false }))
        assert(config.provider(cfg, "x"))
        assert(flow.open_browser("http://127.0.0.1:1/auth?a=1"))
      ]]
      os.remove(tmp .. "/browser-env")
      local ok = proc.run("PATH=" .. q(bin) .. ":\"$PATH\" SMARTAUTH_STORE_KEY=store-key-0123456789abcdef " ..
        "SA_TEST_SECRET=config-secret-value SA_TEST_CLIENT=client-id-value SA_TEST_PLAIN=plain-value " ..
        "SMARTAUTH_CONFIG=" .. q(tmp .. "/envcfg.lua") .. " " .. proc.LUA_ENV .. proc.LUA .. " -e " .. q(script))
      assert.is_true(ok)
      local deadline = socket.gettime() + 5
      while not proc.read_file(tmp .. "/browser-env") and socket.gettime() < deadline do socket.sleep(0.05) end
      local env = assert(proc.read_file(tmp .. "/browser-env"), "the fake browser did not run")
      assert.is_nil(env:find("SMARTAUTH_STORE_KEY", 1, true))
      assert.is_nil(env:find("store-key-0123456789abcdef", 1, true))
      assert.is_nil(env:find("SA_TEST_SECRET", 1, true))
      assert.is_nil(env:find("config-secret-value", 1, true))
      assert.is_nil(env:find("SA_TEST_CLIENT=", 1, true))
      assert.matches("\nSA_TEST_PLAIN=plain%-value\n", "\n" .. env)
      assert.matches("\nPATH=[^\n]*envbin", "\n" .. env)
      assert.matches("\nHOME=", "\n" .. env)
    end)
  end)

  describe("descriptors", function()
    it("opens the browser with xdg-open, which does not inherit the listener", function()
      local bin = tmp .. "/bin"
      os.execute("mkdir -p " .. q(bin))
      local fake = assert(io.open(bin .. "/xdg-open", "w"))
      fake:write("#!/bin/sh\nprintf '%s\\n' \"$1\" > " .. q(tmp .. "/opened") .. "\n" ..
        "ls /proc/$$/fd > " .. q(tmp .. "/fds") .. "\n")
      fake:close()
      os.execute("chmod +x " .. q(bin .. "/xdg-open"))
      local script = [[
        local browser = require "smartauth.flow.browser"
        local socket = require "socket"
        local s = socket.bind("127.0.0.1", 0)
        assert(browser.can_open(), "expected a browser")
        assert(browser.open("http://127.0.0.1:1/auth?a=1&b='x'", { fds = { s:getfd() } }))
        io.write(s:getfd())
        socket.sleep(0.5)
      ]]
      local ok, _, out = proc.run("cd " .. q(oidc.root) .. " && PATH=" .. q(bin) .. ":\"$PATH\" DISPLAY=:99 " ..
        proc.LUA_ENV .. proc.LUA .. " -e " .. q(script))
      assert.is_true(ok)
      local deadline = socket.gettime() + 5
      while not proc.read_file(tmp .. "/fds") and socket.gettime() < deadline do socket.sleep(0.05) end
      assert.equal("http://127.0.0.1:1/auth?a=1&b='x'\n", proc.read_file(tmp .. "/opened"))
      local fds = proc.read_file(tmp .. "/fds")
      assert.not_matches("\n" .. out .. "\n", "\n" .. fds)
    end)
  end)
end)
