-- OpenID Connect ID token verification (lua/smartauth/oidc.lua) against real parts: ID
-- tokens signed at test time (keys from the openssl CLI), the JWKS served by the
-- recording server, every validation check by name, malformed input, and userinfo.
-- The JWKS cache is in jwks_spec, client assertions in client_auth_spec, exchange_code
-- in authcode_spec, revoke and introspect in grant_spec.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local cjson = require "cjson"
local server = require "helpers.server"
local proc = require "helpers.proc"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

-- b with its lowest bit flipped (b ~ 1 on 5.3+; written for every runtime)
local function flip_low_bit(b) return b % 2 == 1 and b - 1 or b + 1 end

local KID, ALGS, SECRET, NONE = idp.KID, idp.ALGS, idp.SECRET, idp.NONE
local FAST = 0.1 -- seconds a malformed token may take to be refused

describe("OpenID Connect", function()
  local s
  local T = idp.new()
  local serve_jwks, provider, fetches, claims, token = T.serve_jwks, T.provider, T.fetches, T.claims, T.token
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

  ---------------------------------------------------------------------------- helpers

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
      s:script("/.well-known/openid-configuration", { json = { issuer = s.url, jwks_uri = s.url .. "/jwks",
        id_token_signing_alg_values_supported = { "ES256" } } })
      assert(p:discover())
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
        raw = raw:sub(1, 9) .. string.char(flip_low_bit(raw:byte(10))) .. raw:sub(11)
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
      -- refused by the JWE path (jwe_spec): no decryption_keys here
      malformed(J.b64('{"alg":"RSA-OAEP","enc":"A256GCM"}') .. ".a.b.c.d", "jwe")
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
      malformed(string.rep(".", 1024 * 1024), "jwe") -- five parts and more: the JWE path
    end)

    it("a wrong argument type raises", function()
      local p = provider()
      assert.has_error(function() p:verify_id_token(nil) end)
      assert.has_error(function() p:verify_id_token({}) end)
      assert.has_error(function() p:verify_id_token(token(), "nonce") end)
    end)
  end)

  describe("userinfo", function()
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
  end)
end)
