--- Token objects: what a grant returns and a store keeps.
-- @module smartauth.token
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local json = require "smartauth.json"
local errors = require "smartauth.errors"

local M = {}

local math_floor, HUGE = math.floor, math.huge

local Token = { __name = "smartauth.token" }
Token.__index = Token

-- Version of the stored entry layout. 2 added `claims` (the verified
-- ID-token claims) and `ext` (a table for later fields); 1 is still read.
M.FORMAT = 2

local KNOWN = {
  access_token = true, token_type = true, expires_in = true, refresh_token = true,
  scope = true, id_token = true,
}

-- token_type values (case-insensitive): RFC 6750 Bearer, RFC 9449 DPoP,
-- and RFC 8693's N_A for an issued token that is not an access token.
local TOKEN_TYPES = { bearer = "Bearer", dpop = "DPoP", n_a = "N_A" }

local function invalid(msg)
  return nil, errors.new("validation", msg)
end

--- Seconds from an `expires_in` value: a non-negative number or numeric
-- string ("3600"); nil when absent.
local function parse_expires_in(v)
  if v == nil or v == json.null then return true, nil end
  if type(v) == "string" then
    if not v:match("^%s*%d+%.?%d*%s*$") then return false end
    v = tonumber(v)
  end
  if compat.math_type(v) == nil or v ~= v or v < 0 or v == math.huge then return false end
  return true, math.floor(v)
end

local function not_string(v)
  return v ~= nil and type(v) ~= "string"
end

-- Empty strings and JSON null mean absent (servers send both for "none").
local function present(v)
  if v == json.null or v == "" then return nil end
  return v
end

-- A token goes into an Authorization header and `smartauth token` prints it
-- for a shell: any byte outside printable ASCII without space (0x21-0x7E)
-- would let the server choose a header or a terminal sequence. Stricter
-- b64token rules (RFC 6750) would refuse real tokens, which contain ! or |.
-- (checked in C: a pattern with a class cost ~7k instructions a token;
-- the core loads with the first token checked, not with this module)
local vchars
local function unsafe_bytes(v)
  if type(v) ~= "string" then return false end
  if not vchars then vchars = require("smartauth.core").vchars end
  return not vchars(v)
end

--- Build a token from a decoded token response (RFC 6749 §5.1).
-- @param t decoded JSON object
-- @param now current time (seconds)
-- @return token or nil, err (validation)
function M.from_response(t, now)
  if type(t) ~= "table" then return invalid("token response is not a JSON object") end
  local at = t.access_token
  if type(at) ~= "string" or at == "" then
    return invalid("token response has no access_token")
  end
  if unsafe_bytes(at) then
    return invalid("token response has an access_token with bytes outside printable ASCII")
  end
  local tt = present(t.token_type)
  if tt == nil or tt == "Bearer" then
    tt = "Bearer" -- some services omit it; RFC 6750 is what they mean
  elseif type(tt) ~= "string" then
    return invalid("token response has a non-string token_type")
  else
    local known = TOKEN_TYPES[tt:lower()]
    if not known then
      return invalid("unsupported token_type '" .. errors.clean_text(tt, 32) .. "' (Bearer, DPoP or N_A)")
    end
    tt = known
  end
  local expires_in = t.expires_in
  -- the usual case first: a number (cjson gives floats); NaN fails >= 0
  if type(expires_in) == "number" and expires_in >= 0 and expires_in < HUGE then
    expires_in = math_floor(expires_in)
  else
    local ok
    ok, expires_in = parse_expires_in(expires_in)
    if not ok then return invalid("token response has an invalid expires_in") end
  end
  local rt, scope, idt = present(t.refresh_token), present(t.scope), present(t.id_token)
  if not_string(rt) then return invalid("token response has a non-string refresh_token") end
  if unsafe_bytes(rt) then
    return invalid("token response has a refresh_token with bytes outside printable ASCII")
  end
  if not_string(scope) then return invalid("token response has a non-string scope") end
  if not_string(idt) then return invalid("token response has a non-string id_token") end
  local extra
  for k, v in next, t do
    if not KNOWN[k] and type(k) == "string" then
      extra = extra or {}
      extra[k] = v
    end
  end
  return setmetatable({
    access_token = at,
    token_type = tt,
    expires_in = expires_in,
    expires_at = expires_in and now + expires_in or nil,
    refresh_token = rt,
    scope = scope,
    id_token = idt,
    extra = extra,
    issued_at = now,
  }, Token)
