--- Internal: JSON Web Key Sets: parse each key once into a core key object (parsing
-- costs more than verifying), look keys up by kid, and refetch once on an
-- unknown kid, rate-limited so a flood of bad tokens is not a flood of
-- requests.
-- @module smartauth.jwks
local json = require "smartauth.json"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local errors = require "smartauth.errors"

local M = {}

M.REFETCH_INTERVAL = 60 -- seconds between refetches triggered by unknown kids
M.TTL = 24 * 3600       -- a set older than this is fetched again
M.MAX_KEYS = 100
M.FAILURE_BACKOFF = 5   -- seconds before a failed fetch is tried again

local function b64(jwk, field)
  local v = jwk[field]
  if type(v) ~= "string" then return nil, "JWK has no '" .. field .. "'" end
  local raw, _, err = core.b64url_decode(v)
  if not raw then return nil, "JWK field '" .. field .. "': " .. err end
  return raw
end

--- A core key from one public JWK (RFC 7517/7518/8037); nil, message for a
-- key that cannot verify signatures.
function M.parse_jwk(jwk)
  if type(jwk) ~= "table" then return nil, "JWK is not an object" end
  if jwk.use ~= nil and jwk.use ~= "sig" then return nil, "JWK is not for signatures" end
  if jwk.key_ops ~= nil then
    local ok = false
    if type(jwk.key_ops) == "table" then
      for _, op in ipairs(jwk.key_ops) do if op == "verify" then ok = true end end
    end
    if not ok then return nil, "JWK key_ops does not allow verify" end
  end
  local kty = jwk.kty
  local a, b, c, err
  if kty == "RSA" then
    a, err = b64(jwk, "n"); if not a then return nil, err end
    b, err = b64(jwk, "e"); if not b then return nil, err end
    return core.key_rsa(a, b)
  elseif kty == "EC" then
    if type(jwk.crv) ~= "string" then return nil, "EC JWK has no crv" end
    b, err = b64(jwk, "x"); if not b then return nil, err end
    c, err = b64(jwk, "y"); if not c then return nil, err end
    return core.key_ec(jwk.crv, b, c)
  elseif kty == "OKP" then
    if type(jwk.crv) ~= "string" then return nil, "OKP JWK has no crv" end
    b, err = b64(jwk, "x"); if not b then return nil, err end
    return core.key_okp(jwk.crv, b)
  end
  -- "oct" included: a published key set never holds shared secrets
  return nil, "unsupported JWK kty '" .. tostring(kty) .. "'"
end

--- A private key from a JWK (RSA, EC or OKP with `d`), for signing client
-- assertions. Returns a core key or nil, message.
function M.parse_private_jwk(jwk)
  if type(jwk) ~= "table" then return nil, "JWK is not a table" end
  local raw = {}
  for _, f in ipairs { "n", "e", "d", "p", "q", "dp", "dq", "qi", "x", "y" } do
    if jwk[f] ~= nil then
      local v, err = b64(jwk, f)
      if not v then return nil, err end
      raw[f] = v
    end
  end
  if not raw.d then return nil, "JWK has no private part 'd'" end
  local key, kind, msg
  if jwk.kty == "RSA" then
    key, kind, msg = core.key_rsa_private(raw)
  elseif jwk.kty == "EC" then
    key, kind, msg = core.key_ec_private(jwk.crv, raw.x, raw.y, raw.d)
  elseif jwk.kty == "OKP" then
    key, kind, msg = core.key_okp_private(jwk.crv, raw.x, raw.d)
  else
    return nil, "unsupported JWK kty '" .. tostring(jwk.kty) .. "'"
  end
  if not key then return nil, msg or kind end
  return key
end

local Set = { __name = "smartauth.jwks" }
Set.__index = Set

--- A key set that fetches with fetch() -> body string | nil, err.
function M.new(fetch)
  return setmetatable({ fetch = fetch, keys = {}, list = {}, fetched_at = nil, last_refetch = nil }, Set)
end

