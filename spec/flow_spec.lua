-- Interactive login: choosing the flow, the device flow (RFC 8628) against the
-- recording server and against oidc-provider, the loopback redirect (RFC 8252)
-- with real HTTP requests to its listener, and the paste flow with stdin fed
-- by the test. The real-browser run of the loopback flow is in
-- spec/interop/browser_spec.lua.
local smartauth = require "smartauth"
local flow = require "smartauth.flow"
local cjson = require "cjson"
local socket = require "socket"
local server = require "helpers.server"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local q = proc.shell_quote

-- Runs a command in the background with every inherited descriptor above 2
-- closed (LuaSocket's sockets are not close-on-exec): stdout comes back
-- through the returned pipe, stderr goes to `errfile`.
local CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]
local function spawn(args, errfile, mode)
  local words = {}
  for i, a in ipairs(args) do words[i] = q(a) end
  local cmd = "exec bash -c " .. q(CLOSE_FDS) .. " bash " .. table.concat(words, " ") ..
    " 2>" .. q(errfile or "/dev/null")
  return assert(io.popen(cmd, mode or "r"))
end

-- A child Lua process that makes requests to the loopback listener, in order,
-- and prints what it got as JSON: { {status=, body=}, {idle=true}, ... }.
local REQUESTER = [[
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local out, keep = {}, {}
for _, r in ipairs(cjson.decode(arg[1])) do
  if r.delay then socket.sleep(r.delay) end
  if r.idle then
    -- a silent connection, as browsers open ahead of time
    local c = socket.connect(r.host, math.tointeger(r.port))
    keep[#keep + 1] = c
    out[#out + 1] = { idle = c ~= nil }
  else
    local chunks = {}
    local _, code, headers = http.request { url = r.url, method = r.method or "GET",
      sink = ltn12.sink.table(chunks) }
    out[#out + 1] = { status = code, body = table.concat(chunks),
      ctype = headers and headers["content-type"] or "" }
  end
end
io.write(cjson.encode(out))
]]

describe("login flows", function()
  local tmp, requester

  setup(function()
    tmp = proc.tmpdir("smartauth-flow.XXXXXX")
    requester = tmp .. "/requester.lua"
    local f = assert(io.open(requester, "w"))
    f:write(REQUESTER)
    f:close()
  end)
  teardown(function() proc.rmtree(tmp) end)

  local function requests(list)
    return spawn({ "lua5.4", requester, cjson.encode(list) }, tmp .. "/requester.err")
  end

  describe("loading", function()
    -- a fresh process: this one has LuaSocket loaded by the spec itself
    local function loaded_after(code)
      local script = code .. "; io.write(package.loaded.socket and 'socket' or 'none')"
      local ok, _, out = proc.run(proc.LUA_ENV .. "lua5.4 -e " .. q(script))
      assert.is_true(ok, out)
      return out
    end

    it("does not load LuaSocket until the loopback listener is needed", function()
      assert.equal("none", loaded_after('local f = require "smartauth.flow"; assert(f.choose and f.open_browser)'))
      assert.equal("none", loaded_after('require "smartauth"; require "smartauth.device"'))
      assert.equal("socket", loaded_after('require "smartauth.flow.loopback"'))
    end)
  end)

  describe("choosing the flow", function()
    local function p(extra)
      local o = { authorization_endpoint = "https://idp.example/authorize",
        token_endpoint = "https://idp.example/token", client_id = "c" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end

    it("takes the flow asked for", function()
      assert.equal("oob", flow.choose(p(), { flow = "oob" }, { browser = true }))
    end)

    it("takes the profile's interactive grant", function()
      assert.equal("device", flow.choose(p { grant = "device" }, {}, { browser = true }))
    end)

    it("pastes when the redirect URI is out of band", function()
      assert.equal("oob", flow.choose(p { redirect_uri = flow.OOB }, {}, { browser = true }))
    end)

    it("uses the loopback redirect when a browser can be opened", function()
      local pd = p { device_authorization_endpoint = "https://idp.example/device" }
      assert.equal("loopback", flow.choose(pd, {}, { browser = true }))
      assert.equal("loopback", flow.choose(pd, { open = function() end }, { browser = false }))
    end)

    it("uses the device flow without a browser when the provider has it", function()
      local pd = p { device_authorization_endpoint = "https://idp.example/device" }
      assert.equal("device", flow.choose(pd, {}, { browser = false }))
      assert.equal("device", flow.choose(pd, { open = false }, { browser = true }))
    end)

    it("pastes for SmartTask and SmartFile without a browser, as they document", function()
      local st = assert(smartauth.smarttask { client_id = "c", authorization_endpoint = "https://a.example/auth",
        token_endpoint = "https://a.example/token" })
      assert.equal("oob", flow.choose(st, {}, { browser = false }))
      local sf = assert(smartauth.smartfile { domain = "x.smartfile.com", client_id = "c", client_secret = "s" })
      assert.equal("oob", flow.choose(sf, {}, { browser = false }))
    end)

    it("prints the URL for a browser on this machine otherwise", function()
      assert.equal("loopback", flow.choose(p(), {}, { browser = false }))
    end)

    it("rejects unknown login options and flows", function()
      local pp = p()
      assert.has_error(function() pp:login { flwo = "oob" } end, "login: option 'flwo' is not known")
      assert.has_error(function() pp:login { flow = "magic" } end,
        "login: option 'flow' must be one of loopback, device, oob (got 'magic')")
      assert.has_error(function() pp:login { open = "firefox" } end, "login: option 'open' must be a function or false")
    end)
  end)

  describe("device flow on the wire", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    local function provider(extra)
      local o = { device_authorization_endpoint = s.url .. "/device", token_endpoint = s.url .. "/token",
        client_id = "dev-client", scope = "api:read", retry = false }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end

    local DEVICE = { device_code = "DEVICE-CODE-0123456789", user_code = "WDJB-MJHT",
      verification_uri = "https://example.com/device", expires_in = 1800 }

    local function device_response(extra)
      local t = {}
      for k, v in pairs(DEVICE) do t[k] = v end
      for k, v in pairs(extra or {}) do t[k] = v end
      return { json = t }
    end

    local function recorder()
      local slept = {}
      return slept, function(sec) slept[#slept + 1] = sec end
    end

    it("asks for a device code with client authentication and scope", function()
      s:script("/device", device_response {
        verification_uri_complete = "https://example.com/device?user_code=WDJB-MJHT",
        interval = 7 })
      local p = provider { client_secret = "dev-secret", client_auth = "post" }
      local dev = assert(p:device_authorization { scope = "openid api:read", audience = "api" })
      local req = s:last_request()
      assert.equal("POST", req.method)
      assert.equal("/device", req.path)
      assert.same({ client_id = "dev-client", client_secret = "dev-secret", scope = "openid api:read",
        audience = "api" }, req.form)
      assert.equal("WDJB-MJHT", dev.user_code)
      assert.equal("https://example.com/device", dev.verification_uri)
      assert.equal("https://example.com/device?user_code=WDJB-MJHT", dev.verification_uri_complete)
      assert.equal(7, dev.interval)
      assert.equal(1800, dev.expires_in)
      -- the device code is a secret until used
      assert.not_matches("DEVICE%-CODE", tostring(dev))
      assert.matches("WDJB%-MJHT", tostring(dev))
    end)

    it("defaults the interval to 5 s and accepts verification_url", function()
      s:script("/device", { json = { device_code = "d", user_code = "u", verification_url = "https://e.example/d",
        expires_in = 600 } })
      local dev = assert(provider():device_authorization())
      assert.equal(5, dev.interval)
      assert.equal("https://e.example/d", dev.verification_uri)
    end)

    it("returns the endpoint's error and refuses incomplete answers", function()
      s:script("/device", { status = 400, json = { error = "invalid_client", error_description = "unknown client" } })
      local dev, err = provider():device_authorization()
      assert.is_nil(dev)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_client", err.code)
      s:script("/device", { json = { device_code = "d", verification_uri = "https://e.example/d", expires_in = 600 } })
      dev, err = provider():device_authorization()
      assert.is_nil(dev)
      assert.equal("validation", err.kind)
      assert.matches("no user_code", err.description)
      s:script("/device", device_response { expires_in = "soon" })
      dev, err = provider():device_authorization()
      assert.is_nil(dev)
      assert.matches("expires_in", err.description)
    end)

    it("polls at the interval, adds 5 s on slow_down, and returns the token", function()
      s:script("/token", { status = 400, json = { error = "authorization_pending" } })
      s:script("/token", { status = 400, json = { error = "slow_down" } })
      s:script("/token", { status = 400, json = { error = "authorization_pending" } })
      s:script("/token", { json = { access_token = "AT-1", token_type = "Bearer", expires_in = 3600,
        refresh_token = "RT-1" } })
      s:script("/device", device_response())
      local p = provider()
      local dev = assert(p:device_authorization())
      local slept, sleep = recorder()
      local tok = assert(p:poll_device(dev, { sleep = sleep }))
      assert.equal("AT-1", tok.access_token)
      assert.same({ 5, 5, 10, 10 }, slept)
      local reqs = s:requests()
      local polls = 0
      for _, r in ipairs(reqs) do
        if r.path == "/token" then
          polls = polls + 1
          assert.same({ grant_type = "urn:ietf:params:oauth:grant-type:device_code",
            device_code = "DEVICE-CODE-0123456789", client_id = "dev-client" }, r.form)
        end
      end
      assert.equal(4, polls)
      -- the token is kept: token() answers from the store
      assert.equal("AT-1", assert(p:token()).access_token)
    end)

    it("stops on access_denied", function()
      s:script("/token", { status = 400, json = { error = "authorization_pending" } })
      s:script("/token", { status = 400, json = { error = "access_denied" } })
      s:script("/device", device_response())
      local p = provider()
      local slept, sleep = recorder()
      local tok, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("access_denied", err.code)
      assert.equal(2, #slept)
    end)

    it("stops on expired_token", function()
      s:script("/token", { status = 400, json = { error = "expired_token" } })
      s:script("/device", device_response())
      local p = provider()
      local _, sleep = recorder()
      local tok, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.is_nil(tok)
      assert.equal("expired_token", err.code)
      assert.matches("expired", err.description)
    end)

    it("gives up when the code's lifetime has passed", function()
      s:script("/token", { status = 400, json = { error = "authorization_pending" } }, 0)
      s:script("/device", device_response { expires_in = 12 })
      local p = provider()
      local slept, sleep = recorder()
      local tok, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.is_nil(tok)
      assert.equal("expired_token", err.code)
      -- polls at 5 and 10 s, then waits out the 2 s left rather than a full interval
      assert.same({ 5, 5, 2 }, slept)
    end)

    it("backs off after network failures and keeps polling", function()
      s:script("/token", { hang = true })
      s:script("/token", { json = { access_token = "AT-2", token_type = "Bearer" } })
      s:script("/device", device_response())
      local p = provider { timeout = 0.3 }
      local slept, sleep = recorder()
      local tok = assert(p:poll_device(assert(p:device_authorization()), { sleep = sleep }))
      assert.equal("AT-2", tok.access_token)
      assert.same({ 5, 10 }, slept)
    end)

    it("keeps the device code out of error text", function()
      s:script("/token", { status = 400, json = { error = "invalid_grant",
        error_description = "device code DEVICE-CODE-0123456789 is unknown" } })
      s:script("/device", device_response())
      local p = provider()
      local _, sleep = recorder()
      local _, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.equal("invalid_grant", err.code)
      assert.not_matches("DEVICE%-CODE%-0123456789", tostring(err))
    end)

    it("shows the code through the host's function (a game's own UI)", function()
      s:script("/token", { json = { access_token = "AT-3", token_type = "Bearer" } })
      s:script("/device", device_response { verification_uri_complete = "https://example.com/d?c=WDJB-MJHT" })
      local shown
      local tok = assert(provider():login { flow = "device", show = function(info) shown = info end,
        sleep = function() end })
      assert.equal("AT-3", tok.access_token)
      assert.equal("device", shown.flow)
      assert.equal("WDJB-MJHT", shown.user_code)
      assert.equal("https://example.com/device", shown.verification_uri)
      assert.equal("https://example.com/d?c=WDJB-MJHT", shown.verification_uri_complete)
      assert.matches("WDJB%-MJHT", shown.message)
      assert.not_matches("DEVICE%-CODE", shown.message)
    end)
  end)

  describe("hostile device authorization responses", function()
    local clock = require "smartauth.clock"
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)
    after_each(function() clock.offset = 0 end)

    local function provider()
      return assert(smartauth.provider { device_authorization_endpoint = s.url .. "/device",
        token_endpoint = s.url .. "/token", client_id = "dev-client", retry = false })
    end

    -- a sleep that moves the wall clock as a real one would, without waiting
    local function shifting_sleep()
      local slept = {}
      return slept, function(sec)
        slept[#slept + 1] = sec
        clock.offset = clock.offset + sec
      end
    end

    local function sum(t)
      local n = 0
      for _, v in ipairs(t) do n = n + v end
      return n
    end

    it("shows user_code and verification URIs without control characters or escape sequences", function()
      s:script("/token", { json = { access_token = "AT-4", token_type = "Bearer" } })
      s:script("/device", { json = { device_code = "dc", expires_in = 600,
        user_code = "AB\27]0;owned\7CD\27[2J\r\nEF\u{9b}31m\u{202e}GH",
        verification_uri = "https://example.com/device?x=\u{9b}2J\u{202e}",
        verification_uri_complete = "https://example.com/device?c=\u{9b}1;1H" } })
      local out = tmp .. "/device-out"
      local f = assert(io.open(out, "w"))
      local tok = assert(provider():login { flow = "device", output = f, sleep = function() end })
      f:close()
      assert.equal("AT-4", tok.access_token)
      local text = proc.read_file(out)
      assert.matches("AB", text)
      assert.matches("GH", text)
      -- nothing a terminal would act on: C0 controls (but the message's own
      -- newlines), DEL, C1 controls (8-bit CSI) and bidirectional overrides
      assert.is_nil(text:find("[\0-\9\11-\31\127]"), "control character in " .. ("%q"):format(text))
      assert.is_nil(text:find("\xC2[\x80-\x9F]"), "C1 control in " .. ("%q"):format(text))
      assert.is_nil(text:find("\u{202e}", 1, true))
      -- the host's own UI gets the cleaned values too
      local shown
      s:script("/token", { json = { access_token = "AT-5", token_type = "Bearer" } })
      s:script("/device", { json = { device_code = "dc", expires_in = 600, user_code = "X\27[8mY",
        verification_uri = "https://example.com/d" } })
      assert(provider():login { flow = "device", show = function(info) shown = info end, sleep = function() end })
      assert.is_nil(shown.user_code:find("%c"))
      assert.matches("^X.*Y$", shown.user_code)
      assert.is_nil(shown.message:find("\27", 1, true))
      -- an ASCII control character in a URI makes it unusable: refused, as before
      s:script("/device", { json = { device_code = "dc", expires_in = 600, user_code = "U",
        verification_uri = "https://example.com/d\27[2J" } })
      local dev, err = provider():device_authorization()
      assert.is_nil(dev)
      assert.matches("verification_uri", err.description)
    end)

    it("says expired when the code's lifetime ends, however long the interval asked for", function()
      s:script("/token", { status = 400, json = { error = "authorization_pending" } }, 0)
      s:script("/device", { json = { device_code = "dc", user_code = "U", verification_uri = "https://e.example/d",
        expires_in = 5, interval = 3600 } })
      local p = provider()
      local slept, sleep = shifting_sleep()
      local tok, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.is_nil(tok)
      assert.equal("expired_token", err.code)
      assert.is_true(sum(slept) <= 5, "slept " .. table.concat(slept, ", "))
    end)

    it("caps the interval, and slow_down growth, by the lifetime left and a sane maximum", function()
      s:script("/token", { status = 400, json = { error = "slow_down" } }, 0)
      s:script("/device", { json = { device_code = "dc", user_code = "U", verification_uri = "https://e.example/d",
        expires_in = 600, interval = 10 ^ 9 } })
      local p = provider()
      local slept, sleep = shifting_sleep()
      local tok, err = p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.is_nil(tok)
      assert.equal("expired_token", err.code)
      for _, sec in ipairs(slept) do assert.is_true(sec <= flow.MAX_POLL_INTERVAL, "slept " .. sec) end
      assert.is_true(sum(slept) <= 600, "slept " .. sum(slept))
      -- it kept polling until the end rather than sleeping through it
      assert.is_true(#slept >= 600 / flow.MAX_POLL_INTERVAL, "polls " .. #slept)
      -- slow_down growth stops at the cap too
      s:reset()
      s:script("/token", { status = 400, json = { error = "slow_down" } }, 0)
      s:script("/device", { json = { device_code = "dc", user_code = "U", verification_uri = "https://e.example/d",
        expires_in = 3000 } })
      slept, sleep = shifting_sleep()
      p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.equal(5, slept[1])
      for _, sec in ipairs(slept) do assert.is_true(sec <= flow.MAX_POLL_INTERVAL, "slept " .. sec) end
    end)

    it("gives up in real time when the engine's own sleep is used", function()
      s:script("/token", { status = 400, json = { error = "authorization_pending" } }, 0)
      s:script("/device", { json = { device_code = "dc", user_code = "U", verification_uri = "https://e.example/d",
        expires_in = 1, interval = 3600 } })
      local t0 = socket.gettime()
      local tok, err = provider():login { flow = "device", show = function() end }
      local took = socket.gettime() - t0
      assert.is_nil(tok)
      assert.equal("expired_token", err.code)
      assert.is_true(took < 3, "took " .. took .. " s")
    end)
  end)

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
        "SMARTAUTH_CONFIG=" .. q(tmp .. "/envcfg.lua") .. " " .. proc.LUA_ENV .. "lua5.4 -e " .. q(script))
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

  describe("loopback redirect to localhost", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    local function provider(redirect)
      return assert(smartauth.provider { authorization_endpoint = s.url .. "/authorize",
        token_endpoint = s.url .. "/token", client_id = "loop-client", redirect_uri = redirect, retry = false })
    end

    local function free_dual_port()
      for _ = 1, 20 do
        local a = assert(socket.bind("127.0.0.1", 0))
        local _, port = a:getsockname()
        local b = socket.tcp6()
        local ok = b:bind("::1", port)
        a:close()
        b:close()
        if ok then return math.tointeger(tonumber(port)) end
      end
      error("no port free on both 127.0.0.1 and ::1")
    end

    it("refuses to log in when another socket holds [::1]:PORT", function()
      local port = free_dual_port()
      local squatter = socket.tcp6()
      assert(squatter:bind("::1", port))
      assert(squatter:listen(8))
      local opened = false
      local tok, err = provider("http://localhost:" .. port .. "/cb"):login { flow = "loopback", timeout = 1,
        show = function() end, open = function() opened = true return true end }
      squatter:close()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("::1", err.description, 1, true)
      assert.is_false(opened)
    end)

    it("listens on 127.0.0.1 and ::1 on the same port, and takes the callback on either", function()
      s:script("/token", { json = { access_token = "AT-L", token_type = "Bearer" } })
      local child, port
      local tok, err = provider("http://localhost/cb"):login { flow = "loopback", timeout = 30,
        show = function() end, open = function(u, ctx)
          assert.equal(2, #ctx.fds)
          local redirect = assert(oidc.parse_query(u).redirect_uri)
          port = tonumber(redirect:match("^http://localhost:(%d+)/cb$"))
          assert.truthy(port, redirect)
          local state = oidc.parse_query(u).state
          child = requests { { url = "http://[::1]:" .. port .. "/cb?code=c1&state=" .. state } }
          return true
        end }
      local got = cjson.decode(child:read("a"))
      child:close()
      assert(tok, tostring(err))
      assert.equal("AT-L", tok.access_token)
      assert.equal(200, got[1].status)
      assert.equal("http://localhost:" .. port .. "/cb", s:last_request().form.redirect_uri)
      -- both listeners are gone
      assert.is_nil(socket.connect("127.0.0.1", port))
      local c6 = socket.tcp6()
      c6:settimeout(1)
      assert.is_nil(c6:connect("::1", port))
      c6:close()
    end)
  end)

  describe("out-of-band paste on the wire", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    it("sends urn:ietf:wg:oauth:2.0:oob and exchanges the pasted code with PKCE", function()
      s:script("/token", { json = { access_token = "AT-OOB", token_type = "Bearer" } })
      local p = assert(smartauth.provider { authorization_endpoint = "https://idp.example/authorize",
        token_endpoint = s.url .. "/token", client_id = "cli", client_secret = "sec", client_auth = "post",
        redirect_uri = flow.OOB })
      local shown, prompt
      local tok = assert(p:login {
        show = function(info) shown = info end,
        ask = function(pr) prompt = pr return "  the-code-123 \n" end,
      })
      assert.equal("AT-OOB", tok.access_token)
      assert.equal("oob", shown.flow)
      local args = oidc.parse_query(shown.url)
      assert.equal(flow.OOB, args.redirect_uri)
      assert.equal("S256", args.code_challenge_method)
      assert.matches("Code", prompt)
      local form = s:last_request().form
      assert.equal("the-code-123", form.code)
      assert.equal(flow.OOB, form.redirect_uri)
      assert.equal("authorization_code", form.grant_type)
      assert.truthy(form.code_verifier)
    end)

    it("reads the code from the given input and checks the state of a pasted address", function()
      local p = assert(smartauth.provider { authorization_endpoint = "https://idp.example/authorize",
        token_endpoint = s.url .. "/token", client_id = "cli", redirect_uri = "http://127.0.0.1/cb" })
      local input = assert(io.open(tmp .. "/pasted", "w+"))
      input:write("http://127.0.0.1/cb?code=abc&state=not-the-state\n")
      input:seek("set")
      local out = assert(io.open(tmp .. "/shown", "w+"))
      local tok, err = p:login { flow = "oob", input = input, output = out }
      input:close()
      out:seek("set")
      local text = out:read("a")
      out:close()
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.equal("state", err.check)
      assert.matches("https://idp.example/authorize%?", text)
      assert.matches("Code: ", text)
      assert.equal(0, #s:requests())
    end)

    it("fails cleanly when nothing is pasted", function()
      local p = assert(smartauth.provider { authorization_endpoint = "https://idp.example/authorize",
        token_endpoint = s.url .. "/token", client_id = "cli" })
      local tok, err = p:login { flow = "oob", show = function() end, ask = function() return nil end }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      tok, err = p:login { flow = "oob", show = function() end, ask = function() return "   " end }
      assert.is_nil(tok)
      assert.matches("no code", err.description)
    end)
  end)

  describe("#interop against oidc-provider", function()
    local op

    setup(function() op = oidc.start() end)
    teardown(function() if op then op:stop() end end)

    local function discover(client_id, extra)
      local o = { client_id = client_id, scope = "openid email" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.discover(op.issuer, o))
    end

    describe("device flow", function()
      it("shows the code, polls while the person approves, and returns a verified token", function()
        local p = discover("device-client")
        local shown
        local slept = {}
        local tok = assert(p:login {
          open = false, -- no browser here: the device flow is the best there is
          show = function(info) shown = info end,
          sleep = function(sec)
            slept[#slept + 1] = sec
            -- the person approves on another device while the client waits
            if #slept == 2 then
              assert.is_true(op:device_login(shown.verification_uri_complete, { login = "alice" }))
            end
            socket.sleep(0.05)
          end,
        })
        assert.equal("device", shown.flow)
        assert.matches("^%u%u%u%u%-%u%u%u%u$", shown.user_code)
        assert.equal(op.issuer .. "/device", shown.verification_uri)
        assert.same({ 5, 5 }, slept)
        assert.equal("alice", tok.claims.sub)
        assert.equal("alice@example.com", tok.claims.email)
        assert.truthy(tok.refresh_token)
        assert.equal(tok.access_token, assert(p:token()).access_token)
        local info = assert(p:userinfo(tok))
        assert.equal("alice", info.sub)
      end)

      it("ends with access_denied when the person refuses", function()
        local p = discover("device-client")
        local dev = assert(p:device_authorization())
        -- the person opens the page, confirms the code, then cancels at the login
        local ok = pcall(op.device_login, op, dev.verification_uri_complete, { deny = true })
        assert.is_false(ok)
        local tok, err = p:poll_device(dev, { sleep = function() socket.sleep(0.05) end })
        assert.is_nil(tok)
        assert.equal("oauth", err.kind)
        assert.equal("access_denied", err.code)
      end)
    end)

    describe("loopback redirect", function()
      it("answers stray requests, accepts the one valid callback, and returns a verified token", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local child, shown, port
        local tok = assert(p:login {
          timeout = 30,
          show = function(info) shown = info end,
          open = function(url, ctx)
            assert.is_table(ctx.fds)
            local redirect = op:login(url, { login = "bob" })
            local base = redirect:match("^(http://127%.0%.0%.1:%d+)/cb%?")
            assert.truthy(base)
            port = tonumber(base:match(":(%d+)$"))
            child = requests {
              { idle = true, host = "127.0.0.1", port = port },
              { url = base .. "/favicon.ico" },
              { url = base .. "/" },
              { url = redirect, method = "POST" },
              { url = base .. "/cb?code=stolen&state=forged" },
              { url = base .. "/cb?code=nostate" },
              { url = redirect },
            }
            return true
          end,
        })
        local got = cjson.decode(child:read("a"))
        child:close()
        assert.equal("bob", tok.claims.sub)
        assert.equal("loopback", shown.flow)
        assert.equal("http://127.0.0.1:" .. port .. "/cb", shown.redirect_uri)
        assert.is_true(got[1].idle)
        assert.equal(404, got[2].status)
        assert.equal(404, got[3].status)
        assert.equal(405, got[4].status)
        assert.equal(400, got[5].status)
        assert.equal(400, got[6].status)
        assert.equal(200, got[7].status)
        assert.matches("text/html", got[7].ctype)
        assert.matches("You may close this tab", got[7].body)
        -- exactly one callback: the listener is gone
        assert.is_nil(socket.connect("127.0.0.1", port))
      end)

      it("listens on the port of a configured redirect URI", function()
        local probe = assert(socket.bind("127.0.0.1", 0))
        local _, free = probe:getsockname()
        probe:close()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1:" .. free .. "/cb" })
        local child
        local tok = assert(p:login { timeout = 30, show = function() end, open = function(url)
          assert.equal("http://127.0.0.1:" .. free .. "/cb", oidc.parse_query(url).redirect_uri)
          child = requests { { url = op:login(url) } }
          return true
        end })
        child:read("a")
        child:close()
        assert.equal("alice", tok.claims.sub)
      end)

      it("waits for the callback without blocking other tasks inside smartauth.spawn", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local ticks, child, tok, err = 0, nil, nil, nil
        local login = smartauth.spawn(function()
          tok, err = p:login { timeout = 30, show = function() end, open = function(url)
            -- the browser comes back half a second later
            child = requests { { url = op:login(url), delay = 0.5 } }
            return true
          end }
        end)
        smartauth.spawn(function()
          while login.status == "running" do
            ticks = ticks + 1
            smartauth.sleep(0.01)
          end
        end)
        smartauth.run()
        if child then child:read("a"); child:close() end
        assert.is_nil(err)
        assert.equal("alice", tok.claims.sub)
        -- the other task kept running while the listener waited
        -- ~25 ticks of 10 ms in the half second; a blocking wait allows 1
        assert.is_true(ticks >= 10, "ticks: " .. ticks)
      end)

      it("reports a refusal on the page and as an oauth error", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local child
        local tok, err = p:login { timeout = 30, show = function() end, open = function(url)
          child = requests { { url = op:login(url, { deny = true }) } }
          return true
        end }
        local got = cjson.decode(child:read("a"))
        child:close()
        assert.is_nil(tok)
        assert.equal("oauth", err.kind)
        assert.equal("access_denied", err.code)
        assert.matches("Login failed", got[1].body)
      end)

      it("gives up after the timeout with a clear error, and prints the URL when no browser opened", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local shown
        local t0 = socket.gettime()
        local tok, err = p:login { flow = "loopback", timeout = 1, open = function() return false end,
          show = function(info) shown = info end }
        local took = socket.gettime() - t0
        assert.is_nil(tok)
        assert.equal("timeout", err.kind)
        assert.matches("no login arrived at http://127%.0%.0%.1:%d+/cb within 1 s", err.description)
        assert.is_true(took >= 1 and took < 4, "took " .. took .. " s")
        assert.is_false(shown.opened)
        assert.matches("open this address", shown.message)
        assert.matches(op.issuer .. "/auth?", shown.message, 1, true)
      end)

      it("opens the browser with xdg-open, which does not inherit the listener", function()
        local bin = tmp .. "/bin"
        os.execute("mkdir -p " .. q(bin))
        local fake = assert(io.open(bin .. "/xdg-open", "w"))
        fake:write("#!/bin/sh\nprintf '%s\\n' \"$1\" > " .. q(tmp .. "/opened") .. "\n" ..
          "ls /proc/$$/fd > " .. q(tmp .. "/fds") .. "\n")
        fake:close()
        os.execute("chmod +x " .. q(bin .. "/xdg-open"))
        local script = [[
          local flow = require "smartauth.flow"
          local socket = require "socket"
          local s = socket.bind("127.0.0.1", 0)
          assert(flow.can_open_browser(), "expected a browser")
          assert(flow.open_browser("http://127.0.0.1:1/auth?a=1&b='x'", { fds = { s:getfd() } }))
          io.write(s:getfd())
          socket.sleep(0.5)
        ]]
        local ok, _, out = proc.run("cd " .. q(oidc.root) .. " && PATH=" .. q(bin) .. ":\"$PATH\" DISPLAY=:99 " ..
          "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 -e " .. q(script))
        assert.is_true(ok)
        local deadline = socket.gettime() + 5
        while not proc.read_file(tmp .. "/fds") and socket.gettime() < deadline do socket.sleep(0.05) end
        assert.equal("http://127.0.0.1:1/auth?a=1&b='x'\n", proc.read_file(tmp .. "/opened"))
        local fds = proc.read_file(tmp .. "/fds")
        assert.not_matches("\n" .. out .. "\n", "\n" .. fds)
      end)
    end)

    describe("paste flow", function()
      local child_script
      setup(function()
        child_script = tmp .. "/paste.lua"
        local f = assert(io.open(child_script, "w"))
        f:write([[
          package.path = arg[1] .. "/lua/?.lua;" .. arg[1] .. "/lua/?/init.lua;" .. package.path
          package.cpath = arg[1] .. "/build/?.so;" .. package.cpath
          local smartauth = require "smartauth"
          local cjson = require "cjson"
          local p = assert(smartauth.discover(arg[2], { client_id = "public-client", scope = "openid email",
            redirect_uri = "http://127.0.0.1/cb" }))
          local tok, err = p:login { flow = "oob" }
          io.write(cjson.encode(tok and { sub = tok.claims.sub } or { err = tostring(err) }))
        ]])
        f:close()
      end)

      -- Runs the child, waits for the URL it prints on stderr, plays the person, and
      -- writes `answer(redirect)` to its stdin.
      local function paste(answer)
        local out, errf = tmp .. "/paste.out", tmp .. "/paste.err"
        os.remove(out)
        local h = spawn({ "sh", "-c", "exec lua5.4 \"$@\" > " .. q(out), "sh", child_script, oidc.root, op.issuer },
          errf, "w")
        local url
        local deadline = socket.gettime() + 15
        repeat
          socket.sleep(0.05)
          url = (proc.read_file(errf) or ""):match("(http://127%.0%.0%.1:%d+/auth%?%S+)")
        until url or socket.gettime() > deadline
        assert.truthy(url, "no URL on the child's stderr: " .. tostring(proc.read_file(errf)))
        local redirect = op:login(url, { login = "carol" })
        h:write(answer(redirect), "\n")
        h:close()
        local text = proc.read_file(errf)
        assert.matches("then paste", text)
        assert.matches("Code: ", text)
        return cjson.decode(proc.read_file(out))
      end

      it("exchanges the whole redirect address pasted on stdin", function()
        local res = paste(function(redirect) return redirect end)
        assert.same({ sub = "carol" }, res)
      end)

      it("exchanges a bare code pasted on stdin", function()
        local res = paste(function(redirect) return oidc.parse_query(redirect).code end)
        assert.same({ sub = "carol" }, res)
      end)
    end)
  end)
end)
