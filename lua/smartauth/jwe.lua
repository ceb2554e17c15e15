--- Internal: JSON Web Encryption (RFC 7516), compact serialization: encrypted ID
-- tokens, UserInfo answers and JARM responses. The cryptography is the C
-- core's (csrc/jwe.c: RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW,
-- ECDH-ES+A256KW on P-256/384/521 and X25519, A128KW, A256KW, dir; A128GCM,
-- A256GCM, A128CBC-HS256, A256CBC-HS512); this module reads the protected
-- header strictly, picks the key and keeps the client's decryption keys
-- (`decryption_keys`, and the symmetric keys OIDC Core §10.2 derives from
-- the client secret).
--
-- Refused by construction: `RSA1_5` (the PKCS#1 v1.5 padding oracle), a `zip`
-- member, critical extensions, an `epk` that is not a point of the
-- recipient's curve (or an X25519 point of small order), oversized tokens
-- and parts. Every failure that depends on
-- a secret (a key that does not unwrap, a bad tag, bad padding) has the one
-- message "JWE decryption failed".
-- @module smartauth.jwe
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local json = require "smartauth.json"

local M = {}

M.MAX_LENGTH = 256 * 1024 -- csrc/jwe.h SA_JWE_MAX_TOKEN; the split checks it too

local ALGS, ENCS = core.jwe_algs()
--- The key management algorithms the core supports (a list).
M.ALGS = ALGS
--- The content encryption algorithms the core supports (a list).
M.ENCS = ENCS
local ALG_SET, ENC_SET = {}, {}
for _, a in ipairs(ALGS) do ALG_SET[a] = true end
for _, e in ipairs(ENCS) do ENC_SET[e] = true end
local ECDH = { ["ECDH-ES"] = true, ["ECDH-ES+A128KW"] = true, ["ECDH-ES+A256KW"] = true }
-- the alg a published key announces when its JWK names none
local DEFAULT_ALG = { RSA = "RSA-OAEP-256", EC = "ECDH-ES", OKP = "ECDH-ES" }

local function invalid(msg)
  return nil, errors.new("validation", msg, { check = "jwe" })
end

local function cfg_err(msg)
  return nil, errors.new("config", msg)
end

local function set_of(list, what)
  if list == nil then return nil end
  if type(list) ~= "table" then errors.argerror(3, "jwe.decrypt", what .. " must be a list", list, 3) end
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

--- Is this compact token a JWE (five parts) rather than a JWS (three)?
-- Counts at most four dots, so a JWS costs three `find`s.
function M.is_jwe(token)
  if type(token) ~= "string" then return false end
  local find, i = string.find, 0
  for _ = 1, 4 do
    i = find(token, ".", i + 1, true)
    if not i then return false end
  end
  return true
end

-- Members that decide how a token is decrypted must appear once: cjson keeps
-- the last of duplicates, another parser might keep the first.
local function duplicated(raw)
  for _, m in ipairs { "alg", "enc", "epk", "zip", "crit", "kid", "apu", "apv", "cty" } do
    local _, n = raw:gsub('"' .. m .. '"%s*:', "")
    if n > 1 then return m end
  end
  return nil
end

local function b64_member(h, name)
  local v = h[name]
  if v == nil then return true, nil end
  if type(v) ~= "string" then return nil, "JWE header '" .. name .. "' is not a string" end
  local raw = core.b64url_decode(v)
  if not raw then return nil, "JWE header '" .. name .. "' is not base64url" end
  return true, raw
end

-- The header's epk as a core key: an EC public JWK whose point is on its
-- curve (core.key_ec refuses any other point: the invalid-curve attack), or
-- an X25519 one (RFC 8037; a point of small order is refused when agreed).
local function epk_key(epk)
  if type(epk) ~= "table" then return nil, "JWE header 'epk' is not a JWK" end
  if epk.d ~= nil then return nil, "JWE header 'epk' holds a private key" end
  if epk.kty == "OKP" then
    if epk.crv ~= "X25519" then return nil, "JWE header 'epk' must be an EC or X25519 key" end
    if epk.y ~= nil then return nil, "JWE header 'epk' of X25519 has a y" end
    local x = type(epk.x) == "string" and core.b64url_decode(epk.x)
    if not x then return nil, "JWE header 'epk' needs x (base64url)" end
    local key, _, msg = core.key_x25519(x)
    if not key then return nil, "JWE header 'epk': " .. tostring(msg) end
    return key
  end
  if epk.kty ~= "EC" then return nil, "JWE header 'epk' must be an EC or X25519 key" end
  if type(epk.crv) ~= "string" or type(epk.x) ~= "string" or type(epk.y) ~= "string" then
    return nil, "JWE header 'epk' needs crv, x and y"
  end
  local x, y = core.b64url_decode(epk.x), core.b64url_decode(epk.y)
  if not x or not y then return nil, "JWE header 'epk' x or y is not base64url" end
  local key, _, msg = core.key_ec(epk.crv, x, y)
  if not key then return nil, "JWE header 'epk': " .. tostring(msg) end
  return key
end

--- Read a compact JWE's protected header strictly (for callers that must
-- know it before decrypting). Returns the header table, or nil, err
-- (`validation`, check = "jwe").
-- @param token the compact JWE
-- @param opts { algs = {...}, encs = {...} } allow-lists (default: all supported)
function M.header(token, opts)
  if type(token) ~= "string" then return invalid("JWE is not a string") end
  if #token > M.MAX_LENGTH then return invalid("JWE is longer than " .. M.MAX_LENGTH .. " bytes") end
  local raw, _, msg = core.jwe_parse(token)
  if not raw then return invalid(tostring(msg)) end
  local h = json.object(raw)
  if not h then return invalid("JWE header is not a JSON object") end
  local dup = duplicated(raw)
  if dup then return invalid("JWE header has '" .. dup .. "' more than once") end
  local alg, enc = h.alg, h.enc
  if type(alg) ~= "string" then return invalid("JWE header has no alg") end
  if type(enc) ~= "string" then return invalid("JWE header has no enc") end
  if alg == "RSA1_5" then
    return invalid("JWE alg RSA1_5 is never accepted (the PKCS#1 v1.5 padding oracle)")
  end
  local algs, encs = set_of(opts and opts.algs, "algs"), set_of(opts and opts.encs, "encs")
  if not ALG_SET[alg] or (algs and not algs[alg]) then
    return invalid("JWE alg '" .. errors.clean_text(alg, 32) .. "' is not accepted")
  end
  if not ENC_SET[enc] or (encs and not encs[enc]) then
    return invalid("JWE enc '" .. errors.clean_text(enc, 32) .. "' is not accepted")
  end
  if h.zip ~= nil then return invalid("JWE header 'zip' is not accepted (compressed plaintext)") end
  if h.crit ~= nil and not (type(h.crit) == "table" and next(h.crit) == nil) then
    -- RFC 7516 §4.1.13: we understand no extension, so none may be critical
    return invalid("JWE header has critical extensions this client does not understand")
  end
  if h.kid ~= nil and type(h.kid) ~= "string" then return invalid("JWE header 'kid' is not a string") end
  if h.cty ~= nil and type(h.cty) ~= "string" then return invalid("JWE header 'cty' is not a string") end
  if ECDH[alg] then
    if h.epk == nil then return invalid("JWE alg " .. alg .. " needs an 'epk'") end
  elseif h.epk ~= nil then
    return invalid("JWE header 'epk' with alg " .. alg)
  end
  return h
