--- A provider's HTTP calls: its timeouts, CA file and size limit on every
-- request, and its retry policy around engine.request (which yields inside
-- a task). Token requests are safe to retry; API calls with other methods
-- than the idempotent ones are retried on 429 only. With a debug hook (the
-- provider's option `on_http`, or smartauth.on_http) every attempt becomes
-- one event, redacted by wire.lua; without one nothing more is done.
local core = require "smartauth.core"
local engine = require "smartauth.engine"
local retry = require "smartauth.retry"

local M = {}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

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

--- Send `req` (engine.request's table; `api = true` for an API call,
-- `no_retry = true` for none) with the provider's settings.
-- @return res or nil, err
function M.call(p, req)
  local o = p.options
  if req.timeout == nil then req.timeout = o.timeout end
  if req.connect_timeout == nil then req.connect_timeout = o.connect_timeout end
  if req.ca_file == nil then req.ca_file = o.ca_file end
  if req.max_body == nil then req.max_body = o.max_body end
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

return M
