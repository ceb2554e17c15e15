-- The verified-token cache of p:verify_access_token (the provider option
-- `verified_cache`, lua/smartauth/resource.lua): a hit skips parsing and the
-- signature, every claim check still runs, an entry never outlives the
-- token's exp, a failure is never kept, the cache is bounded and keyed by the
-- token's SHA-256.
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local oidc = require "smartauth.oidc"
local smartauth = require "smartauth"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local RS = "https://api.example.com/"

describe("verify_access_token's verified_cache", function()
  local s
  local T = idp.new()

  setup(function()
    s = server.start()
    T.s = s
  end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function()
    s:reset()
    T.serve_jwks()
  end)
  after_each(function() clock.offset = 0 end)

  local function at(extra)
    local c = { aud = RS, client_id = "cid", jti = "jti-1", scope = "read write" }
    for k, v in pairs(extra or {}) do c[k] = v end
    return T.token("RS256", c, { typ = "at+jwt" })
  end

  -- how many signature checks p:verify_access_token ran inside f
  local function signatures(f)
    local sp = spy.on(oidc, "check_signature")
    local ok, err = pcall(f)
    sp:revert()
    assert(ok, err)
    return #sp.calls
  end

  it("checks the signature once per token, and hands out copies", function()
    local p = T.provider { verified_cache = true }
    local tok = at()
    local n = signatures(function()
      for _ = 1, 5 do
        local c = assert(p:verify_access_token(tok, { audience = RS }))
        assert.equal("alice", c.sub)
        c.sub = "mallory" -- the caller's copy
      end
    end)
    assert.equal(1, n)
    assert.equal(1, p._verified_cache:size())
  end)

  it("checks every token without the option, or with it false", function()
    for _, extra in ipairs { {}, { verified_cache = false } } do
      local p = T.provider(extra)
      local tok = at()
      assert.equal(3, signatures(function()
        for _ = 1, 3 do assert(p:verify_access_token(tok, { audience = RS })) end
      end))
      assert.is_nil(p._verified_cache)
    end
  end)

  it("still runs the audience, scope and time checks on a hit", function()
    local p = T.provider { verified_cache = true }
    local now = clock.now()
    local tok = at { exp = now + 60 }
    assert(p:verify_access_token(tok, { audience = RS, scope = "read" }))
    local n = signatures(function()
      local c, err = p:verify_access_token(tok, { audience = "https://other.example/" })
      assert.is_nil(c)
      assert.equal("aud", err.check)
      c, err = p:verify_access_token(tok, { audience = RS, scope = "admin" })
      assert.is_nil(c)
      assert.equal("scope", err.check)
      c, err = p:verify_access_token(tok, { audience = RS, now = now + 61, leeway = 0 })
      assert.is_nil(c)
      assert.equal("exp", err.check)
    end)
    -- the first two were hits; at exp the entry is gone and the token checked again
    assert.equal(1, n)
  end)

  it("never keeps an entry past exp, even when the leeway still accepts the token", function()
    local p = T.provider { verified_cache = true }
    local now = clock.now()
    local tok = at { exp = now + 30 }
    assert(p:verify_access_token(tok, { audience = RS }))
    clock.offset = 31
    local n = signatures(function()
      assert(p:verify_access_token(tok, { audience = RS, leeway = 60 }))
      assert(p:verify_access_token(tok, { audience = RS, leeway = 60 }))
    end)
    assert.equal(2, n)
    assert.equal(0, p._verified_cache:size())
  end)

  it("never keeps a failure", function()
    local p = T.provider { verified_cache = true }
    local tok = at()
    local h, c, sig = idp.segments(tok)
    local forged = h .. "." .. c .. "." .. (sig:sub(1, 10) .. (sig:sub(11, 11) == "A" and "B" or "A") .. sig:sub(12))
    local n = signatures(function()
      for _ = 1, 3 do
        local r, err = p:verify_access_token(forged, { audience = RS })
        assert.is_nil(r)
        assert.equal("signature", err.check)
      end
      -- refused for its scope: not kept either
      for _ = 1, 2 do
        local r, err = p:verify_access_token(tok, { audience = RS, scope = "admin" })
        assert.is_nil(r)
        assert.equal("scope", err.check)
      end
    end)
    assert.equal(5, n)
    assert.equal(0, p._verified_cache:size())
    -- the genuine token is not taken for the forged one, nor the other way round
    assert(p:verify_access_token(tok, { audience = RS }))
    local r, err = p:verify_access_token(forged, { audience = RS })
    assert.is_nil(r)
    assert.equal("signature", err.check)
  end)

  it("is bounded (least recently used out first) and keyed by SHA-256, never the token", function()
    local p = T.provider { verified_cache = { max_entries = 2 } }
    local t1, t2, t3 = at { jti = "a" }, at { jti = "b" }, at { jti = "c" }
    assert(p:verify_access_token(t1, { audience = RS }))
    assert(p:verify_access_token(t2, { audience = RS }))
    assert(p:verify_access_token(t1, { audience = RS })) -- t1 is now the most recent
    assert(p:verify_access_token(t3, { audience = RS }))
    assert.equal(2, p._verified_cache:size())
    assert.equal(0, signatures(function()
      assert(p:verify_access_token(t1, { audience = RS }))
      assert(p:verify_access_token(t3, { audience = RS }))
    end))
    local map = p._verified_cache.map
    assert.is_table(map[core.sha2(256, t1)])
    assert.is_table(map[core.sha2(256, t3)])
    assert.is_nil(map[core.sha2(256, t2)])
    for k, e in pairs(map) do
      assert.equal(32, #k)
      for _, x in pairs(e.data) do
        for _, t in ipairs { t1, t2, t3 } do assert.are_not.equal(t, x) end
      end
    end
    assert.equal(1, signatures(function() assert(p:verify_access_token(t2, { audience = RS })) end))
  end)

  it("keeps an entry at most max_ttl seconds", function()
    local p = T.provider { verified_cache = { max_ttl = 10 } }
    local tok = at()
    assert(p:verify_access_token(tok, { audience = RS }))
    clock.offset = 11
    assert.equal(1, signatures(function() assert(p:verify_access_token(tok, { audience = RS })) end))
  end)

  it("refuses a bad option value as a config error", function()
    for _, v in ipairs { "yes", 1, { max_entries = 0 }, { max_entries = 1.5 }, { max_ttl = -1 },
      { colour = "red" } } do
      local p, err = smartauth.provider { issuer = s.url, client_id = "cid", verified_cache = v }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.equal("verified_cache", err.option)
    end
    assert(smartauth.provider { issuer = s.url, client_id = "cid", verified_cache = false })
  end)
end)
