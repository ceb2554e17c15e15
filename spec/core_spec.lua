-- The C binding's pure functions: encoders, PKCE, CSPRNG, comparisons.
local core = require "smartauth.core"

describe("smartauth.core", function()
  it("base64url-encodes without padding and decodes strictly", function()
    assert.equal("Zm9vYmE", core.b64url_encode("fooba"))
    assert.equal("-_8", core.b64url_encode("\251\255"))
    assert.equal("fooba", core.b64url_decode("Zm9vYmE"))
    for _, bad in ipairs { "Zm9v+", "Zm9vYmE=", "Z", "Zh", "Zm 9v", "Zm\0v", ("A"):rep(5) } do
      local v, msg = core.b64url_decode(bad)
      assert.is_nil(v, bad)
      assert.matches("base64url", msg)
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
      local v, msg = core.form_decode(bad)
      assert.is_nil(v)
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
    weak[1] = core.engine()
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)

  it("closes an engine once and refuses use after close", function()
    do
      local e <close> = core.engine()
      assert.matches("smartauth.engine", tostring(e))
    end
    local e = core.engine()
    e:close()
    e:close()
    assert.matches("closed", tostring(e))
    assert.has_error(function() e:request { url = "http://127.0.0.1:1/" } end, "attempt to use a closed engine")
  end)
end)
