-- DPoP, RFC 9449 (lua/smartauth/dpop.lua, the core's key_generate and
-- private_jwk) against the recording server: the exact header bytes, the
-- proof's header and claims, its signature checked with the public jwk,
-- nonces from the token endpoint and from a resource server, stored keys
-- and thumbprints, the hook's redaction, the resource server's check, and
-- hostile answers and proofs.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local dpop = require "smartauth.dpop"
local json = require "cjson.safe"
local server = require "helpers.server"

local function b64json(seg)
  local raw = assert(core.b64url_decode(seg))
  return json.decode(raw)
end

-- header, claims of a compact proof
local function parts(proof)
  local h, c = proof:match("^([^.]+)%.([^.]+)%.[^.]+$")
  assert(h, "not a compact JWS: " .. tostring(proof))
  return b64json(h), b64json(c)
end

local function ath(at) return core.b64url_encode(core.sha2(256, at)) end

local function dpop_token(extra)
  local t = { access_token = "at-" .. core.b64url_encode(core.random(9)), token_type = "DPoP", expires_in = 3600 }
  for k, v in pairs(extra or {}) do t[k] = v end
  return { json = t }
end

describe("DPoP", function()
  local s
  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret",
      dpop = true, retry = false }
    for k, v in pairs(extra or {}) do if v == false then o[k] = nil else o[k] = v end end
    return assert(smartauth.provider(o))
  end

  describe("core keys", function()
    it("generates distinct P-256 keys whose private JWK rebuilds the same key", function()
      local a = assert(core.key_generate("EC", "P-256"))
      local b = assert(core.key_generate("EC", "P-256"))
      local ja, jb = a:private_jwk(), b:private_jwk()
      assert.equal("EC", ja.kty); assert.equal("P-256", ja.crv)
      assert.equal(43, #ja.d); assert.equal(43, #ja.x); assert.equal(43, #ja.y)
      assert.not_equal(ja.d, jb.d)
      local again = assert(require("smartauth.jwks").parse_private_jwk(ja))
      assert.is_true(a:verify("ES256", "m", again:sign("ES256", "m")))
      assert.equal("smartauth.key (EC P-256, private)", tostring(a))
    end)

    it("refuses what it cannot generate or export", function()
      local k, kind, msg = core.key_generate("RSA", "2048")
      assert.is_nil(k); assert.equal("validation", kind); assert.matches("RSA", msg)
      assert.is_nil((core.key_generate("EC", "P-192")))
      assert.is_nil((core.key_generate("EC", "P-256\0x")))
      local pk = assert(core.key_generate("EC", "P-256"))
      local raw = pk:public()
      local public_only = assert(core.key_ec("P-256", raw.x, raw.y))
      local none, nkind = public_only:private_jwk()
      assert.is_nil(none); assert.equal("config", require("smartauth.errors").from_core(nkind, "").kind)
      assert.equal("Ed25519", assert(core.key_generate("OKP", "Ed25519")):private_jwk().crv)
    end)

    it("computes RFC 7638 thumbprints (the RFC's own example)", function()
      assert.equal("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", dpop.thumbprint {
        kty = "RSA", e = "AQAB", alg = "RS256", kid = "2011-04-29",
        n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP" ..
          "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY" ..
          "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f" ..
          "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw" })
      assert.is_nil(dpop.thumbprint { kty = "EC", crv = "P-256", x = "a\"b", y = "c" })
      assert.is_nil(dpop.thumbprint { kty = "oct", k = "abc" })
    end)
  end)

  describe("token requests", function()
    it("carry a proof whose claims and signature are right", function()
      local p = provider()
      s:script("/token", dpop_token())
      local t0 = os.time()
      local tok = assert(p:client_credentials())
      assert.equal("DPoP", tok.token_type)
      local r = s:last_request()
      local proof = r.headers.dpop
      assert.is_string(proof)
      local h, c = parts(proof)
      assert.equal("dpop+jwt", h.typ); assert.equal("ES256", h.alg)
      assert.equal("EC", h.jwk.kty); assert.equal("P-256", h.jwk.crv)
      assert.is_nil(h.jwk.d)
      assert.equal("POST", c.htm); assert.equal(s.url .. "/token", c.htu)
      assert.truthy(c.iat >= t0 and c.iat <= os.time())
      assert.equal(22, #c.jti)
      assert.is_nil(c.ath); assert.is_nil(c.nonce)
      local claims, jkt = assert(dpop.verify_proof(proof, { method = "POST", url = s.url .. "/token" }))
      assert.equal(c.jti, claims.jti)
      assert.equal(dpop.thumbprint(h.jwk), jkt)
      assert.equal(jkt, tok.ext.dpop_jkt)
      -- the client's own authentication is unchanged
      assert.equal("cid", r.basic.user)
    end)

    it("takes a use_dpop_nonce answer, retries once with the nonce, and keeps it", function()
      local p = provider()
      s:script("/token", { status = 400, headers = { ["DPoP-Nonce"] = "n-1" },
        json = { error = "use_dpop_nonce", error_description = "nonce please" } })
      s:script("/token", dpop_token())
      assert(p:client_credentials())
      local reqs = s:requests()
      assert.equal(2, #reqs)
      local _, c1 = parts(reqs[1].headers.dpop)
      local _, c2 = parts(reqs[2].headers.dpop)
      assert.is_nil(c1.nonce); assert.equal("n-1", c2.nonce)
      assert.not_equal(c1.jti, c2.jti)
      s:script("/token", dpop_token())
      assert(p:client_credentials())
      local _, c3 = parts(s:last_request().headers.dpop)
      assert.equal("n-1", c3.nonce)
    end)

    it("stops after one retry when the nonce requests never end (a nonce flood)", function()
      local p = provider()
      for i = 1, 5 do
        s:script("/token", { status = 400, headers = { ["DPoP-Nonce"] = "flood-" .. i },
          json = { error = "use_dpop_nonce" } })
      end
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("oauth", err.kind); assert.equal("use_dpop_nonce", err.code)
      assert.matches("again after a retry", err.description)
      assert.equal(2, #s:requests())
    end)

    it("does not retry without a usable DPoP-Nonce (absent, a quote, control bytes, oversized)", function()
      for _, n in ipairs { false, 'a"b', "a\1b", ("x"):rep(600), "" } do
        s:reset()
        local p = provider()
        local body = '{"error":"use_dpop_nonce"}'
        -- raw bytes: Node refuses to send a control byte in a header
        s:script("/token", { raw = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n" ..
          (n and ("DPoP-Nonce: " .. n .. "\r\n") or "") .. "Content-Length: " .. #body ..
          "\r\nConnection: close\r\n\r\n" .. body })
        s:script("/token", dpop_token())
        local tok, err = p:client_credentials()
        assert.is_nil(tok)
        assert.matches("no new usable DPoP%-Nonce", err.description, 1, false, tostring(n))
        assert.equal(1, #s:requests())
      end
    end)

    it("accepts token_type in any case and N_A; refuses others", function()
      local p = provider()
      s:script("/token", dpop_token { token_type = "dpop" })
      assert.equal("DPoP", assert(p:client_credentials()).token_type)
      s:script("/token", dpop_token { token_type = "n_a" })
      assert.equal("N_A", assert(p:client_credentials()).token_type)
      s:script("/token", dpop_token { token_type = "MAC\27[2J" })
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.is_nil(err.description:find("\27", 1, true))
    end)

    it("refreshes a public client's DPoP-bound refresh token with the same key", function()
      local p = provider { client_secret = false, client_auth = "none", redirect_uri = "http://127.0.0.1/cb" }
      s:script("/token", dpop_token { refresh_token = "rt-1", expires_in = 1 })
      local first = assert(p:password { username = "u", password = "pw" })
      local jkt = first.ext.dpop_jkt
      s:script("/token", dpop_token { refresh_token = "rt-2" })
      local second = assert(p:token { force = true })
      local r = s:last_request()
      assert.equal("refresh_token", r.form.grant_type); assert.equal("rt-1", r.form.refresh_token)
      assert.equal("cid", r.form.client_id)
      local _, pjkt = assert(dpop.verify_proof(r.headers.dpop, { method = "POST", url = s.url .. "/token" }))
      assert.equal(jkt, pjkt)
      assert.equal(jkt, second.ext.dpop_jkt)
    end)
  end)

  describe("p:request", function()
    it("sends Authorization: DPoP and a fresh proof with ath", function()
      local p = provider()
      local tokres = dpop_token()
      s:script("/token", tokres)
      local at = tokres.json.access_token
      s:script("/api/items", { status = 200, body = "ok" }, 2)
      local res = assert(p:request { url = s.url .. "/api/items", query = { q = "1" } })
      assert.equal(200, res.status)
      local r = s:last_request()
      assert.equal("DPoP " .. at, r.headers.authorization)
      local names = {}
      for _, nv in ipairs(r.raw_headers) do names[nv[1]:lower()] = (names[nv[1]:lower()] or 0) + 1 end
      assert.equal(1, names.dpop); assert.equal(1, names.authorization)
      local _, c = parts(r.headers.dpop)
      assert.equal("GET", c.htm); assert.equal(s.url .. "/api/items", c.htu)
      assert.equal(ath(at), c.ath)
      local tok = assert(p:token())
      assert(dpop.verify_proof(r.headers.dpop, { method = "GET", url = s.url .. "/api/items?q=1",
        access_token = at, jkt = tok.ext.dpop_jkt }))
      assert(p:request { method = "POST", url = s.url .. "/api/items", body = "x" })
      local _, c2 = parts(s:last_request().headers.dpop)
      assert.equal("POST", c2.htm); assert.not_equal(c.jti, c2.jti)
    end)

    it("retries once with a resource server's nonce", function()
      local p = provider()
      s:script("/token", dpop_token())
      s:script("/api", { status = 401, headers = { ["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce", ' ..
        'error_description="Resource server requires nonce in DPoP proof"', ["DPoP-Nonce"] = "rs-1" } })
      s:script("/api", { status = 200, body = "ok" })
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(200, res.status)
      local reqs = s:requests()
      assert.equal(3, #reqs)
      local _, c = parts(reqs[3].headers.dpop)
      assert.equal("rs-1", c.nonce)
      assert.equal(reqs[2].headers.authorization, reqs[3].headers.authorization)
    end)

    it("bounds a 401 loop: a nonce retry, one renewal, then the 401 is the answer", function()
      local p = provider()
      s:script("/token", dpop_token(), 3)
      for i = 1, 6 do
        s:script("/api", { status = 401, headers = { ["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce"',
          ["DPoP-Nonce"] = "loop-" .. i } })
      end
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(401, res.status)
      local api, token = 0, 0
      for _, r in ipairs(s:requests()) do
        if r.path == "/api" then api = api + 1 else token = token + 1 end
      end
      assert.equal(3, api); assert.equal(2, token)
    end)

    it("does not resend on a proof-less 401 (no nonce, no DPoP challenge)", function()
      local p = provider()
      s:script("/token", dpop_token(), 2)
      s:script("/api", { status = 401, headers = { ["WWW-Authenticate"] = 'DPoP error="invalid_token"' } }, 5)
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(401, res.status)
      assert.equal(4, #s:requests()) -- token, 401, renewed token, 401
    end)

    it("uses Bearer when the server binds nothing", function()
      local p = provider()
      s:script("/api", { status = 200, body = "ok" })
      assert(p:request { url = s.url .. "/api" })
      local r = s:last_request()
      assert.matches("^Bearer at%-", r.headers.authorization)
      assert.is_nil(r.headers.dpop)
    end)

    it("works inside smartauth.spawn", function()
      local p = provider()
      local tokres = dpop_token()
      s:script("/token", tokres)
      s:script("/api", { status = 200, body = "ok" })
      local status, err
      smartauth.spawn(function()
        local res, e = p:request { url = s.url .. "/api" }
        status, err = res and res.status, e
      end)
      smartauth.run()
      assert.is_nil(err)
      assert.equal(200, status)
      assert.equal("DPoP " .. tokres.json.access_token, s:last_request().headers.authorization)
    end)
  end)

  describe("keys and stores", function()
    it("keeps a generated key in a memory store's entry and a new provider adopts it", function()
      local store = smartauth.store.memory()
      local p = provider { store = store }
      s:script("/token", dpop_token())
      local tok = assert(p:token())
      local entry = store:get(p:store_key())
      assert.equal("DPoP", entry.token_type)
      assert.is_string(entry.ext.dpop_key.d)
      assert.equal(tok.ext.dpop_jkt, dpop.thumbprint(entry.ext.dpop_key))
      local p2 = provider { store = store }
      s:script("/api", { status = 200, body = "ok" })
      assert(p2:request { url = s.url .. "/api" })
      local _, jkt = assert(dpop.verify_proof(s:last_request().headers.dpop, { method = "GET",
        url = s.url .. "/api", access_token = tok.access_token }))
      assert.equal(tok.ext.dpop_jkt, jkt)
      assert.equal(2, #s:requests()) -- no new token
      -- the key never shows on the provider or in its tostring
      assert.is_nil(tostring(p2):find(entry.ext.dpop_key.d, 1, true))
      for _, v in pairs(p2) do assert.is_nil(tostring(v):find(entry.ext.dpop_key.d, 1, true)) end
    end)

    it("refuses a generated key with a store that does not encrypt", function()
      local dir = os.tmpname(); os.remove(dir)
      local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", dpop = true, store = smartauth.store.file { dir = dir, key = false } }
      assert.is_nil(p)
      assert.equal("config", err.kind); assert.equal("dpop", err.option)
      assert.matches("dpop_key", err.description)
      local custom = { get = function() end, set = function() return true end,
        delete = function() return true end, lock = function() return function() return true end end }
      assert.is_nil((smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", dpop = true, store = custom }))
      custom.encrypts = true
      assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", dpop = true, store = custom })
      assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", dpop = true,
        store = smartauth.store.file { dir = dir, key = ("k"):rep(32) } })
      os.execute("rm -rf '" .. dir .. "'")
    end)

    it("stores only the thumbprint of dpop_key, and never uses a token bound to another key", function()
      local dir = os.tmpname(); os.remove(dir)
      local store = smartauth.store.file { dir = dir, key = false }
      local k1 = assert(core.key_generate("EC", "P-256")):private_jwk()
      local k2 = assert(core.key_generate("EC", "P-256")):private_jwk()
      local p = provider { dpop = false, dpop_key = k1, store = store }
      assert.is_true(p.options.dpop)
      assert.is_nil(p.options.dpop_key)
      s:script("/token", dpop_token())
      local tok = assert(p:token())
      local entry = store:get(p:store_key())
      assert.is_nil(entry.ext.dpop_key)
      assert.equal(dpop.thumbprint(k1), entry.ext.dpop_jkt)
      -- the same key again: the stored token is used
      local same = provider { dpop = false, dpop_key = k1, store = store }
      assert.equal(tok.access_token, assert(same:token()).access_token)
      assert.equal(1, #s:requests())
      -- another key: not used, a new token is fetched
      local other = provider { dpop = false, dpop_key = k2, store = store }
      s:script("/token", dpop_token())
      assert.not_equal(tok.access_token, assert(other:token()).access_token)
      assert.equal(2, #s:requests())
      -- no DPoP at all: a DPoP-bound entry is not used either
      local plain = provider { dpop = false, store = store }
      assert.not_equal("DPoP", assert(plain:token()).token_type)
      os.execute("rm -rf '" .. dir .. "'")
    end)

    it("reads dpop_key as PEM text or a PEM file, and refuses bad keys without quoting them", function()
      local J = require "helpers.jwt"
      local pem = J.key("P-256").pem
      local f = os.tmpname()
      local fh = assert(io.open(f, "wb")); fh:write(pem); fh:close()
      assert(provider { dpop = false, dpop_key = pem })
      assert(provider { dpop = false, dpop_key = f })
      os.remove(f)
      assert(provider { dpop = false, dpop_key = J.key("RSA").pem })
      local jwk = assert(core.key_generate("EC", "P-256")):private_jwk()
      local bad = { kty = "EC", crv = "P-256", x = jwk.x, y = jwk.y, d = jwk.d:sub(1, 40) .. "AAA" }
      for _, v in ipairs { bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
          "/nonexistent/key.pem", { kty = "EC", crv = "P-256", x = jwk.x, y = jwk.y } } do
        local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
          client_secret = "s", dpop_key = v }
        assert.is_nil(p)
        assert.equal("config", err.kind); assert.equal("dpop_key", err.option)
        assert.is_nil(tostring(err):find(jwk.d:sub(1, 20), 1, true))
      end
      local raw = assert(core.key_generate("EC", "P-256")):public()
      local pub = { kty = "EC", crv = "P-256", x = core.b64url_encode(raw.x), y = core.b64url_encode(raw.y) }
      local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", dpop_key = pub }
      assert.is_nil(p); assert.equal("dpop_key", err.option)
    end)
  end)

  describe("on_http", function()
    it("redacts the DPoP header and the DPoP token", function()
      local events = {}
      local p = provider { on_http = function(ev) events[#events + 1] = ev end }
      local tokres = dpop_token()
      s:script("/token", tokres)
      s:script("/api", { status = 200, body = "ok" })
      assert(p:request { url = s.url .. "/api" })
      local proofs = {}
      for _, r in ipairs(s:requests()) do proofs[#proofs + 1] = r.headers.dpop end
      assert.equal(2, #events)
      assert.equal("[redacted]", events[1].request_headers.dpop)
      assert.equal("[redacted]", events[2].request_headers.dpop)
      assert.equal("DPoP [redacted]", events[2].request_headers.authorization)
      local dumped = require("cjson").encode(events)
      for _, pr in ipairs(proofs) do
        assert.is_nil(dumped:find(pr, 1, true))
        assert.is_nil(dumped:find(pr:match("%.([^.]+)%.[^.]+$"), 1, true))
      end
      assert.is_nil(dumped:find(tokres.json.access_token, 1, true))
    end)
  end)

  describe("verify_proof", function()
    local key, jwk, URL, AT
    before_each(function()
      key = assert(core.key_generate("EC", "P-256"))
      local raw = key:public()
      jwk = { kty = "EC", crv = "P-256", x = core.b64url_encode(raw.x), y = core.b64url_encode(raw.y) }
      URL, AT = "https://rs.example/api/x", "at-123"
    end)

    local function make(hdr, claims, signer, alg)
      local h = { typ = "dpop+jwt", alg = "ES256", jwk = jwk }
      for k, v in pairs(hdr or {}) do if v == false then h[k] = nil else h[k] = v end end
      local c = { jti = "j-" .. core.b64url_encode(core.random(8)), htm = "GET", htu = URL,
        iat = os.time(), ath = ath(AT) }
      for k, v in pairs(claims or {}) do if v == false then c[k] = nil else c[k] = v end end
      local input = core.b64url_encode(json.encode(h)) .. "." .. core.b64url_encode(json.encode(c))
      local sig = assert((signer or key):sign(alg or "ES256", input))
      return input .. "." .. core.b64url_encode(sig)
    end

    local function check(proof, opts)
      local o = { method = "GET", url = URL, access_token = AT }
      for k, v in pairs(opts or {}) do o[k] = v end
      return dpop.verify_proof(proof, o)
    end

    local function refused(want, proof, opts)
      local c, err = check(proof, opts)
      assert.is_nil(c)
      assert.equal("validation", err.kind)
      assert.equal(want, err.check)
    end

    it("accepts a good proof, ignoring query and fragment and the default port", function()
      local c, jkt = check(make(), { url = "https://RS.example:443/api/x?a=1#f", jkt = dpop.thumbprint(jwk) })
      assert.truthy(c); assert.equal(dpop.thumbprint(jwk), jkt)
    end)

    it("names each failed check", function()
      refused("typ", make { typ = "JWT" })
      refused("typ", make { typ = false })
      refused("alg", make({ alg = "HS256" }, nil, core.key_oct(("s"):rep(32)), "HS256"))
      refused("alg", make { alg = "none" })
      refused("alg", make({ alg = "ES384" }))
      refused("jwk", make { jwk = false })
      refused("jwk", make { jwk = "x" })
      local withd = {}
      for k, v in pairs(jwk) do withd[k] = v end
      withd.d = key:private_jwk().d
      refused("jwk", make { jwk = withd })
      refused("jwk", make { jwk = { kty = "EC", crv = "P-256", x = jwk.x, y = jwk.x } })
      refused("signature", make(nil, nil, assert(core.key_generate("EC", "P-256"))))
      refused("htm", make { }, { method = "POST" })
      refused("htm", make(nil, { htm = false }))
      refused("htu", make(nil, { htu = "https://rs.example/api/y" }))
      refused("htu", make(nil, { htu = 5 }))
      refused("htu", make(nil, { htu = "http://rs.example/api/x" }))
      refused("iat", make(nil, { iat = os.time() - 3600 }))
      refused("iat", make(nil, { iat = os.time() + 3600 }))
      refused("iat", make(nil, { iat = "now" }))
      refused("jti", make(nil, { jti = false }))
      refused("jti", make(nil, { jti = ("j"):rep(300) }))
      refused("ath", make(nil, { ath = ath("other") }))
      refused("ath", make(nil, { ath = false }))
      refused("jkt", make(), { jkt = "AAAA" })
      refused("nonce", make(), { nonce = "n-1" })
      assert.truthy(check(make(nil, { nonce = "n-1" }), { nonce = "n-1" }))
      assert.truthy(check(make(nil, { iat = os.time() - 50 }), { leeway = 60 }))
      refused("iat", make(nil, { iat = 1000 }), { now = 5000 })
    end)

    it("refuses malformed and oversized proofs", function()
      for _, v in ipairs { "", "a.b", "a.b.c", ("A"):rep(70000) .. ".b.c", "e30.e30.", 42 } do
        local c, err = check(v)
        assert.is_nil(c)
        assert.equal("validation", err.kind)
      end
      assert.has_error(function() dpop.verify_proof("x", nil) end)
      assert.has_error(function() dpop.verify_proof("x", { url = URL }) end)
    end)

    it("refuses a replayed jti with a store, keeping it only for the window", function()
      local store = smartauth.store.memory()
      local proof = make()
      assert.truthy(check(proof, { store = store }))
      refused("jti", proof, { store = store })
      -- another key with the same jti is another proof
      local other = assert(core.key_generate("EC", "P-256"))
      local raw = other:public()
      local ojwk = { kty = "EC", crv = "P-256", x = core.b64url_encode(raw.x), y = core.b64url_encode(raw.y) }
      local _, c = parts(proof)
      assert.truthy(check(make({ jwk = ojwk }, { jti = c.jti }, other), { store = store }))
    end)
  end)
end)
