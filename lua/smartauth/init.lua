--- smartauth: an OAuth 2.0 / OpenID Connect client for Lua 5.1-5.4 and LuaJIT.
--
-- `require "smartauth"` loads what a token call needs; the login flows,
-- config files and ID-token verification load on first use. Functions
-- return `nil, err` on failures (see `smartauth.errors`) and raise only on
-- programming mistakes.
--
--     local smartauth = require "smartauth"
--     local p = assert(smartauth.provider{ token_endpoint = "https://idp.example.com/token",
--       client_id = "id", client_secret = os.getenv("SECRET") })
--     local tok = assert(p:token())
-- @module smartauth
local errors = require "smartauth.errors"
local presets = require "smartauth.presets"
local provider = require "smartauth.provider"
local store = require "smartauth.store"
local token = require "smartauth.token"

--- Fields.
-- @field errors `smartauth.errors`
-- @field store `smartauth.store`: `store.memory()`, `store.file{}`, `store.redis{}`
-- @field token `smartauth.token`
-- @field retry `smartauth.retry`: `retry.policy{}`, `retry.default`
-- @field config `smartauth.config` (loaded on first use)
-- @field flow `smartauth.flow` (loaded on first use)
-- @field parse_redirect `smartauth.provider.parse_redirect`
-- @field www_authenticate `smartauth.resource.www_authenticate`: the
--   `WWW-Authenticate` value and status of a resource server's 401/403
-- @field _VERSION the version, "MAJOR.MINOR.PATCH"
-- @table smartauth

--- Run `fn(...)` in a task (a coroutine whose network calls and waits
-- yield); `spawn({ on_error = function(err, task) end }, fn, ...)` gives
-- every failure to a handler. See `smartauth.engine.spawn`.
-- @function spawn
-- @return a `smartauth.engine.Task`

--- Drive transfers and timers and resume the tasks that are ready; waits
-- at most `timeout` seconds (0: never blocks).
-- @function step
-- @tparam[opt] number timeout seconds
-- @treturn int the number of tasks alive

--- Step until no task is left.
-- @function run

--- The number of tasks alive, and the seconds until the engine wants the
-- next step (nil: only when a socket is ready), for hosts with their own loop.
-- @function pending

--- The sockets the engine waits on, `{ { fd =, read =, write = }, ... }`,
-- for a host's own poll or epoll loop.
-- @function fds

--- Wait `seconds`: yields inside a task, sleeps outside.
-- @function sleep
-- @tparam number seconds

local M = {
  _VERSION = "0.1.0",
  _DESCRIPTION = "OAuth 2.0 / OpenID Connect client for Lua 5.1-5.4 and LuaJIT with a C core",
  errors = errors,
  store = store,
  token = token,
  parse_redirect = provider.parse_redirect,
  -- non-blocking use: see lua/smartauth/engine.lua
  spawn = function(...) return require("smartauth.engine").spawn(...) end,
  step = function(...) return require("smartauth.engine").step(...) end,
  run = function(...) return require("smartauth.engine").run(...) end,
  pending = function(...) return require("smartauth.engine").pending(...) end,
  fds = function(...) return require("smartauth.engine").fds(...) end,
  sleep = function(...) return require("smartauth.engine").sleep(...) end,
  -- resource servers: see lua/smartauth/resource.lua
  www_authenticate = function(...) return require("smartauth.challenge").www_authenticate(...) end,
}

--- A provider from explicit options.
-- @tparam table opts the options (`smartauth.schema.options`)
-- @return a `smartauth.provider.Provider`, or nil, err (`config`)
function M.provider(opts)
  return provider.new(opts)
end

