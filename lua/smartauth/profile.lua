--- Internal: Security profiles a provider is held to (option `profile`).
-- `"fapi2"` is the FAPI 2.0 Security Profile (OpenID FAPI WG, final): the
-- authorization code flow only, pushed (PAR) with PKCE S256, RFC 9207 `iss`
-- required, a strong client authentication, sender-constrained tokens, TLS
-- everywhere and only PS256, ES256 or EdDSA signatures.
--
-- What the options say is checked once, when the provider is made: a
-- `config` error whose message names the rule and whose `option` field
-- names the option. What only discovery can tell (endpoints, the issuer, a
-- PAR endpoint) is checked when discovery fills it in, before any of it is
-- used: a `validation` error with `check = "profile"` (the server's
-- document is outside data that breaks the profile, as a bad URL in it is).
-- @module smartauth.profile
local errors = require "smartauth.errors"
local url = require "smartauth.url"

local M = {}

--- The JWS algorithms FAPI 2.0 allows (§5.4.1): client assertions, request
-- objects and the ID tokens accepted.
M.FAPI2_ALGS = { "PS256", "ES256", "EdDSA" }
local FAPI2_ALG = { PS256 = true, ES256 = true, EdDSA = true }

local FAPI2_AUTH = { private_key_jwt = true, tls_client_auth = true, self_signed_tls_client_auth = true }

-- The URL options that must be https (besides the endpoints).
local URL_OPTIONS = { "issuer", "discovery_url", "api_base" }

-- The curve each key type must have for the allowed algs (RSA has none).
local CURVE = { EC = "P-256", OKP = "Ed25519" }

local function refuse(where, option, rule)
  return nil, errors.new("config", where .. ": profile 'fapi2' " .. rule, { option = option })
end

local function https_only(v)
  local parsed = type(v) == "string" and url.parse(v)
  return parsed and parsed.scheme == "https"
end

local function alg_rule(where, option, alg)
  return refuse(where, option, "allows only " .. table.concat(M.FAPI2_ALGS, ", ") ..
    " signatures (option '" .. option .. "' is '" .. tostring(alg):sub(1, 20) .. "')")
end

--- Check the options of a provider with `profile = "fapi2"` and set what
-- the profile turns on (`par`, the ID token alg allow-list). Runs in
-- `provider.new` after the options' types were checked and `client_auth`
-- got its default, before the secrets leave `o`.
-- @tparam table o the checked options (changed in place)
-- @tparam string where the constructor's name, for messages
-- @tparam table endpoints the endpoint option names (provider.ENDPOINTS)
-- @return true, or nil, err (`config`)
function M.check(o, where, endpoints)
  if o.allow_http then
    return refuse(where, "allow_http", "needs https everywhere: option 'allow_http' is not allowed")
  end
  if o.issuer == nil and o.discovery_url == nil then
    return refuse(where, "issuer", "needs option 'issuer' (or 'discovery_url'): client assertions " ..
      "are addressed to it and authorization responses must carry it (RFC 9207)")
  end
  for _, list in ipairs { URL_OPTIONS, endpoints } do
    for _, k in ipairs(list) do
      if o[k] ~= nil and not https_only(o[k]) then
        return refuse(where, k, "needs https endpoints: option '" .. k .. "' is not an https URL")
      end
    end
  end
  if not FAPI2_AUTH[o.client_auth] then
    return refuse(where, "client_auth", "needs client_auth private_key_jwt, tls_client_auth or " ..
      "self_signed_tls_client_auth (got '" .. tostring(o.client_auth) .. "')")
  end
  -- DPoP (RFC 9449) or a TLS client certificate (RFC 8705 certificate-bound
  -- tokens; the mTLS client_auth methods need one anyway)
  if not (o.dpop or o.dpop_key ~= nil or o.client_cert ~= nil) then
    return refuse(where, "client_cert", "needs sender-constrained tokens: option 'dpop' or 'dpop_key' " ..
      "(DPoP), or 'client_cert' (certificate-bound tokens)")
  end
  if o.response_type ~= nil and o.response_type ~= "code" then
    return refuse(where, "response_type", "allows only response_type 'code' (got '" .. o.response_type .. "')")
  end
  if o.par == false then
    return refuse(where, "par", "pushes every authorization request: option 'par' cannot be false")
  end
  if o.grant == "password" then
    return refuse(where, "grant", "does not allow the password grant")
  end
  if o.grant == "oob" or (o.redirect_uri ~= nil and url.is_oob(o.redirect_uri)) then
    return refuse(where, o.grant == "oob" and "grant" or "redirect_uri",
      "needs a redirect (the response's iss): out-of-band codes are not allowed")
  end
  for _, k in ipairs { "client_assertion_alg", "request_object_signing_alg", "id_token_signed_response_alg" } do
    if o[k] ~= nil and not FAPI2_ALG[o[k]] then return alg_rule(where, k, o[k]) end
  end
  if o.id_token_algs ~= nil then
    for _, a in ipairs(o.id_token_algs) do
      if not FAPI2_ALG[a] then return alg_rule(where, "id_token_algs", a) end
    end
  else
    o.id_token_algs = { "PS256", "ES256", "EdDSA" }
  end
  o.par = true
  return true
