--- The `WWW-Authenticate` challenge a resource server answers a refused
-- request with (RFC 6750 §3, RFC 9449 §7.1), from the error
-- `p:verify_access_token` returned; exported as `smartauth.www_authenticate`.
-- @module smartauth.challenge
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local options = require "smartauth.options"

local M = {}

-- What a challenge says for each check: fixed text, never anything of the
-- token (its claims are outside data, and could carry secrets).
local DESCRIPTION = {
  format = "the access token is malformed",
  crit = "the access token has critical header parameters this server does not understand",
  typ = "the access token is not a JWT access token",
  alg = "the access token's signing algorithm is not accepted",
  kid = "the access token's signing key is unknown",
  jwks = "the access token's signing key is unknown",
  signature = "the access token's signature does not verify",
  iss = "the access token is from another issuer",
  exp = "the access token expired",
  nbf = "the access token is not valid yet",
  iat = "the access token was issued in the future",
  aud = "the access token is for another audience",
  client_id = "the access token has no client_id",
  sub = "the access token has no sub",
  jti = "the access token has no jti",
  scope = "the access token lacks the scope this request needs",
  cnf = "the access token's sender constraint is not met",
  dpop = "the DPoP proof is invalid",
}

-- The algorithms a DPoP proof may use (RFC 9449 §7.1 `algs`): the
-- asymmetric ones the core verifies.
local function proof_algs()
  local list = {}
  for alg, a in pairs(core.jws_algs()) do
    if a.kty ~= "oct" then list[#list + 1] = alg end
  end
  table.sort(list)
  return list
end

-- A quoted-string (RFC 9110 §5.6.4): quote and backslash escaped; control
-- characters and bytes beyond ASCII become '?', so no value can split the
-- header.
local function quote(s)
  s = tostring(s):gsub("[%c\127-\255]", "?"):gsub('[\\"]', "\\%0")
  return '"' .. s .. '"'
end

local function challenge(scheme, params)
  local parts = {}
  for _, kv in ipairs(params) do
    parts[#parts + 1] = kv[1] .. "=" .. quote(kv[2])
  end
  if #parts == 0 then return scheme end
  return scheme .. " " .. table.concat(parts, ", ")
end

local WWW_OPTS = { realm = true, scope = true, dpop = true, bearer = true, scheme = true }

--- The `WWW-Authenticate` value (and the HTTP status) a resource server
-- answers a request it refuses with (RFC 6750 §3, RFC 9449 §7.1). No
-- error at all (a request without a token): the challenge alone. A
-- `scope` failure: `error="insufficient_scope"` with the scopes asked for,
-- status 403. A failed DPoP proof: `error="invalid_dpop_proof"` (or
-- `"use_dpop_nonce"`) on the DPoP challenge. Any other failure:
-- `error="invalid_token"`, 401. The description is fixed text per check:
-- nothing of the token or the proof. Values are quoted and escaped.
-- @function www_authenticate
-- @param[opt] err what `p:verify_access_token` (or `p:introspect`) returned,
--   or nil for a request without a token
-- @tparam[opt] table opts `realm`; `scope` (advertised when the error has
--   none); `dpop` = `true` or a list of algs (offer the DPoP scheme; default
--   algs: the asymmetric ones this library verifies); `bearer = false`
--   (DPoP only); `scheme` = the scheme the request used (`"DPoP"` puts the
--   error on the DPoP challenge)
-- @return the header value, and the status (401 or 403)
function M.www_authenticate(err, opts)
  if err ~= nil and type(err) ~= "table" then
    errors.argerror(1, "www_authenticate", "error object or nil expected", err)
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.argerror(2, "www_authenticate", "table expected", opts)
  end
  opts = opts or options.NO_OPTS
  for k in pairs(opts) do
    if not WWW_OPTS[k] then error("www_authenticate: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts.realm ~= nil and type(opts.realm) ~= "string" then
    errors.argerror(2, "www_authenticate", "option 'realm' must be a string", opts.realm)
  end
  local status, code, desc, scope = 401, nil, nil, opts.scope
  if type(scope) == "table" then scope = table.concat(scope, " ") end
  local on_dpop = opts.scheme ~= nil and tostring(opts.scheme):lower() == "dpop"
  if err then
    local check = err.check
    if err.kind == "validation" and check == "scope" then
      status, code = 403, "insufficient_scope"
      if type(err.scope) == "string" and err.scope ~= "" then scope = err.scope end
    elseif check == "dpop" or err.code == "use_dpop_nonce" then
      on_dpop = true
      code = err.code == "use_dpop_nonce" and "use_dpop_nonce" or "invalid_dpop_proof"
    else
      code = "invalid_token"
    end
    desc = (code == "use_dpop_nonce" and "a DPoP nonce is required")
      or (err.kind == "validation" and DESCRIPTION[check])
      or (err.kind == "validation" and "the access token is invalid")
      or "the access token could not be verified"
  end
  local params = {}
  if opts.realm then params[#params + 1] = { "realm", opts.realm } end
  local with_error = {}
  for _, kv in ipairs(params) do with_error[#with_error + 1] = kv end
  if code then with_error[#with_error + 1] = { "error", code } end
  if desc then with_error[#with_error + 1] = { "error_description", desc } end
  if scope and scope ~= "" then with_error[#with_error + 1] = { "scope", scope } end

  -- the error goes on the challenge of the scheme at fault
  local target = (on_dpop or opts.bearer == false) and "DPoP" or "Bearer"
  local out = {}
  if opts.bearer ~= false then
    out[#out + 1] = challenge("Bearer", target == "Bearer" and with_error or params)
  end
  if opts.dpop or target == "DPoP" then
    local algs = type(opts.dpop) == "table" and opts.dpop or proof_algs()
    local dp = {}
    for _, kv in ipairs(target == "DPoP" and with_error or params) do dp[#dp + 1] = kv end
    dp[#dp + 1] = { "algs", table.concat(algs, " ") }
    out[#out + 1] = challenge("DPoP", dp)
  end
  return table.concat(out, ", "), status
end

return M