--- OpenID Connect discovery, then a provider with the endpoints filled in.
-- @param issuer the issuer URL (must equal the document's `issuer`)
-- @param opts any provider option (`smartauth.schema.options`)
-- @return a `smartauth.provider.Provider`, or nil, err
function M.discover(issuer, opts)
  if type(issuer) ~= "string" then
    errors.argerror(1, "discover", "string expected", issuer)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.issuer = issuer
  local p, err = provider.new(o, "smartauth.discover")
  if not p then return nil, err end
  return p:discover()
end

--- The provider of a profile in a config file (see smartauth.config).
-- @param profile profile name
-- @param path config file (default: SMARTAUTH_CONFIG or $XDG_CONFIG_HOME/smartauth/config.lua)
-- @return provider or nil, err
function M.from_config(profile, path)
  return require("smartauth.config").from_config(profile, path)
end

--- The `x5t#S256` thumbprint of a certificate (RFC 8705 §3.1): the
-- base64url SHA-256 of its DER bytes, as a certificate-bound access
-- token's `cnf["x5t#S256"]` names it (compare a token's claim with a
-- resource server's peer certificate). See `smartauth.mtls.cert_thumbprint`.
-- @tparam string pem PEM text or the path of a PEM file (its first certificate counts)
-- @treturn string the thumbprint, or nil, err (`validation`, `config`)
function M.cert_thumbprint(pem)
  return require("smartauth.mtls").cert_thumbprint(pem)
end

--- Register a client dynamically (RFC 7591, OpenID Connect Dynamic
-- Registration); see `smartauth.register.register`.
-- @param server an issuer URL or an authorization server's metadata table
-- @tparam table client_metadata the client's metadata
-- @tparam[opt] table opts `initial_access_token`, `store`, `key`, transport options
-- @return a `smartauth.register.Registration`, or nil, err
function M.register(server, client_metadata, opts)
  return require("smartauth.register").register(server, client_metadata, opts)
end

--- A registration kept with `reg:save(store, key)`; see `smartauth.register.load`.
-- @tparam table st the store
-- @tparam string key its key
-- @tparam[opt] table opts transport options
-- @return a registration, or nil (none), or nil, err
function M.registration(st, key, opts)
  return require("smartauth.register").load(st, key, opts)
end

--- OpenID Connect issuer discovery by WebFinger (OIDC Discovery §2); see
-- `smartauth.resource_meta.webfinger`.
-- @tparam string input `acct:user@host`, `user@host`, a host or an https URL
-- @tparam[opt] table opts `ca_file`, `timeout`, `allow_http`, ...
-- @return the issuer URL, or nil, err
function M.webfinger(input, opts)
  return require("smartauth.resource_meta").webfinger(input, opts)
end

--- A provider for a protected resource from its URL alone (RFC 9728 →
-- RFC 8414 → RFC 7591 → RFC 8707); see `smartauth.resource_meta.for_resource`.
-- @tparam string url the resource identifier
-- @tparam[opt] table opts provider options and `authorization_server`,
--   `resource_metadata`, `client_metadata`, `client_name`, `initial_access_token`
-- @return a provider and the registration (nil with a `client_id`), or nil, err
function M.for_resource(url, opts)
  return require("smartauth.resource_meta").for_resource(url, opts)
end

--- The process-wide debug hook: fn(ev) gets one event per HTTP exchange
-- (each attempt of a retried request), every secret redacted; see the
-- README's "Seeing the wire". A provider's own `on_http` option gets them
-- too. nil removes it.
-- @param fn function or nil
-- @return the previous hook (or nil)
function M.on_http(fn)
  if fn ~= nil and type(fn) ~= "function" then
    errors.argerror(1, "on_http", "function or nil expected", fn)
  end
  return require("smartauth.transport").set_hook(fn)
end

--- SmartFile: a per-customer `domain`; OAuth2 authorization code (client
-- id and secret in the form; grant `authorization_code`), or HTTP Basic
-- with `api_key` and `api_password` (grant `none`). Endpoints:
-- `https://DOMAIN/oauth2/authorize/`, `/oauth2/token/`; `api_base`
-- `https://DOMAIN/api/2/`.
-- @function smartfile
-- @tparam table opts `domain` (required: a host name such as
--   `example.smartfile.com`), then either `client_id`, `client_secret`,
--   `redirect_uri` (without one the code is pasted) or `api_key`,
--   `api_password`; and any provider option (`smartauth.schema.options`)
-- @return a provider, or nil, err

--- SmartConnect: the password grant (client id and secret in the form)
-- against the `region`'s `https://HOST.smartconnect.com/token`.
-- @function smartconnect
-- @tparam table opts `region` (required unless `token_endpoint` is given:
--   `NA`, `NA2`, `NA3`, `UK`, `EU`, `EU2` or `AU`, any case), `client_id`,
--   `client_secret`, `username`, `password`; and any provider option
-- @return a provider, or nil, err

--- SmartSense: client credentials at `https://api.smartsense.co/auth/oauth`,
-- id and secret in HTTP Basic.
-- @function smartsense
-- @tparam table opts `client_id`, `client_secret`; and any provider option
-- @return a provider, or nil, err

--- SmartTask: authorization code with OpenID Connect (issuer
-- `https://auth.smarttask.io`, `scope` `"openid"` by default); the
-- endpoints come from its discovery document. Another `issuer` drops
-- SmartTask's discovery URL and userinfo endpoint.
-- @function smarttask
-- @tparam table opts `client_id`, `client_secret`, `redirect_uri` (https, or
--   `urn:ietf:wg:oauth:2.0:oob` for CLI apps), `scope`; and any provider option
-- @return a provider, or nil, err

for _, name in ipairs(presets.NAMES) do
  M[name] = function(opts) return presets.build(name, opts) end
end

-- Loaded on first use: a token call needs neither config files nor the
-- login flows (and their LuaSocket).
local LAZY = { config = "smartauth.config", flow = "smartauth.flow", retry = "smartauth.retry" }
setmetatable(M, { __index = function(t, k)
  local name = LAZY[k]
  if not name then return nil end
  local mod = require(name)
  rawset(t, k, mod)
  return mod
end })

return M
