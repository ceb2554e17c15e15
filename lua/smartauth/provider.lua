--- The generic OAuth 2.0 / OpenID Connect provider: its options (checked
-- once, kept in `p.options`, never as fields, so no option shadows a
-- method), its secrets (in the vault, never on the object), and the method
-- table that names the file of each concern. Presets are this plus data.
--
--   discovery.lua     p:discover(), endpoints found by discovery
--   client_auth.lua   basic | post | none | client_secret_jwt | private_key_jwt
--   grant.lua         client_credentials, password, refresh, revoke, introspect, logout
--   authcode.lua      authorization_url, exchange_code, parse_redirect
--   token_source.lua  token(), the token lifecycle, store key
--   api.lua           request(): the token attached, one renewal on 401
--   oidc.lua          verify_id_token, userinfo
--   device.lua, flow.lua   device grant and login flows, loaded on first use
local api = require "smartauth.api"
local authcode = require "smartauth.authcode"
local clock = require "smartauth.clock"
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local options = require "smartauth.options"
local retry = require "smartauth.retry"
local store_mod = require "smartauth.store"
local token_source = require "smartauth.token_source"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local M = {}

local NO_OPTS = options.NO_OPTS
local secrets = vault.secrets
local os_time = os.time

local Provider = { __name = "smartauth.provider" }
Provider.__index = Provider
M.Provider = Provider

M.ENDPOINTS = discovery.ENDPOINTS

M.DEFAULT_LEEWAY = 120 -- seconds; see DESIGN.md on early refresh margins

local SCHEMA = {
  name = "string", issuer = "string",
  authorization_endpoint = "url", token_endpoint = "url", userinfo_endpoint = "url",
  jwks_uri = "url", revocation_endpoint = "url", introspection_endpoint = "url",
  device_authorization_endpoint = "url", end_session_endpoint = "url",
  discovery_url = "url", api_base = "url",
  client_id = "string", client_secret = "string",
  client_auth = { type = "string", enum = { "basic", "post", "none", "private_key_jwt", "client_secret_jwt" } },
  redirect_uri = "string", scope = "string",
  response_type = { type = "string", enum = { "code", "id_token", "code id_token", "id_token token",
    "code token", "code id_token token" } },
  store = "any", retry = "any",
  on_http = "function",                    -- debug hook: one redacted event per HTTP exchange (wire.lua)
  lock_ttl = { type = "number", min = 1, max = 86400 },   -- seconds the store lock is held for
  default_expires_in = { type = "number", min = 1, max = 31536000 }, -- when the server sends none
  timeout = { type = "number", min = 0.001, max = 86400 },
  connect_timeout = { type = "number", min = 0.001, max = 86400 },
  ca_file = "string",
  leeway = { type = "number", min = 0, max = 86400 },
  allow_http = "boolean",
  max_body = { type = "number", min = 1, max = 2147483647, integer = true },
  grant = { type = "string", enum = { "client_credentials", "password", "authorization_code",
    "loopback", "device", "oob", "none" } },
  username = "string", password = "string",
  api_key = "string", api_password = "string",
  token_placement = { type = "string", enum = { "header", "query" } },
  token_param = "string",
  token_headers = "table",
  -- OpenID Connect
  id_token_algs = "table",                 -- allow-list; default: what discovery says, within what we verify
  id_token_signed_response_alg = "string", -- HS256/384/512 only when the client is registered for it
  jwks = "table",                          -- a static key set instead of fetching jwks_uri
  -- RFC 7523 client assertions
  client_assertion_key = "any",            -- PEM text, path to a PEM file, or a private JWK table
  client_assertion_alg = "string",
  client_assertion_kid = "string",
  -- proxies and mutual TLS (checked, and their secrets kept, by transport.configure)
  proxy = "string", no_proxy = "string",         -- "http://[user:password@]host:port"; "host,host"
  client_cert = "string", client_key = "string", -- PEM file paths or PEM text
  client_key_password = "string",
}
M.SCHEMA = SCHEMA

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

