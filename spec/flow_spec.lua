-- Interactive login (smartauth.flow): what loads when, choosing the flow,
-- the device prompt a person sees, and the paste flow against the recording
-- server and, with stdin fed by the test, against oidc-provider. The grant
-- is in device_spec.lua, the loopback listener in flow_loopback_spec.lua,
-- opening a browser in flow_browser_spec.lua, the real-browser run in
-- spec/interop/browser_spec.lua.
local smartauth = require "smartauth"
local flow = require "smartauth.flow"
local cjson = require "cjson"
local socket = require "socket"
local server = require "helpers.server"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local q = proc.shell_quote

local spawn = proc.spawn

describe("login flows", function()
  local tmp

  setup(function() tmp = proc.tmpdir("smartauth-flow.XXXXXX") end)
  teardown(function() proc.rmtree(tmp) end)

  describe("loading", function()
    -- a fresh process: this one has LuaSocket loaded by the spec itself
    local function loaded_after(code)
      local script = code .. "; io.write(package.loaded.socket and 'socket' or 'none')"
      local ok, _, out = proc.run(proc.LUA_ENV .. proc.LUA .. " -e " .. q(script))
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
      assert.has_error(function() pp:login(5) end, "bad argument #1 to 'login' (table expected, got number)")
      assert.has_error(function() pp:login { flwo = "oob" } end, "login: option 'flwo' is not known")
      assert.has_error(function() pp:login { flow = "magic" } end,
        "login: option 'flow' must be one of loopback, device, oob (got 'magic')")
      assert.has_error(function() pp:login { open = "firefox" } end, "login: option 'open' must be a function or false")
    end)
  end)

  describe("the device prompt", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    local function provider()
      return assert(smartauth.provider { device_authorization_endpoint = s.url .. "/device",
        token_endpoint = s.url .. "/token", client_id = "dev-client", scope = "api:read", retry = false })
    end

    local DEVICE = { device_code = "DEVICE-CODE-0123456789", user_code = "WDJB-MJHT",
      verification_uri = "https://example.com/device", expires_in = 1800 }

    local function device_response(extra)
      local t = {}
      for k, v in pairs(DEVICE) do t[k] = v end
      for k, v in pairs(extra or {}) do t[k] = v end
      return { json = t }
    end

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

    it("shows user_code and verification URIs without control characters or escape sequences", function()
      s:script("/token", { json = { access_token = "AT-4", token_type = "Bearer" } })
      s:script("/device", { json = { device_code = "dc", expires_in = 600,
        user_code = "AB\27]0;owned\7CD\27[2J\r\nEF\194\15531m\226\128\174GH",
        verification_uri = "https://example.com/device?x=\194\1552J\226\128\174",
        verification_uri_complete = "https://example.com/device?c=\194\1551;1H" } })
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
      assert.is_nil(text:find("\0", 1, true), "NUL in " .. ("%q"):format(text)) -- 5.1 patterns stop at a NUL
      assert.is_nil(text:find("[\1-\9\11-\31\127]"), "control character in " .. ("%q"):format(text))
      assert.is_nil(text:find("\194[\128-\159]"), "C1 control in " .. ("%q"):format(text))
      assert.is_nil(text:find("\226\128\174", 1, true))
      -- the host's own UI gets the cleaned values too
      local shown
      s:script("/token", { json = { access_token = "AT-5", token_type = "Bearer" } })
      s:script("/device", { json = { device_code = "dc", expires_in = 600, user_code = "X\27[8mY",
        verification_uri = "https://example.com/d" } })
      assert(provider():login { flow = "device", show = function(info) shown = info end, sleep = function() end })
      assert.is_nil(shown.user_code:find("%c"))
      assert.matches("^X.*Y$", shown.user_code)
      assert.is_nil(shown.message:find("\27", 1, true))
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
      local text = out:read("*a")
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

    describe("paste flow", function()
      local child_script
      setup(function()
        child_script = tmp .. "/paste.lua"
        local f = assert(io.open(child_script, "w"))
        f:write([[
          package.path = arg[1] .. "/lua/?.lua;" .. arg[1] .. "/lua/?/init.lua;" .. package.path
          package.cpath = arg[1] .. "/" .. arg[3] .. "/?.so;" .. package.cpath
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
        local h = spawn({ "sh", "-c", "exec " .. proc.LUA .. " \"$@\" > " .. q(out), "sh", child_script,
          oidc.root, op.issuer,
          proc.BUILD },
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
