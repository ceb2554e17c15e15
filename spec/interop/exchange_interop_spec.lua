-- Interop: token exchange (RFC 8693) and a JWT bearer grant (RFC 7523) through p:grant,
-- RP-Initiated Logout, and signed UserInfo, against oidc-provider with
-- spec/interop/ext/exchange.js (the grants registered with registerGrantType, a
-- post_logout_redirect_uri, a client with userinfo_signed_response_alg RS256).
local smartauth = require "smartauth"
local core = require "smartauth.core"
local clock = require "smartauth.clock"
local oidc = require "helpers.oidc"
local J = require "helpers.jwt"

local AT = "urn:ietf:params:oauth:token-type:access_token"
local JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
local BACKEND = "https://backend.example.test"

describe("#interop oidc-provider: exchange, grant, logout, signed UserInfo", function()
  local op

  setup(function() op = oidc.start { extend = oidc.root .. "/spec/interop/ext/exchange.js" } end)
  teardown(function() if op then op:stop() end end)

  local function discover(opts)
    local o = { redirect_uri = "http://127.0.0.1/cb", scope = "openid email api:read",
      client_id = "exchange-client", client_secret = "exchange-secret" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  local function login(p, who, session, extra)
    local url, sess = p:authorization_url(extra)
    local redirect = op:login(url, { login = who or "alice", password = "x", session = session })
    return assert(p:exchange_code { url = redirect, session = sess })
  end

  describe("token exchange", function()
    it("trades a user's access token for one for the backend, keeping the caller's own", function()
      local p = discover()
      local own = login(p, "alice")
      local tok = assert(p:token_exchange { subject_token = own, subject_token_type = "access_token",
        audience = BACKEND, scope = "api:read" })
      assert.equal(AT, tok.issued_token_type)
      assert.equal("Bearer", tok.token_type)
      assert.equal("api:read", tok.scope)
      assert.not_equal(own.access_token, tok.access_token)
      local info = assert(p:introspect(tok))
      assert.is_true(info.active)
      assert.equal("alice", info.sub)
      assert.equal(BACKEND, info.aud)
      assert.equal("api:read", info.scope)
      -- nothing replaced the provider's own token
      assert.equal(own.access_token, assert(p:stored()).access_token)
      assert.equal(own.access_token, assert(p:token()).access_token)
    end)

    it("sends an actor token, and several audiences as repeated parameters", function()
      local p = discover()
      local alice = login(p, "alice")
      local q = discover { store = smartauth.store.memory() }
      local bob = login(q, "bob")
      local tok = assert(p:token_exchange { subject_token = alice, subject_token_type = AT,
        actor_token = bob, actor_token_type = "access_token", audience = { BACKEND, "urn:example:backend" } })
      local info = assert(p:introspect(tok))
      assert.is_true(info.active)
      assert.equal("alice", info.sub)
    end)

    it("refuses an unknown audience (invalid_target) and a token it did not issue (invalid_request)", function()
      local p = discover()
      local own = login(p, "alice")
      local tok, err = p:token_exchange { subject_token = own, subject_token_type = AT,
        audience = "https://elsewhere.example" }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_target", err.code)
      local forged = "forged-subject-token-0123456789abcdef"
      tok, err = p:token_exchange { subject_token = forged, subject_token_type = AT }
      assert.is_nil(tok)
      assert.equal("invalid_request", err.code)
      assert.not_matches(forged, tostring(err), 1, true)
      tok, err = p:token_exchange { subject_token = own, subject_token_type = AT, scope = "api:write" }
      assert.is_nil(tok)
      assert.equal("invalid_scope", err.code)
    end)

    it("works inside smartauth.spawn", function()
      local p = discover()
      local own = login(p, "alice")
      local got, err
      smartauth.spawn(function()
        got, err = p:token_exchange { subject_token = own, subject_token_type = AT, resource = BACKEND }
      end)
      smartauth.run()
      assert.is_nil(err)
      assert.equal(AT, got.issued_token_type)
    end)
  end)

  describe("p:grant with the jwt-bearer grant", function()
    local function assertion(claims, key)
      local pem = io.open(op.jwt_bearer_key_file):read("*a")
      local now = clock.now()
      local c = { iss = op.jwt_bearer_issuer, sub = "carol", aud = op.issuer, iat = now, exp = now + 60,
        jti = core.b64url_encode(core.random(12)) }
      for k, v in pairs(claims or {}) do c[k] = v end
      return J.sign({ alg = "ES256", typ = "JWT" }, c, key or assert(core.key_pem(pem)), "ES256")
    end

    it("gets a token for the assertion's subject, with a grant option set on the provider", function()
      local p = discover { grant = "client_credentials" }
      local tok = assert(p:grant(JWT_BEARER, { assertion = assertion(), scope = "api:read" }))
      assert.equal("Bearer", tok.token_type)
      local info = assert(p:introspect(tok))
      assert.is_true(info.active)
      assert.equal("carol", info.sub)
      assert.is_nil(p:stored())
    end)

    it("returns the provider's invalid_grant for a bad signature or an expired assertion", function()
      local p = discover()
      local other = J.new_key("P-256")
      for _, a in ipairs { assertion(nil, other.key), assertion { exp = clock.now() - 10 } } do
        local tok, err = p:grant(JWT_BEARER, { assertion = a })
        assert.is_nil(tok)
        assert.equal("oauth", err.kind)
        assert.equal("invalid_grant", err.code)
        assert.not_matches(a, tostring(err), 1, true)
      end
    end)
  end)

  describe("RP-Initiated Logout", function()
    it("p:logout revokes, and its URL ends the session and goes to post_logout_redirect_uri", function()
      local p = discover()
      local browser = {}
      local own = login(p, "alice", browser)
      -- single sign-on works before the logout
      local silent = op:login(p:authorization_url { prompt = "none" }, { session = browser })
      assert.truthy(oidc.parse_query(silent).code)
      local out = assert(p:logout { post_logout_redirect_uri = op.logged_out_uri, state = "bye-1" })
      assert.same({ "access_token", "refresh_token" }, out.revoked)
      local q = oidc.parse_query(out.end_session_url)
      assert.equal(own.id_token, q.id_token_hint)
      assert.equal("exchange-client", q.client_id)
      assert.is_false(assert(p:introspect(own)).active)
      -- the person's browser follows it
      local back = op:login(out.end_session_url, { session = browser })
      assert.equal(op.logged_out_uri .. "?state=bye-1", back)
      local after = op:login(p:authorization_url { prompt = "none" }, { session = browser })
      assert.equal("login_required", oidc.parse_query(after).error)
    end)

    it("p:end_session_url comes from discovery", function()
      local p = discover()
      local u = assert(p:end_session_url { state = "x" })
      assert.equal(op.issuer .. "/session/end?client_id=exchange-client&state=x", u)
    end)
  end)

  describe("signed UserInfo", function()
    it("verifies the RS256 UserInfo JWT and returns its claims", function()
      local types = {}
      local p = discover { client_id = "signed-ui-client", client_secret = "signed-ui-secret",
        on_http = function(ev)
          if ev.url:find("/me", 1, true) then types[#types + 1] = ev.response_headers["content-type"] end
        end }
      local tok = login(p, "alice")
      local info = assert(p:userinfo(tok))
      assert.equal("alice", info.sub)
      assert.equal("alice@example.com", info.email)
      assert.equal(op.issuer, info.iss)
      assert.equal("signed-ui-client", info.aud)
      assert.matches("^application/jwt", types[1])
    end)

    it("refuses it when the ID token named another user", function()
      local p = discover { client_id = "signed-ui-client", client_secret = "signed-ui-secret" }
      local tok = login(p, "alice")
      tok.claims = { sub = "bob" }
      local info, err = p:userinfo(tok)
      assert.is_nil(info)
      assert.equal("sub", err.check)
    end)
  end)
end)