--- Create a provider. See DESIGN.md for the options. Returns provider or
-- nil, err (config).
-- @param extra already-checked options a preset adds (region, domain)
function M.new(opts, where, extra)
  if type(opts) ~= "table" then
    errors.argerror(1, "provider", "table expected", opts)
  end
  where = where or "smartauth.provider"
  local o, err = options.check(where, opts, SCHEMA, opts.allow_http)
  if not o then return nil, err end
  if o.redirect_uri then
    local ok, msg = url.check_redirect_uri(o.redirect_uri, o.allow_http)
    if not ok then return cfg_err(where .. ": option 'redirect_uri' " .. msg, { option = "redirect_uri" }) end
  end
  if o.issuer then
    local ok, msg = url.check_endpoint(o.issuer, o.allow_http)
    if not ok then
      return cfg_err(where .. ": option 'issuer' is not a usable URL: " .. msg, { option = "issuer" })
    end
  end
  if o.store ~= nil then
    local ok, msg = store_mod.check(o.store)
    if not ok then return cfg_err(where .. ": option 'store' " .. msg, { option = "store" }) end
  end
  if o.retry ~= nil and o.retry ~= false and getmetatable(o.retry) == nil then
    if type(o.retry) ~= "table" then
      return cfg_err(where .. ": option 'retry' must be a retry policy, its options, or false",
        { option = "retry" })
    end
    local ok, pol = pcall(retry.policy, o.retry)
    if not ok then return cfg_err(where .. ": option 'retry': " .. tostring(pol), { option = "retry" }) end
    o.retry = pol
  end
  if o.client_auth == nil then
    o.client_auth = o.client_secret and "basic" or "none"
  end
  if o.client_auth == "private_key_jwt" and o.client_assertion_key == nil then
    return cfg_err(where .. ": client_auth 'private_key_jwt' needs option 'client_assertion_key'",
      { option = "client_assertion_key" })
  end
  if (o.client_auth == "basic" or o.client_auth == "post" or o.client_auth == "client_secret_jwt")
      and not o.client_secret then
    return cfg_err(where .. ": client_auth '" .. o.client_auth .. "' needs option 'client_secret'",
      { option = "client_secret" })
  end
  local self = setmetatable({}, Provider)
  -- secrets, tokens and what may hold one (an API key, token_headers) are
  -- kept off the object: dumping a provider shows none of them
  local s = { client_secret = o.client_secret, password = o.password, api_password = o.api_password,
    client_assertion_key = o.client_assertion_key, api_key = o.api_key, token_headers = o.token_headers }
  o.client_secret, o.password, o.api_password, o.client_assertion_key = nil, nil, nil, nil
  o.api_key, o.token_headers = nil, nil
  secrets[self] = s
  local conf_ok, terr = transport.configure(o, s, where)
  if not conf_ok then return nil, terr end
  for k, v in pairs(extra or NO_OPTS) do o[k] = v end
  o.leeway = o.leeway or M.DEFAULT_LEEWAY
  o.store = o.store or store_mod.memory()
  o.token_placement = o.token_placement or "header"
  o.token_param = o.token_param or "access_token"
  -- options live in one table, never as fields: no option shadows a method
  self.options = setmetatable({}, {
    __index = o,
    __newindex = function(_, k)
      error("provider options are read-only (option '" .. tostring(k) .. "'): make a new provider", 2)
    end,
    __pairs = function() return next, o, nil end,
  })
  self._disc = {} -- what discovery found: endpoints, issuer
  self.api_key_auth = s.api_key ~= nil or nil
  s.source = token_source.new(self, s)
  return self
end

function Provider:__tostring()
  return "smartauth.provider(" .. (self.options.name or self:endpoint("issuer")
    or self:endpoint("token_endpoint") or "?") ..
    (self.options.client_id and (", client " .. self.options.client_id) or "") .. ")"
end

--- An endpoint (or "issuer"): the option, else what discovery found; no
-- network.
function Provider:endpoint(name)
  local v = self.options[name]
  if v == nil then v = self._disc[name] end
  return v
end

--- The discovery document, or nil before discovery.
function Provider:metadata()
  return self._metadata
end

local TOKEN_OPTS = { force = "boolean", min_ttl = "number", scope = "string" }

--- A valid token: cached, else stored, refreshed when within leeway of
-- expiry, else the provider's non-interactive grant (see token_source for
-- the whole lifecycle). Concurrent callers share one request; with a store
-- that locks across processes, one caller does the work.
-- @param opts { force = true (renew now), min_ttl = seconds (renew when less
--   is left), scope = string (a token for another scope, kept apart) }
-- @return token or nil, err (err.reauth: a person must log in)
function Provider:token(opts)
  -- the cached path: os.time plus the clock's offset is clock.now() inlined
  if not opts and os_time() + clock.offset < self._fresh_until then
    return secrets[self].tok
  end
  if opts ~= nil then
    if type(opts) ~= "table" then
      errors.argerror(1, "token", "table expected", opts)
    end
    for k, v in pairs(opts) do
      local want = TOKEN_OPTS[k]
      if not want then error("token: unknown option '" .. tostring(k) .. "'", 2) end
      if type(v) ~= want or (want == "number" and not (v >= 0 and v < math.huge)) then
        error("token: option '" .. k .. "' must be a " .. (want == "number" and "number of seconds" or want), 2)
      end
    end
  end
  return secrets[self].source:token(opts or NO_OPTS)
end

----------------------------------------------------------- the method table

Provider.discover = discovery.discover

Provider.client_credentials = grant.client_credentials
Provider.password = grant.password
Provider.refresh = grant.refresh
Provider.revoke = grant.revoke
Provider.introspect = grant.introspect

Provider.authorization_url = authcode.authorization_url
Provider.exchange_code = authcode.exchange_code
M.parse_redirect = authcode.parse_redirect

Provider.store_key = token_source.store_key
Provider.default_grant = token_source.default_grant
Provider.stored = token_source.stored
Provider.save_error = token_source.save_error
Provider.forget = token_source.forget
Provider.logout = grant.logout

Provider.request = api.request

-- OpenID Connect verification, the device grant and the login flows load
-- on first use: a token call needs none of them (nor LuaSocket).
local function lazy(module, name)
  return function(...) return require(module)[name](...) end
end
Provider.verify_id_token = lazy("smartauth.oidc", "verify_id_token")
Provider.userinfo = lazy("smartauth.oidc", "userinfo")
Provider.device_authorization = lazy("smartauth.device", "device_authorization")
Provider.poll_device = lazy("smartauth.device", "poll_device")
Provider.login = lazy("smartauth.flow", "login")

return M
