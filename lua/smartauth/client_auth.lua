--- Internal: Client authentication at token-type endpoints (RFC 6749 §2.3, RFC 7523,
-- RFC 8705 §2):
-- one strategy per `client_auth` value, each adding headers and form fields
-- (after openid-client's ClientSecretBasic/ClientSecretPost/None/
-- PrivateKeyJwt, TlsClientAuth). The fixed headers of every form POST are built once per
-- provider and kept with its secrets.
-- @module smartauth.client_auth
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local secrets = require("smartauth.vault").secrets

local M = {}

local BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

local function cfg_err(msg)
  return nil, errors.new("config", msg)
end

--- The client's private key (option `client_assertion_key`), parsed once:
-- private_key_jwt assertions and RFC 9101 request objects are signed with it.
-- @return the key object, or nil, err (`config`)
function M.signing_key(p)
  local s = secrets[p]
  if s.signing_key then return s.signing_key end
  local src = s.client_assertion_key
  local key, kind, msg
  if type(src) == "table" then
    key, msg = require("smartauth.jwks").parse_private_jwk(src)
    kind = "config"
  elseif type(src) == "string" then
    local pem = src
    if not src:find("-----BEGIN", 1, true) then
      local f, ferr = io.open(src, "rb")
      if not f then return cfg_err("client_assertion_key: cannot read " .. tostring(ferr)) end
      pem = f:read("*a")
      f:close()
    end
    key, kind, msg = core.key_pem(pem)
  else
    return cfg_err("private_key_jwt needs option 'client_assertion_key' (PEM, PEM file or JWK)")
  end
  if not key then return cfg_err("client_assertion_key: " .. tostring(msg or kind)) end
  s.signing_key = key
  return key
end

-- The signing key for private_key_jwt and its alg, chosen once.
local function assertion_key(p)
  local s = secrets[p]
  if s.assertion_key then return s.assertion_key, s.assertion_alg end
  local key, kerr = M.signing_key(p)
  if not key then return nil, kerr end
  -- which alg goes with which key is the core's alg table, not ours
  local alg = p.options.client_assertion_alg
  if not alg then
    local dkind, dmsg
    alg, dkind, dmsg = key:default_alg()
    if not alg then return cfg_err("client_assertion_key: " .. tostring(dmsg or dkind)) end
  end
  local ok, _, why = key:alg_ok(alg)
  if not ok then return cfg_err("client_assertion_key cannot sign " .. alg .. ": " .. tostring(why)) end
  s.assertion_key, s.assertion_alg = key, alg
  return key, alg
end

-- An RFC 7523 client assertion: a fresh jti and iat every time.
local function assertion(p, audience, key, alg, kid)
  local now = clock.now()
  local claims = {
    iss = p.options.client_id, sub = p.options.client_id, aud = audience,
    jti = core.b64url_encode(core.random(24)), iat = now, exp = now + 60,
  }
  local out, err = require("smartauth.jwt").encode({ typ = "JWT", alg = alg, kid = kid }, claims, key)
  if not out then
    return cfg_err("cannot sign the client assertion: " .. tostring(errors.is(err) and err.description or err))
  end
  return out
end

local function add_assertion(form, p, value)
  form.client_id = p.options.client_id
  form.client_assertion_type = BEARER_ASSERTION
  form.client_assertion = value
  return true
end

--- The strategies. `header(p)`: an Authorization line or nil; `form(p,
-- form, audience)`: adds fields, true or nil, err; `fixed`: its bytes are
-- the same on every request (so a request may be prepared once).
M.STRATEGIES = {
  basic = {
    fixed = true,
    header = function(p)
      return "Authorization: " .. core.basic_auth(p.options.client_id or "", secrets[p].client_secret)
    end,
    form = function() return true end,
  },
  post = {
    fixed = true,
    form = function(p, form)
      form.client_id = p.options.client_id
      form.client_secret = secrets[p].client_secret
      return true
    end,
  },
  none = {
    fixed = true,
    form = function(p, form)
      form.client_id = p.options.client_id
      return true
    end,
  },
  client_secret_jwt = {
    form = function(p, form, audience)
      local key = core.key_oct(secrets[p].client_secret)
      local a, err = assertion(p, audience, key, p.options.client_assertion_alg or "HS256")
      key:close()
      if not a then return nil, err end
      return add_assertion(form, p, a)
    end,
  },
  private_key_jwt = {
    form = function(p, form, audience)
      local key, alg = assertion_key(p)
      if not key then return nil, alg end
      local a, err = assertion(p, audience, key, alg, p.options.client_assertion_kid)
      if not a then return nil, err end
      return add_assertion(form, p, a)
    end,
  },
}
-- RFC 8705 §2: the TLS handshake authenticates (the provider's client_cert,
-- checked at construction); the form only names the client, as with none
M.STRATEGIES.tls_client_auth = M.STRATEGIES.none
M.STRATEGIES.self_signed_tls_client_auth = M.STRATEGIES.none

--- The fixed headers of every POST to a token-type endpoint, built once:
-- Accept, Content-Type, the token_headers option in sorted order (stable
-- bytes) and the strategy's Authorization line.
function M.headers(p)
  local s = secrets[p]
  local h = s.form_headers
  if h then return h end
  h = { "Accept: application/json", "Content-Type: application/x-www-form-urlencoded" }
  local extra = s.token_headers
  if extra then
    local names = {}
    for k in pairs(extra) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do h[#h + 1] = k .. ": " .. extra[k] end
  end
  local strategy = M.STRATEGIES[p.options.client_auth]
  if strategy.header then h[#h + 1] = strategy.header(p) end
  s.form_headers = h
  return h
end

--- Add the client's authentication to a form for `audience` (the endpoint).
-- Under profile fapi2 a client assertion's audience is the issuer instead
-- (FAPI 2.0 §5.3.2.1: the one value every endpoint accepts, which an
-- attacker's endpoint cannot reuse elsewhere), discovered if need be.
-- @return true or nil, err
function M.apply(p, form, audience)
  if p.options.profile == "fapi2" then
    local iss, err = require("smartauth.discovery").endpoint(p, "issuer")
    if not iss then return nil, err end
    audience = iss
  end
  return M.STRATEGIES[p.options.client_auth].form(p, form, audience)
end

--- Are the request bytes the same every time (a request may be prepared)?
function M.fixed(p)
  return M.STRATEGIES[p.options.client_auth].fixed == true
end

return M