end

--- Check the client's signing key (`client_assertion_key`, for
-- private_key_jwt and request objects) against the profile: RSA of at
-- least 2048 bits (signing PS256, never RS256), EC P-256 (ES256), Ed25519
-- (EdDSA); set the algs to use when the options name none.
-- @param o the provider's options (changed in place)
-- @param key_of function() -> key object, or nil, err (client_auth.signing_key)
-- @tparam string where the constructor's name, for messages
-- @return true, or nil, err (`config`)
function M.check_key(o, key_of, where)
  if o.client_auth ~= "private_key_jwt" and not o.request_object then return true end
  local key, kerr = key_of()
  if not key then return nil, kerr end
  local kty, bits, crv = key:type()
  if kty == "RSA" then
    if bits < 2048 then
      return refuse(where, "client_assertion_key", "needs RSA keys of at least 2048 bits (got " .. bits .. ")")
    end
  elseif CURVE[kty] == nil or crv ~= CURVE[kty] then
    return refuse(where, "client_assertion_key", "needs an RSA (2048+ bits), EC P-256 or Ed25519 key (got " ..
      tostring(kty) .. (crv and (" " .. crv) or "") .. ")")
  end
  local alg = ({ RSA = "PS256", EC = "ES256", OKP = "EdDSA" })[kty]
  for k, used in pairs { client_assertion_alg = o.client_auth == "private_key_jwt",
      request_object_signing_alg = o.request_object == true } do
    if used then
      local a = o[k] or alg
      local ok, _, why = key:alg_ok(a)
      if not ok then
        return refuse(where, k, "signs with " .. a .. ", which client_assertion_key cannot: " .. tostring(why))
      end
      o[k] = a
    end
  end
  return true
end

--- Check a discovery document against the profile before anything in it
-- is used: every endpoint it would fill in (and the mTLS aliases that
-- would replace them) and the issuer it would set are https URLs, and a
-- pushed authorization request endpoint is known.
-- @param p the provider
-- @tparam table doc the discovery document
-- @tparam table endpoints the endpoint names (provider.ENDPOINTS)
-- @tparam table aliases the mTLS aliases that will be used (may be empty)
-- @return true, or nil, err (`validation`, check = "profile")
function M.check_document(p, doc, endpoints, aliases)
  local function bad(msg)
    return nil, errors.new("validation", "profile 'fapi2': the discovery document " .. msg, { check = "profile" })
  end
  if p.options.issuer == nil and not https_only(doc.issuer) then
    return bad("names an issuer that is not an https URL")
  end
  for _, k in ipairs(endpoints) do
    if p.options[k] == nil and doc[k] ~= nil and not https_only(doc[k]) then
      return bad("field '" .. k .. "' is not an https URL")
    end
    if p.options[k] == nil and aliases[k] ~= nil and not https_only(aliases[k]) then
      return bad("mtls_endpoint_aliases field '" .. k .. "' is not an https URL")
    end
  end
  if p.options.pushed_authorization_request_endpoint == nil
      and type(doc.pushed_authorization_request_endpoint) ~= "string" then
    return bad("has no pushed_authorization_request_endpoint (the profile pushes every request)")
  end
  return true
end

return M
