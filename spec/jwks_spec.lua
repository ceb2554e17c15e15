-- The JWKS of lua/smartauth/jwks.lua as ID token verification uses it: fetched once,
-- refetched once for an unknown kid and rate-limited against a flood, rotated keys,
-- bad documents and bad keys as clean errors, use/key_ops, small RSA keys.
local clock = require "smartauth.clock"
local jwks_mod = require "smartauth.jwks"
local cjson = require "cjson"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local KID, ALGS, NONE = idp.KID, idp.ALGS, idp.NONE

describe("OpenID Connect", function()
  local s
  local T = idp.new()
  local serve_jwks, provider, fetches, claims, token = T.serve_jwks, T.provider, T.fetches, T.claims, T.token
  local public_jwk = idp.public_jwk

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

  describe("JWKS", function()
    it("is fetched once and reused for many verifications", function()
      serve_jwks()
      local p = provider()
      for i = 1, 20 do
        local alg = ALGS[(i - 1) % #ALGS + 1]
        assert(p:verify_id_token(token(alg)))
      end
      assert.equal(1, fetches())
    end)

    it("is refetched exactly once for an unknown kid", function()
      serve_jwks()
      local p = provider()
      assert(p:verify_id_token(token("RS256")))
      assert.equal(1, fetches())
      local c, err = p:verify_id_token(token("RS256", nil, { kid = "rotated-1" }))
      assert.is_nil(c)
      assert.equal("kid", err.check)
      assert.equal(2, fetches())
      -- a second unknown kid right after: no request
      c, err = p:verify_id_token(token("RS256", nil, { kid = "rotated-2" }))
      assert.is_nil(c)
      assert.equal("kid", err.check)
      assert.equal(2, fetches())
    end)

    it("picks up a rotated key: the new kid's token verifies", function()
      serve_jwks()
      local p = provider()
      assert(p:verify_id_token(token("RS256")))
      local new = J.new_key("RSA")
      serve_jwks(J.jwks(J.public_jwk(new, { kid = "rsa-2", use = "sig" })))
      local tok = J.sign({ alg = "RS256", kid = "rsa-2" }, claims(), new)
      local c, err = p:verify_id_token(tok)
      assert.is_nil(err)
      assert.equal("alice", c.sub)
      assert.equal(2, fetches())
      -- and keeps verifying it without asking again
      assert(p:verify_id_token(tok))
      assert.equal(2, fetches())
    end)

    it("limits a flood of unknown kids to one refetch per REFETCH_INTERVAL", function()
      serve_jwks()
      local p = provider()
      assert(p:verify_id_token(token("RS256")))
      for i = 1, 50 do
        local c, err = p:verify_id_token(token("RS256", nil, { kid = "flood-" .. i }))
        assert.is_nil(c)
        assert.equal("kid", err.check)
      end
      local after_flood = fetches()
      assert.is_true(after_flood <= 2, after_flood .. " fetches")
      clock.offset = jwks_mod.REFETCH_INTERVAL + 1
      for i = 1, 10 do
        local c, err = p:verify_id_token(token("RS256", nil, { kid = "later-" .. i }))
        assert.is_nil(c)
        assert.equal("kid", err.check)
      end
      assert.equal(after_flood + 1, fetches())
      -- the known key still verifies throughout, from the cache
      assert(p:verify_id_token(token("RS256")))
      assert.equal(after_flood + 1, fetches())
    end)

    local function bad_jwks(response)
      s:script("/jwks", response, 0)
      local p = provider()
      local ok, c, err = pcall(p.verify_id_token, p, token("RS256"))
      assert.is_true(ok, tostring(c))
      assert.is_nil(c)
      assert.is_table(err)
      return err
    end

    it("that is not JSON is a clean error", function()
      local err = bad_jwks { body = "<html>keys</html>", headers = { ["Content-Type"] = "text/html" } }
      assert.equal("validation", err.kind)
      assert.equal("jwks", err.check)
    end)

    it("that is JSON but not an object is a clean error", function()
      for _, doc in ipairs { { { kty = "RSA" } }, "keys", 1 } do
        local err = bad_jwks { json = doc }
        assert.equal("validation", err.kind)
        assert.equal("jwks", err.check)
      end
    end)

    it("without keys is a clean error", function()
      for _, doc in ipairs { { other = 1 }, { keys = cjson.empty_array }, { keys = "x" } } do
        local err = bad_jwks { body = cjson.encode(doc) }
        assert.equal("validation", err.kind)
        assert.equal("jwks", err.check)
      end
    end)

    it("with keys with bad members is a clean error", function()
      local good = public_jwk("RSA")
      local ec = public_jwk("P-256")
      local bad = {
        { kty = "RSA", kid = KID.RSA, n = good.n .. "+", e = good.e },   -- not base64url
        { kty = "RSA", kid = KID.RSA, e = good.e },                      -- no n
        { kty = "RSA", kid = KID.RSA, n = 5, e = good.e },               -- n not a string
        { kty = "RSA", kid = KID.RSA, n = good.n, e = "AA" },            -- e = 0
        { kty = "EC", kid = KID.RSA, crv = "P-256", x = ec.x, y = ec.x }, -- not on the curve
        { kty = "EC", kid = KID.RSA, crv = "P-256", x = ec.x .. "AA", y = ec.y }, -- wrong size
        { kty = "EC", kid = KID.RSA, crv = "secp256k1", x = ec.x, y = ec.y },
        { kty = "OKP", kid = KID.RSA, crv = "X25519", x = J.b64(string.rep("\1", 32)) },
        { kid = KID.RSA, n = good.n, e = good.e },                       -- no kty
        "a string", 42,
      }
      local err = bad_jwks { json = { keys = bad } }
      assert.equal("validation", err.kind)
      assert.equal("jwks", err.check)
    end)

    it("keeps the good keys of a set that also has bad ones", function()
      serve_jwks(J.jwks({ kty = "RSA", kid = "broken", n = "!!", e = "AQAB" }, public_jwk("RSA")))
      assert(provider():verify_id_token(token("RS256")))
    end)

    it("answering HTTP 500 is a clean error", function()
      local err = bad_jwks { status = 500, json = { keys = {} } }
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
    end)

    it("ignores a JWK with use=enc", function()
      serve_jwks(J.jwks(public_jwk("RSA", { use = "enc" }), public_jwk("P-256")))
      local p = provider()
      assert(p:verify_id_token(token("ES256")))
      local c, err = p:verify_id_token(token("RS256"))
      assert.is_nil(c)
      assert.equal("validation", err.kind)
      assert.equal("kid", err.check)
      c, err = p:verify_id_token(token("RS256", nil, { kid = NONE }))
      assert.is_nil(c)
      assert.equal("kid", err.check)
    end)

    it("ignores a JWK whose key_ops do not include verify", function()
      serve_jwks(J.jwks(public_jwk("RSA", { use = NONE, key_ops = { "encrypt" } }), public_jwk("P-256")))
      local c, err = provider():verify_id_token(token("RS256"))
      assert.is_nil(c)
      assert.equal("kid", err.check)
    end)

    it("refuses an RSA key below 2048 bits", function()
      local small = J.new_key("RSA1024")
      serve_jwks(J.jwks(J.public_jwk(small, { kid = "small" }), public_jwk("P-256")))
      local tok = J.sign_openssl({ alg = "RS256", kid = "small" }, claims(), small)
      local c, err = provider():verify_id_token(tok)
      assert.is_nil(c)
      assert.equal("validation", err.kind)
      assert.truthy(err.check == "kid" or err.check == "signature")
    end)
  end)
end)
