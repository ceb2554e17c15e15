--- Internal: aggregated and distributed claims (OIDC Core §5.6.2). A claims
-- table's `_claim_names` map claims to `_claim_sources`: a signed JWT in
-- the answer (aggregated) or an endpoint that answers one (distributed).
-- Each JWT is verified with its issuer's keys before any claim of it is
-- taken, and a source that fails makes the whole call fail: unverified
-- claims are never mixed with verified ones.
--
-- Trust: a source's JWT names its issuer (`iss`); only this provider's own
-- issuer and the issuers listed in `claims_issuers` (the provider option,
-- or the call's) are taken, each `https://` (plain http only for a loopback
-- host and with `allow_http`); their keys come from their discovery
-- document's `jwks_uri`.
-- @module smartauth.claims
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local jwt = require "smartauth.jwt"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local M = {}

M.MAX_SOURCES = 16      -- sources in one answer
M.MAX_NAMES = 256       -- claims mapped to sources
M.MAX_SOURCE_BODY = jwt.MAX_LENGTH -- bytes of a distributed source's answer
M.MAX_ISSUERS = 32      -- claims issuers' providers kept per provider

-- claims a source never sets: who the answer is about and for
local PROTECTED = { sub = true, iss = true, aud = true, azp = true, exp = true, iat = true, nbf = true,
  nonce = true, _claim_names = true, _claim_sources = true }

local function fail(check, msg)
  return nil, errors.new("validation", "claims source rejected: " .. msg, { check = check })
end

-- An issuer allowed by the trust rule: the provider's own, or listed.
local function trusted(p, iss, opts)
  if iss == p:endpoint("issuer") then return true end
  for _, list in ipairs({ p.options.claims_issuers or {}, opts.claims_issuers or {} }) do
    for _, v in ipairs(list) do
      if v == iss then return true end
    end
  end
  return false
end

-- https, or http to a loopback host with allow_http.
local function usable_url(p, u)
  local parsed = type(u) == "string" and #u <= 2048 and url.parse(u)
  if not parsed then return false end
  if parsed.scheme == "https" then return true end
  return parsed.scheme == "http" and p.options.allow_http == true and url.is_loopback(parsed.host)
end

-- The provider whose keys verify an issuer's claims (discovered once, kept).
local function issuer_provider(p, iss)
  if iss == p:endpoint("issuer") then return p end
  local kept = p._claims_issuers
  if not kept or kept.n >= M.MAX_ISSUERS then
    kept = { n = 0 }
    p._claims_issuers = kept
  end
  if kept[iss] then return kept[iss] end
  local o = p.options
  local cp, err = require("smartauth").discover(iss, { client_id = o.client_id, ca_file = o.ca_file,
    allow_http = o.allow_http, timeout = o.timeout, connect_timeout = o.connect_timeout, retry = o.retry,
    on_http = o.on_http, proxy = vault.secrets[p].proxy, no_proxy = o.no_proxy })
  if not cp then return nil, err end
  kept[iss], kept.n = cp, kept.n + 1
  return cp
end

-- Verify one source's JWT: its claims, or nil, err.
local function verify(p, token, opts)
  if type(token) ~= "string" then return fail("format", "the source's JWT is not a string") end
  token = token:match("^%s*(.-)%s*$")
  local _, dots = token:gsub("%.", "")
  if dots == 4 then return fail("jwe", "encrypted claims sources are not supported") end
  local h, c, sig, input_len = jwt.parse(token)
  if not h then return nil, c end
  local iss = c.iss
  if type(iss) ~= "string" then return fail("iss", "the source's JWT has no iss") end
  if not trusted(p, iss, opts) then
    return fail("iss", "issuer '" .. errors.clean_text(iss, 100) .. "' is not in claims_issuers")
  end
  if iss ~= p:endpoint("issuer") and not usable_url(p, iss) then
    return fail("iss", "issuer '" .. errors.clean_text(iss, 100) .. "' is not an https URL")
  end
  local cp, err = issuer_provider(p, iss)
  if not cp then return nil, err end
  local oidc = require "smartauth.oidc"
  local now = clock.now()
  local ok, serr = oidc.check_signature(cp, token, h, sig, input_len, now, fail, false, oidc.ASYMMETRIC_SET)
  if not ok then return nil, serr end
  local leeway = p.options.leeway or 0
  if c.exp ~= nil and (not compat.is_finite(c.exp) or now - leeway >= c.exp) then
    return fail("exp", "the source's JWT has expired")
  end
  if c.aud ~= nil and not jwt.aud_has(c.aud, p.options.client_id) then
    return fail("aud", "the source's JWT is for another audience")
  end
  return c
