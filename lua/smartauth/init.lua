--- smartauth: an OAuth 2.0 / OpenID Connect client for Lua 5.4.
-- @module smartauth
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local presets = require "smartauth.presets"
local provider = require "smartauth.provider"
local retry = require "smartauth.retry"
local store = require "smartauth.store"
local token = require "smartauth.token"
local transport = require "smartauth.transport"

local M = {
  _VERSION = "0.1.0",
  _DESCRIPTION = "OAuth 2.0 / OpenID Connect client for Lua 5.4 with a C core",
  errors = errors,
  store = store,
  token = token,
  parse_redirect = provider.parse_redirect,
  retry = retry,
  -- non-blocking use: see lua/smartauth/engine.lua
  spawn = engine.spawn,
  step = engine.step,
  run = engine.run,
  pending = engine.pending,
  fds = engine.fds,
  sleep = engine.sleep,
}

--- A provider from explicit options (see DESIGN.md).
-- @return provider or nil, err
function M.provider(opts)
  return provider.new(opts)
end

--- OpenID Connect discovery, then a provider with the endpoints filled in.
-- @param issuer the issuer URL (must equal the document's `issuer`)
-- @param opts any provider option
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
  return transport.set_hook(fn)
end

for _, name in ipairs(presets.NAMES) do
  M[name] = function(opts) return presets.build(name, opts) end
end

-- Loaded on first use: a token call needs neither config files nor the
-- login flows (and their LuaSocket).
local LAZY = { config = "smartauth.config", flow = "smartauth.flow" }
setmetatable(M, { __index = function(t, k)
  local name = LAZY[k]
  if not name then return nil end
  local mod = require(name)
  rawset(t, k, mod)
  return mod
end })

return M
