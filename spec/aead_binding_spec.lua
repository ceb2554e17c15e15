-- core.aead_key: AES-256-GCM sealing from Lua (csrc/laead.c over aead.c),
-- what the nginx login example seals its cookie with.
local core = require "smartauth.core"

describe("core.aead_key", function()
  local SECRET = "0123456789abcdef0123456789abcdef"

  it("seals and opens with associated data; each seal is fresh", function()
    local k = assert(core.aead_key(SECRET))
    local a = k:seal("cookie:sid", "state and nonce")
    local b = k:seal("cookie:sid", "state and nonce")
    assert.are_not.equal(a, b) -- a random nonce per message
    assert.are.equal(#"state and nonce" + 36, #a)
    assert.is_nil(a:find("state and nonce", 1, true))
    assert.are.equal("state and nonce", k:open("cookie:sid", a))
    -- another key made from the same secret opens it (a worker restarts)
    assert.are.equal("state and nonce", assert(core.aead_key(SECRET)):open("cookie:sid", b))
    assert.are.equal("", k:open("", k:seal("", "")))
  end)

  it("refuses other associated data, another key, tampered, truncated and foreign bytes", function()
    local k = assert(core.aead_key(SECRET))
    local other = assert(core.aead_key(SECRET:reverse()))
    local s = k:seal("sid-1", "payload")
    local function refused(key, aad, msg)
      local v, kind, msg2 = key:open(aad, msg)
      assert.is_nil(v)
      assert.are.equal("validation", kind)
      assert.is_string(msg2)
      assert.is_nil(msg2:find("payload", 1, true))
    end
    refused(k, "sid-2", s)
    refused(other, "sid-1", s)
    for i = 1, #s do
      local flipped = s:sub(1, i - 1) .. string.char((s:byte(i) + 1) % 256) .. s:sub(i + 1)
      refused(k, "sid-1", flipped)
    end
    for n = 0, #s - 1 do refused(k, "sid-1", s:sub(1, n)) end
    refused(k, "sid-1", s .. "x")
    refused(k, "sid-1", ("A"):rep(100))
  end)

  it("wants a secret of 16 bytes at least, and raises when used closed", function()
    local k, kind = core.aead_key("short")
    assert.is_nil(k)
    assert.is_string(kind)
    k = assert(core.aead_key(SECRET))
    k:close()
    k:close()
    assert.has_error(function() k:seal("", "x") end, "attempt to use a closed key")
    assert.matches("closed", tostring(k))
    assert.has_error(function() core.aead_key(nil) end)
  end)
end)
