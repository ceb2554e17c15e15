--- Compact JWS parsing (RFC 7515 §7.1) with strict limits: what comes in
-- is outside input until its signature is checked.
local cjson = require "cjson.safe"
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


--- Split and decode a compact JWS. Returns {header=, claims=, signing_input=,
-- signature=, raw_header=, raw_claims=} or nil, err (validation, check="format").
-- header_cache: a table of decoded headers by their raw JSON, for a caller
-- that only reads headers and never hands them out (a provider's tokens
-- share a few headers; decoding one is a tenth of an RSA verification).
function M.decode(jwt, header_cache)
  if type(jwt) ~= "string" then return invalid("format", "JWT is not a string") end
  if #jwt > M.MAX_LENGTH then
    return invalid("format", "JWT is longer than " .. M.MAX_LENGTH .. " bytes")
  end
  -- split and decoded in one C call: this runs on every verification
  local input, rh, rp, sig = core.jws_parts(jwt)
  if not input then
    local part, msg = rh, rp
    if part == "dots" or part == "empty" then return invalid("format", msg) end
    return invalid("format", "JWT " .. part .. ": " .. msg)
  end
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
  return {
    header = header, claims = claims, signature = sig,
    signing_input = input, raw_header = rh, raw_claims = rp,
  }
end

--- Encode and sign: header and claims tables, key object, alg.
function M.encode(header, claims, key)
  local h = core.b64url_encode(assert(cjson.encode(header)))
  local p = core.b64url_encode(assert(cjson.encode(claims)))
  local input = h .. "." .. p
  local sig, err = key:sign(header.alg, input)
  if not sig then return nil, err end
  return input .. "." .. core.b64url_encode(sig)
end

return M