end

--- A token object: what grants, `p:token()` and `p:refresh()` return.
-- `tostring(token)` shows only a prefix of the access token.
-- @type Token
-- @tfield string access_token the access token (printable ASCII only)
-- @tfield string token_type `"Bearer"`, `"DPoP"` (bound to the provider's
--   DPoP key) or `"N_A"` (not an access token; RFC 8693); others are refused
-- @tfield[opt] int expires_in seconds of life from the answer (or the
--   `default_expires_in` option)
-- @tfield[opt] number expires_at when it expires (seconds since the epoch);
--   nil: until a 401
-- @tfield[opt] string refresh_token the refresh token
-- @tfield[opt] string scope the granted scope
-- @tfield[opt] string id_token the ID token (verified when the provider has an issuer)
-- @tfield[opt] table claims the verified ID-token claims
-- @tfield[opt] table extra other fields of the token answer
-- @tfield[opt] table ext kept in the store entry: `dpop_jkt` (the DPoP key's
--   thumbprint), `dpop_key` (a generated DPoP key, as a private JWK)
-- @tfield number issued_at when it was received (seconds since the epoch)

--- Is the token expired, or within `leeway` seconds of it? A token without
-- an expiry never expires by time (the server will say 401).
function Token:expired(leeway, now)
  if not self.expires_at then return false end
  return (now or clock.now()) + (leeway or 0) >= self.expires_at
end

--- Seconds left, or nil when the token has no expiry.
function Token:ttl(now)
  if not self.expires_at then return nil end
  return self.expires_at - (now or clock.now())
end

function Token:__tostring()
  local parts = { "smartauth.token(", self.token_type, " ", errors.redact(self.access_token) }
  if self.expires_at then
    parts[#parts + 1] = ", expires in " .. tostring(self.expires_at - clock.now()) .. "s"
  end
  if self.refresh_token then parts[#parts + 1] = ", refreshable" end
  if self.scope then parts[#parts + 1] = ", scope " .. self.scope end
  parts[#parts + 1] = ")"
  return table.concat(parts)
end

--- A plain table for a store (format-versioned).
function Token:to_entry()
  return {
    v = M.FORMAT,
    access_token = self.access_token, token_type = self.token_type,
    expires_at = self.expires_at, refresh_token = self.refresh_token,
    scope = self.scope, id_token = self.id_token, issued_at = self.issued_at,
    claims = self.claims, ext = self.ext,
  }
end

--- Module functions.
-- @section functions

--- Rebuild a token from a stored entry; nil, err for an entry that is not one.
function M.from_entry(e)
  local function bad(what)
    return nil, errors.new("storage", "stored entry is not a valid token (" .. what .. ")")
  end
  if type(e) ~= "table" then return bad("not a table") end
  if e.v ~= 1 and e.v ~= M.FORMAT then
    return bad("format " .. tostring(e.v) .. ", expected 1 or " .. M.FORMAT)
  end
  if type(e.access_token) ~= "string" or e.access_token == "" or unsafe_bytes(e.access_token) then
    return bad("access_token")
  end
  if unsafe_bytes(e.refresh_token) then return bad("refresh_token") end
  for _, k in ipairs { "expires_at", "issued_at" } do
    if e[k] ~= nil and (compat.math_type(e[k]) == nil or not (e[k] > -HUGE and e[k] < HUGE)) then return bad(k) end
  end
  for _, k in ipairs { "refresh_token", "scope", "id_token", "token_type" } do
    if e[k] ~= nil and type(e[k]) ~= "string" then return bad(k) end
  end
  for _, k in ipairs { "claims", "ext" } do
    if e[k] ~= nil and type(e[k]) ~= "table" then return bad(k) end
  end
  return setmetatable({
    access_token = e.access_token, token_type = TOKEN_TYPES[(e.token_type or "Bearer"):lower()] or e.token_type,
    expires_at = e.expires_at, refresh_token = e.refresh_token,
    scope = e.scope, id_token = e.id_token, issued_at = e.issued_at,
    claims = e.claims, ext = e.ext,
  }, Token)
end

--- Is v a token object?
function M.is(v)
  return getmetatable(v) == Token
end

return M
