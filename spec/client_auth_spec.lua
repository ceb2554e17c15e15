-- Client assertions (RFC 7523) of lua/smartauth/client_auth.lua: client_secret_jwt and
-- private_key_jwt with PEM strings, files and JWKs of every key type, checked against
-- the public key, and keys that cannot sign as config errors before any request.
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local jwks_mod = require "smartauth.jwks"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local SECRET, BEARER = idp.SECRET, idp.BEARER

describe("OpenID Connect", function()
  local s
  local T = idp.new()
  local provider, fetches = T.provider, T.fetches
  local public_jwk, segments = idp.public_jwk, idp.segments

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

  describe("client assertions", function()
    local function sent_assertion()
      local r
      for _, x in ipairs(s:requests()) do if x.path == "/token" then r = x end end
      assert.is_table(r, "no token request")
      assert.equal("client_credentials", r.form.grant_type)
      assert.equal(BEARER, r.form.client_assertion_type)
      assert.is_string(r.form.client_assertion)
      assert.is_nil(r.form.client_secret)
      assert.is_nil(r.headers.authorization)
      return r.form.client_assertion, r
    end

    -- Verifies an assertion with a key and checks the RFC 7523 §3 claims.
    local function check_assertion(assertion, key, alg)
      local h, p, sig = segments(assertion)
      local header, c = J.decode(assertion)
      assert.equal(alg, header.alg)
      assert.is_true(key:verify(alg, h .. "." .. p, J.unb64(sig)))
      assert.equal("cid", c.iss)
      assert.equal("cid", c.sub)
      assert.equal(s.url .. "/token", c.aud)
      assert.is_string(c.jti)
      assert.is_true(#c.jti >= 16)
      local now = clock.now()
      assert.is_true(c.exp > now - 1 and c.exp <= now + 60, "exp " .. tostring(c.exp - now) .. " s away")
      return header, c
    end

    it("client_secret_jwt sends an HS256 assertion keyed with the secret", function()
      local p = provider { client_auth = "client_secret_jwt", client_secret = SECRET }
      assert(p:client_credentials())
      local assertion, r = sent_assertion()
      check_assertion(assertion, core.key_oct(SECRET), "HS256")
      assert.is_nil(r.body:find(SECRET, 1, true))
    end)

    it("client_secret_jwt uses a fresh jti for each assertion", function()
      local p = provider { client_auth = "client_secret_jwt", client_secret = SECRET }
      assert(p:client_credentials())
      local _, c1 = J.decode(sent_assertion())
      s:reset()
      assert(p:client_credentials())
      local _, c2 = J.decode(sent_assertion())
      assert.are_not.equal(c1.jti, c2.jti)
    end)

    it("private_key_jwt with a PEM string (RSA)", function()
      local k = J.key("RSA")
      local p = provider { client_auth = "private_key_jwt", client_assertion_key = k.pem,
        client_assertion_kid = "my-key" }
      assert(p:client_credentials())
      local header = check_assertion(sent_assertion(), assert(core.key_pem(k.public_pem)), "RS256")
      assert.equal("my-key", header.kid)
    end)

    it("private_key_jwt with a PEM file path (EC P-256)", function()
      local k = J.key("P-256")
      local p = provider { client_auth = "private_key_jwt", client_assertion_key = k.file }
      assert(p:client_credentials())
      check_assertion(sent_assertion(), assert(core.key_pem(k.public_pem)), "ES256")
    end)

    it("private_key_jwt with a private JWK table (RSA)", function()
      local k = J.key("RSA")
      local p = provider { client_auth = "private_key_jwt", client_assertion_key = J.private_jwk(k),
        client_assertion_alg = "PS256" }
      assert(p:client_credentials())
      check_assertion(sent_assertion(), assert(jwks_mod.parse_jwk(J.public_jwk(k))), "PS256")
    end)

    it("private_key_jwt with a private JWK table (EC P-384)", function()
      local k = J.key("P-384")
      local p = provider { client_auth = "private_key_jwt", client_assertion_key = J.private_jwk(k) }
      assert(p:client_credentials())
      check_assertion(sent_assertion(), assert(jwks_mod.parse_jwk(J.public_jwk(k))), "ES384")
    end)

    it("private_key_jwt with an Ed25519 PEM", function()
      local k = J.key("Ed25519")
      local p = provider { client_auth = "private_key_jwt", client_assertion_key = k.pem }
      assert(p:client_credentials())
      check_assertion(sent_assertion(), assert(core.key_pem(k.public_pem)), "EdDSA")
    end)

    local function config_error(opts)
      opts.client_auth = "private_key_jwt"
      local p = provider(opts)
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.is_table(err)
      assert.equal("config", err.kind)
      assert.equal(0, fetches("/token"))
      return err
    end

    it("a key that cannot sign the chosen alg is a config error", function()
      config_error { client_assertion_key = J.key("P-256").pem, client_assertion_alg = "RS256" }
      config_error { client_assertion_key = J.key("RSA").pem, client_assertion_alg = "ES256" }
      config_error { client_assertion_key = J.key("P-256").pem, client_assertion_alg = "ES384" }
      config_error { client_assertion_key = J.key("RSA").pem, client_assertion_alg = "none" }
      config_error { client_assertion_key = J.key("RSA").pem, client_assertion_alg = "HS256" }
    end)

    it("a public key, a small RSA key or no key material is a config error", function()
      config_error { client_assertion_key = J.key("RSA").public_pem }
      config_error { client_assertion_key = J.new_key("RSA1024").pem }
      config_error { client_assertion_key = "/nonexistent/key.pem" }
      config_error { client_assertion_key = public_jwk("P-256") }
      local broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
      local err = config_error { client_assertion_key = broken }
      assert.is_string(err.description)
    end)
  end)
end)
