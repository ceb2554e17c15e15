-- The generic provider against the recording server: the bytes of every
-- grant, client authentication, the authorization request, token caching,
-- refresh and calling an API.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local clock = require "smartauth.clock"
local server = require "helpers.server"

local function url_escape(v)
  return (v:gsub("[^%w._~-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local ODD_ID = "cl:ie nt%+ü"
local ODD_SECRET = "se:cr et%+ü=&"

describe("provider", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  describe("construction", function()
    it("exposes resolved endpoints as fields", function()
      local p = provider { authorization_endpoint = "https://idp.example/authorize" }
      assert.equal(s.url .. "/token", p:endpoint("token_endpoint"))
      assert.equal("https://idp.example/authorize", p:endpoint("authorization_endpoint"))
    end)

    it("rejects unknown options, naming them", function()
      local p, err = smartauth.provider { token_endpoint = s.url, clientid = "x" }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.matches("'clientid' is not known %(did you mean 'client_id'%?%)", err.description)
    end)

    it("rejects wrong option types, naming them", function()
      local _, err = smartauth.provider { token_endpoint = s.url, timeout = "5" }
      assert.equal("config", err.kind)
      assert.matches("'timeout' must be a number", err.description)
      _, err = smartauth.provider { token_endpoint = s.url, client_auth = "magic" }
      assert.matches("'client_auth' must be one of", err.description)
    end)

    it("accepts plain http only for loopback hosts or with allow_http", function()
      assert.is_nil((smartauth.provider { token_endpoint = "http://idp.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "http://127.0.0.1.evil.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "ftp://idp.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "https://user@idp.example/token" }))
      assert.truthy(smartauth.provider { token_endpoint = "http://localhost:8080/token" })
      assert.truthy(smartauth.provider { token_endpoint = "http://[::1]:8080/token" })
      assert.truthy(smartauth.provider { token_endpoint = "http://idp.example/token", allow_http = true })
      local _, err = smartauth.provider { token_endpoint = "https://x/t", redirect_uri = "http://app.example/cb" }
      assert.matches("redirect_uri", err.description)
    end)

    it("needs a client_secret for secret-based client authentication", function()
      local _, err = smartauth.provider { token_endpoint = s.url, client_id = "a", client_auth = "post" }
      assert.matches("needs option 'client_secret'", err.description)
    end)

    it("raises on a non-table argument", function()
      assert.has_error(function() smartauth.provider("x") end)
    end)

    it("never shows the client secret when printed or dumped", function()
      local p = provider { client_secret = "very-secret-value" }
      assert.not_matches("very%-secret", tostring(p))
      for k, v in pairs(p) do
        assert.not_equal("very-secret-value", v, k)
      end
    end)
  end)

  describe("client_credentials", function()
    it("sends id and secret form-encoded in HTTP Basic (RFC 6749 §2.3.1)", function()
      local p = provider { client_id = ODD_ID, client_secret = ODD_SECRET }
      local tok = assert(p:client_credentials { scope = "read write" })
      assert.matches("^at%-", tok.access_token)
      local r = s:last_request()
      assert.equal("POST", r.method)
      assert.equal("/token", r.path)
      assert.equal(ODD_ID, r.basic.user)
      assert.equal(ODD_SECRET, r.basic.pass)
      assert.equal("application/json", r.headers.accept)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.equal("grant_type=client_credentials&scope=read%20write", r.body)
      assert.is_nil(r.form.client_secret)
    end)

    it("sends credentials in the body with client_auth = post", function()
      local p = provider { client_id = ODD_ID, client_secret = ODD_SECRET, client_auth = "post" }
      assert(p:client_credentials())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.equal(ODD_ID, r.form.client_id)
      assert.equal(ODD_SECRET, r.form.client_secret)
      assert.equal("client_credentials", r.form.grant_type)
    end)

    it("sends only client_id with client_auth = none", function()
      local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "pub" })
      assert.equal("none", p.options.client_auth)
      assert(p:client_credentials())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.same({ grant_type = "client_credentials", client_id = "pub" }, r.form)
    end)

    it("sends extra parameters such as resource and audience", function()
      local p = provider()
      assert(p:client_credentials { resource = "https://api.example/", audience = "api" })
      local r = s:last_request()
      assert.equal("https://api.example/", r.form.resource)
      assert.equal("api", r.form.audience)
    end)

    -- A grant without extra parameters is built once and sent again as is;
    -- everything that changes the bytes must still reach the wire.
    it("sends the same bytes on repeated grants and follows every change", function()
      local p = provider { token_headers = { ["X-B"] = "2", ["X-A"] = "1" }, timeout = 5 }
      for _ = 1, 3 do assert(p:client_credentials()) end
      local reqs = s:requests()
      assert.equal(3, #reqs)
      for _, r in ipairs(reqs) do
        assert.equal("grant_type=client_credentials", r.body)
        assert.equal("cid", r.basic.user)
        assert.equal("1", r.headers["x-a"])
      end
      -- extra headers in sorted order: stable bytes
      local names = {}
      for _, h in ipairs(reqs[1].raw_headers) do names[#names + 1] = h[1]:lower() end
      assert.truthy(table.concat(names, ","):find("x-a,x-b", 1, true))
      -- another scope, then extras: their own bytes, the plain grant unchanged
      assert(p:client_credentials { scope = "read" })
      assert.equal("grant_type=client_credentials&scope=read", s:last_request().body)
      assert(p:client_credentials { resource = "r1" })
      assert.equal("grant_type=client_credentials&resource=r1", s:last_request().body)
      assert(p:client_credentials { resource = "r2" })
      assert.equal("grant_type=client_credentials&resource=r2", s:last_request().body)
      assert(p:client_credentials())
      assert.equal("grant_type=client_credentials", s:last_request().body)
      -- options are fixed at construction: changing one is a programming mistake
      assert.has_error(function() p.options.client_auth = "post" end)
      assert.equal(7, #s:requests())
      -- many scopes: the kept requests stay bounded, each still right
      for i = 1, 20 do
        assert(p:client_credentials { scope = "s" .. i })
        assert.equal("client_credentials", s:last_request().form.grant_type)
        assert.equal("s" .. i, s:last_request().form.scope)
      end
      for _, v in pairs(p) do
        if type(v) == "table" then
          for _, w in pairs(v) do assert.is_not.equal("csecret", w) end
        end
        assert.is_not.equal("csecret", v)
      end
    end)

    it("signs a fresh client assertion for every grant (no prepared bytes)", function()
      local p = provider { client_auth = "client_secret_jwt", client_secret = ("k"):rep(32) }
      assert(p:client_credentials())
      local a1 = s:last_request().form.client_assertion
      assert(p:client_credentials())
      local a2 = s:last_request().form.client_assertion
      assert.is_string(a1)
      assert.is_not.equal(a1, a2)
    end)
  end)

  describe("password", function()
    it("sends username and password, and keeps the password out of errors", function()
      s:script("/token", { status = 400, json = { error = "invalid_grant",
        error_description = "bad password p@ss w0rd!" } })
      local p = provider()
      local tok, err = p:password { username = "me@example.com", password = "p@ss w0rd!", scope = "x" }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.equal(400, err.status)
      assert.is_false(err.retryable)
      assert.not_matches("p@ss", tostring(err))
      local r = s:last_request()
      assert.same({ grant_type = "password", username = "me@example.com", password = "p@ss w0rd!", scope = "x" },
        r.form)
    end)

    it("uses the provider's username and password by default", function()
      local p = provider { username = "u", password = "pw" }
      assert(p:password())
      assert.equal("u", s:last_request().form.username)
    end)

    it("is a config error without credentials", function()
      local _, err = provider():password()
      assert.equal("config", err.kind)
    end)
  end)

  describe("authorization code", function()
    local function authz_provider(extra)
      local o = { authorization_endpoint = "https://idp.example/authorize?tenant=a",
        redirect_uri = "http://127.0.0.1:8765/cb", scope = "openid email" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end

    it("builds a request with state, nonce and PKCE S256 by default", function()
      local p = authz_provider()
      local u, session = p:authorization_url { prompt = "login", login_hint = "a b", max_age = 60 }
      assert.matches("^https://idp%.example/authorize%?tenant=a&", u)
      local q = core.form_decode(u:match("%?(.*)$"))
      assert.equal("code", q.response_type)
      assert.equal("cid", q.client_id)
      assert.equal("http://127.0.0.1:8765/cb", q.redirect_uri)
      assert.equal("openid email", q.scope)
      assert.equal(session.state, q.state)
      assert.equal(session.nonce, q.nonce)
      assert.equal("S256", q.code_challenge_method)
      assert.equal(core.pkce_challenge(session.code_verifier), q.code_challenge)
      assert.equal("login", q.prompt)
      assert.equal("a b", q.login_hint)
      assert.equal("60", q.max_age)
      assert.is_true(#session.state >= 43)
      local _, s2 = p:authorization_url()
      assert.not_equal(session.state, s2.state)
      assert.not_equal(session.code_verifier, s2.code_verifier)
    end)

    it("can turn PKCE off and leaves nonce out without openid", function()
      local p = authz_provider { scope = "files" }
      local u, session = p:authorization_url { pkce = false }
      assert.not_matches("code_challenge", u)
      assert.not_matches("nonce", u)
      assert.is_nil(session.code_verifier)
    end)

    it("exchanges the code with the verifier and redirect URI", function()
      local p = authz_provider { scope = "files" }
      local _, session = p:authorization_url()
      local tok = assert(p:exchange_code { code = "the-code", state = session.state, session = session })
      assert.matches("^rt%-", tok.refresh_token)
      local f = s:last_request().form
      assert.equal("authorization_code", f.grant_type)
      assert.equal("the-code", f.code)
      assert.equal(session.code_verifier, f.code_verifier)
      assert.equal("http://127.0.0.1:8765/cb", f.redirect_uri)
    end)

    it("rejects a callback whose state does not match, without a request", function()
      local p = authz_provider()
      local _, session = p:authorization_url()
      for _, st in ipairs { "wrong", "", session.state .. "x" } do
        local tok, err = p:exchange_code { code = "c", state = st, session = session }
        assert.is_nil(tok)
        assert.equal("validation", err.kind)
        assert.equal("state", err.check)
      end
      local _, err = p:exchange_code { code = "c", session = session }
      assert.equal("state", err.check)
      assert.equal(0, #s:requests())
    end)

    it("takes the whole redirect URL, and checks iss (RFC 9207)", function()
      local p = authz_provider { issuer = "https://idp.example", scope = "files" }
      local _, session = p:authorization_url()
      local cb = "http://127.0.0.1:8765/cb?code=abc&state=" .. session.state .. "&iss=https%3A%2F%2Fevil.example"
      local _, err = p:exchange_code { url = cb, session = session }
      assert.equal("iss", err.check)
      cb = "http://127.0.0.1:8765/cb?code=abc&state=" .. session.state .. "&iss=https%3A%2F%2Fidp.example"
      assert(p:exchange_code { url = cb, session = session })
      assert.equal("abc", s:last_request().form.code)
    end)

    it("insists on an ID token when openid was asked for", function()
      local p = authz_provider()
      local _, session = p:authorization_url()
      local tok, err = p:exchange_code { code = "c", state = session.state, session = session }
      assert.is_nil(tok)
      assert.equal("id_token", err.check)
    end)

    it("returns the authorization server's error from the callback", function()
      local p = authz_provider()
      local _, session = p:authorization_url()
      local _, err = p:exchange_code { url = "http://127.0.0.1/cb?error=access_denied&error_description=no&state="
        .. session.state, session = session }
      assert.equal("oauth", err.kind)
      assert.equal("access_denied", err.code)
    end)

    it("parses redirect URLs, fragments included, and rejects malformed ones", function()
      assert.same({ code = "a b", state = "s" }, smartauth.parse_redirect("http://x/cb?code=a+b&state=s"))
      assert.same({ code = "c", id_token = "t", state = "s" },
        smartauth.parse_redirect("http://x/cb?code=c#id_token=t&state=s"))
      assert.same({ code = "p" }, smartauth.parse_redirect("  code=p\n"))
      local v, err = smartauth.parse_redirect("http://x/cb?code=%zz")
      assert.is_nil(v)
      assert.equal("validation", err.kind)
      assert.is_nil((smartauth.parse_redirect("http://x/cb?" .. ("a"):rep(70000))))
    end)
  end)

  describe("refresh", function()
    it("keeps the refresh token when the server does not rotate it", function()
      local p = provider()
      s:script("/token", { json = { access_token = "new-at", token_type = "Bearer", expires_in = 60 } })
      local tok = assert(p:refresh("old-rt"))
      assert.equal("new-at", tok.access_token)
      assert.equal("old-rt", tok.refresh_token)
      assert.same({ grant_type = "refresh_token", refresh_token = "old-rt" }, s:last_request().form)
    end)

    it("takes the new refresh token when the server rotates it", function()
      local p = provider()
      local tok = assert(p:refresh("old-rt"))
      assert.not_equal("old-rt", tok.refresh_token)
    end)

    it("is a validation error without a refresh token", function()
      local _, err = provider():refresh({ access_token = "x" })
      assert.equal("validation", err.kind)
    end)
  end)

  describe("token()", function()
    after_each(function() clock.offset = 0 end)
    it("runs the grant once and then answers from the cache", function()
      local p = provider()
      local t1 = assert(p:token())
      for _ = 1, 10 do assert.equal(t1, p:token()) end
      assert.equal(1, #s:requests())
    end)

    it("refreshes within leeway of expiry", function()
      local p = provider { leeway = 100 }
      s:script("/token", { json = { access_token = "short", token_type = "bearer", expires_in = 1000,
        refresh_token = "rt-1" } })
      assert.equal("short", p:token().access_token)
      clock.offset = 950 -- 50 s left: within the leeway
      local t2 = assert(p:token())
      assert.not_equal("short", t2.access_token)
      assert.equal("refresh_token", s:last_request().form.grant_type)
      assert.equal("rt-1", s:last_request().form.refresh_token)
    end)

    it("runs the grant again when the refresh token is dead", function()
      local p = provider()
      s:script("/token", { json = { access_token = "a1", expires_in = 1000, refresh_token = "dead" } })
      assert(p:token())
      clock.offset = 1000
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local t = assert(p:token())
      local reqs = s:requests()
      assert.equal("refresh_token", reqs[2].form.grant_type)
      assert.equal("client_credentials", reqs[3].form.grant_type)
      assert.matches("^at%-", t.access_token)
    end)

    it("keeps a still-valid token when a refresh fails for a passing reason", function()
      local p = provider { leeway = 100, retry = false }
      s:script("/token", { json = { access_token = "keep", expires_in = 1000, refresh_token = "rt" } })
      assert(p:token())
      clock.offset = 950
      s:script("/token", { status = 503, body = "busy" })
      assert.equal("keep", assert(p:token()).access_token)
    end)

    it("shares a store between providers of the same client", function()
      local store = smartauth.store.memory()
      local p1, p2 = provider { store = store }, provider { store = store }
      local t = assert(p1:token())
      assert.equal(t.access_token, p2:token().access_token)
      assert.equal(1, #s:requests())
    end)

    it("is a config error when only a person can log in", function()
      local p = assert(smartauth.provider { authorization_endpoint = "https://idp.example/a",
        token_endpoint = s.url .. "/token", client_id = "pub" })
      local _, err = p:token()
      assert.equal("config", err.kind)
      assert.matches("log in first", err.description)
    end)
  end)

  describe("request()", function()
    it("attaches the token as a Bearer header", function()
      local p = provider()
      local res = assert(p:request { url = s.url .. "/api/items", query = { q = "a b" } })
      assert.equal(200, res.status)
      local r = s:last_request()
      assert.equal("/api/items", r.path)
      assert.equal("q=a%20b", r.query)
      assert.matches("^Bearer at%-", r.headers.authorization)
    end)

    it("refreshes once and retries on 401", function()
      local p = provider()
      assert(p:token())
      s:revoke_all()
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(200, res.status)
      local reqs = s:requests()
      assert.equal(4, #reqs) -- grant, 401, new grant, 200
      assert.equal("/api", reqs[2].path)
      assert.equal("/token", reqs[3].path)
      assert.not_equal(reqs[2].headers.authorization, reqs[4].headers.authorization)
    end)

    it("returns the second 401 as a response instead of looping", function()
      local p = provider()
      s:script("/api", { status = 401, body = "no" }, 5)
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(401, res.status)
      assert.equal(4, #s:requests())
    end)

    it("sends form and JSON bodies", function()
      local p = provider()
      assert(p:request { url = s.url .. "/api", body = { b = "2", a = "1" } })
      local r = s:last_request()
      assert.equal("POST", r.method)
      assert.equal("a=1&b=2", r.body)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert(p:request { method = "PUT", url = s.url .. "/api", json = { x = 1 } })
      r = s:last_request()
      assert.equal('{"x":1}', r.body)
      assert.equal("application/json", r.headers["content-type"])
    end)

    it("resolves relative URLs against api_base", function()
      local p = provider { api_base = s.url .. "/api/v2/" }
      assert(p:request { url = "/things" })
      assert.equal("/api/v2/things", s:last_request().path)
    end)

    it("refuses plain http to a non-loopback API host", function()
      local _, err = provider():request { url = "http://api.example/x" }
      assert.equal("config", err.kind)
      assert.equal(0, #s:requests())
    end)

    it("keeps the token out of transport errors", function()
      local p = provider { token_placement = "query" }
      local tok = assert(p:token())
      local _, err = p:request { url = "http://127.0.0.1:1/api" }
      assert.equal("network", err.kind)
      assert.not_matches(tok.access_token, tostring(err), 1, true)
    end)
  end)
end)

-- Security issue 12: the callback of the authorization code flow (RFC 6749
-- §3.1, §4.1.2, RFC 9207) and secrets echoed by a hostile token endpoint.
describe("provider against hostile callbacks", function()
  local s, n = nil, 0

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local REDIRECT = "http://127.0.0.1:8765/cb"

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret",
      authorization_endpoint = s.url .. "/authorize", redirect_uri = REDIRECT, scope = "files",
      retry = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  -- A provider whose metadata (discovery) says whether iss comes back (RFC 9207).
  local function discovered(iss_supported, redirect_uri)
    n = n + 1
    local issuer = s.url .. "/idp" .. n
    s:script("/idp" .. n .. "/.well-known/openid-configuration", { json = {
      issuer = issuer, authorization_endpoint = issuer .. "/authorize", token_endpoint = s.url .. "/token",
      authorization_response_iss_parameter_supported = iss_supported,
    } })
    local p = assert(smartauth.provider { issuer = issuer, client_id = "cid", client_secret = "csecret",
      redirect_uri = redirect_uri or REDIRECT, scope = "files", retry = false })
    local _, session = assert(p:authorization_url())
    s:reset()
    return p, session, issuer
  end

  local function cb(query, fragment)
    return REDIRECT .. "?" .. query .. (fragment and "#" .. fragment or "")
  end

  local function refused(check, tok, err)
    assert.is_nil(tok)
    assert.is_table(err)
    assert.equal("validation", err.kind)
    if check then assert.equal(check, err.check) end
    assert.equal(0, #s:requests(), "a request was sent")
  end

  describe("repeated parameters (RFC 6749 §3.1)", function()
    it("are refused by parse_redirect, in the query, the fragment and across both", function()
      for _, u in ipairs {
        "http://x/cb?code=a&code=b&state=s", "http://x/cb?code=a&state=s&state=t",
        "http://x/cb?code=a&state=s&code=a", "http://x/cb#code=a&code=b",
        "http://x/cb?code=a&state=s#code=b", "http://x/cb?code=a&state=s#state=t",
        "code=a&code=b", "http://x/cb?code=a&co%64e=b",
      } do
        local v, err = smartauth.parse_redirect(u)
        assert.is_nil(v, u)
        assert.equal("validation", err.kind)
        assert.matches("repeated", err.description)
      end
      assert.same({ code = "a", state = "s" }, smartauth.parse_redirect("http://x/cb?code=a&&state=s&"))
    end)

    it("are refused by url.decode", function()
      local v, msg = require("smartauth.url").decode("a=1&b=2&a=1")
      assert.is_nil(v)
      assert.matches("'a' is repeated", msg)
    end)

    it("make exchange_code refuse the callback without a request", function()
      local p = provider()
      local _, session = p:authorization_url()
      local st = session.state
      for _, u in ipairs {
        cb("code=a&code=b&state=" .. st), cb("code=a&state=" .. st .. "&state=" .. st),
        cb("code=a&state=wrong&state=" .. st), cb("state=" .. st .. "&code=a&state=x"),
      } do
        refused(nil, p:exchange_code { url = u, session = session })
      end
    end)
  end)

  describe("state before error", function()
    it("an error with a wrong or missing state is a state mismatch, not the attacker's text", function()
      local p = provider()
      local _, session = p:authorization_url()
      for _, u in ipairs {
        cb("error=access_denied&error_description=Call+%2B1-555-0100+to+fix+your+account"),
        cb("error=access_denied&error_description=Call+us&state=wrong"),
        cb("error=server_error&state="),
      } do
        local tok, err = p:exchange_code { url = u, session = session }
        refused("state", tok, err)
        assert.not_matches("555", tostring(err))
      end
    end)

    it("an error with the right state is the authorization server's oauth error", function()
      local p = provider()
      local _, session = p:authorization_url()
      local _, err = p:exchange_code { url = cb("error=access_denied&state=" .. session.state), session = session }
      assert.equal("oauth", err.kind)
      assert.equal("access_denied", err.code)
    end)
  end)

  describe("the fragment with response_type=code", function()
    it("is ignored: a code or state there is not taken", function()
      local p = provider()
      local _, session = p:authorization_url()
      refused(nil, p:exchange_code { url = cb("state=" .. session.state, "code=injected"), session = session })
      refused("state", p:exchange_code { url = cb("code=c1", "state=" .. session.state), session = session })
      assert(p:exchange_code { url = cb("code=c1&state=" .. session.state, "code=c2&state=x&%zz"),
        session = session })
      assert.equal("c1", s:last_request().form.code)
    end)

    it("is used when response_mode=fragment was asked for", function()
      local p = provider()
      local _, session = p:authorization_url { response_mode = "fragment" }
      assert(p:exchange_code { url = REDIRECT .. "#code=c3&state=" .. session.state, session = session })
      assert.equal("c3", s:last_request().form.code)
    end)
  end)

  describe("mix-up defence (RFC 9207)", function()
    it("refuses a callback without iss when the metadata says iss is sent", function()
      local p, session = discovered(true)
      refused("iss", p:exchange_code { url = cb("code=c&state=" .. session.state), session = session })
      refused("iss", p:exchange_code { code = "c", state = session.state, session = session })
      -- a code a person typed in has no response to carry iss: the caller says so
      assert(p:exchange_code { code = "c", state = session.state, iss = false, session = session })
    end)

    it("needs no iss for an out-of-band code", function()
      local p, session = discovered(true, "urn:ietf:wg:oauth:2.0:oob")
      assert.is_true(session.iss_required)
      assert(p:exchange_code { code = "c", state = session.state, session = session })
    end)

    it("takes a callback with the right iss, and refuses a wrong one", function()
      local p, session, issuer = discovered(true)
      refused("iss", p:exchange_code { url = cb("code=c&state=" .. session.state .. "&iss=" ..
        url_escape(issuer .. "x")), session = session })
      assert(p:exchange_code { url = cb("code=c&state=" .. session.state .. "&iss=" .. url_escape(issuer)),
        session = session })
      assert.equal("c", s:last_request().form.code)
    end)

    it("takes a callback without iss when the metadata does not promise one", function()
      local p, session = discovered(false)
      assert(p:exchange_code { url = cb("code=c&state=" .. session.state), session = session })
    end)

    it("refuses a session made for another provider before any request", function()
      local a = provider { token_endpoint = s.url .. "/token-a" }
      local b = provider { token_endpoint = s.url .. "/token" }
      local c = provider { client_id = "other" }
      local _, session = a:authorization_url()
      for _, p in ipairs { b, c } do
        refused("provider", p:exchange_code { code = "c", state = session.state, session = session })
        refused("provider", p:exchange_code { url = cb("code=c&state=" .. session.state), session = session })
      end
      local ia, sa = discovered(false)
      local ib = discovered(false)
      refused("provider", ib:exchange_code { code = "c", state = sa.state, session = sa })
      assert(ia:exchange_code { code = "c", state = sa.state, session = sa })
    end)

    it("refuses a session that authorization_url did not make", function()
      local p = provider()
      refused("provider", p:exchange_code { code = "c", state = "s", session = { state = "s" } })
    end)
  end)

  it("refuses a max_age that is not a non-negative integer", function()
    local p = provider()
    for _, v in ipairs { 0 / 0, math.huge, -1, 1.5, "soon" } do
      local u, err = p:authorization_url { max_age = v }
      assert.is_nil(u)
      assert.equal("config", err.kind)
    end
    local _, session = assert(p:authorization_url { max_age = 60.0 })
    assert.equal(60, session.max_age)
  end)
end)

-- Security issue 12, item 6: a token endpoint that echoes the request (its
-- form body, its Authorization header) gets the secrets back into the error
-- in the encodings the library made of them.
describe("provider against a token endpoint that echoes the request", function()
  local cjson = require "cjson.safe"
  local mime = require "mime"
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local SECRET = 'p@ss w/rd+&=\195\169"\\'
  local PASSWORD = 'pw: "x" + y/z&=\195\188\\n'

  -- Every way the library itself encodes v: form (the body), JSON, and
  -- base64 as in Basic (form-escaped inside, RFC 6749 §2.3.1).
  local function encodings(v)
    return { raw = v, form = core.form_escape(v), json = cjson.encode(v):sub(2, -2) }
  end

  -- Every 6-byte piece of the secret's raw and form-escaped bytes, to find
  -- what a base64 run in the text still carries.
  local function pieces(v)
    local out = {}
    for _, e in ipairs { v, core.form_escape(v) } do
      for i = 1, #e - 5 do out[#out + 1] = e:sub(i, i + 5) end
    end
    return out
  end

  -- The bytes behind every run of base64 characters in text, at each alignment.
  local function decoded_runs(text)
    local out = {}
    for run in text:gmatch("[%w+/=]+") do
      for k = 0, 3 do
        local r = run:sub(k + 1):gsub("=", "")
        r = r:sub(1, #r - #r % 4)
        out[#out + 1] = mime.unb64(r) or ""
      end
    end
    return out
  end

  local function assert_clean(err, secret)
    local texts = { err.description, tostring(err), err.code or "" }
    for _, text in ipairs(texts) do
      for what, e in pairs(encodings(secret)) do
        assert.is_nil(text:find(e, 1, true), what .. " encoding of the secret in: " .. text)
      end
      for _, bytes in ipairs(decoded_runs(text)) do
        for _, piece in ipairs(pieces(secret)) do
          assert.is_nil(bytes:find(piece, 1, true), "base64 of the secret in: " .. text)
        end
      end
    end
  end

  -- Runs grant() once to record what is sent, then again against an answer
  -- that echoes it all: the body, the Authorization header, and the secrets
  -- JSON-escaped.
  local function echoed(grant, secrets)
    assert(grant())
    local r = s:last_request()
    s:reset()
    local parts = { "body=" .. r.body }
    if r.headers.authorization then parts[#parts + 1] = "authorization=" .. r.headers.authorization end
    for _, v in ipairs(secrets) do parts[#parts + 1] = "json=" .. encodings(v).json end
    s:script("/token", { status = 401, json = { error = "invalid_client",
      error_description = table.concat(parts, " ") } })
    local tok, err = grant()
    assert.is_nil(tok)
    assert.equal("oauth", err.kind)
    assert.equal(r.body, s:last_request().body, "the second request differs from the first")
    assert.matches("grant_type=", err.description, 1, true) -- the echo came through
    return err
  end

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "c:id é", client_secret = SECRET, retry = false }
    for k, v in pairs(extra) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  it("scrubs the client secret of client_auth = basic in every encoding", function()
    local p = provider { client_auth = "basic" }
    local err = echoed(function() return p:client_credentials() end, { SECRET })
    assert.matches("authorization=Basic [redacted] ", err.description, 1, true)
    assert_clean(err, SECRET)
  end)

  it("scrubs the client secret of client_auth = post in every encoding", function()
    local p = provider { client_auth = "post" }
    local err = echoed(function() return p:client_credentials() end, { SECRET })
    assert.matches("client_secret=[redacted]", err.description, 1, true)
    assert_clean(err, SECRET)
  end)

  it("scrubs the password and the client secret of the password grant in every encoding", function()
    for _, auth in ipairs { "basic", "post" } do
      s:reset()
      local p = provider { client_auth = auth, username = "me@example.com", password = PASSWORD }
      local err = echoed(function() return p:password() end, { SECRET, PASSWORD })
      assert.matches("password=[redacted]", err.description, 1, true)
      assert_clean(err, SECRET)
      assert_clean(err, PASSWORD)
    end
  end)

  it("scrubs the password of a public client (no client secret before it in the list)", function()
    local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "pub", retry = false,
      username = "me@example.com", password = PASSWORD })
    local err = echoed(function() return p:password() end, { PASSWORD })
    assert.matches("password=[redacted]", err.description, 1, true)
    assert_clean(err, PASSWORD)
  end)

  it("scrubs a secret at any position of a base64 text, and leaves other text alone", function()
    local errors = smartauth.errors
    for _, prefix in ipairs { "", "a", "ab", "abc", "c:id é:" } do
      for _, enc in ipairs { core.b64_encode(prefix .. SECRET .. "tail"), core.b64_encode(prefix .. SECRET),
          core.b64_encode(prefix .. core.form_escape(SECRET)) } do
        local out = errors.scrub("x " .. enc .. " y", { SECRET })
        assert.equal("x [redacted] y", out)
      end
    end
    assert.equal("invalid client (cid) grant_type=password",
      errors.scrub("invalid client (cid) grant_type=password", { SECRET, "abc" }))
  end)
end)

describe("provider face (issue 13)", function()
  -- every option of the schema, each with a value of its type
  local VALUES = {
    string = "x", url = "https://idp.example/x", number = 60, boolean = false, table = {}, any = nil,
  }

  it("keeps every option in p.options: no option shadows a method", function()
    local provider_mod = require "smartauth.provider"
    local opts = {}
    for k, spec in pairs(provider_mod.SCHEMA) do
      local t = type(spec) == "table" and spec.type or spec
      local v = VALUES[t]
      if type(spec) == "table" and spec.enum then v = spec.enum[1] end
      if type(spec) == "table" and spec.min and v ~= nil and type(v) == "number" then v = math.max(v, spec.min) end
      opts[k] = v
    end
    opts.client_auth, opts.client_secret = "basic", "s"
    opts.issuer, opts.redirect_uri = "https://idp.example", "https://app.example/cb"
    opts.store, opts.retry, opts.client_assertion_key, opts.jwks = nil, nil, nil, nil
    opts.id_token_algs = { "RS256" }
    local p = assert(smartauth.provider(opts))
    for k in pairs(opts) do
      assert.is_nil(rawget(p, k), "option " .. k .. " is a field of the provider")
    end
    local mt = getmetatable(p).__index
    for name, fn in pairs(mt) do
      if type(fn) == "function" then
        assert.equal(fn, p[name], "method " .. name .. " is shadowed")
      end
    end
    for _, m in ipairs { "token", "request", "refresh", "logout", "default_grant", "stored", "discover",
      "authorization_url", "exchange_code", "verify_id_token", "userinfo", "login", "endpoint", "metadata" } do
      assert.is_function(p[m], m)
    end
    assert.has_error(function() p.options.scope = "other" end)
  end)

  it("takes a plain access token string in request{ token = }", function()
    local s = server.start()
    local ok, err = pcall(function()
      local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c" })
      s:script("/api/me", { body = "ok" })
      local res = assert(p:request { url = s.url .. "/api/me", token = "at-plain" })
      assert.equal(200, res.status)
      assert.equal("Bearer at-plain", s:last_request().headers.authorization)
      assert.has_error(function() p:request { url = s.url .. "/api/me", token = 42 } end)
    end)
    s:stop()
    assert(ok, err)
  end)
end)
