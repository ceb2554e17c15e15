-- The device authorization grant (RFC 8628, smartauth.device): the device
-- code request and the polling against the recording server, hostile
-- answers, and the whole grant against oidc-provider. The prompt a person
-- sees (smartauth.flow) is in spec/flow_spec.lua.
local smartauth = require "smartauth"
local device = require "smartauth.device"
local socket = require "socket"
local server = require "helpers.server"
local oidc = require "helpers.oidc"

describe("device authorization grant", function()
  describe("arguments", function()
    it("raises on a programming mistake, naming the argument", function()
      local p = assert(smartauth.provider { device_authorization_endpoint = "https://idp.example/device",
        token_endpoint = "https://idp.example/token", client_id = "c" })
      assert.has_error(function() p:device_authorization(5) end,
        "bad argument #1 to 'device_authorization' (table expected, got number)")
      assert.has_error(function() p:device_authorization { audience = {} } end,
        "device_authorization: parameter 'audience' must be a string or number")
      assert.has_error(function() p:poll_device("code") end,
        "bad argument #1 to 'poll_device' (device table from device_authorization expected)")
      assert.has_error(function() p:poll_device({ device_code = "d" }, 5) end,
        "bad argument #2 to 'poll_device' (table expected, got number)")
    end)
  end)

  describe("on the wire", function()
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

    it("refuses a verification URI with control characters, and keeps them out of tostring", function()
      -- an ASCII control character in a URI makes it unusable: refused, as before
      s:script("/device", { json = { device_code = "dc", expires_in = 600, user_code = "U",
        verification_uri = "https://example.com/d\27[2J" } })
      local dev, err = provider():device_authorization()
      assert.is_nil(dev)
      assert.matches("verification_uri", err.description)
      -- a user code is not a URI: kept, but shown cleaned by tostring (a log line)
      s:script("/device", { json = { device_code = "dc", expires_in = 600,
        user_code = "AB\27]0;owned\7CD\194\15531m\226\128\174GH", verification_uri = "https://example.com/d" } })
      dev = assert(provider():device_authorization())
      local text = tostring(dev)
      assert.matches("AB.*GH", text)
      assert.is_nil(text:find("%c"), ("%q"):format(text))
      assert.is_nil(text:find("\194[\128-\159]"), ("%q"):format(text))
      assert.is_nil(text:find("\226\128\174", 1, true))
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
      for _, sec in ipairs(slept) do assert.is_true(sec <= device.MAX_POLL_INTERVAL, "slept " .. sec) end
      assert.is_true(sum(slept) <= 600, "slept " .. sum(slept))
      -- it kept polling until the end rather than sleeping through it
      assert.is_true(#slept >= 600 / device.MAX_POLL_INTERVAL, "polls " .. #slept)
      -- slow_down growth stops at the cap too
      s:reset()
      s:script("/token", { status = 400, json = { error = "slow_down" } }, 0)
      s:script("/device", { json = { device_code = "dc", user_code = "U", verification_uri = "https://e.example/d",
        expires_in = 3000 } })
      slept, sleep = shifting_sleep()
      p:poll_device(assert(p:device_authorization()), { sleep = sleep })
      assert.equal(5, slept[1])
      for _, sec in ipairs(slept) do assert.is_true(sec <= device.MAX_POLL_INTERVAL, "slept " .. sec) end
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
  end)
end)
