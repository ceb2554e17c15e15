--- Internal: Compact JWS parsing (RFC 7515 §7.1) with strict limits: what comes in
-- is outside input until its signature is checked.
-- @module smartauth.jwt
local json = require "smartauth.json"
local core = require "smartauth.core"
local errors = require "smartauth.errors"

local M = {}

M.MAX_LENGTH = 64 * 1024 -- an ID token is a few KiB; anything near this is hostile
M.HEADER_CACHE = 32 -- distinct headers kept by a header_cache

--- A new header cache for decode.
function M.header_cache()
  return { n = 0 }
end

local function invalid(check, msg)
  return nil, errors.new("validation", msg, { check = check })
end


--- Split and decode a compact JWS: header, claims, signature (bytes),
-- input_len (the signing input is the first input_len bytes of jwt), or
-- nil, err (validation, check="format", or "crit").
-- header_cache: a table of decoded headers by their raw JSON, for a caller
-- that only reads headers and never hands them out (a provider's tokens
-- share a few headers, and each decode is a lua-cjson call).
function M.parse(jwt, header_cache)
  if type(jwt) ~= "string" then return invalid("format", "JWT is not a string") end
  if #jwt > M.MAX_LENGTH then
    return invalid("format", "JWT is longer than " .. M.MAX_LENGTH .. " bytes")
  end
  -- split and base64url-decoded in one C call: this runs on every
  -- verification
  local rh, rp, sig, input_len = core.jws_parse(jwt)
  if not rh then return nil, errors.from_core(rp, sig, input_len, { check = "format" }) end
  local header = header_cache and header_cache[rh]
  if not header then
    header = json.object(rh)
    if not header then return invalid("format", "JWT header is not a JSON object") end
    if header_cache then
      if header_cache.n >= M.HEADER_CACHE then
        for k in pairs(header_cache) do header_cache[k] = nil end
        header_cache.n = 0
      end
      header_cache[rh], header_cache.n = header, header_cache.n + 1
    end
  end
  local claims = json.object(rp)
  if not claims then return invalid("format", "JWT payload is not a JSON object") end
  if header.crit ~= nil then
    -- RFC 7515 §4.1.11: we understand no extensions, so must refuse
    return invalid("crit", "JWT header has critical extensions this client does not understand")
  end
  return header, claims, sig, input_len
end

--- parse as a table: {header=, claims=, signature=, compact=, input_len=}.
function M.decode(jwt)
  local header, claims, sig, input_len = M.parse(jwt)
  if not header then return nil, claims end
  return { header = header, claims = claims, signature = sig, compact = jwt, input_len = input_len }
end

--- Does an `aud` claim (a string or an array) name `client`?
function M.aud_has(aud, client)
  if client == nil then return false end
  if aud == client then return true end
  if type(aud) == "table" then
    for _, a in ipairs(aud) do if a == client then return true end end
  end
  return false
end

--- Encode and sign: header and claims tables, key object, alg. Returns
-- the compact JWS or nil, err.
function M.encode(header, claims, key)
  local h = core.b64url_encode(assert(json.encode(header)))
  local p = core.b64url_encode(assert(json.encode(claims)))
  local input = h .. "." .. p
  local sig, kind, msg, code = key:sign(header.alg, input)
  if not sig then return nil, errors.from_core(kind, msg, code) end
  return input .. "." .. core.b64url_encode(sig)
end

return M
