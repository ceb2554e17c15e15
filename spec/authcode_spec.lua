-- The authorization code flow of lua/smartauth/authcode.lua: the authorization request,
-- the callback (state, iss, repeated parameters, the fragment), the mix-up defence
-- (RFC 9207), and exchange_code verifying the ID tokens it gets (nonce, at_hash, c_hash).
local smartauth = require "smartauth"
local core = require "smartauth.core"
local clock = require "smartauth.clock"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local function url_escape(v)
  return (v:gsub("[^%w._~-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

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

describe("OpenID Connect", function()
  local s
  local T = idp.new()
  local serve_jwks, provider, fetches, token = T.serve_jwks, T.provider, T.fetches, T.token

  setup(function()
    s = server.start()
    T.s = s
  end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function() s:reset() end)
  after_each(function() clock.offset = 0 end)

  describe("exchange_code", function()
    local function code_provider(extra)
      local o = {
        authorization_endpoint = s.url .. "/authorize", redirect_uri = "http://127.0.0.1/cb",
        scope = "openid email",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end

    local function token_response(id_token, at)
      s:script("/token", { json = { access_token = at or "at-1", token_type = "Bearer", expires_in = 3600,
        refresh_token = "rt-1", id_token = id_token } })
    end

    it("verifies the ID token of the token response and sets tok.claims", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url())
      assert.is_string(session.nonce)
      token_response(token("ES256", { nonce = session.nonce, at_hash = J.half_hash("ES256", "at-1") }))
      local tok, err = p:exchange_code { code = "code-1", state = session.state, session = session }
      assert.is_nil(err)
      assert.equal("at-1", tok.access_token)
      assert.equal("alice", tok.claims.sub)
      assert.equal(session.nonce, tok.claims.nonce)
      local r
      for _, x in ipairs(s:requests()) do if x.path == "/token" then r = x end end
      assert.equal("authorization_code", r.form.grant_type)
      assert.equal("code-1", r.form.code)
      assert.equal(session.code_verifier, r.form.code_verifier)
    end)

    it("rejects a bad nonce and returns no token", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url())
      token_response(token("RS256", { nonce = "someone-elses-nonce" }))
      local tok, err = p:exchange_code { code = "code-1", state = session.state, session = session }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.equal("nonce", err.check)
      assert.is_nil(p:stored()) -- nothing kept, in memory or in the store
      assert.is_nil((p.options.store:get(p:store_key())))
      assert.is_nil(tostring(err):find("at-1", 1, true))
    end)

    it("rejects a wrong at_hash in the token response", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url())
      token_response(token("RS256", { nonce = session.nonce, at_hash = J.half_hash("RS256", "at-2") }))
      local tok, err = p:exchange_code { code = "code-1", state = session.state, session = session }
      assert.is_nil(tok)
      assert.equal("at_hash", err.check)
    end)

    local function hybrid_callback(session, id_token)
      return "http://127.0.0.1/cb#code=code-1&state=" .. session.state .. "&id_token=" .. id_token
    end

    it("rejects a hybrid callback whose c_hash does not match the code", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url { response_type = "code id_token" })
      assert.equal("code id_token", session.response_type)
      local front = token("RS256", { nonce = session.nonce, c_hash = J.half_hash("RS256", "code-2") })
      local tok, err = p:exchange_code { url = hybrid_callback(session, front), session = session }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.equal("c_hash", err.check)
      assert.equal(0, fetches("/token"))
    end)

    it("rejects a hybrid callback without c_hash", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url { response_type = "code id_token" })
      local front = token("RS256", { nonce = session.nonce })
      local tok, err = p:exchange_code { url = hybrid_callback(session, front), session = session }
      assert.is_nil(tok)
      assert.equal("c_hash", err.check)
      assert.equal(0, fetches("/token"))
    end)

    it("accepts a hybrid callback with the right c_hash and exchanges the code", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url { response_type = "code id_token" })
      local front = token("PS384", { nonce = session.nonce, c_hash = J.half_hash("PS384", "code-1") })
      token_response(token("RS256", { nonce = session.nonce }))
      local tok, err = p:exchange_code { url = hybrid_callback(session, front), session = session }
      assert.is_nil(err)
      assert.equal("at-1", tok.access_token)
      assert.equal("alice", tok.claims.sub)
      assert.equal(1, fetches("/token"))
    end)

    it("rejects a back-channel ID token naming another user than the front channel's", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url { response_type = "code id_token" })
      local front = token("RS256", { nonce = session.nonce, c_hash = J.half_hash("RS256", "code-1") })
      token_response(token("RS256", { nonce = session.nonce, sub = "mallory" }))
      local tok, err = p:exchange_code { url = hybrid_callback(session, front), session = session }
      assert.is_nil(tok)
      assert.equal("sub", err.check)
    end)

    it("refuses a hybrid callback with a parameter in both the query and the fragment", function()
      serve_jwks()
      local p = code_provider()
      local _, session = assert(p:authorization_url { response_type = "code id_token" })
      local front = token("RS256", { nonce = session.nonce, c_hash = J.half_hash("RS256", "code-1") })
      -- an attacker's code in the query must not replace (or lose to) the one the ID token binds
      local u = "http://127.0.0.1/cb?code=code-evil" .. hybrid_callback(session, front):match("#.*$")
      local tok, err = p:exchange_code { url = u, session = session }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.matches("'code' is repeated", err.description, 1, true)
      assert.equal(0, fetches("/token"))
    end)
  end)
end)
