--- Error objects: every runtime failure is returned as `nil, err` where err
-- is one of these. `tostring(err)` reads well and never shows a secret.
local M = {}

local KINDS = {
  oauth = true, http = true, network = true, tls = true, timeout = true,
  validation = true, config = true, storage = true,
}
M.KINDS = KINDS

local Error = { __name = "smartauth.error" }
Error.__index = Error

function Error:__tostring()
  local parts = { "smartauth " .. self.kind .. " error" }
  if self.code then parts[#parts + 1] = " " .. tostring(self.code) end
  if self.status then parts[#parts + 1] = " (HTTP " .. tostring(self.status) .. ")" end
  if self.description and self.description ~= "" then
    parts[#parts + 1] = ": " .. self.description
  end
  return table.concat(parts)
end

-- Statuses a client may retry: request timeout, rate limiting and the
-- gateway family. The retry policies use the same table.
local RETRY_STATUS = { [408] = true, [429] = true, [502] = true, [503] = true, [504] = true }
M.RETRY_STATUS = RETRY_STATUS

--- Make an error object.
-- @param kind one of oauth, http, network, tls, timeout, validation, config, storage
-- @param description human-readable text (must not contain secrets)
-- @param fields optional table: code, status, retryable, retry_after, headers
function M.new(kind, description, fields)
  if not KINDS[kind] then error("unknown error kind '" .. tostring(kind) .. "'", 2) end
  local e = setmetatable({ kind = kind, description = description }, Error)
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  if e.retryable == nil then
    if kind == "network" or kind == "timeout" then
      e.retryable = true
    elseif e.status and RETRY_STATUS[e.status] then
      e.retryable = true
    elseif kind == "oauth" and e.code == "temporarily_unavailable" then
      e.retryable = true
    else
      e.retryable = false
    end
  end
  return e
end

--- Is v an error object?
function M.is(v)
  return getmetatable(v) == Error
end

-- Replace every occurrence of each secret in s; secrets shorter than 4
-- characters are left alone (they would mangle ordinary text).
function M.scrub(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= 4 then
      local start = 1
      while true do
        local i, j = s:find(secret, start, true)
        if not i then break end
        s = s:sub(1, i - 1) .. "[redacted]" .. s:sub(j + 1)
        start = i + 10
      end
    end
  end
  return s
end

--- Show a secret as its first characters and its length only.
function M.redact(secret)
  if type(secret) ~= "string" then return tostring(secret) end
  if #secret <= 8 then return "[" .. #secret .. " chars]" end
  return secret:sub(1, 4) .. "…[" .. #secret .. " chars]"
end

return M
