--- A provider's HTTP calls: its timeouts, CA file and size limit on every
-- request, and its retry policy around engine.request (which yields inside
-- a task). Token requests are safe to retry; API calls with other methods
-- than the idempotent ones are retried on 429 only.
local engine = require "smartauth.engine"
local retry = require "smartauth.retry"

local M = {}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

--- Send `req` (engine.request's table; `api = true` for an API call,
-- `no_retry = true` for none) with the provider's settings.
-- @return res or nil, err
function M.call(p, req)
  local o = p.options
  if req.timeout == nil then req.timeout = o.timeout end
  if req.connect_timeout == nil then req.connect_timeout = o.connect_timeout end
  if req.ca_file == nil then req.ca_file = o.ca_file end
  if req.max_body == nil then req.max_body = o.max_body end
  local policy = o.retry
  if policy == false or req.no_retry then return engine.request(req) end
  local only_429 = req.api and not IDEMPOTENT[req.method or "GET"]
  req.no_retry, req.api = nil, nil
  return (policy or retry.default):run(function()
    local res, err = engine.request(req)
    if only_429 and not (res and res.status == 429) then return res, err, true end
    return res, err
  end, engine.sleep)
end

return M
