-- JWE (lua/smartauth/jwe.lua over csrc/jwe.c): the RFC 7520 §5 vectors, round
-- trips for every alg × enc, the hostile inputs of each attack class (tampering,
-- wrong keys, invalid-curve points, zip, RSA1_5, crit, sizes, malformed compact
-- forms), decryption_keys and their published JWKS, and encrypted ID tokens
-- through p:verify_id_token (also inside smartauth.spawn).
local smartauth = require "smartauth"
local core = require "smartauth.core"
local jwe = require "smartauth.jwe"
local cjson = require "cjson"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"
local V = require "helpers.jwe_vectors"

local FAILED = "JWE decryption failed"
local CEK = { A128GCM = 16, A256GCM = 32, ["A128CBC-HS256"] = 32, ["A256CBC-HS512"] = 64 }

local function b64(s) return core.b64url_encode(s) end
local function unb64(s) return (assert(core.b64url_decode(s))) end
local function parts(tok)
  local t = {}
  for p in (tok .. "."):gmatch("([^.]*)%.") do t[#t + 1] = p end
  return t
end
local function join(t) return table.concat(t, ".") end

-- s with the byte at i (from 1) changed
local function flip(s, i)
  local b = s:byte(i)
  return s:sub(1, i - 1) .. string.char(b == 255 and 0 or b + 1) .. s:sub(i + 1)
end
-- a base64url part with one decoded byte changed
local function tamper(part, i)
  local raw = unb64(part)
  return b64(flip(raw, i or #raw))
end

local function refused(tok, keys, pattern, opts)
  local pt, err = jwe.decrypt(tok, keys, opts)
  assert.is_nil(pt)
  assert.equal("validation", err.kind)
  assert.equal("jwe", err.check)
  if pattern then assert.matches(pattern, err.description) end
  return err
end

describe("JWE", function()
  local rsa, p256, p384, p521, keys

  setup(function()
    rsa, p256, p384, p521 = J.key("RSA"), J.key("P-256"), J.key("P-384"), J.key("P-521")
    keys = {
      rsa = assert(jwe.load_keys { rsa.pem }),
      ["P-256"] = assert(jwe.load_keys { p256.pem }),
      ["P-384"] = assert(jwe.load_keys { p384.pem }),
      ["P-521"] = assert(jwe.load_keys { p521.pem }),
    }
  end)
  teardown(function() J.cleanup() end)

  describe("RFC 7520 §5 vectors", function()
    for _, v in ipairs(V.vectors) do
      it("decrypts " .. v.name, function()
        local ks = assert(jwe.load_keys { v.jwk })
        local pt, h = jwe.decrypt(v.compact, ks)
        assert.equal(V.plaintext, pt)
        assert.equal(v.jwk.kid, h.kid)
      end)
      it("refuses " .. v.name .. " with its tag changed", function()
        local t = parts(v.compact)
        t[5] = tamper(t[5], 1)
        local err = refused(join(t), assert(jwe.load_keys { v.jwk }))
        assert.equal(FAILED, err.description)
      end)
    end
  end)

  describe("round trips", function()
    local function key_for(alg, enc, i)
      if alg:match("^RSA") then return rsa.key, keys.rsa end
      if alg:match("^ECDH") then
        local kind = ({ "P-256", "P-384", "P-521" })[i % 3 + 1]
        return J.key(kind).key, keys[kind]
      end
      local len = alg == "A128KW" and 16 or alg == "A256KW" and 32 or CEK[enc]
      local secret = core.random(len)
      local ks = assert(jwe.load_keys { { kty = "oct", k = b64(secret) } })
      return ks[1].key, ks
    end

    local i = 0
    for _, alg in ipairs(jwe.ALGS) do
      for _, enc in ipairs(jwe.ENCS) do
        i = i + 1
        local n = i
        it(alg .. " + " .. enc, function()
          local k, ks = key_for(alg, enc, n)
          local msg = "plaintext " .. alg .. " " .. enc .. " " .. ("x"):rep(n)
          local tok = assert(jwe.encrypt(msg, k, { alg = alg, enc = enc, cty = "JWT" }))
          assert.equal(5, #parts(tok))
          local h = cjson.decode(unb64(parts(tok)[1]))
          assert.equal(alg, h.alg)
          assert.equal(enc, h.enc)
          assert.equal("JWT", h.cty)
          assert.equal(alg:match("^ECDH") ~= nil, h.epk ~= nil)
          assert.equal(msg, (jwe.decrypt(tok, ks)))
          -- a second encryption differs (fresh CEK/IV, fresh ephemeral key)
          local tok2 = assert(jwe.encrypt(msg, k, { alg = alg, enc = enc }))
          assert.are_not.equal(parts(tok)[4], parts(tok2)[4])
          -- tag and ciphertext tampering: the one message
          local t = parts(tok)
          t[5] = tamper(t[5])
          assert.equal(FAILED, refused(join(t), ks).description)
          t = parts(tok)
          t[4] = tamper(t[4], 1)
          assert.equal(FAILED, refused(join(t), ks).description)
          t = parts(tok)
          t[3] = tamper(t[3], 1)
          assert.equal(FAILED, refused(join(t), ks).description)
          if t[2] ~= "" then
            t = parts(tok)
            t[2] = tamper(t[2], 3)
            assert.equal(FAILED, refused(join(t), ks).description)
          end
        end)
      end
    end

    it("encrypts to a public JWK (use enc) and to a JWK's alg", function()
      local jwk = J.public_jwk(p256, { use = "enc", kid = "e1", alg = "ECDH-ES+A256KW" })
      local tok = assert(jwe.encrypt("hi", jwk, { enc = "A128GCM" }))
      local h = cjson.decode(unb64(parts(tok)[1]))
      assert.equal("ECDH-ES+A256KW", h.alg)
      assert.equal("e1", h.kid)
      assert.equal("hi", (jwe.decrypt(tok, keys["P-256"])))
      local _, err = jwe.encrypt("hi", J.public_jwk(p256, { use = "sig" }))
      assert.equal("config", err.kind)
    end)
  end)

  describe("hostile input", function()
    local good, ks
    setup(function()
      ks = keys.rsa
      good = assert(jwe.encrypt("payload", rsa.key, { alg = "RSA-OAEP-256", enc = "A256GCM" }))
    end)

    -- a token whose header is h (a table or raw JSON), other parts kept
    local function with_header(tok, h)
      local t = parts(tok)
      t[1] = b64(type(h) == "table" and cjson.encode(h) or h)
      return join(t)
    end

    it("a changed header (the AAD) fails like a bad tag", function()
      local tok = with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", typ = "JWT" })
      assert.equal(FAILED, refused(tok, ks).description)
    end)

    it("a wrong key fails with the same message as a bad tag (no oracle)", function()
      local other = J.new_key("RSA")
      local wrong = refused(good, assert(jwe.load_keys { other.pem }))
      local t = parts(good)
      t[5] = tamper(t[5])
      local badtag = refused(join(t), ks)
      assert.equal(FAILED, wrong.description)
      assert.equal(wrong.description, badtag.description)
      -- the same for an unwrap failure under AES key wrap
      local k16 = assert(jwe.load_keys { { kty = "oct", k = b64(("k"):rep(16)) } })
      local kw = assert(jwe.encrypt("x", k16[1].key, { alg = "A128KW", enc = "A128GCM" }))
      local k16b = assert(jwe.load_keys { { kty = "oct", k = b64(("j"):rep(16)) } })
      assert.equal(FAILED, refused(kw, k16b).description)
    end)

    it("refuses RSA1_5 (the PKCS#1 v1.5 oracle), even when asked for", function()
      refused(with_header(good, { alg = "RSA1_5", enc = "A256GCM" }), ks, "RSA1_5 is never accepted")
      refused(with_header(good, { alg = "RSA1_5", enc = "A256GCM" }), ks, "RSA1_5", { algs = { "RSA1_5" } })
      assert.is_nil((rsa.key:jwe_alg_ok("RSA1_5")))
      local _, kind, msg = rsa.key:jwe_encrypt("RSA1_5", "A128GCM", "x")
      assert.equal("validation", kind)
      assert.matches("not supported", msg)
    end)

    it("refuses zip, crit, unknown alg or enc, duplicates and missing members", function()
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", zip = "DEF" }), ks, "zip")
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", crit = { "exp" }, exp = 1 }), ks, "critical")
      refused(with_header(good, { alg = "RSA-OAEP-384", enc = "A256GCM" }), ks, "alg")
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A192GCM" }), ks, "enc")
      refused(with_header(good, { alg = "none", enc = "A256GCM" }), ks, "alg")
      refused(with_header(good, { enc = "A256GCM" }), ks, "no alg")
      refused(with_header(good, { alg = "RSA-OAEP-256" }), ks, "no enc")
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = { "A256GCM" } }), ks, "no enc")
      refused(with_header(good, '{"alg":"dir","enc":"A256GCM","alg":"RSA-OAEP-256"}'), ks, "more than once")
      refused(with_header(good, '["alg","enc"]'), ks, "JSON object")
      refused(with_header(good, 'not json'), ks, "JSON object")
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", kid = 5 }), ks, "kid")
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", epk = { kty = "EC" } }), ks, "epk")
    end)

    it("honours the alg and enc allow-lists", function()
      refused(good, ks, "not accepted", { algs = { "RSA-OAEP" } })
      refused(good, ks, "not accepted", { encs = { "A128GCM" } })
      assert.equal("payload", (jwe.decrypt(good, ks, { algs = { "RSA-OAEP-256" }, encs = { "A256GCM" } })))
    end)

    describe("ECDH-ES epk", function()
      local tok, h
      setup(function()
        tok = assert(jwe.encrypt("secret", p256.key, { alg = "ECDH-ES", enc = "A128GCM" }))
        h = cjson.decode(unb64(parts(tok)[1]))
      end)
      local function with_epk(epk)
        local h2 = { alg = h.alg, enc = h.enc, epk = epk }
        local t = parts(tok)
        t[1] = b64(cjson.encode(h2))
        return join(t)
      end

      it("refuses a point that is not on the curve (invalid-curve attack)", function()
        local y = unb64(h.epk.y)
        refused(with_epk { kty = "EC", crv = "P-256", x = h.epk.x, y = b64(flip(y, #y)) }, keys["P-256"], "epk")
        -- the point at infinity's encoding and an all-zero point
        refused(with_epk { kty = "EC", crv = "P-256", x = b64(("\0"):rep(32)), y = b64(("\0"):rep(32)) },
          keys["P-256"], "epk")
        -- a small-order-style point of another curve's size
        refused(with_epk { kty = "EC", crv = "P-256", x = b64(("\255"):rep(32)), y = b64(("\1"):rep(32)) },
          keys["P-256"], "epk")
      end)

      it("refuses an epk on another curve than the key's, or with a private part", function()
        local other = J.public_jwk(p384)
        refused(with_epk { kty = "EC", crv = "P-384", x = other.x, y = other.y }, keys["P-256"], "curve")
        refused(with_epk { kty = "EC", crv = "P-256", x = h.epk.x, y = h.epk.y, d = h.epk.x }, keys["P-256"],
          "private")
        refused(with_epk { kty = "OKP", crv = "X25519", x = h.epk.x }, keys["P-256"], "curve")
        refused(with_epk "a string", keys["P-256"], "epk")
      end)

      it("a valid epk changed for another valid point fails as generic", function()
        local fresh = J.public_jwk(J.new_key("P-256"))
        local err = refused(with_epk { kty = "EC", crv = "P-256", x = fresh.x, y = fresh.y }, keys["P-256"])
        assert.equal(FAILED, err.description)
      end)

      it("refuses an epk where the alg takes none", function()
        refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", epk = h.epk }), ks, "epk")
      end)
    end)

    it("refuses malformed compact forms", function()
      local t = parts(good)
      refused(join { t[1], t[2], t[3], t[4] }, ks, "five parts")                -- truncated
      refused(good .. ".", ks, "more than five")                                -- extra dot
      refused(good .. ".AAAA", ks, "more than five")
      refused(t[1] .. "." .. t[2], ks, "five parts")
      refused(join { t[1], t[2], t[3], t[4], "" }, ks, "tag is empty")
      refused(join { t[1], t[2], "", t[4], t[5] }, ks, "iv is empty")
      refused(join { t[1], t[2], t[3], "", t[5] }, ks, "ciphertext is empty")
      refused(join { "", t[2], t[3], t[4], t[5] }, ks, "header is empty")
      refused(join { t[1], "", t[3], t[4], t[5] }, ks, "needs an encrypted key")
      refused(join { t[1], t[2], t[3] .. "=", t[4], t[5] }, ks, "base64url")
      refused(join { t[1], t[2], t[3], t[4] .. "+/", t[5] }, ks, "base64url")
      refused(join { t[1], t[2], t[3], t[4], t[5]:sub(1, -2) .. "B" }, ks, "base64url")  -- trailing bits
      refused(join { t[1], t[2], b64("short"), t[4], t[5] }, ks, "iv")                   -- wrong iv length
      refused(join { t[1], t[2], t[3], t[4], b64("short") }, ks, "tag")
      refused(join { t[1], b64("short"), t[3], t[4], t[5] }, ks, "encrypted key")
      refused("\0" .. good, ks, "base64url")
      refused("", ks)
      local _, err = jwe.decrypt(42, ks)
      assert.equal("validation", err.kind)
    end)

    it("refuses oversized tokens and parts", function()
      local t = parts(good)
      refused(("A"):rep(jwe.MAX_LENGTH + 1), ks, "longer than")
      refused(join { t[1], t[2], t[3], ("A"):rep(jwe.MAX_LENGTH), t[5] }, ks, "longer than")
      refused(join { b64(("{" .. (" "):rep(7000) .. "}")), t[2], t[3], t[4], t[5] }, ks, "header is too long")
      refused(join { t[1], ("A"):rep(3000), t[3], t[4], t[5] }, ks, "encrypted key is too long")
      refused(join { t[1], t[2], ("A"):rep(64), t[4], t[5] }, ks, "iv is too long")
      refused(join { t[1], t[2], t[3], t[4], ("A"):rep(64) }, ks, "tag is too long")
    end)

    it("says which key is missing: no key for the alg", function()
      local ec = keys["P-256"]
      refused(good, ec, "no decryption key")
      local kidded = assert(jwe.load_keys { J.private_jwk(p256, { kid = "only-ec" }) })
      refused(with_header(good, { alg = "RSA-OAEP-256", enc = "A256GCM", kid = "only-ec" }), kidded,
        "no decryption key with kid")
    end)

    it("picks the key by kid, then by alg and key type", function()
      local a, b = J.new_key("RSA"), rsa
      local list = assert(jwe.load_keys { J.private_jwk(a, { kid = "a" }), J.private_jwk(b, { kid = "b" }) })
      local tok = assert(jwe.encrypt("to b", b.key, { alg = "RSA-OAEP", enc = "A128GCM", kid = "b" }))
      assert.equal("to b", (jwe.decrypt(tok, list)))
      -- kid unknown: every fitting key is tried
      tok = assert(jwe.encrypt("to b", b.key, { alg = "RSA-OAEP", enc = "A128GCM", kid = "zzz" }))
      assert.equal("to b", (jwe.decrypt(tok, list)))
      -- a key restricted to another alg is not used
      local restricted = assert(jwe.load_keys { J.private_jwk(b, { alg = "RSA-OAEP-256" }) })
      refused(tok, restricted, "no decryption key")
    end)
  end)

  -- RFC 8037 §3.2: ECDH-ES with X25519 keys (OKP). The key pair is openssl's,
  -- its raw members read from `openssl pkey -text`.
  describe("X25519", function()
    local x, pem, file, d, pub, ks
    local function hex(block)
      return (block:gsub("[%s:]", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
    end
    setup(function()
      file = os.tmpname()
      assert(os.execute("openssl genpkey -algorithm X25519 -out " .. file .. " 2>/dev/null"))
      local f = assert(io.open(file, "rb"))
      pem = f:read("*a")
      f:close()
      local t = assert(io.popen("openssl pkey -in " .. file .. " -text -noout"))
      local text = t:read("*a")
      t:close()
      d = hex(text:match("priv:(.-)pub:"))
      pub = hex(text:match("pub:(.*)$"))
      assert.equal(32, #d)
      assert.equal(32, #pub)
      x = { kty = "OKP", crv = "X25519", x = b64(pub), d = b64(d), kid = "x1" }
      ks = assert(jwe.load_keys { pem })
    end)
    teardown(function() os.remove(file) end)

    it("loads from PEM text, a PEM file and a private JWK; publishes crv and x only", function()
      local list = assert(jwe.load_keys { pem, file, x })
      assert.equal(3, #list)
      local doc = jwe.public_jwks(list)
      for _, k in ipairs(doc.keys) do
        assert.same({ "OKP", "X25519", b64(pub), "ECDH-ES", "enc" }, { k.kty, k.crv, k.x, k.alg, k.use })
        assert.is_nil(k.d)
        assert.is_nil(k.y)
      end
      assert.equal("x1", doc.keys[3].kid)
      -- RFC 7638: the thumbprint of a key given without kid
      assert.equal(b64(core.sha2(256, '{"crv":"X25519","kty":"OKP","x":"' .. b64(pub) .. '"}')), doc.keys[1].kid)
    end)

    for _, alg in ipairs { "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW" } do
      for _, enc in ipairs { "A128GCM", "A256CBC-HS512" } do
        it(alg .. " + " .. enc .. " round trip, to the published JWK", function()
          local jwk = jwe.public_jwks(ks).keys[1]
          local tok = assert(jwe.encrypt("x25519 " .. alg, jwk, { alg = alg, enc = enc }))
          local h = cjson.decode(unb64(parts(tok)[1]))
          assert.same({ "OKP", "X25519" }, { h.epk.kty, h.epk.crv })
          assert.equal(32, #unb64(h.epk.x))
          assert.is_nil(h.epk.y)
          assert.equal("x25519 " .. alg, (jwe.decrypt(tok, ks)))
          assert.equal("x25519 " .. alg, (jwe.decrypt(tok, assert(jwe.load_keys { x }))))
          local t = parts(tok)
          t[5] = tamper(t[5])
          assert.equal(FAILED, refused(join(t), ks).description)
        end)
      end
    end

    it("refuses low-order and malformed epks, and epks of another curve", function()
      local tok = assert(jwe.encrypt("s", jwe.public_jwks(ks).keys[1], { alg = "ECDH-ES", enc = "A128GCM" }))
      local function with_epk(epk)
        local t = parts(tok)
        t[1] = b64(cjson.encode { alg = "ECDH-ES", enc = "A128GCM", epk = epk })
        return join(t)
      end
      -- points of small order give an all-zero secret whatever the private key
      for _, bad in ipairs { ("\0"):rep(32), "\1" .. ("\0"):rep(31),
        hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") } do
        refused(with_epk { kty = "OKP", crv = "X25519", x = b64(bad) }, ks, "epk")
      end
      refused(with_epk { kty = "OKP", crv = "X25519", x = b64(("\9"):rep(31)) }, ks, "32 bytes")
      refused(with_epk { kty = "OKP", crv = "X25519", x = b64(pub), y = b64(pub) }, ks, "epk")
      refused(with_epk { kty = "OKP", crv = "X25519", x = b64(pub), d = b64(d) }, ks, "private")
      refused(with_epk { kty = "OKP", crv = "Ed25519", x = b64(pub) }, ks, "X25519")
      refused(with_epk { kty = "OKP", crv = "X25519" }, ks, "epk")
      local ec = J.public_jwk(p256)
      refused(with_epk { kty = "EC", crv = "P-256", x = ec.x, y = ec.y }, ks, "curve")
      -- another X25519 point: the key agreement differs, the one generic message
      refused(with_epk { kty = "OKP", crv = "X25519", x = b64(core.sha2(256, "another point")) }, ks, FAILED)
    end)

    it("refuses bad private JWKs; an X25519 key never signs nor decrypts other algs", function()
      local function bad(list, pattern)
        local k, err = jwe.load_keys(list)
        assert.is_nil(k)
        assert.equal("config", err.kind)
        assert.matches(pattern, err.description)
        assert.not_matches(x.d, err.description, 1, true)
      end
      bad({ { kty = "OKP", crv = "X25519", x = b64(pub) } }, "private")
      bad({ { kty = "OKP", crv = "X25519", x = b64(core.sha2(256, "x")), d = x.d } }, "does not match")
      bad({ { kty = "OKP", crv = "X25519", x = x.x, d = b64(d:sub(2)) } }, "32 bytes")
      bad({ { kty = "OKP", crv = "X448", x = x.x, d = x.d } }, "X448")
      local k = ks[1].key
      assert.is_nil(k:jwe_alg_ok("RSA-OAEP-256"))
      assert.is_nil(k:jwe_alg_ok("A128KW"))
      assert.is_true(k:jwe_alg_ok("ECDH-ES"))
      assert.is_nil(k:sign("EdDSA", "data"))
      -- a signature key set (jwks.lua) still holds no X25519 key
      assert.is_nil(require("smartauth.jwks").parse_jwk { kty = "OKP", crv = "X25519", x = x.x })
    end)
  end)

  describe("decryption keys", function()
    it("load from PEM text, a PEM file and private JWKs; publish public JWKs only", function()
      local list = assert(jwe.load_keys {
        rsa.pem, p256.file, J.private_jwk(p384, { kid = "ec384", alg = "ECDH-ES+A128KW" }),
        { kty = "oct", k = b64(("s"):rep(32)), kid = "sym" },
      })
      assert.equal(4, #list)
      local doc = jwe.public_jwks(list)
      assert.equal(3, #doc.keys)
      for _, k in ipairs(doc.keys) do
        assert.equal("enc", k.use)
        assert.is_string(k.kid)
        assert.is_string(k.alg)
        assert.is_nil(k.d)
        assert.is_nil(k.p)
        assert.is_nil(k.k)
      end
      assert.equal("RSA", doc.keys[1].kty)
      assert.equal("RSA-OAEP-256", doc.keys[1].alg)
      assert.equal("ECDH-ES", doc.keys[2].alg)
      assert.equal("ECDH-ES+A128KW", doc.keys[3].alg)
      assert.equal("ec384", doc.keys[3].kid)
      -- the kid of a PEM key is its RFC 7638 thumbprint
      local pub = J.public_jwk(rsa)
      local canon = '{"e":"' .. pub.e .. '","kty":"RSA","n":"' .. pub.n .. '"}'
      assert.equal(b64(core.sha2(256, canon)), doc.keys[1].kid)
      -- what is published encrypts to what was loaded
      local tok = assert(jwe.encrypt("round", doc.keys[2], { enc = "A128CBC-HS256" }))
      assert.equal("round", (jwe.decrypt(tok, list)))
    end)

    it("a PEM text among decryption_keys is one of the secrets errors are scrubbed of", function()
      local vault = require "smartauth.vault"
      local p = assert(smartauth.provider { client_id = "c", token_endpoint = "https://127.0.0.1/t",
        decryption_keys = { rsa.pem, p256.file } })
      local list = vault.secrets_of(p)
      local found, path = false, false
      for _, v in ipairs(list) do
        if v == rsa.pem then found = true end
        if v == p256.file then path = true end
      end
      assert.is_true(found)
      assert.is_false(path)
      local e = vault.scrub(p, require("smartauth.errors").new("validation", "oops " .. rsa.pem))
      assert.not_matches("PRIVATE KEY", e.description)
    end)

    it("refuses unusable keys as config errors that hold no key material", function()
      local function bad(list, pattern)
        local ks, err = jwe.load_keys(list)
        assert.is_nil(ks)
        assert.equal("config", err.kind)
        assert.matches(pattern, err.description)
        assert.not_matches("PRIVATE", err.description)
      end
      bad({}, "non%-empty")
      bad("x", "non%-empty")
      bad({ "/nonexistent/key.pem" }, "cannot read")
      bad({ rsa.public_pem }, "not a private key")
      bad({ J.private_jwk(rsa, { use = "sig" }) }, "use")
      bad({ J.private_jwk(rsa, { alg = "RSA1_5" }) }, "not supported")
      bad({ J.public_jwk(rsa) }, "private")
      bad({ { kty = "oct" } }, "oct JWK needs 'k'")
      bad({ J.key("Ed25519").pem }, "cannot decrypt")
      bad({ 42 }, "PEM")
    end)
  end)

  describe("encrypted ID tokens", function()
    local s
    local T = idp.new()

    setup(function()
      s = server.start()
      T.s = s
    end)
    teardown(function() s:stop() end)
    before_each(function()
      s:reset()
      T.serve_jwks()
    end)

    local function nested(alg, enc, to, extra_claims)
      local inner = T.token("RS256", extra_claims)
      return assert(jwe.encrypt(inner, to.key, { alg = alg, enc = enc, cty = "JWT" }))
    end

    it("decrypts with decryption_keys, then verifies the inner JWS", function()
      local p = T.provider { decryption_keys = { rsa.pem, p256.pem } }
      assert.is_nil(p.options.decryption_keys) -- kept off the object
      for _, c in ipairs { { "RSA-OAEP-256", "A256GCM", rsa }, { "ECDH-ES", "A128CBC-HS256", p256 },
        { "RSA-OAEP", "A256CBC-HS512", rsa }, { "ECDH-ES+A256KW", "A128GCM", p256 } } do
        local claims, err = p:verify_id_token(nested(c[1], c[2], c[3]))
        assert.is_nil(err)
        assert.equal("alice", claims.sub)
      end
    end)

    it("is a validation error without decryption_keys", function()
      local p = T.provider()
      local c, err = p:verify_id_token(nested("RSA-OAEP-256", "A256GCM", rsa))
      assert.is_nil(c)
      assert.equal("validation", err.kind)
      assert.equal("jwe", err.check)
      assert.matches("no decryption_keys", err.description)
    end)

    it("never accepts an encrypted token unsigned", function()
      local p = T.provider { decryption_keys = { rsa.pem } }
      local claims = cjson.encode(T.claims())
      local tok = assert(jwe.encrypt(claims, rsa.key, { alg = "RSA-OAEP-256", enc = "A256GCM" }))
      local c, err = p:verify_id_token(tok)
      assert.is_nil(c)
      assert.equal("jwe", err.check)
      assert.matches("not signed", err.description)
      -- an unsigned JWS (alg none) inside: decrypted, then refused by the JWS checks
      local none = J.compact({ alg = "none" }, T.claims(), "")
      tok = assert(jwe.encrypt(none, rsa.key, { alg = "RSA-OAEP-256", enc = "A256GCM" }))
      c, err = p:verify_id_token(tok)
      assert.is_nil(c)
      assert.equal("alg", err.check)
      -- content that says it is not a JWT
      tok = assert(jwe.encrypt(T.token("RS256"), rsa.key, { alg = "RSA-OAEP-256", enc = "A256GCM", cty = "json" }))
      c, err = p:verify_id_token(tok)
      assert.is_nil(c)
      assert.matches("not a JWT", err.description)
    end)

    it("verifies the inner token like any other: a bad signature or claim is refused", function()
      local p = T.provider { decryption_keys = { rsa.pem } }
      local inner = T.token("RS256")
      local t = parts(inner)
      t[3] = tamper(t[3], 1)
      local tok = assert(jwe.encrypt(join(t), rsa.key, { alg = "RSA-OAEP-256", enc = "A256GCM" }))
      local c, err = p:verify_id_token(tok)
      assert.is_nil(c)
      assert.equal("signature", err.check)
      c, err = p:verify_id_token(nested("RSA-OAEP-256", "A256GCM", rsa, { aud = "someone-else" }))
      assert.is_nil(c)
      assert.equal("aud", err.check)
    end)

    it("refuses a tampered encrypted ID token with the generic message", function()
      local p = T.provider { decryption_keys = { rsa.pem } }
      local t = parts(nested("RSA-OAEP-256", "A256GCM", rsa))
      t[4] = tamper(t[4], 2)
      local c, err = p:verify_id_token(join(t))
      assert.is_nil(c)
      assert.equal("ID token: " .. FAILED, err.description)
    end)

    it("bad decryption_keys are a config error when first used", function()
      local p = T.provider { decryption_keys = { "/nonexistent.pem" } }
      local c, err = p:verify_id_token(nested("RSA-OAEP-256", "A256GCM", rsa))
      assert.is_nil(c)
      assert.equal("config", err.kind)
      assert.equal("table", type(jwe.provider_jwks(T.provider { decryption_keys = { rsa.pem } }).keys))
    end)

    -- OIDC Core §10.2: the symmetric keys come from the client secret, the
    -- left-most bits of SHA-256 (up to 256 bits), SHA-384 or SHA-512 of its
    -- octets. The expected keys are computed by openssl, not by the library.
    describe("keys derived from the client secret", function()
      local SECRET = "s\195\169cret: %+ x/y" -- UTF-8 octets, shell-unsafe characters
      local function dgst(bits, secret)
        local f = os.tmpname()
        local h = assert(io.open(f, "wb"))
        h:write(secret)
        h:close()
        local pipe = assert(io.popen("openssl dgst -sha" .. bits .. " -binary < " .. f))
        local md = pipe:read("*a")
        pipe:close()
        os.remove(f)
        assert.equal(bits / 8, #md)
        return md
      end
      local function sym(alg, enc, md, len)
        local k = assert(core.key_oct(md:sub(1, len)))
        return assert(jwe.encrypt(T.token("RS256"), k, { alg = alg, enc = enc, cty = "JWT" }))
      end
      local CASES = {
        { "A128KW", "A128GCM", 256, 16 }, { "A128KW", "A256CBC-HS512", 256, 16 },
        { "A256KW", "A128CBC-HS256", 256, 32 }, { "A256KW", "A256GCM", 256, 32 },
        { "dir", "A128GCM", 256, 16 }, { "dir", "A256GCM", 256, 32 },
        { "dir", "A128CBC-HS256", 256, 32 }, { "dir", "A256CBC-HS512", 512, 64 },
      }

      for _, c in ipairs(CASES) do
        it(c[1] .. " + " .. c[2] .. ": the key is the first " .. c[4] .. " bytes of SHA-" .. c[3], function()
          local p = T.provider { client_secret = SECRET }
          local claims, err = p:verify_id_token(sym(c[1], c[2], dgst(c[3], SECRET), c[4]))
          assert.is_nil(err)
          assert.equal("alice", claims.sub)
        end)
      end

      it("a key made another way, or from another secret, fails with the generic message", function()
        local p = T.provider { client_secret = SECRET }
        for _, tok in ipairs {
          sym("A256KW", "A256GCM", dgst(512, SECRET), 32),        -- SHA-512 where SHA-256 is the rule
          sym("dir", "A256CBC-HS512", dgst(256, SECRET) .. dgst(256, SECRET), 64),
          sym("A128KW", "A128GCM", dgst(256, SECRET .. "x"), 16),
          sym("dir", "A128GCM", dgst(256, SECRET):sub(17), 16),   -- the right-most bits
        } do
          local c, err = p:verify_id_token(tok)
          assert.is_nil(c)
          assert.equal("validation", err.kind)
          assert.equal("ID token: " .. FAILED, err.description)
        end
      end)

      it("sit beside decryption_keys; without a secret there is no symmetric key", function()
        local both = T.provider { client_secret = SECRET, decryption_keys = { rsa.pem } }
        assert.equal("alice", assert(both:verify_id_token(sym("A128KW", "A128GCM", dgst(256, SECRET), 16))).sub)
        assert.equal("alice", assert(both:verify_id_token(nested("RSA-OAEP-256", "A256GCM", rsa))).sub)
        local none = T.provider { decryption_keys = { rsa.pem } }
        local c, err = none:verify_id_token(sym("A128KW", "A128GCM", dgst(256, SECRET), 16))
        assert.is_nil(c)
        assert.matches("no decryption key for JWE alg A128KW", err.description)
        c, err = T.provider():verify_id_token(sym("dir", "A128GCM", dgst(256, SECRET), 16))
        assert.is_nil(c)
        assert.matches("no decryption_keys", err.description)
      end)

      it("are never published, kept off the object, and never in errors", function()
        local p = T.provider { client_secret = SECRET }
        local derived = assert(jwe.provider_keys(p))
        assert.equal(6, #derived) -- A128KW, A256KW, dir for each of the four encs
        assert.same({ keys = {} }, jwe.public_jwks(derived))
        local doc, err = jwe.provider_jwks(p)
        assert.is_nil(doc)
        assert.equal("config", err.kind)
        for k, v in pairs(p) do
          assert.not_equal(SECRET, v, k)
        end
        local md = dgst(256, SECRET)
        local c
        c, err = p:verify_id_token(sym("A256KW", "A256GCM", dgst(384, SECRET), 32))
        assert.is_nil(c)
        for _, bad in ipairs { SECRET, md, md:sub(1, 16), b64(md), b64(md:sub(1, 16)) } do
          assert.is_nil(err.description:find(bad, 1, true))
        end
      end)
    end)

    -- OIDC Core §5.3.2 lets a UserInfo answer be encrypted without being
    -- signed; it comes from the UserInfo endpoint over TLS, as a plain JSON
    -- answer does, so its claims are used as a plain answer's would be (sub
    -- checked against the verified ID token). ID tokens and JARM responses
    -- travel through other hands and stay signed-only (tests above and in
    -- response_mode_spec.lua).
    describe("encrypted UserInfo", function()
      local function tok(sub)
        local t = assert(smartauth.token.from_response({ access_token = "at-ui", expires_in = 3600 }, os.time()))
        t.claims = { sub = sub or "alice" }
        return t
      end
      local function serve(body)
        s:script("/userinfo", { body = body, headers = { ["Content-Type"] = "application/jwt" } })
      end
      local function up(extra)
        local o = { userinfo_endpoint = s.url .. "/userinfo", decryption_keys = { rsa.pem, p256.pem } }
        for k, v in pairs(extra or {}) do
          if v == false then v = nil end -- false: the option left out
          o[k] = v
        end
        return T.provider(o)
      end
      local function sealed(content, opts)
        opts = opts or {}
        return assert(jwe.encrypt(content, opts.to or rsa.key,
          { alg = opts.alg or "RSA-OAEP-256", enc = opts.enc or "A256GCM", cty = opts.cty }))
      end
      local INFO = '{"sub":"alice","email":"alice@example.com"}'

      it("encrypted but not signed (rp-userinfo-enc): the JSON object's claims are used", function()
        for _, c in ipairs { { "RSA-OAEP-256", "A256GCM", rsa.key }, { "ECDH-ES+A128KW", "A128CBC-HS256", p256.key },
          { "RSA-OAEP", "A256CBC-HS512", rsa.key } } do
          serve(sealed(INFO, { alg = c[1], enc = c[2], to = c[3] }))
          local p = up()
          local info, err = p:userinfo(tok())
          assert.is_nil(err)
          assert.equal("alice", info.sub)
          assert.equal("alice@example.com", info.email)
        end
      end)

      it("encrypted with a key derived from the client secret, unsigned or signed", function()
        local secret = "ui-secret"
        local k = assert(core.key_oct(core.sha2(256, secret):sub(1, 16)))
        serve(sealed(INFO, { alg = "A128KW", enc = "A128GCM", to = k }))
        local p = up { client_secret = secret, decryption_keys = false }
        assert.equal("alice", assert(p:userinfo(tok())).sub)
      end)

      it("signed inside is verified: a bad signature is never read as plain claims", function()
        local good = T.token("RS256", { email = "alice@example.com" })
        serve(sealed(good, { cty = "JWT" }))
        assert.equal("alice@example.com", assert(up():userinfo(tok())).email)
        local t = parts(good)
        t[3] = tamper(t[3], 1)
        serve(sealed(join(t)))
        local info, err = up():userinfo(tok())
        assert.is_nil(info)
        assert.equal("signature", err.check)
        serve(sealed(T.token("RS256", { aud = "another" })))
        info, err = up():userinfo(tok())
        assert.is_nil(info)
        assert.equal("aud", err.check)
      end)

      it("refuses hostile content: not an object, a JWT that is not one, no sub, another sub", function()
        local function no(body, pattern, t, p)
          serve(body)
          local ok, info, err = pcall((p or up()).userinfo, p or up(), t or tok())
          assert.is_true(ok, tostring(info))
          assert.is_nil(info)
          assert.equal("validation", err.kind)
          if pattern then assert.matches(pattern, err.description) end
          assert.not_matches("PRIVATE", err.description)
          return err
        end
        no(sealed("[1,2]"), "neither a JWS nor a JSON object")
        no(sealed("not json"), "neither a JWS nor a JSON object")
        no(sealed('{"sub":"alice"'), "neither a JWS nor a JSON object")
        no(sealed('"alice"'), "neither a JWS nor a JSON object")
        no(sealed(INFO, { cty = "JWT" }), "not signed")
        no(sealed(INFO, { cty = "application/xml" }), "cty")
        no(sealed('{"email":"x@example.com"}'), "no sub")
        no(sealed('{"sub":42}'), "no sub")
        no(sealed(INFO), "does not match", tok("bob"))
        local t = parts(sealed(INFO))
        t[4] = tamper(t[4], 1)
        no(join(t), FAILED)
        no(sealed(INFO):sub(1, -5), nil)
        no(sealed(INFO), "no decryption", nil, up { decryption_keys = false })
        -- too deep or too big
        no(sealed(("["):rep(5000) .. ("]"):rep(5000)), "neither")
        local big = parts(sealed(INFO))
        big[4] = ("A"):rep(jwe.MAX_LENGTH)
        no(join(big), "longer")
      end)
    end)

    it("works inside smartauth.spawn (the JWKS fetched while the task yields)", function()
      s:script("/jwks", { json = idp.default_jwks(), delay_ms = 200 }, 0)
      local p = T.provider { decryption_keys = { p256.pem } }
      local tok = nested("ECDH-ES", "A128GCM", p256)
      local task = smartauth.spawn(function() return p:verify_id_token(tok) end)
      smartauth.step(0)
      assert.is_nil(select(2, task:result()))
      smartauth.run()
      local ok, claims = task:result()
      assert.is_true(ok)
      assert.equal("alice", claims.sub)
    end)
  end)
end)
