-- OpenID Connect against real parts: ID tokens signed at test time (keys from the
-- openssl CLI), the JWKS and token endpoint served by the recording server, every
-- validation check by name, malformed input, the JWKS cache and its rate-limited
-- refetch, client assertions (RFC 7523), and userinfo / revocation / introspection.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local clock = require "smartauth.clock"
local jwks_mod = require "smartauth.jwks"
local cjson = require "cjson"
local server = require "helpers.server"
local proc = require "helpers.proc"
local J = require "helpers.jwt"

local KID = { RSA = "rsa-1", ["P-256"] = "ec-256", ["P-384"] = "ec-384", ["P-521"] = "ec-521", Ed25519 = "ed-1" }
local ALGS = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA" }
local SECRET = "client-secret-of-cid-0123456789"
local NONE = setmetatable({}, { __name = "absent" }) -- removes a claim or header member
local BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
local FAST = 0.1 -- seconds a malformed token may take to be refused

describe("OpenID Connect", function()
  local s

  setup(function() s = server.start() end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function() s:reset() end)
  after_each(function() clock.offset = 0 end)

  ---------------------------------------------------------------------------- helpers

  local function merge(base, extra)
    for k, v in pairs(extra or {}) do
      if v == NONE then base[k] = nil else base[k] = v end
    end
    return base
  end

  local function public_jwk(kind, extra)
    return J.public_jwk(J.key(kind), merge({ kid = KID[kind], use = "sig" }, extra))
  end

  local function default_jwks()
    return J.jwks(public_jwk("RSA"), public_jwk("P-256"), public_jwk("P-384"), public_jwk("P-521"),
      public_jwk("Ed25519"))
  end

  local function serve_jwks(doc)
    s:script("/jwks", { json = doc or default_jwks() }, 0)
  end

  local function provider(extra)
    local o = {
      issuer = s.url, jwks_uri = s.url .. "/jwks", token_endpoint = s.url .. "/token",
      client_id = "cid",
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  local function fetches(path)
    local n = 0
    for _, r in ipairs(s:requests()) do
      if r.path == (path or "/jwks") then n = n + 1 end
    end
    return n
  end

  local function claims(extra)
    local now = clock.now()
    return merge({ iss = s.url, sub = "alice", aud = "cid", iat = now, exp = now + 300 }, extra)
  end

  -- A token signed by the core with the test key of the alg (kid set to that key's).
  local function token(alg, extra_claims, extra_header)
    alg = alg or "RS256"
    local kind = J.KIND_FOR_ALG[alg]
    local header = merge({ alg = alg, typ = "JWT", kid = KID[kind] }, extra_header)
    return J.sign(header, claims(extra_claims), J.key(kind), alg)
  end

  local function verifies(tok, opts, p)
    serve_jwks()
    p = p or provider()
    local c, err = p:verify_id_token(tok, opts)
    assert.is_nil(err)
    assert.is_table(c)
    assert.equal("alice", c.sub)
    return c, p
  end

  local function rejected(check, tok, opts, p)
    serve_jwks()
    p = p or provider()
    local c, err = p:verify_id_token(tok, opts)
    assert.is_nil(c)
    assert.is_table(err)
    assert.equal("validation", err.kind)
    assert.equal(check, err.check)
    return err, p
  end

  -- Malformed input: no raise, a validation error naming the check, fast, and no
  -- JWKS fetch spent on it.
  local function malformed(tok, check)
    serve_jwks()
    local p = provider()
    local t0 = proc.now()
    local ok, c, err = pcall(p.verify_id_token, p, tok)
    local dt = proc.now() - t0
    assert.is_true(ok, "verify_id_token raised: " .. tostring(c))
    assert.is_nil(c)
    assert.is_table(err)
    assert.equal("validation", err.kind)
    assert.equal(check or "format", err.check)
    assert.is_true(dt < FAST, ("took %.3f s"):format(dt))
    assert.equal(0, fetches())
  end

  local function segments(tok)
    return tok:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  end

  ------------------------------------------------------------------------- valid tokens

  describe("valid tokens", function()
    for _, alg in ipairs(ALGS) do
      it("verifies an " .. alg .. " token signed by openssl and returns its claims", function()
        local kind = J.KIND_FOR_ALG[alg]
        local c = claims { nonce = "n-1", email = "alice@example.com" }
        local tok = J.sign_openssl({ alg = alg, kid = KID[kind], typ = "JWT" }, c, J.key(kind))
        local got = verifies(tok, { nonce = "n-1" })
        assert.equal(s.url, got.iss)
        assert.equal("cid", got.aud)
        assert.equal("alice@example.com", got.email)
        assert.equal(c.exp, got.exp)
      end)
    end

    it("verifies a token without a kid by trying the keys of its type", function()
      local other = J.new_key("RSA")
      serve_jwks(J.jwks(J.public_jwk(other, { kid = "other" }), public_jwk("RSA")))
      local p = provider()
      local c = assert(p:verify_id_token(token("RS256", nil, { kid = NONE })))
      assert.equal("alice", c.sub)
    end)

    it("accepts several audiences when azp is this client", function()
      verifies(token("RS256", { aud = { "cid", "api" }, azp = "cid" }))
    end)
  end)

  ------------------------------------------------------------------------------ rejected

  describe("rejects", function()
    it("alg none without a signature", function()
      rejected("alg", J.compact({ alg = "none" }, claims()))
    end)

    it("alg none with a signature", function()
      local good = token("RS256")
      local _, _, sig = segments(good)
      rejected("alg", J.compact({ alg = "none", kid = KID.RSA }, claims()) .. sig)
      rejected("alg", J.compact({ alg = "none" }, claims(), "signature"))
    end)

    it("case variants of none", function()
      for _, a in ipairs { "None", "NONE", "nOnE" } do
        rejected("alg", J.compact({ alg = a }, claims()))
      end
    end)

    it("a header without a string alg", function()
      rejected("alg", J.compact({ kid = KID.RSA }, claims()))
      rejected("alg", J.compact({ alg = 256 }, claims()))
    end)

    it("an alg outside the provider's id_token_algs", function()
      local p = provider { id_token_algs = { "RS256" } }
      verifies(token("RS256"), nil, p)
      rejected("alg", token("ES256"), nil, p)
    end)

    it("an alg outside what the discovery document says the provider uses", function()
      local p = provider()
      p.metadata = { id_token_signing_alg_values_supported = { "ES256" } }
      verifies(token("ES256"), nil, p)
      rejected("alg", token("RS256"), nil, p)
    end)

    describe("HMAC key confusion", function()
      local function forged(secret, alg)
        return J.hmac({ alg = alg or "HS256", kid = KID.RSA, typ = "JWT" }, claims(), secret)
      end

      it("HS256 keyed with the RSA public key's PEM, no client secret", function()
        rejected("alg", forged(J.key("RSA").public_pem))
      end)

      it("HS256 keyed with the RSA public key's PEM, with a client secret", function()
        rejected("alg", forged(J.key("RSA").public_pem), nil, provider { client_secret = SECRET })
      end)

      it("HS256 keyed with the RSA JWK's JSON text, no client secret", function()
        rejected("alg", forged(cjson.encode(public_jwk("RSA"))))
      end)

      it("HS256 keyed with the RSA JWK's JSON text, with a client secret", function()
        rejected("alg", forged(cjson.encode(public_jwk("RSA"))), nil, provider { client_secret = SECRET })
      end)

      it("HS256 keyed with the raw modulus, with a client secret", function()
        local n = assert(J.key("RSA").key:public()).n
        rejected("alg", forged(n), nil, provider { client_secret = SECRET })
      end)

      it("HS256 keyed with the public PEM even when the client is registered for HS256", function()
        local p = provider { client_secret = SECRET, id_token_signed_response_alg = "HS256" }
        rejected("signature", forged(J.key("RSA").public_pem), nil, p)
      end)

      it("HS256 signed with the client secret when the client is not registered for HS256", function()
        local err = rejected("alg", forged(SECRET), nil, provider { client_secret = SECRET })
        assert.is_nil(tostring(err):find(SECRET, 1, true))
      end)

      it("HS256 when registered for it but there is no client secret", function()
        rejected("alg", forged(SECRET), nil, provider { id_token_signed_response_alg = "HS256" })
      end)

      it("HS384 when registered for HS256", function()
        local p = provider { client_secret = SECRET, id_token_signed_response_alg = "HS256" }
        rejected("alg", forged(SECRET, "HS384"), nil, p)
      end)

      it("an HMAC key published in the JWKS (kty oct)", function()
        local published = "a-secret-anyone-can-read-in-the-jwks"
        serve_jwks(J.jwks({ kty = "oct", kid = "hmac", k = J.b64(published) }, public_jwk("RSA")))
        local tok = J.hmac({ alg = "HS256", kid = "hmac" }, claims(), published)
        local c, err = provider { client_secret = SECRET }:verify_id_token(tok)
        assert.is_nil(c)
        assert.equal("validation", err.kind)
        assert.equal("alg", err.check)
        -- registered for HS256: only the client secret is the key, never the JWKS
        c, err = provider { client_secret = SECRET, id_token_signed_response_alg = "HS256" }:verify_id_token(tok)
        assert.is_nil(c)
        assert.equal("validation", err.kind)
        assert.equal("signature", err.check)
      end)
    end)

    it("nothing else: HS256 signed with the client secret verifies when registered for it", function()
      local p = provider { client_secret = SECRET, id_token_signed_response_alg = "HS256" }
      local c = assert(p:verify_id_token(J.hmac({ alg = "HS256", typ = "JWT" }, claims(), SECRET)))
      assert.equal("alice", c.sub)
      assert.equal(0, fetches())
    end)

    it("a kid that names an EC key in an RS256 token", function()
      rejected("kid", token("RS256", nil, { kid = KID["P-256"] }))
    end)

    it("a kid that names an RSA key in an ES256 token", function()
      rejected("kid", token("ES256", nil, { kid = KID.RSA }))
    end)

    it("a kid whose JWK declares another alg", function()
      -- RFC 7517 §4.4 / RFC 8725 §3.1: a key is used with the one algorithm it names
      serve_jwks(J.jwks(public_jwk("RSA", { alg = "RS256" })))
      local p = provider()
      assert(p:verify_id_token(token("RS256")))
      local c, err = p:verify_id_token(token("PS256"))
      assert.is_nil(c)
      assert.equal("validation", err.kind)
      assert.equal("kid", err.check)
    end)

    it("a kid that is not a string", function()
      rejected("kid", token("RS256", nil, { kid = 1 }))
    end)

    it("an unknown kid", function()
      rejected("kid", token("RS256", nil, { kid = "nobody" }))
    end)

    it("a signature with a flipped byte", function()
      for _, alg in ipairs { "RS256", "ES256", "EdDSA" } do
        local h, p, sig = segments(token(alg))
        local raw = J.unb64(sig)
        raw = raw:sub(1, 9) .. string.char(raw:byte(10) ~ 0x01) .. raw:sub(11)
        rejected("signature", h .. "." .. p .. "." .. J.b64(raw))
      end
    end)

    it("a payload with a flipped byte", function()
      local h, _, sig = segments(token("RS256"))
      local body = cjson.encode(claims { sub = "alicf" }) -- one bit away from "alice"
      rejected("signature", h .. "." .. J.b64(body) .. "." .. sig)
    end)

    it("an empty signature", function()
      local h, p = segments(token("RS256"))
      rejected("signature", h .. "." .. p .. ".")
    end)

    it("a signature made by another key with the same kid", function()
      local other = J.new_key("P-256")
      rejected("signature", J.sign({ alg = "ES256", kid = KID["P-256"] }, claims(), other))
    end)

    it("a wrong iss", function()
      rejected("iss", token("RS256", { iss = "https://evil.example" }))
      rejected("iss", token("RS256", { iss = s.url .. "/" }))
      rejected("iss", token("RS256", { iss = NONE }))
    end)

    it("an aud without the client id", function()
      rejected("aud", token("RS256", { aud = "other" }))
      rejected("aud", token("RS256", { aud = { "other", "api" }, azp = "cid" }))
      rejected("aud", token("RS256", { aud = NONE }))
    end)

    it("several audiences without azp", function()
      rejected("azp", token("RS256", { aud = { "cid", "api" } }))
    end)

    it("an azp that is not the client", function()
      rejected("azp", token("RS256", { aud = { "cid", "api" }, azp = "api" }))
      rejected("azp", token("RS256", { azp = "api" }))
    end)

    it("an expired token, beyond the leeway", function()
      local tok = token("RS256") -- exp = now + 300; the default leeway is 120 s
      clock.offset = 300 + 121
      rejected("exp", tok)
    end)

    it("nothing else: an expired token within the leeway verifies", function()
      local tok = token("RS256")
      clock.offset = 300 + 60
      verifies(tok)
    end)

    it("an expired token with leeway 0", function()
      local tok = token("RS256")
      clock.offset = 300
      rejected("exp", tok, nil, provider { leeway = 0 })
    end)

    it("a token without a numeric exp", function()
      rejected("exp", token("RS256", { exp = NONE }))
      rejected("exp", token("RS256", { exp = tostring(clock.now() + 300) }))
    end)

    it("an iat in the future beyond the leeway", function()
      rejected("iat", token("RS256", { iat = clock.now() + 600 }))
    end)

    it("nothing else: an iat in the future within the leeway verifies", function()
      verifies(token("RS256", { iat = clock.now() + 60 }))
    end)

    it("a missing nonce when one is expected", function()
      rejected("nonce", token("RS256"), { nonce = "n-1" })
    end)

    it("a wrong nonce", function()
      rejected("nonce", token("RS256", { nonce = "n-2" }), { nonce = "n-1" })
      rejected("nonce", token("RS256", { nonce = "n-1x" }), { nonce = "n-1" })
    end)

    it("an auth_time older than max_age", function()
      local now = clock.now()
      rejected("auth_time", token("RS256", { auth_time = now - 1000 }), { max_age = 300 })
      verifies(token("RS256", { auth_time = now - 100 }), { max_age = 300 })
    end)

    it("a missing auth_time when max_age is asked", function()
      rejected("auth_time", token("RS256"), { max_age = 300 })
    end)

    it("a wrong at_hash", function()
      rejected("at_hash", token("RS256", { at_hash = J.half_hash("RS256", "other-token") }),
        { access_token = "at-1" })
    end)

    it("nothing else: a right at_hash verifies, for each hash size", function()
      for _, alg in ipairs { "RS256", "ES384", "PS512", "EdDSA" } do
        verifies(token(alg, { at_hash = J.half_hash(alg, "at-1") }), { access_token = "at-1" })
      end
    end)

    it("a missing sub", function()
      rejected("sub", token("RS256", { sub = NONE }))
      rejected("sub", token("RS256", { sub = "" }))
      rejected("sub", token("RS256", { sub = 42 }))
    end)

    it("a crit header", function()
      rejected("crit", token("RS256", nil, { crit = { "exp" }, exp = 1 }))
      rejected("crit", token("RS256", nil, { crit = {} }))
    end)
  end)

  --------------------------------------------------------------------------- malformed

  describe("malformed input is a clean, fast validation error", function()
    it("one segment", function()
      malformed(J.b64('{"alg":"RS256"}'))
    end)

    it("two segments", function()
      local h, p = segments(token("RS256"))
      malformed(h .. "." .. p)
    end)

    it("four segments", function()
      malformed(token("RS256") .. ".AAAA")
    end)

    it("five segments (a JWE)", function()
      malformed(J.b64('{"alg":"RSA-OAEP","enc":"A256GCM"}') .. ".a.b.c.d")
    end)

    it("'+' and '/' (base64, not base64url)", function()
      local h, p, sig = segments(token("RS256"))
      malformed(h .. "." .. p .. "." .. sig:gsub("-", "+"):gsub("_", "/") .. "+/")
      malformed("+" .. h .. "." .. p .. "." .. sig)
      malformed(h .. "." .. "/" .. p .. "." .. sig)
    end)

    it("'=' padding", function()
      local h, p, sig = segments(token("RS256"))
      malformed(h .. "=." .. p .. "." .. sig)
      malformed(h .. "." .. p .. "==." .. sig)
      malformed(h .. "." .. p .. "." .. sig .. "==")
    end)

    it("an impossible base64url length", function()
      local h, p, sig = segments(token("RS256"))
      local bad = sig .. "A"
      while #bad % 4 ~= 1 do bad = bad .. "A" end -- 4k+1 characters cannot be base64url
      malformed(h .. "." .. p .. "." .. bad)
      malformed("A." .. p .. "." .. sig)
    end)

    it("whitespace and other bytes around or inside", function()
      local tok = token("RS256")
      malformed(" " .. tok)
      malformed(tok .. "\n")
      malformed(tok:sub(1, 20) .. "\0" .. tok:sub(21))
      malformed(tok:sub(1, 20) .. "é" .. tok:sub(21))
    end)

    it("empty input and empty segments", function()
      malformed("")
      malformed("..")
      malformed("." .. J.b64(cjson.encode(claims())) .. ".")
      malformed(J.b64('{"alg":"RS256"}') .. "..")
    end)

    local NOT_OBJECTS = {
      array = '["alg","RS256"]', string = '"RS256"', number = "256", ["true"] = "true",
      null = "null", ["invalid JSON"] = '{"alg":"RS256"', ["trailing garbage"] = '{"alg":"RS256"}x',
      ["not text"] = "\255\254\0\1",
    }
    for name, text in pairs(NOT_OBJECTS) do
      it("a header that is " .. name, function()
        malformed(J.compact(text, claims(), "sig"))
      end)

      it("a payload that is " .. name, function()
        local tok = J.sign({ alg = "RS256", kid = KID.RSA }, text, J.key("RSA"))
        malformed(tok)
      end)
    end

    it("deeply nested JSON", function()
      local deep = '{"a":' .. string.rep("[", 20000) .. string.rep("]", 20000) .. "}"
      malformed(J.compact({ alg = "RS256" }, deep, "sig"))
      malformed(J.compact('{"alg":"RS256","x":' .. string.rep("[", 20000) .. string.rep("]", 20000) .. "}",
        claims(), "sig"))
    end)

    it("a huge header (100 KB)", function()
      malformed(J.sign({ alg = "RS256", kid = KID.RSA, pad = string.rep("x", 100 * 1024) }, claims(),
        J.key("RSA")))
    end)

    it("a 1 MB token", function()
      malformed(J.sign({ alg = "RS256", kid = KID.RSA }, claims { pad = string.rep("y", 1024 * 1024) },
        J.key("RSA")))
      malformed(string.rep("A", 1024 * 1024))
      malformed(string.rep(".", 1024 * 1024))
    end)

    it("a wrong argument type raises", function()
      local p = provider()
      assert.has_error(function() p:verify_id_token(nil) end)
      assert.has_error(function() p:verify_id_token({}) end)
      assert.has_error(function() p:verify_id_token(token(), "nonce") end)
    end)
  end)

  -------------------------------------------------------------------------------- JWKS

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

  ---------------------------------------------------------------------- exchange_code

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
      assert.is_nil(p._tok)
      assert.is_nil((p.store:get(p:store_key())))
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

  ------------------------------------------------------------------- client assertions

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

  ---------------------------------------------------------- userinfo, revoke, introspect

  describe("userinfo, revoke and introspect", function()
    local function api_provider(extra)
      local o = {
        client_secret = SECRET, userinfo_endpoint = s.url .. "/userinfo",
        revocation_endpoint = s.url .. "/revoke", introspection_endpoint = s.url .. "/introspect",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end

    local function tok_with_id_token(sub)
      local t = assert(smartauth.token.from_response({ access_token = "at-1", token_type = "Bearer",
        expires_in = 3600, refresh_token = "rt-1", id_token = token("RS256", { sub = sub }) }, clock.now()))
      return t
    end

    it("userinfo returns the claims when sub matches the ID token's", function()
      local p = api_provider()
      s:script("/userinfo", { json = { sub = "alice", email = "alice@example.com" } })
      local info = assert(p:userinfo(tok_with_id_token("alice")))
      assert.equal("alice@example.com", info.email)
      assert.equal("Bearer at-1", s:last_request().headers.authorization)
    end)

    it("userinfo trusts only verified claims, never an unverified ID token's sub (issue 11)", function()
      local p = api_provider()
      s:script("/userinfo", { json = { sub = "mallory", email = "m@example.com" } })
      -- an ID token nobody verified proves nothing either way
      local info = assert(p:userinfo(tok_with_id_token("alice")))
      assert.equal("mallory", info.sub)
      local t = tok_with_id_token("alice")
      t.claims = { sub = "alice" }
      s:script("/userinfo", { json = { sub = "mallory", email = "m@example.com" } })
      local info2, err = p:userinfo(t)
      assert.is_nil(info2)
      assert.equal("validation", err.kind)
      assert.equal("sub", err.check)
    end)

    it("userinfo with another sub than verified claims is a validation error", function()
      local p = api_provider()
      local t = tok_with_id_token("alice")
      t.id_token, t.claims = nil, { sub = "alice" }
      s:script("/userinfo", { json = { sub = "mallory" } })
      local info, err = p:userinfo(t)
      assert.is_nil(info)
      assert.equal("sub", err.check)
    end)

    it("userinfo that is not JSON is a validation error", function()
      local p = api_provider()
      for _, body in ipairs { "<html>hello</html>", "[1,2]", '"sub"', "", '{"sub":' } do
        s:script("/userinfo", { body = body, headers = { ["Content-Type"] = "application/json" } })
        local info, err = p:userinfo(tok_with_id_token("alice"))
        assert.is_nil(info)
        assert.equal("validation", err.kind)
      end
    end)

    it("revoke sends the refresh token with its hint and returns true on 200", function()
      local p = api_provider()
      s:script("/revoke", { status = 200, body = "" })
      assert.is_true(p:revoke(tok_with_id_token("alice")))
      local r = s:last_request()
      assert.equal("/revoke", r.path)
      assert.equal("POST", r.method)
      assert.equal("rt-1", r.form.token)
      assert.equal("refresh_token", r.form.token_type_hint)
      assert.equal("cid", r.basic.user)
      assert.equal(SECRET, r.basic.pass)
    end)

    it("revoke turns an error body into an oauth error without the token in it", function()
      local p = api_provider()
      s:script("/revoke", { status = 400, json = { error = "unsupported_token_type",
        error_description = "cannot revoke rt-1" } })
      local ok, err = p:revoke(tok_with_id_token("alice"))
      assert.is_nil(ok)
      assert.equal("oauth", err.kind)
      assert.equal("unsupported_token_type", err.code)
      assert.equal(400, err.status)
      assert.is_nil(tostring(err):find("rt-1", 1, true))
    end)

    it("introspect returns the response object", function()
      local p = api_provider()
      s:script("/introspect", { json = { active = true, scope = "read", sub = "alice", exp = 2000000000 } })
      local data = assert(p:introspect(tok_with_id_token("alice")))
      assert.is_true(data.active)
      assert.equal("read", data.scope)
      assert.equal("alice", data.sub)
      local r = s:last_request()
      assert.equal("/introspect", r.path)
      assert.equal("at-1", r.form.token)
      s:script("/introspect", { json = { active = false } })
      assert.is_false(assert(p:introspect("at-1")).active)
    end)

    it("introspect rejects a response without a boolean active", function()
      local p = api_provider()
      for _, doc in ipairs { { scope = "read" }, { active = "true" }, { active = 1 } } do
        s:script("/introspect", { json = doc })
        local data, err = p:introspect("at-1")
        assert.is_nil(data)
        assert.equal("validation", err.kind)
      end
      s:script("/introspect", { body = "active" })
      local data, err = p:introspect("at-1")
      assert.is_nil(data)
      assert.equal("validation", err.kind)
    end)
  end)
end)
