-- Resource servers (lua/smartauth/resource.lua): RFC 9068 JWT access tokens signed at
-- test time with the test keys and their JWKS on the recording server, every check by
-- name, hostile tokens; the WWW-Authenticate challenge (RFC 6750 §3, RFC 9449 §7.1); the
-- introspection cache counted in requests on the recording server. Against oidc-provider:
-- spec/interop/resource_interop_spec.lua.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local server = require "helpers.server"
local proc = require "helpers.proc"
local certs = require "helpers.certs"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local KID, NONE = idp.KID, idp.NONE
local RS = "https://api.example.com/"
local FAST = 0.1

-- the asymmetric algs of the core, as www_authenticate lists them by default
local function core_algs()
  local list = {}
  for alg, a in pairs(core.jws_algs()) do
    if a.kty ~= "oct" then list[#list + 1] = alg end
  end
  table.sort(list)
  return list
end

describe("resource server", function()
  local s
  local T = idp.new()
  local serve_jwks, provider, fetches = T.serve_jwks, T.provider, T.fetches

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

  -- An RFC 9068 access token: typ at+jwt, aud RS, client_id, jti, scope.
  local function at(alg, extra_claims, extra_header)
    local c = { aud = RS, client_id = "cid", jti = "jti-1", scope = "read write", sub = "alice" }
    for k, v in pairs(extra_claims or {}) do c[k] = v end -- NONE kept: T.claims removes it
    return T.token(alg or "RS256", c, idp.merge({ typ = "at+jwt" }, extra_header))
  end

  local function accepted(tok, opts, p)
    serve_jwks()
    p = p or provider()
    local o = { audience = RS }
    for k, v in pairs(opts or {}) do o[k] = v end
    local c, err = p:verify_access_token(tok, o)
    assert.is_nil(err)
    assert.is_table(c)
    return c, p
  end

  local function rejected(check, tok, opts, p)
    serve_jwks()
    p = p or provider()
    local o = { audience = RS }
    for k, v in pairs(opts or {}) do o[k] = v end
    local t0 = proc.now()
    local ok, c, err = pcall(p.verify_access_token, p, tok, o)
    assert.is_true(ok, "verify_access_token raised: " .. tostring(c))
    assert.is_nil(c)
    assert.is_table(err)
    assert.equal("validation", err.kind)
    assert.equal(check, err.check)
    assert.is_true(proc.now() - t0 < 1)
    -- the token is outside data: none of it comes back in the message
    if type(tok) == "string" and #tok > 20 then
      assert.is_nil(tostring(err):find(tok, 1, true))
    end
    return err, p
  end

  describe("valid tokens", function()
    for _, alg in ipairs(idp.ALGS) do
      it("verifies an " .. alg .. " access token and returns its claims", function()
        local c = accepted(at(alg), { scope = "read" })
        assert.equal("cid", c.client_id)
        assert.equal(RS, c.aud)
        assert.equal("read write", c.scope)
      end)
    end

    it("accepts typ application/at+jwt in any case", function()
      accepted(at("ES256", nil, { typ = "application/at+jwt" }))
      accepted(at("ES256", nil, { typ = "AT+JWT" }))
    end)

    it("accepts an aud list containing the audience, and a list of audiences", function()
      accepted(at("RS256", { aud = { "other", RS } }))
      accepted(at("RS256", { aud = "urn:other" }), { audience = { RS, "urn:other" } })
    end)

    it("accepts every required scope as a string or a list", function()
      accepted(at(), { scope = "write read" })
      accepted(at(), { scope = { "read", "write" } })
      accepted(at(nil, { scope = NONE }))  -- no scope asked for, none granted
    end)

    it("accepts exp and iat within the leeway, and nbf in the past", function()
      local now = clock.now()
      accepted(at(nil, { exp = now - 5, iat = now - 100 }), { leeway = 10 })
      accepted(at(nil, { iat = now + 5, nbf = now - 1 }), { leeway = 10 })
    end)

    it("checks the time at opts.now", function()
      local now = clock.now()
      local tok = at(nil, { iat = now, exp = now + 60 })
      accepted(tok, { now = now + 30, leeway = 0 })
      rejected("exp", tok, { now = now + 61, leeway = 0 })
    end)

    it("fetches the JWKS once for many tokens", function()
      local _, p = accepted(at())
      for _ = 1, 5 do assert(p:verify_access_token(at(), { audience = RS })) end
      assert.equal(1, fetches())
    end)

    it("accepts a certificate-bound token with the client's certificate or its thumbprint", function()
      local c = certs.make()
      local pem = assert(proc.read_file(c.cert))
      -- the thumbprint computed by the openssl CLI, not by the library under test
      local ok, _, out = proc.run("openssl x509 -in " .. proc.shell_quote(c.cert) ..
        " -outform DER | openssl dgst -sha256 -binary | base64 -w0")
      certs.cleanup(c)
      assert.is_true(ok)
      local x5t = out:gsub("%s", ""):gsub("+", "-"):gsub("/", "_"):gsub("=", "")
      local tok = at(nil, { cnf = { ["x5t#S256"] = x5t } })
      accepted(tok, { client_cert = pem })
      accepted(tok, { client_cert_thumbprint = x5t })
      rejected("cnf", tok)
      rejected("cnf", tok, { client_cert_thumbprint = x5t:sub(2) .. "A" })
      rejected("cnf", tok, { client_cert = "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----" })
    end)
  end)

  describe("rejects, naming the check", function()
    it("typ: JWT, none, or another media type", function()
      rejected("typ", at(nil, nil, { typ = "JWT" }))
      rejected("typ", at(nil, nil, { typ = NONE }))
      rejected("typ", at(nil, nil, { typ = "dpop+jwt" }))
      rejected("typ", at(nil, nil, { typ = { "at+jwt" } }))
    end)

    it("an ID token (typ JWT, aud the client) given as an access token", function()
      rejected("typ", T.token("RS256"))
    end)

    it("alg none, with or without a signature", function()
      local c = T.claims { aud = RS, client_id = "cid", jti = "j" }
      rejected("alg", J.compact({ alg = "none", typ = "at+jwt" }, c))
      rejected("alg", J.compact({ alg = "none", typ = "at+jwt" }, c, "sig"))
      rejected("alg", J.compact({ alg = "NONE", typ = "at+jwt" }, c))
    end)

    it("HS256 keyed with the public key, and HS256 with the client secret", function()
      local c = T.claims { aud = RS, client_id = "cid", jti = "j" }
      rejected("alg", J.hmac({ alg = "HS256", typ = "at+jwt", kid = KID.RSA }, c, J.key("RSA").public_pem))
      local p = provider { client_secret = idp.SECRET, id_token_signed_response_alg = "HS256" }
      rejected("alg", J.hmac({ alg = "HS256", typ = "at+jwt" }, c, idp.SECRET), nil, p)
    end)

    it("an alg outside the allow-list", function()
      rejected("alg", at("ES256"), nil, provider { id_token_algs = { "RS256" } })
    end)

    it("a broken signature", function()
      local tok = at()
      local h, p, sig = idp.segments(tok)
      local raw = J.unb64(sig)
      local b = raw:byte(10)
      raw = raw:sub(1, 9) .. string.char(b % 2 == 1 and b - 1 or b + 1) .. raw:sub(11)
      rejected("signature", h .. "." .. p .. "." .. J.b64(raw))
      -- claims swapped under a valid signature
      local _, p2 = idp.segments(at(nil, { scope = "admin" }))
      rejected("signature", h .. "." .. p2 .. "." .. sig)
    end)

    it("kid confusion: an unknown kid, an RSA kid for ES256, a kid that is not a string", function()
      rejected("kid", at(nil, nil, { kid = "nope" }))
      local c = T.claims { aud = RS, client_id = "cid", jti = "j" }
      rejected("kid", J.sign({ alg = "ES256", typ = "at+jwt", kid = KID.RSA }, c, J.key("P-256")))
      rejected("kid", at(nil, nil, { kid = 7 }))
    end)

    it("iss: another issuer, none, a table", function()
      rejected("iss", at(nil, { iss = "https://evil.example" }))
      rejected("iss", at(nil, { iss = NONE }))
      rejected("iss", at(nil, { iss = { s.url } }))
    end)

    it("exp: in the past, missing, a string, NaN-like", function()
      local now = clock.now()
      rejected("exp", at(nil, { exp = now - 1000 }))
      rejected("exp", at(nil, { exp = NONE }))
      rejected("exp", at(nil, { exp = tostring(now + 100) }))
      rejected("exp", at(nil, { exp = { now + 100 } }))
      rejected("exp", at(nil, { exp = now - 5 }), { leeway = 0 })
    end)

    it("nbf: in the future, not a number", function()
      rejected("nbf", at(nil, { nbf = clock.now() + 1000 }))
      rejected("nbf", at(nil, { nbf = "0" }))
    end)

    it("iat: in the future, missing, not a number", function()
      rejected("iat", at(nil, { iat = clock.now() + 1000 }))
      rejected("iat", at(nil, { iat = NONE }))
      rejected("iat", at(nil, { iat = true }))
    end)

    it("aud: another, missing, empty list, an object, numbers", function()
      rejected("aud", at(nil, { aud = "https://other.example/" }))
      rejected("aud", at(nil, { aud = NONE }))
      rejected("aud", at(nil, { aud = {} }))
      rejected("aud", at(nil, { aud = { x = RS } }))
      rejected("aud", at(nil, { aud = { 1, 2 } }))
      -- a prefix is not a match
      rejected("aud", at(nil, { aud = RS .. "x" }))
    end)

    it("client_id, sub, jti: missing, empty, of another type", function()
      for _, name in ipairs { "client_id", "sub", "jti" } do
        rejected(name, at(nil, { [name] = NONE }))
        rejected(name, at(nil, { [name] = "" }))
        rejected(name, at(nil, { [name] = 42 }))
        rejected(name, at(nil, { [name] = { "cid" } }))
      end
    end)

    it("scope: one not granted (403, err.scope), none granted, a list claim", function()
      local err = rejected("scope", at(), { scope = "read admin" })
      assert.equal("read admin", err.scope)
      assert.equal(403, err.status)
      rejected("scope", at(nil, { scope = NONE }), { scope = "read" })
      rejected("scope", at(nil, { scope = { "read" } }), { scope = "read" })
      rejected("scope", at(nil, { scope = { "read" } }))
      -- a scope is a whole word: "rea" is not granted by "read"
      rejected("scope", at(), { scope = "rea" })
    end)

    it("cnf: not an object, empty, or a method this server cannot check", function()
      rejected("cnf", at(nil, { cnf = "jkt" }))
      rejected("cnf", at(nil, { cnf = { "x" } }))
      rejected("cnf", at(nil, { cnf = {} }))
      rejected("cnf", at(nil, { cnf = { kid = "k" } }))
      rejected("cnf", at(nil, { cnf = { jkt = 5 } }))
    end)

    it("dpop: a DPoP-bound token without a proof, a proof with an unbound token", function()
      local err = rejected("dpop", at(nil, { cnf = { jkt = "abc" } }))
      assert.is_true(err.dpop)
      rejected("dpop", at(nil, { cnf = { jkt = "abc" } }), { dpop = { method = "GET", url = RS } })
      rejected("cnf", at(), { dpop = { proof = "x.y.z", method = "GET", url = RS } })
    end)

    it("crit header parameters", function()
      rejected("crit", at(nil, nil, { crit = { "exp" }, exp = 1 }))
    end)
  end)

  describe("the DPoP proof of a DPoP-bound token", function()
    -- smartauth.dpop is written apart; here only what this module hands it and how
    -- its answer comes back are checked, with a recording stand-in for that module.
    local saved
    local calls
    before_each(function()
      saved = package.loaded["smartauth.dpop"]
      calls = {}
    end)
    after_each(function() package.loaded["smartauth.dpop"] = saved end)

    local function stand_in(result, err)
      package.loaded["smartauth.dpop"] = { verify_proof = function(proof, o)
        calls[#calls + 1] = { proof = proof, o = o }
        return result, err
      end }
    end

    it("passes the proof, method, url, token, jkt, leeway and the provider's store", function()
      stand_in({ jti = "p1" })
      local tok = at(nil, { cnf = { jkt = "thumb-1" } })
      local c, p = accepted(tok, { dpop = { proof = "proof-1", method = "POST", url = RS .. "x" }, leeway = 7 })
      assert.equal("thumb-1", c.cnf.jkt)
      assert.equal(1, #calls)
      local o = calls[1].o
      assert.equal("proof-1", calls[1].proof)
      assert.same({ "POST", RS .. "x", tok, "thumb-1", 7 }, { o.method, o.url, o.access_token, o.jkt, o.leeway })
      assert.equal(p.options.store, o.store)
    end)

    it("gives its failure as check dpop, with its code and check", function()
      stand_in(nil, smartauth.errors.new("validation", "nonce required", { check = "nonce",
        code = "use_dpop_nonce", nonce = "n-9" }))
      local err = rejected("dpop", at(nil, { cnf = { jkt = "thumb-1" } }),
        { dpop = { proof = "proof-1", method = "GET", url = RS } })
      assert.equal("use_dpop_nonce", err.code)
      assert.equal("nonce", err.proof_check)
      assert.equal("n-9", err.nonce)
      local h = smartauth.www_authenticate(err, { realm = "api" })
      assert.equal('Bearer realm="api", DPoP realm="api", error="use_dpop_nonce", ' ..
        'error_description="a DPoP nonce is required", algs="' .. table.concat(core_algs(), " ") .. '"', h)
    end)
  end)

  describe("hostile input", function()
    local function malformed(tok, check)
      rejected(check or "format", tok)
      assert.equal(0, fetches())
    end

    it("garbage, truncated, empty", function()
      for _, tok in ipairs { "", ".", "..", "a.b.c", "not a jwt", "\0\0\0", string.rep(".", 50),
          at():sub(1, 40), (at():gsub("%.[^.]*$", "")), at() .. ".x" } do
        malformed(tok)
      end
    end)

    it("an oversized token, quickly", function()
      local t0 = proc.now()
      malformed(J.compact({ alg = "RS256", typ = "at+jwt" }, { pad = string.rep("A", 70000) }, "s"))
      assert.is_true(proc.now() - t0 < FAST)
    end)

    it("a header or payload that is not an object", function()
      malformed(J.b64("[1]") .. "." .. J.b64("{}") .. ".")
      malformed(J.b64('{"alg":"RS256","typ":"at+jwt"}') .. "." .. J.b64('"x"') .. ".")
      malformed(J.b64('{"alg":"RS256"') .. "." .. J.b64("{}") .. ".")
    end)

    it("deeply nested claims", function()
      local deep = string.rep("[", 5000) .. string.rep("]", 5000)
      local ok, c, err = pcall(provider().verify_access_token, provider(),
        J.b64('{"alg":"RS256","typ":"at+jwt"}') .. "." .. J.b64('{"a":' .. deep .. "}") .. ".", { audience = RS })
      assert.is_true(ok)
      assert.is_nil(c)
      assert.equal("validation", err.kind)
    end)

    it("raises on programming mistakes: no audience, wrong types, unknown options", function()
      local p = provider()
      assert.has_error(function() p:verify_access_token(at()) end)
      assert.has_error(function() p:verify_access_token(at(), {}) end)
      assert.has_error(function() p:verify_access_token(at(), { audience = {} }) end)
      assert.has_error(function() p:verify_access_token(at(), { audience = 5 }) end)
      assert.has_error(function() p:verify_access_token(nil, { audience = RS }) end)
      assert.has_error(function() p:verify_access_token(at(), { audience = RS, scopes = "x" }) end)
      assert.has_error(function() p:verify_access_token(at(), { audience = RS, dpop = "proof" }) end)
    end)

    it("a provider without an issuer is a config error", function()
      local p = assert(smartauth.provider { jwks_uri = s.url .. "/jwks", client_id = "cid" })
      local c, err = p:verify_access_token(at(), { audience = RS })
      assert.is_nil(c)
      assert.equal("config", err.kind)
    end)
  end)

  describe("inside smartauth.spawn", function()
    it("fetches the JWKS without blocking and verifies", function()
      serve_jwks()
      s:script("/jwks", { json = idp.default_jwks(), delay_ms = 100 }, 0)
      local p = provider()
      local got, ticks
      smartauth.spawn(function() got = { p:verify_access_token(at(), { audience = RS, scope = "read" }) } end)
      ticks = 0
      while smartauth.step(0.01) > 0 do ticks = ticks + 1 end
      assert.equal("cid", got[1].client_id)
      assert.is_true(ticks > 1)
    end)
  end)

  ------------------------------------------------------------------- WWW-Authenticate

  describe("www_authenticate", function()
    local www = smartauth.www_authenticate

    it("no token: the challenge alone, 401", function()
      local v, status = www(nil, { realm = "api" })
      assert.equal('Bearer realm="api"', v)
      assert.equal(401, status)
      assert.equal("Bearer", (www()))
    end)

    it("invalid_token with a fixed description per check", function()
      local err = rejected("exp", at(nil, { exp = clock.now() - 1000 }))
      local v, status = www(err, { realm = "api" })
      assert.equal('Bearer realm="api", error="invalid_token", error_description="the access token expired"', v)
      assert.equal(401, status)
    end)

    it("insufficient_scope with the scopes asked for, 403", function()
      local err = rejected("scope", at(), { scope = "read admin" })
      local v, status = www(err)
      assert.equal('Bearer error="insufficient_scope", error_description="the access token lacks the scope ' ..
        'this request needs", scope="read admin"', v)
      assert.equal(403, status)
    end)

    it("offers DPoP with its algs; the error on the scheme the request used", function()
      local err = rejected("signature", (at(nil, { scope = "admin" }):gsub("%.[^.]*$", ".AAAA")))
      local v = www(nil, { dpop = { "ES256", "EdDSA" } })
      assert.equal('Bearer, DPoP algs="ES256 EdDSA"', v)
      v = www(err, { dpop = { "ES256" }, scheme = "DPoP" })
      assert.equal('Bearer, DPoP error="invalid_token", error_description="the access token\'s signature ' ..
        'does not verify", algs="ES256"', v)
      v = www(err, { dpop = { "ES256" }, bearer = false })
      assert.equal('DPoP error="invalid_token", error_description="the access token\'s signature ' ..
        'does not verify", algs="ES256"', v)
    end)

    it("a DPoP proof failure: invalid_dpop_proof on the DPoP challenge", function()
      local err = rejected("dpop", at(nil, { cnf = { jkt = "abc" } }))
      local v = www(err, { dpop = { "ES256" } })
      assert.equal('Bearer, DPoP error="invalid_dpop_proof", error_description="the DPoP proof is invalid", ' ..
        'algs="ES256"', v)
    end)

    it("quotes and escapes values; control characters cannot split the header", function()
      local v = www(nil, { realm = 'a"b\\c\r\nSet-Cookie: x' })
      assert.equal('Bearer realm="a\\"b\\\\c??Set-Cookie: x"', v)
      assert.is_nil(v:find("[\r\n]"))
    end)

    it("never carries the token's contents", function()
      local secret = "SECRET-claim-value-0123456789"
      for _, extra in ipairs { { iss = secret }, { aud = secret }, { scope = secret } } do
        local err = rejected(next(extra), at(nil, extra), next(extra) == "scope" and { scope = "read" } or nil)
        local v = www(err, { realm = "api", dpop = true })
        assert.is_nil(v:find(secret, 1, true))
        assert.is_nil(tostring(err):find(secret, 1, true))
      end
    end)

    it("a failure that is not the token's (the JWKS unreachable) is still a 401 challenge", function()
      s:script("/jwks", { status = 500, body = "no" }, 0)
      local p = provider()
      local c, err = p:verify_access_token(at(), { audience = RS })
      assert.is_nil(c)
      local v, status = www(err)
      assert.equal(401, status)
      assert.truthy(v:find('error="invalid_token"', 1, true))
    end)

    it("raises on a wrong argument", function()
      assert.has_error(function() www("expired") end)
      assert.has_error(function() www(nil, { realm = 5 }) end)
      assert.has_error(function() www(nil, { relm = "x" }) end)
    end)
  end)

  --------------------------------------------------------------- introspection cache

  describe("introspection cache", function()
    local function introspector(extra)
      local o = { introspection_endpoint = s.url .. "/introspect", client_secret = "sec" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end
    local function posts() return fetches("/introspect") end

    it("keeps a positive answer: a hit sends no request", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true, scope = "read", exp = clock.now() + 100 } }, 0)
      local a = assert(p:introspect("tok-1"))
      local b = assert(p:introspect("tok-1"))
      assert.equal(1, posts())
      assert.same(a, b)
      assert.is_true(b.active)
      assert(p:introspect("tok-2"))
      assert.equal(2, posts())
    end)

    it("is off by default", function()
      local p = introspector()
      s:script("/introspect", { json = { active = true, exp = clock.now() + 100 } }, 0)
      assert(p:introspect("tok-1"))
      assert(p:introspect("tok-1"))
      assert.equal(2, posts())
    end)

    it("never keeps a negative answer, nor an error", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = false } }, 0)
      assert.is_false(assert(p:introspect("tok-1")).active)
      assert.is_false(assert(p:introspect("tok-1")).active)
      assert.equal(2, posts())
      s:script("/introspect", { status = 401, json = { error = "invalid_client" } }, 0)
      assert.is_nil(p:introspect("tok-2"))
      assert.is_nil(p:introspect("tok-2"))
      assert.equal(4, posts())
    end)

    it("keeps an answer until the token's exp", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true, exp = clock.now() + 30 } }, 0)
      assert(p:introspect("tok-1"))
      clock.offset = 29
      assert(p:introspect("tok-1"))
      assert.equal(1, posts())
      clock.offset = 31
      assert(p:introspect("tok-1"))
      assert.equal(2, posts())
    end)

    it("keeps an answer at most max_ttl, and none whose exp is past", function()
      local p = introspector { introspection_cache = { max_ttl = 10 } }
      s:script("/introspect", { json = { active = true, exp = clock.now() + 1000 } }, 0)
      assert(p:introspect("tok-1"))
      clock.offset = 11
      assert(p:introspect("tok-1"))
      assert.equal(2, posts())
      s:script("/introspect", { json = { active = true, exp = clock.now() - 1 } }, 0)
      assert(p:introspect("tok-2"))
      assert(p:introspect("tok-2"))
      assert.equal(4, posts())
    end)

    it("uses the default cap of 300 s without exp", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true } }, 0)
      assert(p:introspect("tok-1"))
      clock.offset = 299
      assert(p:introspect("tok-1"))
      assert.equal(1, posts())
      clock.offset = 301
      assert(p:introspect("tok-1"))
      assert.equal(2, posts())
    end)

    it("drops the least recently used answer beyond max_entries", function()
      local p = introspector { introspection_cache = { max_entries = 2 } }
      s:script("/introspect", { json = { active = true } }, 0)
      assert(p:introspect("a"))
      assert(p:introspect("b"))
      assert(p:introspect("a"))        -- a is now the most recent
      assert(p:introspect("c"))        -- drops b
      assert.equal(3, posts())
      assert(p:introspect("a"))
      assert(p:introspect("c"))
      assert.equal(3, posts())
      assert(p:introspect("b"))
      assert.equal(4, posts())
      assert.equal(2, p._introspection_cache:size())
    end)

    it("is keyed by the token's SHA-256, never the token", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true } }, 0)
      local tok = "the-access-token-value-0123456789"
      assert(p:introspect(tok))
      for k, e in pairs(p._introspection_cache.map) do
        assert.equal(core.sha2(256, tok), k)
        assert.is_nil(k:find(tok, 1, true))
        assert.is_nil(require("cjson").encode(e.data):find(tok, 1, true))
      end
    end)

    it("hands out copies: changing an answer does not change the cache", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true, aud = { "x" } } }, 0)
      local a = assert(p:introspect("tok-1"))
      a.active, a.aud[1] = false, "y"
      local b = assert(p:introspect("tok-1"))
      assert.is_true(b.active)
      assert.equal("x", b.aud[1])
    end)

    it("refuses bad options at construction", function()
      for _, v in ipairs { "yes", 1, { max_entries = 0 }, { max_entries = 1.5 }, { max_ttl = -1 },
          { max_ttl = 1 / 0 }, { size = 3 } } do
        local p, err = smartauth.provider { token_endpoint = s.url .. "/t", introspection_cache = v }
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.equal("introspection_cache", err.option)
      end
    end)

    it("works inside smartauth.spawn: a miss yields, a hit does not ask again", function()
      local p = introspector { introspection_cache = true }
      s:script("/introspect", { json = { active = true }, delay_ms = 50 }, 0)
      local got = {}
      smartauth.spawn(function()
        got[1] = assert(p:introspect("tok-1"))
        got[2] = assert(p:introspect("tok-1"))
      end)
      smartauth.run()
      assert.is_true(got[1].active and got[2].active)
      assert.equal(1, posts())
    end)
  end)
end)

