-- Interop: every grant and OpenID Connect feature against oidc-provider, a
-- certified implementation nobody here wrote, on 127.0.0.1.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"
local jwt = require "smartauth.jwt"

describe("#interop oidc-provider", function()
  local op

  setup(function() op = oidc.start() end)
  teardown(function() if op then op:stop() end end)

  local function discover(opts)
    local o = { redirect_uri = "http://127.0.0.1/cb", scope = "openid email profile" }
    for k, v in pairs(opts) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  -- Plays the user through login and consent; returns the verified token.
  local function login(p, extra)
    local url, session = p:authorization_url(extra)
    assert.is_string(url)
    local redirect = op:login(url, { login = "alice", password = "x" })
    return p:exchange_code { url = redirect, session = session }
  end

  it("discovers the provider and checks the issuer", function()
    local p = discover { client_id = "public-client" }
    assert.equal(op.issuer .. "/token", p.token_endpoint)
    assert.equal(op.issuer .. "/jwks", p.jwks_uri)
    assert.truthy(p.userinfo_endpoint)
    assert.truthy(p.revocation_endpoint)
    assert.truthy(p.introspection_endpoint)
    -- the document names the issuer without a trailing slash: asking with one fails
    local bad, err = smartauth.discover(op.issuer .. "/", { client_id = "x" })
    assert.is_nil(bad)
    assert.equal("validation", err.kind)
  end)

  describe("client credentials with each client authentication method", function()
    it("client_secret_basic (secret with ':', '%', '+' and a space)", function()
      local p = discover { client_id = "basic-client", client_secret = "s3cret: %+ x" }
      local tok = assert(p:client_credentials { scope = "api:read" })
      assert.equal("Bearer", tok.token_type)
      assert.equal("api:read", tok.scope)
      local info = assert(p:introspect(tok))
      assert.is_true(info.active)
      assert.equal("basic-client", info.client_id)
    end)

    it("client_secret_post", function()
      local p = discover { client_id = "post-client", client_secret = "p0st: %+ &=x", client_auth = "post" }
      assert(p:client_credentials { scope = "api:read" })
    end)

    it("client_secret_jwt", function()
      local p = discover { client_id = "jwt-secret-client", client_auth = "client_secret_jwt",
        client_secret = "jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz" }
      assert(p:client_credentials { scope = "api:read" })
    end)

    it("private_key_jwt with a PEM file", function()
      local p = discover { client_id = "pkjwt-client", client_auth = "private_key_jwt",
        client_assertion_key = op.pkjwt_key_file, client_assertion_kid = op.pkjwt_kid }
      assert(p:client_credentials { scope = "api:read" })
    end)

    it("a wrong secret is an oauth invalid_client error without the secret in it", function()
      local p = discover { client_id = "basic-client", client_secret = "wrong-secret-value" }
      local tok, err = p:client_credentials { scope = "api:read" }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_client", err.code)
      assert.equal(401, err.status)
      assert.not_matches("wrong%-secret%-value", tostring(err))
    end)
  end)

  describe("authorization code with PKCE", function()
    it("logs a public client in and verifies its RS256 ID token", function()
      local p = discover { client_id = "public-client" }
      local tok = assert(login(p))
      assert.equal("alice", tok.claims.sub)
      assert.equal("RS256", jwt.decode(tok.id_token).header.alg)
      assert.truthy(tok.refresh_token)
    end)

    for client, alg in pairs { ["es256-client"] = "ES256", ["eddsa-client"] = "EdDSA", ["ps256-client"] = "PS256" } do
      it("verifies " .. alg .. " ID tokens", function()
        local secrets = { ["es256-client"] = "es256-secret", ["eddsa-client"] = "eddsa-secret",
          ["ps256-client"] = "ps256-secret" }
        local p = discover { client_id = client, client_secret = secrets[client] }
        local tok = assert(login(p))
        assert.equal(alg, jwt.decode(tok.id_token).header.alg)
        assert.equal("alice", tok.claims.sub)
      end)
    end

    it("sends prompt, login_hint and max_age, and checks auth_time", function()
      local p = discover { client_id = "public-client" }
      local tok = assert(login(p, { prompt = "login", login_hint = "alice", max_age = 300 }))
      assert.is_number(tok.claims.auth_time)
    end)

    it("refuses a code replayed into another session (state)", function()
      local p = discover { client_id = "public-client" }
      local url = p:authorization_url()
      local _, other = p:authorization_url()
      local redirect = op:login(url, { login = "alice", password = "x" })
      local tok, err = p:exchange_code { url = redirect, session = other }
      assert.is_nil(tok)
      assert.equal("state", err.check)
    end)

    it("reports the user's refusal as access_denied", function()
      local p = discover { client_id = "public-client" }
      local url, session = p:authorization_url()
      local redirect = op:login(url, { deny = true })
      local _, err = p:exchange_code { url = redirect, session = session }
      assert.equal("oauth", err.kind)
      assert.equal("access_denied", err.code)
    end)
  end)

  it("refreshes with rotation; the old refresh token is then refused", function()
    local p = discover { client_id = "public-client" }
    local tok = assert(login(p))
    local fresh = assert(p:refresh(tok))
    assert.not_equal(tok.refresh_token, fresh.refresh_token)
    assert.not_equal(tok.access_token, fresh.access_token)
    local again, err = p:refresh(tok.refresh_token)
    assert.is_nil(again)
    assert.equal("invalid_grant", err.code)
  end)

  it("calls userinfo and checks its sub against the ID token", function()
    local p = discover { client_id = "public-client" }
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
  end)

  it("revokes a refresh token and introspection then reports it inactive", function()
    local p = discover { client_id = "basic-client", client_secret = "s3cret: %+ x" }
    local tok = assert(login(p))
    assert.is_true(assert(p:introspect(tok.refresh_token, { hint = "refresh_token" })).active)
    assert.is_true(assert(p:revoke(tok)))
    assert.is_false(assert(p:introspect(tok.refresh_token, { hint = "refresh_token" })).active)
    local _, err = p:refresh(tok)
    assert.equal("invalid_grant", err.code)
  end)

  it("survives a signing-key rotation mid-run (unknown kid, one JWKS refetch)", function()
    local p = discover { client_id = "public-client" }
    local before = assert(login(p))
    local old_kid = jwt.decode(before.id_token).header.kid
    op:rotate()
    local after = assert(login(p))
    local new_kid = jwt.decode(after.id_token).header.kid
    assert.not_equal(old_kid, new_kid)
    assert.equal("alice", after.claims.sub)
  end)

  it("token() runs client credentials once, then serves the cache", function()
    -- a redirect_uri makes a provider for people: the app-only grant is asked for by name
    local p = discover { client_id = "basic-client", client_secret = "s3cret: %+ x", scope = "api:read",
      grant = "client_credentials" }
    local t1 = assert(p:token())
    assert.equal(t1, assert(p:token()))
  end)
end)