end

--- Decrypt a compact JWE with the first fitting key.
-- Keys are chosen by the header's kid when it has one, then by alg and key
-- type; each candidate is tried in order.
-- @param token the compact JWE (string)
-- @param keys a list from `jwe.load_keys` ({ key =, kid =, alg = } entries)
-- @param opts { algs = {...}, encs = {...} } allow-lists (default: all supported)
-- @return plaintext, header; or nil, err (`validation`, err.check = "jwe")
function M.decrypt(token, keys, opts)
  if type(keys) ~= "table" then errors.argerror(2, "jwe.decrypt", "table expected", keys) end
  if opts ~= nil and type(opts) ~= "table" then errors.argerror(3, "jwe.decrypt", "table expected", opts) end
  local h, herr = M.header(token, opts)
  if not h then return nil, herr end
  local alg, enc = h.alg, h.enc
  local ok, apu = b64_member(h, "apu")
  if not ok then return invalid(apu) end
  local apv
  ok, apv = b64_member(h, "apv")
  if not ok then return invalid(apv) end
  local epk
  if ECDH[alg] then
    local emsg
    epk, emsg = epk_key(h.epk)
    if not epk then return invalid(emsg) end
  end
  -- the keys named by kid; when none is (a key given as PEM is known by
  -- its thumbprint), every key that fits alg
  local cands = {}
  for _, k in ipairs(keys) do
    if (k.alg == nil or k.alg == alg) and (k.enc == nil or k.enc == enc) and k.key:jwe_alg_ok(alg) then
      cands[#cands + 1] = k
    end
  end
  if h.kid ~= nil then
    local named = {}
    for _, k in ipairs(cands) do if k.kid == h.kid then named[#named + 1] = k end end
    if #named > 0 then cands = named end
  end
  local tried, last = 0, nil
  for _, k in ipairs(cands) do
    tried = tried + 1
    local pt, _, msg = k.key:jwe_decrypt(token, alg, enc, epk, apu, apv)
    if pt then
      if epk then epk:close() end
      return pt, h
    end
    last = msg
  end
  if epk then epk:close() end
  if tried == 0 then
    return invalid(h.kid and ("no decryption key with kid '" .. errors.clean_text(h.kid, 64) .. "' for " .. alg)
      or ("no decryption key for JWE alg " .. alg))
  end
  return invalid(tostring(last))
end

--- Encrypt to a recipient's key.
-- @param plaintext the bytes to encrypt
-- @param key a core key, or a public JWK table (its `use`, if any, must be "enc")
-- @param opts { alg = (default RSA-OAEP-256 / ECDH-ES by key type), enc =
--   "A256GCM" (default), kid = (default the JWK's), cty = }
-- @return the compact JWE, or nil, err (`validation` or `config`)
function M.encrypt(plaintext, key, opts)
  if type(plaintext) ~= "string" then errors.argerror(1, "jwe.encrypt", "string expected", plaintext) end
  opts = opts or {}
  local kid = opts.kid
  if type(key) == "table" then
    if key.use ~= nil and key.use ~= "enc" then return cfg_err("jwe.encrypt: the JWK is not for encryption") end
    local pub = {}
    for k, v in pairs(key) do if k ~= "use" and k ~= "key_ops" then pub[k] = v end end
    kid = kid or key.kid
    local alg = opts.alg or key.alg
    local ck, msg
    if pub.kty == "OKP" and pub.crv == "X25519" then
      local x = type(pub.x) == "string" and core.b64url_decode(pub.x)
      local kind
      ck, kind, msg = core.key_x25519(x or "")
      msg = msg or kind
    else
      ck, msg = require("smartauth.jwks").parse_jwk(pub)
    end
    if not ck then return cfg_err("jwe.encrypt: " .. tostring(msg)) end
    opts = { alg = alg, enc = opts.enc, cty = opts.cty }
    key = ck
  end
  local kty = key:type()
  local alg = opts.alg or DEFAULT_ALG[kty]
  if not alg then return cfg_err("jwe.encrypt: no default alg for a " .. tostring(kty) .. " key") end
  local out, kind, msg, code = key:jwe_encrypt(alg, opts.enc or "A256GCM", plaintext, kid, opts.cty)
  if not out then return nil, errors.from_core(kind, msg, code, { check = "jwe" }) end
  return out
end

-- ------------------------------------------------------------- keys

local function read_pem(src, where)
  if src:find("-----BEGIN", 1, true) then return src end
  local f, ferr = io.open(src, "rb")
  if not f then return nil, where .. ": cannot read " .. tostring(ferr) end
  local pem = f:read("*a")
  f:close()
  return pem
end

local function one_key(src, where)
  if type(src) == "string" then
    local pem, perr = read_pem(src, where)
    if not pem then return nil, perr end
    local key, kind, msg = core.key_pem(pem)
    -- an X25519 key (ECDH-ES only) is read by its own constructor
    if not key then key = core.key_x25519_pem(pem) end
    if not key then return nil, where .. ": " .. tostring(msg or kind) end
    return { key = key }
  elseif type(src) == "table" then
    if src.use ~= nil and src.use ~= "enc" then return nil, where .. ": the JWK's use is not \"enc\"" end
    if src.kid ~= nil and type(src.kid) ~= "string" then return nil, where .. ": kid must be a string" end
    local alg = src.alg
    -- a dir key's JWK names the content encryption it is the key of
    if alg ~= nil and ENC_SET[alg] and src.kty == "oct" then alg = "dir" end
    if alg ~= nil and not ALG_SET[alg] then
      return nil, where .. ": alg '" .. errors.clean_text(tostring(alg), 32) .. "' is not supported"
    end
    local key, msg
    if src.kty == "oct" then
      local k = type(src.k) == "string" and core.b64url_decode(src.k)
      if not k then return nil, where .. ": oct JWK needs 'k' (base64url)" end
      local kind
      key, kind, msg = core.key_oct(k)
      msg = msg or kind
    elseif src.kty == "OKP" and src.crv == "X25519" then
      local x = type(src.x) == "string" and core.b64url_decode(src.x)
      local d = type(src.d) == "string" and core.b64url_decode(src.d)
      if not d then return nil, where .. ": the JWK has no private part 'd'" end
      local kind
      key, kind, msg = core.key_x25519(x or nil, d)
      msg = msg or kind
    else
      key, msg = require("smartauth.jwks").parse_private_jwk(src)
    end
    if not key then return nil, where .. ": " .. tostring(msg) end
    return { key = key, kid = src.kid, alg = alg }
  end
  return nil, where .. ": a PEM, a PEM file or a private JWK expected"
end

-- RFC 7638 thumbprint: the kid of a key given without one.
local function thumbprint(pub)
  local b = core.b64url_encode
  local canon
  if pub.kty == "RSA" then
    canon = '{"e":"' .. b(pub.e) .. '","kty":"RSA","n":"' .. b(pub.n) .. '"}'
  elseif pub.kty == "EC" then
    canon = '{"crv":"' .. pub.crv .. '","kty":"EC","x":"' .. b(pub.x) .. '","y":"' .. b(pub.y) .. '"}'
  else
    canon = '{"crv":"' .. pub.crv .. '","kty":"OKP","x":"' .. b(pub.x) .. '"}'
  end
  return b(core.sha2(256, canon))
end

--- Parse the client's decryption keys (option `decryption_keys`) once.
-- @param list a list of PEM texts, PEM file paths or private JWKs (RSA, EC,
--   OKP X25519, or oct for A128KW/A256KW/dir); a JWK's `kid` and `alg` are kept
-- @return a list of { key =, kid =, alg = } (a key without kid gets its
--   RFC 7638 thumbprint), or nil, err (`config`)
function M.load_keys(list)
  if type(list) ~= "table" or #list == 0 then
    return cfg_err("decryption_keys: a non-empty list of PEM texts, PEM files or private JWKs expected")
  end
  local out = {}
  for i, src in ipairs(list) do
    local entry, msg = one_key(src, "decryption_keys[" .. i .. "]")
    if not entry then return cfg_err(msg) end
    if not entry.key:has_private() then return cfg_err("decryption_keys[" .. i .. "]: not a private key") end
    local kty = entry.key:type()
    if kty ~= "oct" then
      local pub = entry.key:public()
      if kty ~= "RSA" and kty ~= "EC" and pub.crv ~= "X25519" then
        return cfg_err("decryption_keys[" .. i .. "]: a " .. kty .. " key cannot decrypt")
      end
      entry.kid = entry.kid or thumbprint(pub)
    end
    out[i] = entry
  end
  return out
end

--- The public JWKS of decryption keys, to publish or register (`jwks`):
-- `{ keys = { { kty=, n=, e= | crv=, x=, y= | crv=, x=, use = "enc", alg=, kid= }, ... } }`.
-- Symmetric keys are never published.
-- @param keys a list from `jwe.load_keys`
function M.public_jwks(keys)
  local b = core.b64url_encode
  local out = {}
  for _, k in ipairs(keys) do
    local kty = k.key:type()
    if kty ~= "oct" then
      local pub = k.key:public()
      local jwk = { kty = kty, use = "enc", kid = k.kid, alg = k.alg or DEFAULT_ALG[kty] }
      if kty == "RSA" then
        jwk.n, jwk.e = b(pub.n), b(pub.e)
      elseif kty == "OKP" then
        jwk.crv, jwk.x = pub.crv, b(pub.x)
      else
        jwk.crv, jwk.x, jwk.y = pub.crv, b(pub.x), b(pub.y)
      end
      out[#out + 1] = jwk
    end
  end
  return { keys = out }
end

-- OIDC Core §10.2: the symmetric keys of A128KW, A256KW and dir are the
-- left-most bits of SHA-256 of the client secret's octets for keys of up to
-- 256 bits, SHA-384 up to 384, SHA-512 up to 512. A dir key is the content
-- key itself, so there is one per enc (A128CBC-HS256 and A256GCM share
-- their 32 bytes but not their use).
local DERIVED = {
  { alg = "A128KW", len = 16 }, { alg = "A256KW", len = 32 },
  { alg = "dir", enc = "A128GCM", len = 16 }, { alg = "dir", enc = "A256GCM", len = 32 },
  { alg = "dir", enc = "A128CBC-HS256", len = 32 }, { alg = "dir", enc = "A256CBC-HS512", len = 64 },
}

local function derived_keys(secret, out)
  local md = {}
  for _, d in ipairs(DERIVED) do
    local bits = d.len <= 32 and 256 or d.len <= 48 and 384 or 512
    md[bits] = md[bits] or core.sha2(bits, secret)
    local key = core.key_oct(md[bits]:sub(1, d.len))
    -- never published (public_jwks skips oct keys) and never named by kid
    if key and ALG_SET[d.alg] and (d.enc == nil or ENC_SET[d.enc]) then
      out[#out + 1] = { key = key, alg = d.alg, enc = d.enc, derived = true }
    end
  end
  return out
end

--- A provider's decryption keys, made on first use: those of the option
-- `decryption_keys` (kept in the vault), then, when the client has a
-- `client_secret`, the symmetric keys derived from it (OIDC Core §10.2:
-- A128KW, A256KW, dir). The list, or nil (no key at all), or nil, err
-- (`config`: a bad `decryption_keys` entry).
function M.provider_keys(p)
  local s = require("smartauth.vault").secrets[p]
  if s.decryption_keyset then return s.decryption_keyset end
  local keys = {}
  if s.decryption_keys ~= nil then
    local err
    keys, err = M.load_keys(s.decryption_keys)
    if not keys then return nil, err end
  end
  if type(s.client_secret) == "string" and s.client_secret ~= "" then derived_keys(s.client_secret, keys) end
  if #keys == 0 then return nil end
  s.decryption_keyset = keys
  return keys
end

--- A provider's public decryption JWKS (for registration), or nil, err.
-- Only the keys of `decryption_keys`: those derived from the client secret
-- are the provider's too and are never published.
function M.provider_jwks(p)
  local keys, err = M.provider_keys(p)
  if keys and require("smartauth.vault").secrets[p].decryption_keys == nil then keys = nil end
  if not keys then return nil, err or errors.new("config", "no decryption_keys configured") end
  return M.public_jwks(keys)
end

--- Decrypt a compact JWE with the provider's keys (`decryption_keys`, and
-- those derived from `client_secret`). What the plaintext may be is the
-- caller's decision: see `maybe_decrypt` (a JWS only) and oidc.lua's
-- UserInfo answers (a JWS, or a JSON object).
-- @param p provider
-- @param token the compact JWE
-- @param what what it is, for messages ("ID token", "UserInfo response")
-- @param opts { algs =, encs = } allow-lists
-- @return plaintext, header; or nil, err (`validation` check "jwe"; `config` for bad keys)
function M.open(p, token, what, opts)
  local keys, kerr = M.provider_keys(p)
  if not keys then
    if kerr then return nil, kerr end
    return invalid(what .. " is encrypted (JWE) but no decryption_keys are configured (nor a client_secret)")
  end
  local plain, h = M.decrypt(token, keys, opts)
  if not plain then
    h.description = what .. ": " .. h.description -- h is the error here
    return nil, h
  end
  return plain, h
end

--- Is this text shaped as a compact JWS (three base64url parts)?
function M.is_jws(text)
  if type(text) ~= "string" or text:find("[^%w%-_%.]") then return false end
  local _, dots = text:gsub("%.", "")
  return dots == 2
end

--- A nested JWT's inner token: `token` as it is when it is a JWS (three
-- parts), else decrypted with the provider's decryption keys. The
-- plaintext must be a JWS (cty "JWT" or none, three parts): an encrypted
-- token is never accepted unsigned; the caller verifies what it gets.
-- For ID tokens (oidc.lua) and JARM responses.
-- @param p provider
-- @param token the compact JWT (JWS or JWE)
-- @param what what it is, for messages ("ID token", "UserInfo response")
-- @param opts { algs =, encs = } allow-lists
-- @return the JWS, or nil, err (`validation` check "jwe"; `config` for bad keys)
function M.maybe_decrypt(p, token, what, opts)
  if not M.is_jwe(token) then return token end
  local inner, h = M.open(p, token, what, opts)
  if not inner then return nil, h end
  return M.nested(inner, h, what)
end

--- The rule of nested JWTs for a decrypted plaintext and its header: the
-- JWS (cty "JWT" or none, three parts), or nil, err (`validation`).
function M.nested(inner, h, what)
  local cty = h.cty
  if cty ~= nil and cty:upper() ~= "JWT" then
    return invalid(what .. ": the encrypted content is not a JWT (cty " .. errors.clean_text(cty, 32) .. ")")
  end
  if not M.is_jws(inner) then
    return invalid(what .. " is encrypted but not signed: the inner token must be a JWS")
  end
  return inner
end

return M