--- Replace the keys from a JWKS document (string or table). Keys that do not
-- parse are skipped; a document without any usable key is an error.
function Set:load(doc)
  if type(doc) == "string" then
    doc = json.object(doc)
  end
  if type(doc) ~= "table" or type(doc.keys) ~= "table" then
    return nil, errors.new("validation", "JWKS is not a JSON object with a 'keys' array", { check = "jwks" })
  end
  local keys, list, skipped = {}, {}, 0
  for i, jwk in ipairs(doc.keys) do
    if i > M.MAX_KEYS then break end
    local key = M.parse_jwk(jwk)
    if key then
      local entry = { key = key, kid = type(jwk.kid) == "string" and jwk.kid or nil,
        alg = type(jwk.alg) == "string" and jwk.alg or nil, kty = jwk.kty }
      entry.alone = { entry } -- candidates() for its kid, made once
      list[#list + 1] = entry
      if entry.kid and not keys[entry.kid] then keys[entry.kid] = entry end
    else
      skipped = skipped + 1
    end
  end
  if #list == 0 then
    return nil, errors.new("validation", "JWKS has no usable signing key", { check = "jwks" })
  end
  self.keys, self.list, self.skipped = keys, list, skipped
  self.fetched_at = clock.now()
  return true
end

-- force: a refetch for an unknown kid, allowed once per REFETCH_INTERVAL
-- (the first one at once: a rotation right after the first fetch must work).
function Set:_refresh(force)
  local now = clock.now()
  if force then
    if self.last_refetch and now - self.last_refetch < M.REFETCH_INTERVAL then
      return nil, "rate-limited"
    end
    self.last_refetch = now
  elseif self.failed_at and now - self.failed_at < M.FAILURE_BACKOFF then
    return nil, self.failure
  end
  local body, err = self.fetch()
  local ok
  if body then ok, err = self:load(body) end
  if not ok then
    -- a broken JWKS endpoint must not be hit once per incoming token
    self.failed_at, self.failure = now, err
    return nil, err
  end
  self.failed_at, self.failure = nil, nil
  return true
end

-- alg -> the key type a JWKS key needs for it, from the core's one alg
-- table (oct left out: a published key set never holds shared secrets)
local KTY_FOR_ALG = {}
for alg, a in pairs(core.jws_algs()) do
  if a.kty ~= "oct" then KTY_FOR_ALG[alg] = a.kty end
end

--- Keys to try for a token header: the key named by kid (refetching the set
-- once when the kid is unknown), or without a kid every key of the alg's
-- type. Returns a list of entries or nil, err.
function Set:candidates(kid, alg, now)
  if not self.fetched_at or (now or clock.now()) - self.fetched_at > M.TTL then
    local ok, err = self:_refresh(false)
    if not ok and not self.fetched_at then
      if errors.is(err) then return nil, err end
      return nil, errors.new("validation", "cannot fetch JWKS: " .. tostring(err), { check = "jwks" })
    end
  end
  if kid ~= nil then
    if type(kid) ~= "string" then
      return nil, errors.new("validation", "JWT kid is not a string", { check = "kid" })
    end
    local e = self.keys[kid]
    if not e then
      self:_refresh(true) -- key rotation: the provider may have published it since
      e = self.keys[kid]
    end
    if not e then
      return nil, errors.new("validation", "no key in the JWKS has kid '" .. kid:sub(1, 64) .. "'",
        { check = "kid" })
    end
    if KTY_FOR_ALG[alg] and e.kty ~= KTY_FOR_ALG[alg] then
      return nil, errors.new("validation", "kid '" .. kid:sub(1, 64) .. "' is a " .. tostring(e.kty) ..
        " key, but alg " .. alg .. " needs " .. KTY_FOR_ALG[alg], { check = "kid" })
    end
    if e.alg and e.alg ~= alg then
      -- a key is used with the one algorithm it names (RFC 8725 §3.1)
      return nil, errors.new("validation", "kid '" .. kid:sub(1, 64) .. "' is for " .. e.alg ..
        ", not " .. alg, { check = "kid" })
    end
    return e.alone
  end
  local out = {}
  for _, e in ipairs(self.list) do
    if e.kty == KTY_FOR_ALG[alg] and (e.alg == nil or e.alg == alg) then out[#out + 1] = e end
  end
  if #out == 0 then
    return nil, errors.new("validation", "no key in the JWKS fits alg " .. tostring(alg), { check = "kid" })
  end
  return out
end

return M
