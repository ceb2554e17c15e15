--- The Lua face of the core's HTTP engine: one engine per Lua state, so
-- every provider shares one connection cache, and failures become error
-- objects.
local core = require "smartauth.core"
local errors = require "smartauth.errors"

local M = {}

local engine

--- The engine shared by this Lua state (created on first use).
function M.engine()
  if not engine then
    local e, _, msg = core.engine()
    if not e then error("smartauth: cannot create HTTP engine: " .. tostring(msg), 2) end
    engine = e
  end
  return engine
end

local KIND = { network = "network", tls = "tls", timeout = "timeout", http = "http" }

--- Turn the core's `nil, kind, message, code` into an error object.
function M.core_error(kind, msg, code)
  local k = KIND[kind] or (kind == "argument" and "config") or "network"
  return errors.new(k, msg, { curl_code = code })
end

--- Perform one request. opts: method, url, headers (list of "Name: value"),
-- body, timeout, connect_timeout (seconds), max_body, ca_file.
-- Returns {status, headers, body} or nil, err. Any HTTP status is a
-- response; only transport failures are errors.
function M.request(opts)
  local res, kind, msg, code = M.engine():request(opts)
  if not res then return nil, M.core_error(kind, msg, code) end
  return res
end

return M
