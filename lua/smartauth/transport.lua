--- Internal: A provider's HTTP calls: its timeouts, CA file and size limit on every
-- request, its proxy and client certificate, and its retry policy around
-- engine.request (which yields inside a task). Token requests are safe to
-- retry; API calls with other methods than the idempotent ones are retried
-- on 429 only. With a debug hook (the provider's option `on_http`, or
-- smartauth.on_http) every attempt becomes one event, redacted by wire.lua;
-- without one nothing more is done.
-- @module smartauth.transport
local core = require "smartauth.core"
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local retry = require "smartauth.retry"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local M = {}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

local function cfg_err(where, option, msg)
  return nil, errors.new("config", where .. ": option '" .. option .. "' " .. msg, { option = option })
end

local function pct_decode(v)
  return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Checks the proxy and client-certificate options of a new provider (o,
-- already type-checked) and moves what is secret into its vault record s:
-- the proxy URL with its credentials (o.proxy keeps it without them), the
-- client key (PEM text is a secret) and its password.
-- @return true or nil, err (config; never showing a credential)
function M.configure(o, s, where)
  if o.proxy ~= nil then
    local scheme, rest = o.proxy:match("^(%a[%w+.-]*)://(.*)$")
    scheme = scheme and scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
      return cfg_err(where, "proxy", "must be an http:// or https:// URL (http://[user:password@]host:port)")
    end
    local authority, tail = rest:match("^([^/?#]*)(.*)$")
    local userinfo, hostport = authority:match("^(.*)@(.*)$")
    hostport = hostport or authority
    local shown = scheme .. "://" .. hostport
    local u = url.parse(shown)
    if not u or not u.port or (tail ~= "" and tail ~= "/") then
      return cfg_err(where, "proxy", "must name a host and a port, and nothing after them " ..
        "(http://[user:password@]host:port)")
    end
    s.proxy = o.proxy
    if userinfo then
      local user, pass = userinfo:match("^([^:]*):(.*)$")
      -- what an error could show: the credentials as written and decoded
      s.proxy_credentials = { userinfo, pct_decode(userinfo), pass, pass and pct_decode(pass) }
      if not user then s.proxy_credentials = { userinfo, pct_decode(userinfo) } end
    end
    o.proxy = shown
  end
  if o.client_key ~= nil and o.client_cert == nil then
    return cfg_err(where, "client_key", "needs option 'client_cert'")
  end
  if o.client_key_password ~= nil and o.client_cert == nil then
    return cfg_err(where, "client_key_password", "needs option 'client_cert' (and 'client_key')")
  end
  s.client_key, s.client_key_password = o.client_key, o.client_key_password
  o.client_key, o.client_key_password = nil, nil
  return true
end

-- Whether the engine goes direct to the URL's host (libcurl's no_proxy
-- rules, enough to word an error: "*", a host or a domain suffix, an IP).
local function bypassed(no_proxy, target)
  if not no_proxy then return false end
  local u = url.parse(target)
  if not u then return false end
  local host = u.host:gsub("^%[(.*)%]$", "%1")
  for entry in no_proxy:gmatch("[^,%s]+") do
    entry = entry:lower():gsub("^%.", ""):gsub("^%[(.*)%]$", "%1")
    if entry == "*" or host == entry or host:sub(-#entry - 1) == "." .. entry then return true end
  end
  return false
end

-- A proxy's failure names it, without its credentials: a transport error
-- (refused, CONNECT answered 403/407, ...) and a 407 answer to a request
-- the proxy forwards (no server but a proxy sends one).
local function proxy_failure(p, req, res, err)
  local shown = p.options.proxy
  if not shown or bypassed(p.options.no_proxy, req.url) then return res, err end
  if res and res.status == 407 then
    return nil, errors.new("http", "proxy " .. shown .. " requires authentication (HTTP 407): " ..
      "check the credentials in option 'proxy'", { status = 407, retryable = false })
  end
  if err and errors.is(err) then
    err.description = tostring(err.description) .. " (through proxy " .. shown .. ")"
    err.proxy = shown
  end
  return res, err
end

local monotonic = core.monotonic
local global_hook -- smartauth.on_http

--- Set the process-wide hook (a function or nil); returns the previous one.
function M.set_hook(fn)
  local prev = global_hook
  global_hook = fn
  return prev
end

-- One attempt seen by the hooks: timed, then handed to wire.lua.
local function watched(p, req, attempt)
  local t0 = monotonic()
  local res, err = engine.request(req)
  local elapsed = monotonic() - t0
  require("smartauth.wire").emit(p, p.options.on_http, global_hook, req, res, err, elapsed, attempt)
  return res, err
end

local function send(p, req)
  local o = p.options
  if req.timeout == nil then req.timeout = o.timeout end
  if req.connect_timeout == nil then req.connect_timeout = o.connect_timeout end
  if req.ca_file == nil then req.ca_file = o.ca_file end
  if req.max_body == nil then req.max_body = o.max_body end
  if req.transport == nil then req.transport = o.transport end -- "ngx"|"curl"|nil: engine.request picks
  local s = vault.secrets[p]
  if req.proxy == nil then req.proxy = s.proxy end
  if req.no_proxy == nil then req.no_proxy = o.no_proxy end
  if req.client_cert == nil and o.client_cert then
    req.client_cert, req.client_key = o.client_cert, s.client_key
    req.client_key_password = s.client_key_password
  end
  local watch = global_hook ~= nil or o.on_http ~= nil
  local policy = o.retry
  if policy == false or req.no_retry then
    if watch then return watched(p, req, 1) end
    return engine.request(req)
  end
  local only_429 = req.api and not IDEMPOTENT[req.method or "GET"]
  req.no_retry, req.api = nil, nil
  return (policy or retry.default):run(function(attempt)
    local res, err
    if watch then res, err = watched(p, req, attempt) else res, err = engine.request(req) end
    if only_429 and not (res and res.status == 429) then return res, err, true end
    return res, err
  end, engine.sleep)
end

--- Send `req` (engine.request's table; `api = true` for an API call,
-- `no_retry = true` for none) with the provider's settings. A transport
-- error comes back scrubbed of the provider's secrets (a proxy's
-- credentials, which libcurl may quote) and naming the proxy it went
-- through.
-- @return res or nil, err
function M.call(p, req)
  local res, err = send(p, req)
  -- scrubbed first: a proxy user name could be a word of the note below
  if err then err = vault.scrub(p, err) end
  if p.options.proxy then res, err = proxy_failure(p, req, res, err) end
  return res, err
end

return M
