-- The C binding's pure functions: encoders, PKCE, CSPRNG, comparisons;
-- the one failure shape; the alg table; what each C module holds.
local compat = require "smartauth.compat"
local core = require "smartauth.core"
local core_http = require "smartauth.core_http"

describe("smartauth.core", function()
  it("base64url-encodes without padding and decodes strictly", function()
    assert.equal("Zm9vYmE", core.b64url_encode("fooba"))
    assert.equal("-_8", core.b64url_encode("\251\255"))
    assert.equal("fooba", core.b64url_decode("Zm9vYmE"))
    for _, bad in ipairs { "Zm9v+", "Zm9vYmE=", "Z", "Zh", "Zm 9v", "Zm\0v", ("A"):rep(5) } do
      local v, kind, msg, code = core.b64url_decode(bad)
      assert.is_nil(v, bad)
      assert.equal("validation", kind)
      assert.matches("base64url", msg)
      assert.equal(0, code)
    end
  end)

  it("round-trips every byte value through base64 and base64url", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local s = table.concat(all)
    for n = 0, 5 do
      local part = s:sub(1, 250 + n)
      assert.equal(part, core.b64url_decode(core.b64url_encode(part)))
      assert.equal(part, core.b64_decode(core.b64_encode(part)))
    end
  end)

  it("computes the RFC 7636 appendix B PKCE challenge", function()
    assert.equal("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      core.pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
  end)

  it("makes fresh 43-character PKCE verifiers from the unreserved set", function()
    local seen = {}
    for _ = 1, 50 do
      local v = core.pkce_verifier()
      assert.equal(43, #v)
      assert.matches("^[%w%-%._~]+$", v)
      assert.is_nil(seen[v])
      seen[v] = true
    end
  end)

  it("refuses PKCE verifiers outside RFC 7636's rules", function()
    assert.has_error(function() core.pkce_challenge("short") end)
    assert.has_error(function() core.pkce_challenge(("a"):rep(129)) end)
    assert.has_error(function() core.pkce_challenge(("a"):rep(42) .. "+") end)
  end)

  it("returns random bytes of the asked length, different each time", function()
    assert.equal(0, #core.random(0))
    local a, b = core.random(32), core.random(32)
    assert.equal(32, #a)
    assert.not_equal(a, b)
    assert.has_error(function() core.random(-1) end)
  end)

  it("compares in constant time with length checks", function()
    assert.is_true(core.ct_equal("state-123", "state-123"))
    assert.is_false(core.ct_equal("state-123", "state-124"))
    assert.is_false(core.ct_equal("state-123", "state-1234"))
    assert.is_true(core.ct_equal("", ""))
  end)

  it("hashes with SHA-2 and HMAC (FIPS 180 / RFC 4231 vectors)", function()
    assert.equal("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", core.b64url_encode(core.sha2(256, "abc")))
    assert.equal(48, #core.sha2(384, "abc"))
    assert.equal(64, #core.sha2(512, "abc"))
    local mac = core.hmac(256, "Jefe", "what do ya want for nothing?")
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
    assert.has_error(function() core.sha2(128, "abc") end)
  end)

  it("form-encodes a flat name/value list in order with RFC 3986 percent-encoding", function()
    assert.equal("b=2&a=x%20y%26z%3D%C3%BC&c=",
      core.form_encode { "b", "2", "a", "x y&z=ü", "c", "" })
    assert.equal("", core.form_encode {})
    assert.equal("~-._%2B%2F", core.form_escape("~-._+/"))
    assert.has_error(function() core.form_encode { "odd" } end)
    assert.has_error(function() core.form_encode { "a", {} } end)
    assert.has_error(function() core.form_encode { { "a", "b" }, { "c", "d" } } end)
    assert.has_error(function() core.form_encode { "a", 1 } end)
  end)

  it("decodes forms and rejects malformed escapes", function()
    local t = core.form_decode("code=a%2Bb&state=x+y&empty=&flag")
    assert.same({ code = "a+b", state = "x y", empty = "", flag = "" }, t)
    for _, bad in ipairs { "a=%", "a=%4", "a=%zz", "%G0=1" } do
      local v, kind, msg = core.form_decode(bad)
      assert.is_nil(v)
      assert.equal("validation", kind)
      assert.matches("escape", msg)
    end
  end)

  it("builds RFC 6749 §2.3.1 Basic credentials (form-encoded, then base64)", function()
    local h = core.basic_auth("my:id", "s e%+ü")
    assert.equal("Basic ", h:sub(1, 6))
    assert.equal("my%3Aid:s%20e%25%2B%C3%BC", core.b64_decode(h:sub(7)))
  end)

  it("frees engines that are no longer referenced", function()
    local weak = setmetatable({}, { __mode = "v" })
    weak[1] = core_http.engine()
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)

  it("closes an engine once and refuses use after close", function()
    do -- what `local e <close> = ...` calls at the end of the block (lua54_spec uses the syntax)
      local e = core_http.engine()
      assert.matches("smartauth.engine", tostring(e))
      getmetatable(e).__close(e)
      assert.matches("closed", tostring(e))
    end
    local e = core_http.engine()
    e:close()
    e:close()
    assert.matches("closed", tostring(e))
    assert.has_error(function() e:request { url = "http://127.0.0.1:1/" } end, "attempt to use a closed engine")
  end)

  it("fails in one shape, nil, kind, message, code, everywhere", function()
    local J = require "helpers.jwt"
    local rsa = assert(core.key_pem(J.key("RSA").pem))
    local cases = {
      { "b64_decode", function() return core.b64_decode("!!") end, "base64" },
      { "b64url_decode", function() return core.b64url_decode("a+") end, "base64url" },
      { "form_decode", function() return core.form_decode("a=%zz") end, "escape" },
      { "jws_parse (dots)", function() return core.jws_parse("a.b") end, "three base64url segments" },
      { "jws_parse (empty)", function() return core.jws_parse(".b.c") end, "empty header" },
      { "jws_parse (payload)", function() return core.jws_parse("e30.!!.c2ln") end, "^JWT payload: " },
      { "jws_hash", function() return core.jws_hash("none", "x") end, "no hash for alg" },
      { "key_rsa", function() return core.key_rsa("\2", "\1\0\1") end, "RSA modulus n is even" },
      { "key:alg_ok", function() return rsa:alg_ok("ES256") end, "alg ES256 needs an EC P%-256 key" },
      { "key:verify (alg refused)", function() return rsa:verify("HS256", "a.b", "sig") end, "symmetric" },
      { "key:sign (alg refused)", function() return rsa:sign("none", "a.b") end, "none" },
    }
    for _, c in ipairs(cases) do
      local v, kind, msg, code = c[2]()
      assert.is_nil(v, c[1])
      assert.equal("validation", kind, c[1])
      assert.matches(c[3], msg, nil, nil, c[1])
      assert.equal("number", compat.math_type(code) and "number", c[1])
    end
    assert.is_true(rsa:alg_ok("RS256"))
    rsa:close()
    J.cleanup()
  end)

  it("answers a signature mismatch with false alone: an answer, not a failure", function()
    local k = core.key_oct(("k"):rep(32))
    local sig = assert(k:sign("HS256", "a.b"))
    assert.is_true(k:verify("HS256", "a.b", sig))
    assert.same({ false }, { k:verify("HS256", "a.c", sig) })
    k:close()
  end)

  it("exports the one alg table: kty, curve and hash per alg", function()
    local algs = core.jws_algs()
    local n = 0
    for _ in pairs(algs) do n = n + 1 end
    assert.equal(13, n)
    assert.same({ kty = "RSA", hash = 256 }, algs.RS256)
    assert.same({ kty = "RSA", hash = 512 }, algs.PS512)
    assert.same({ kty = "EC", crv = "P-521", hash = 512 }, algs.ES512)
    assert.same({ kty = "OKP", crv = "Ed25519", hash = 512 }, algs.EdDSA)
    assert.same({ kty = "oct", hash = 384 }, algs.HS384)
    assert.is_nil(algs.none)
    -- the table agrees with what keys accept and what jws_hash digests
    for alg, a in pairs(algs) do
      assert.equal(a.hash / 8, #assert(core.jws_hash(alg, "x")), alg)
    end
  end)

  it("names the alg a key signs with by default, from the alg table", function()
    local J = require "helpers.jwt"
    local want = { RSA = "RS256", ["P-256"] = "ES256", ["P-384"] = "ES384", ["P-521"] = "ES512",
      Ed25519 = "EdDSA" }
    for kind, alg in pairs(want) do
      local k = assert(core.key_pem(J.key(kind).pem))
      assert.equal(alg, k:default_alg(), kind)
      assert.is_true(k:alg_ok(alg))
      k:close()
    end
    local oct = core.key_oct(("k"):rep(32))
    assert.equal("HS256", oct:default_alg())
    oct:close()
    local small = assert(core.key_pem(J.key("RSA1024").pem))
    local v, kind, msg = small:default_alg()
    assert.is_nil(v)
    assert.equal("validation", kind)
    assert.matches("at least 2048 bits", msg)
    small:close()
    J.cleanup()
  end)

  it("keeps each library in its own C module", function()
    assert.is_function(core.key_pem)
    assert.is_function(core.fstore_open)
    assert.is_function(core.monotonic)
    assert.is_nil(core.engine)      -- libcurl: smartauth.core_http
    assert.is_nil(core.redis_open)  -- hiredis: smartauth.core_redis
    assert.is_function(core_http.engine)
    assert.is_function(core_http.info)
    assert.is_function(require("smartauth.core_redis").redis_open)
  end)
end)
