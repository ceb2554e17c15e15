-- Discovery beyond OpenID, against the recording server: RFC 8414 metadata with the
-- path-insertion rule, the fallback between it and openid-configuration (RFC 8414 §5),
-- the issuer check on each; WebFinger issuer discovery (OIDC Discovery §2); the
-- WWW-Authenticate parser and RFC 9728 protected resource metadata (smartauth.for_resource:
-- well-known and 401 paths, registration of a public client, step-up in p:request).
-- Hostile answers throughout. The same against oidc-provider: interop/for_resource_spec.lua.
local smartauth = require "smartauth"
local server = require "helpers.server"
local cjson = require "cjson.safe"
local rm = require "smartauth.resource_meta"
local discovery = require "smartauth.discovery"

describe("discovery beyond OpenID", function()
  local s, n

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function() s:reset() end)

  local function paths()
    local out = {}
    for _, r in ipairs(s:requests()) do out[#out + 1] = r.path end
    return out
  end

  -- a fresh issuer path per test (discovery documents are cached per process)
  local function fresh()
    n = (n or 0) + 1
    return "t" .. n
  end

  local function doc(issuer, extra)
    local d = { issuer = issuer, token_endpoint = s.url .. "/token", authorization_endpoint = s.url .. "/authorize" }
    for k, v in pairs(extra or {}) do d[k] = v end
    return { json = d }
  end

  describe("RFC 8414 and the fallback", function()
    it("inserts /.well-known/oauth-authorization-server before the issuer's path", function()
      local t = fresh()
      local iss = s.url .. "/" .. t
      s:script("/.well-known/oauth-authorization-server/" .. t, doc(iss))
      local p = assert(smartauth.discover(iss, { discovery = "oauth" }))
      assert.same({ "/.well-known/oauth-authorization-server/" .. t }, paths())
      assert.equal(s.url .. "/token", p:endpoint("token_endpoint"))
      assert.equal("application/json", s:last_request().headers.accept)
    end)

    it("drops a terminating slash of the path before inserting (RFC 8414 §3.1)", function()
      local t = fresh()
      local iss = s.url .. "/" .. t .. "/"
      s:script("/.well-known/oauth-authorization-server/" .. t, doc(iss))
      assert(smartauth.discover(iss, { discovery = "oauth" }))
      assert.same({ "/.well-known/oauth-authorization-server/" .. t }, paths())
      assert.equal(s.url .. "/.well-known/oauth-authorization-server",
        discovery.well_known(s.url, "oauth-authorization-server"))
      assert.equal("https://h/.well-known/oauth-protected-resource/a/b?x=1",
        discovery.well_known("https://h/a/b/?x=1", "oauth-protected-resource"))
    end)

    it("auto: openid-configuration first, then RFC 8414's on a 404", function()
      local t = fresh()
      local iss = s.url .. "/" .. t
      s:script("/.well-known/oauth-authorization-server/" .. t, doc(iss))
      local p = assert(smartauth.discover(iss))
      assert.same({ "/" .. t .. "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/" .. t }, paths())
      assert.equal(iss, p:metadata().issuer)
      -- cached: no request the second time
      s:reset()
      assert(smartauth.discover(iss))
      assert.same({}, paths())
    end)

    it("auto: then openid-configuration inserted the RFC 8414 way; a body that is not JSON falls back too", function()
      local t = fresh()
      local iss = s.url .. "/" .. t
      s:script("/" .. t .. "/.well-known/openid-configuration", { body = "<html>hello</html>" })
      s:script("/.well-known/openid-configuration/" .. t, doc(iss))
      assert(smartauth.discover(iss))
      assert.same({ "/" .. t .. "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/" .. t, "/.well-known/openid-configuration/" .. t }, paths())
    end)

    it("an issuer that does not match is an error, never a reason to try the next URL", function()
      local t = fresh()
      local iss = s.url .. "/" .. t
      s:script("/.well-known/oauth-authorization-server/" .. t, doc(s.url .. "/evil"))
      s:script("/.well-known/openid-configuration/" .. t, doc(iss))
      local p, err = smartauth.discover(iss)
      assert.is_nil(p)
      assert.equal("validation", err.kind)
      assert.truthy(tostring(err):find("does not match", 1, true))
      assert.equal(2, #paths())
    end)

    it("oidc: one URL, no fallback; every candidate missing reports the first", function()
      local t = fresh()
      local iss = s.url .. "/" .. t
      local p, err = smartauth.discover(iss, { discovery = "oidc" })
      assert.is_nil(p)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.same({ "/" .. t .. "/.well-known/openid-configuration" }, paths())
      s:reset()
      p, err = smartauth.discover(iss)
      assert.is_nil(p)
      assert.equal(404, err.status)
      assert.truthy(tostring(err):find("/" .. t .. "/.well-known/openid-configuration", 1, true))
      assert.equal(3, #paths())
    end)

    it("a network failure is not a reason to try the next URL", function()
      local t = fresh()
      s:script("/" .. t .. "/.well-known/openid-configuration", { hang = true })
      local p, err = smartauth.discover(s.url .. "/" .. t, { retry = false, timeout = 0.3 })
      assert.is_nil(p)
      assert.equal("timeout", err.kind)
      assert.equal(1, #paths())
    end)

    it("refuses an unknown discovery mode", function()
      local p, err = smartauth.provider { issuer = s.url, discovery = "webfinger" }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.truthy(tostring(err):find("discovery", 1, true))
    end)
  end)

  describe("WebFinger", function()
    local REL = "http://openid.net/specs/connect/1.0/issuer"
    local host

    before_each(function() host = s.url:match("^http://(.*)$") end)

    local function links(issuer)
      return { json = { subject = "x", links = { { rel = "other", href = "https://no.example" },
        { rel = REL, href = issuer }, { rel = REL, href = "https://second.example" } } } }
    end

    it("asks the account's host for its issuer", function()
      s:script("/.well-known/webfinger", links("https://idp.example.com"))
      local iss = assert(smartauth.webfinger("acct:alice@" .. host, { allow_http = true }))
      assert.equal("https://idp.example.com", iss)
      local r = s:last_request()
      assert.equal("GET", r.method)
      assert.same({ resource = "acct:alice@" .. host, rel = REL }, r.args)
      assert.equal("rel=" .. "http%3A%2F%2Fopenid.net%2Fspecs%2Fconnect%2F1.0%2Fissuer&resource=acct%3Aalice%40" ..
        host:gsub(":", "%%3A"), r.query)
    end)

    it("normalizes user@host, host:port, URLs (fragment dropped) and the host's case", function()
      local cases = {
        { "bob@" .. host, "acct:bob@" .. host },
        { host, "https://" .. host },
        { host .. "/joe", "https://" .. host .. "/joe" },
        { "http://" .. host .. "/joe#frag", "http://" .. host .. "/joe" },
        { "acct:juliet%40capulet.example@" .. host, "acct:juliet%40capulet.example@" .. host },
      }
      for _, c in ipairs(cases) do
        s:reset()
        s:script("/.well-known/webfinger", links("https://idp.example.com/" .. c[1]:len()))
        assert.equal("https://idp.example.com/" .. c[1]:len(), assert(smartauth.webfinger(c[1], { allow_http = true })))
        assert.equal(c[2], s:last_request().args.resource)
      end
    end)

    it("lower-cases the host it asks", function()
      s:script("/.well-known/webfinger", links("https://idp.example.com"))
      local port = host:match(":(%d+)$")
      assert(smartauth.webfinger("acct:Alice@LocalHost:" .. port, { allow_http = true }))
      local r = s:last_request()
      assert.equal("localhost:" .. port, r.headers.host)
      assert.equal("acct:Alice@LocalHost:" .. port, r.args.resource) -- the resource as given
    end)

    it("speaks https unless allowed otherwise", function()
      local iss, err = smartauth.webfinger("acct:alice@" .. host, { retry = false, timeout = 5 })
      assert.is_nil(iss)
      assert.is_not_nil(err)
      assert.equal(0, #paths()) -- a TLS handshake to a plain server: no HTTP request recorded
    end)

    it("refuses inputs without a usable host", function()
      for _, bad in ipairs { "", "acct:nohost", "a b@" .. host, "acct:x@host/path", "mailto:x", ("a"):rep(3000) } do
        local iss, err = smartauth.webfinger(bad, { allow_http = true })
        assert.is_nil(iss, bad)
        assert.equal("config", err.kind, bad)
      end
      assert.equal(0, #paths())
      assert.has_error(function() smartauth.webfinger(nil) end)
    end)

    it("refuses hostile answers", function()
      local answers = {
        { status = 404, json = { error = "x" } },
        { body = "not json" },
        { json = { links = "x" } },
        { json = { subject = "x" } },
        { json = { links = { { rel = "other", href = "https://a" } } } },
        { json = { links = { { rel = REL, href = 42 } } } },
        { json = { links = { { rel = REL, href = "http://evil.example" } } } },
        { json = { links = { { rel = REL, href = "javascript:alert(1)" } } } },
        { json = { links = { { rel = REL, href = "https://idp.example/#frag" } } } },
        { json = { links = { { rel = REL, href = "https://idp.example/?q=1" } } } },
        { body_size = 300000 },
        { truncate = true, body = '{"links":[' },
      }
      for i, a in ipairs(answers) do
        s:reset()
        s:script("/.well-known/webfinger", a)
        local iss, err = smartauth.webfinger("acct:alice@" .. host, { allow_http = true, retry = false })
        if i == 7 then
          -- allow_http lets an http issuer through (tests on loopback hosts only)
          assert.equal("http://evil.example", iss)
        else
          assert.is_nil(iss, "answer " .. i)
          assert.is_table(err, "answer " .. i)
        end
      end
    end)
  end)

  describe("WWW-Authenticate", function()
    local parse = rm.parse_challenges

    it("reads several challenges, quoted strings and token68", function()
      local c = assert(parse('Basic realm="a, b", Bearer resource_metadata="https://r/.well-known/x", ' ..
        'error="insufficient_scope", scope="read write", Negotiate abc+/==, DPoP algs="ES256 PS256"'))
      assert.equal(4, #c)
      assert.same({ scheme = "basic", params = { realm = "a, b" } }, c[1])
      assert.same({ resource_metadata = "https://r/.well-known/x", error = "insufficient_scope",
        scope = "read write" }, c[2].params)
      assert.equal("negotiate", c[3].scheme)
      assert.equal("abc+/==", c[3].token68)
      assert.same({ algs = "ES256 PS256" }, c[4].params)
      c = assert(parse('BEARER Realm = "q\\"uo\\\\te", ERROR=invalid_token'))
      assert.same({ realm = 'q"uo\\te', error = "invalid_token" }, c[1].params)
      assert.same({}, assert(parse("")))
      assert.same({ { scheme = "bearer", params = {} } }, assert(parse("Bearer")))
    end)

    it("never raises on random input (a small fuzz over the grammar's characters)", function()
      local alphabet = { "Bearer", "Basic", " ", ",", "=", '"', "\\", "a", "b=", "==", "\t", "\0", "\255", "x" }
      math.randomseed(1234)
      for _ = 1, 3000 do
        local parts = {}
        for i = 1, math.random(0, 24) do parts[i] = alphabet[math.random(#alphabet)] end
        local text = table.concat(parts)
        local ok, c, msg = pcall(parse, text)
        assert(ok, text)
        assert(type(c) == "table" or type(msg) == "string", text)
      end
    end)

    it("refuses malformed, repeated, oversized ones", function()
      for _, bad in ipairs {
        'Bearer realm="open', 'Bearer realm="a" junk', 'Bearer realm=x y', '=x', 'Bearer realm="a\0b"',
        'Bearer resource_metadata="https://a", resource_metadata="https://evil"', "Bearer {",
        "Bearer " .. ("a=b, "):rep(40), ("Basic, "):rep(40), "Bearer realm=\"" .. ("x"):rep(9000) .. "\"",
      } do
        local c, msg = parse(bad)
        assert.is_nil(c, bad:sub(1, 60))
        assert.is_string(msg)
      end
    end)
  end)

  describe("smartauth.for_resource", function()
    -- An authorization server (discovery document, registration, token endpoint) and a
    -- resource under a fresh path.
    local function world(t, opts)
      opts = opts or {}
      local as = s.url .. "/as-" .. t
      s:script("/as-" .. t .. "/.well-known/openid-configuration", doc(as, {
        registration_endpoint = s.url .. "/reg-" .. t, code_challenge_methods_supported = { "S256" },
        jwks_uri = s.url .. "/jwks" }), 0)
      s:script("/reg-" .. t, { status = 201, json = opts.reg or { client_id = "dyn-" .. t,
        redirect_uris = { "http://127.0.0.1/callback" }, token_endpoint_auth_method = "none",
        registration_access_token = "rat-" .. t, registration_client_uri = s.url .. "/reg-" .. t .. "/c" } }, 0)
      return as, s.url .. "/api-" .. t
    end

    it("reads the well-known metadata, discovers the server, registers a public client", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/.well-known/oauth-protected-resource/api-" .. t, { json = { resource = res,
        authorization_servers = { as }, scopes_supported = { "read", "write" } } })
      local p, reg = smartauth.for_resource(res)
      assert(p, reg)
      assert.equal("dyn-" .. t, p.options.client_id)
      assert.equal("dyn-" .. t, reg.client_id)
      assert.equal("none", p.options.client_auth)
      assert.equal(res, p.options.resource)
      assert.equal("read write", p.options.scope)
      assert.equal("http://127.0.0.1/callback", p.options.redirect_uri)
      assert.equal(as, p:endpoint("issuer"))
      assert.same({ "/.well-known/oauth-protected-resource/api-" .. t,
        "/as-" .. t .. "/.well-known/openid-configuration",
        "/reg-" .. t }, paths())
      local r = s:requests()[3]
      assert.equal("POST", r.method)
      assert.equal("application/json", r.headers["content-type"])
      assert.same({ client_name = "smartauth", application_type = "native",
        redirect_uris = { "http://127.0.0.1/callback" }, grant_types = { "authorization_code", "refresh_token" },
        response_types = { "code" }, token_endpoint_auth_method = "none" }, cjson.decode(r.body))
      -- the authorization request carries the resource and PKCE
      local u = assert(p:authorization_url())
      local enc = res:gsub("[:/]", function(c) return ("%%%02X"):format(c:byte()) end)
      assert.truthy(u:find("resource=" .. enc, 1, true))
      assert.truthy(u:find("code_challenge_method=S256", 1, true))
    end)

    it("follows a 401's resource_metadata when there is no well-known document", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/api-" .. t, { status = 401, headers = { ["WWW-Authenticate"] =
        'Basic realm="x", Bearer error="invalid_request", resource_metadata="' .. s.url .. '/meta-' .. t ..
        '", scope="files:read"' } })
      s:script("/meta-" .. t, { json = { resource = res, authorization_servers = { as, "https://other.example" } } })
      local p = assert(smartauth.for_resource(res, { client_id = "mine" }))
      assert.equal("mine", p.options.client_id)
      assert.equal("files:read", p.options.scope)
      assert.same({ "/.well-known/oauth-protected-resource/api-" .. t, "/api-" .. t, "/meta-" .. t,
        "/as-" .. t .. "/.well-known/openid-configuration" }, paths())
      assert.is_nil(s:requests()[2].headers.authorization)
    end)

    it("reuses a registration kept in the store", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/.well-known/oauth-protected-resource/api-" .. t, { json = { resource = res,
        authorization_servers = { as } } }, 0)
      local st = smartauth.store.memory()
      local p1 = assert(smartauth.for_resource(res, { store = st }))
      local p2 = assert(smartauth.for_resource(res, { store = st }))
      assert.equal(p1.options.client_id, p2.options.client_id)
      local function regs()
        local c = 0
        for _, r in ipairs(s:requests()) do if r.path == "/reg-" .. t then c = c + 1 end end
        return c
      end
      assert.equal(1, regs())
      -- other client metadata: another client
      assert(smartauth.for_resource(res, { store = st, client_name = "other" }))
      assert.equal(2, regs())
      assert.equal("other", cjson.decode(s:last_request().body).client_name)
    end)

    it("refuses hostile or unusable metadata", function()
      local t = fresh()
      local as, res = world(t)
      local wk = "/.well-known/oauth-protected-resource/api-" .. t
      local cases = {
        { { json = { resource = res .. "/other", authorization_servers = { as } } }, "validation" },
        { { json = { authorization_servers = { as } } }, "validation" },
        { { json = { resource = res, authorization_servers = { "http://evil.example" } } }, "validation" },
        { { json = { resource = res, authorization_servers = "x" } }, "validation" },
        { { json = { resource = res, authorization_servers = { 1 } } }, "validation" },
        { { json = { resource = res, scopes_supported = { {} }, authorization_servers = { as } } }, "validation" },
        { { json = { resource = res } }, "config" },
        { { json = { resource = res, authorization_servers = {} } }, "config" },
        { { body_size = 300000 }, "http" },
      }
      for i, c in ipairs(cases) do
        s:script(wk, c[1])
        local p, err = smartauth.for_resource(res, { retry = false })
        assert.is_nil(p, "case " .. i)
        assert.equal(c[2], err.kind, "case " .. i .. ": " .. tostring(err))
      end
      -- a server the metadata does not list
      s:script(wk, { json = { resource = res, authorization_servers = { as } } })
      local p, err = smartauth.for_resource(res, { authorization_server = "https://other.example" })
      assert.is_nil(p)
      assert.equal("config", err.kind)
      -- 401 without resource_metadata, or with a malformed challenge
      s:script("/api-" .. t, { status = 401, headers = { ["WWW-Authenticate"] = 'Bearer realm="x"' } })
      p, err = smartauth.for_resource(res)
      assert.is_nil(p)
      assert.equal("config", err.kind)
      s:script("/api-" .. t, { status = 401, headers = { ["WWW-Authenticate"] =
        'Bearer resource_metadata="' .. s.url .. '/m1", resource_metadata="' .. s.url .. '/m2"' } })
      p, err = smartauth.for_resource(res)
      assert.is_nil(p)
      assert.equal("config", err.kind)
      -- a server without S256
      local t2 = fresh()
      local as2, res2 = world(t2)
      s:script("/as-" .. t2 .. "/.well-known/openid-configuration", doc(as2, {
        registration_endpoint = s.url .. "/reg-" .. t2, code_challenge_methods_supported = { "plain" } }), 0)
      s:script("/.well-known/oauth-protected-resource/api-" .. t2, { json = { resource = res2,
        authorization_servers = { as2 } } })
      p, err = smartauth.for_resource(res2)
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.truthy(tostring(err):find("S256", 1, true))
      -- a resource that is no usable URL
      p, err = smartauth.for_resource("http://evil.example/api")
      assert.is_nil(p)
      assert.equal("config", err.kind)
    end)

    it("steps up a client-credentials token on insufficient_scope, and says reauth for a person", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/.well-known/oauth-protected-resource/api-" .. t, { json = { resource = res,
        authorization_servers = { as } } }, 0)
      local p = assert(smartauth.for_resource(res, { client_id = "svc", client_secret = "sek", scope = "read" }))
      assert.equal("client_credentials", p:default_grant())
      s:script("/token", { json = { access_token = "at-read", token_type = "Bearer", expires_in = 3600,
        scope = "read" } })
      s:script("/token", { json = { access_token = "at-rw", token_type = "Bearer", expires_in = 3600,
        scope = "read write" } })
      s:script("/api-" .. t, { status = 403, headers = { ["WWW-Authenticate"] =
        'Bearer error="insufficient_scope", scope="write", resource_metadata="' .. s.url ..
        '/.well-known/oauth-protected-resource/api-' .. t .. '"' } })
      s:script("/api-" .. t, { json = { ok = true } })
      local before = #s:requests()
      local r = assert(p:request { url = res })
      assert.equal(200, r.status)
      local reqs = s:requests()
      local toks = {}
      for i = before + 1, #reqs do
        if reqs[i].path == "/token" then toks[#toks + 1] = reqs[i] end
      end
      assert.equal(2, #toks)
      assert.same({ grant_type = "client_credentials", scope = "read", resource = res }, toks[1].form)
      assert.same({ grant_type = "client_credentials", scope = "read write", resource = res }, toks[2].form)
      assert.equal("Bearer at-rw", reqs[#reqs].headers.authorization)
      -- the same answer again with no new scope: returned as it is (no loop)
      s:script("/api-" .. t, { status = 403, headers = { ["WWW-Authenticate"] =
        'Bearer error="insufficient_scope", scope="write"' } })
      r = assert(p:request { url = res })
      assert.equal(403, r.status)

      -- a person's provider: an error saying which scope to log in with
      local pp = assert(smartauth.for_resource(res, { client_id = "app", redirect_uri = "http://127.0.0.1:1/cb",
        scope = "read" }))
      local _, session = assert(pp:authorization_url())
      s:script("/token", { json = { access_token = "at-p", token_type = "Bearer", expires_in = 3600, scope = "read" } })
      assert(pp:exchange_code { code = "c", state = session.state, session = session, iss = false })
      s:script("/api-" .. t, { status = 403, headers = { ["WWW-Authenticate"] =
        'Bearer error="insufficient_scope", scope="write admin"' } })
      local none, err = pp:request { url = res }
      assert.is_nil(none)
      assert.equal("oauth", err.kind)
      assert.equal("insufficient_scope", err.code)
      assert.is_true(err.reauth)
      assert.equal("read write admin", err.scope)
    end)

    it("a 401 naming metadata whose servers changed says to start again", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/.well-known/oauth-protected-resource/api-" .. t, { json = { resource = res,
        authorization_servers = { as } } })
      local p = assert(smartauth.for_resource(res, { client_id = "svc", client_secret = "sek" }))
      s:script("/token", { json = { access_token = "at-1", token_type = "Bearer", expires_in = 3600 } })
      s:script("/api-" .. t, { status = 401, headers = { ["WWW-Authenticate"] =
        'Bearer error="invalid_token", resource_metadata="' .. s.url .. '/moved-' .. t .. '"' } })
      s:script("/moved-" .. t, { json = { resource = res, authorization_servers = { "https://new.example" } } })
      local r, err = p:request { url = res }
      assert.is_nil(r)
      assert.equal("config", err.kind)
      assert.same({ "https://new.example" }, err.authorization_servers)
      -- moved metadata naming the same server: the usual renewal
      s:script("/token", { json = { access_token = "at-2", token_type = "Bearer", expires_in = 3600 } })
      s:script("/api-" .. t, { status = 401, headers = { ["WWW-Authenticate"] =
        'Bearer error="invalid_token", resource_metadata="' .. s.url .. '/same-' .. t .. '"' } })
      s:script("/same-" .. t, { json = { resource = res, authorization_servers = { as } } })
      s:script("/api-" .. t, { json = { ok = true } })
      r = assert(p:request { url = res })
      assert.equal(200, r.status)
      assert.equal("Bearer at-2", s:last_request().headers.authorization)
    end)

    it("works inside smartauth.spawn", function()
      local t = fresh()
      local as, res = world(t)
      s:script("/.well-known/oauth-protected-resource/api-" .. t, { json = { resource = res,
        authorization_servers = { as } } })
      local got, e
      smartauth.spawn(function()
        got, e = smartauth.for_resource(res)
      end)
      smartauth.run()
      assert(got, e)
      assert.equal("dyn-" .. t, got.options.client_id)
    end)
  end)
end)