end

-- A distributed source's JWT, fetched with its access token (never with
-- this provider's own token: the endpoint is another party).
local function fetch(p, src)
  if not usable_url(p, src.endpoint) then
    return fail("endpoint", "a distributed claims endpoint must be an https URL")
  end
  local at = src.access_token
  if at ~= nil and (type(at) ~= "string" or at:find("[%c]")) then
    return fail("access_token", "the source's access_token is not a usable string")
  end
  local headers = { "Accept: application/jwt" }
  if at then headers[2] = "Authorization: Bearer " .. at end
  local res, err = transport.call(p, { url = src.endpoint, headers = headers, max_body = M.MAX_SOURCE_BODY })
  if not res then return nil, vault.scrub(p, err, { at }) end
  if res.status ~= 200 then
    return nil, errors.new("http", "distributed claims endpoint returned HTTP " .. res.status,
      { status = res.status })
  end
  return res.body
end

--- Resolve the aggregated and distributed claims of a claims table (a
-- UserInfo answer, an ID token's claims): a new table with each source's
-- verified claims in place and `_claim_names` and `_claim_sources` gone;
-- the table itself when it has none. Sources are fetched and verified in
-- turn (inside a task each request yields).
-- @param p the provider (the method `p:resolve_claims`)
-- @param info the claims table
-- @param[opt] opts `claims_issuers` (issuers trusted besides the option's)
-- @return the claims, or nil, err (`validation` when a source fails its
--   checks, `http` when a source cannot be fetched)
function M.resolve(p, info, opts)
  if type(info) ~= "table" then errors.argerror(1, "resolve_claims", "table expected", info) end
  opts = opts or {}
  local names, sources = info._claim_names, info._claim_sources
  if names == nil and sources == nil then return info end
  if type(names) ~= "table" or type(sources) ~= "table" then
    return fail("format", "_claim_names and _claim_sources must both be objects")
  end
  local by_source, n_names, n_sources = {}, 0, 0
  for name, src in pairs(names) do
    n_names = n_names + 1
    if n_names > M.MAX_NAMES then return fail("format", "more than " .. M.MAX_NAMES .. " claims in _claim_names") end
    if type(name) ~= "string" or type(src) ~= "string" or type(sources[src]) ~= "table" then
      return fail("format", "a claim in _claim_names names no source")
    end
    if PROTECTED[name] then
      return fail("format", "claim '" .. name .. "' cannot come from a claims source")
    end
    if not by_source[src] then
      n_sources = n_sources + 1
      if n_sources > M.MAX_SOURCES then return fail("format", "more than " .. M.MAX_SOURCES .. " claims sources") end
      by_source[src] = {}
    end
    table.insert(by_source[src], name)
  end
  local out = {}
  for k, v in pairs(info) do out[k] = v end
  out._claim_names, out._claim_sources = nil, nil
  for src, list in pairs(by_source) do
    local s, token, err = sources[src]
    if s.JWT ~= nil then
      token = s.JWT
    elseif s.endpoint ~= nil then
      token, err = fetch(p, s)
      if not token then return nil, err end
    else
      return fail("format", "a claims source has neither JWT nor endpoint")
    end
    local claims, verr = verify(p, token, opts)
    if not claims then return nil, verr end
    for _, name in ipairs(list) do
      if claims[name] ~= nil then out[name] = claims[name] end
    end
  end
  return out
end

return M
