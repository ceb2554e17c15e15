--- Internal: Option-table validation shared by every constructor: unknown keys and
-- wrong types are config errors that name the option.
-- @module smartauth.options
local compat = require "smartauth.compat"
local errors = require "smartauth.errors"
local url = require "smartauth.url"

local M = {}

-- The default options of a retry policy (`smartauth.retry.DEFAULTS`): here,
-- so the store lock's ttl needs no retry module before the first request.
M.RETRY_DEFAULTS = { attempts = 3, base = 0.5, max_delay = 30, budget = 60 }

local HUGE = math.huge

local function bad(where, key, msg)
  return nil, errors.new("config", where .. ": option '" .. key .. "' " .. msg, { option = key })
end

--- Validate opts against schema {key = spec}; spec is a type name
-- ("string", "number", "boolean", "table", "function", "url", "any") or a
-- table {type=, enum=, min=, max=, integer=}. A number must be finite (NaN
-- passes both `v < min` and `v > max`, and C cannot convert either); with
-- integer = true it must be integral and comes back as a Lua integer.
-- Returns a shallow copy or nil, err.
function M.check(where, opts, schema, allow_http)
  local out = {}
  for k, v in pairs(opts) do
    local spec = schema[k]
    if spec == nil then
      local names = {}
      for name in pairs(schema) do names[#names + 1] = name end
      table.sort(names)
      -- a close match makes typos obvious
      local hint = ""
      if type(k) == "string" then
        for _, name in ipairs(names) do
          if name:lower() == k:lower() or name:gsub("_", "") == k:gsub("_", "") then
            hint = " (did you mean '" .. name .. "'?)"
          end
        end
      end
      return bad(where, tostring(k), "is not known" .. hint)
    end
    if type(spec) == "string" then spec = { type = spec } end
    local t = spec.type
    if t == "url" then
      if type(v) ~= "string" then return bad(where, k, "must be a URL string") end
      local ok, msg = url.check_endpoint(v, allow_http)
      if not ok then return bad(where, k, "is not a usable URL: " .. msg) end
    elseif t ~= "any" and type(v) ~= t then
      return bad(where, k, "must be a " .. t .. " (got " .. type(v) .. ")")
    end
    if spec.enum then
      local okv = false
      for _, e in ipairs(spec.enum) do if e == v then okv = true end end
      if not okv then
        return bad(where, k, "must be one of " .. table.concat(spec.enum, ", ") ..
          " (got '" .. tostring(v) .. "')")
      end
    end
    if type(v) == "number" then
      if v ~= v or v == HUGE or v == -HUGE then return bad(where, k, "must be a finite number") end
      if spec.integer then
        local i = compat.tointeger(v)
        if not i then return bad(where, k, "must be an integer (got " .. tostring(v) .. ")") end
        v = i
      end
      if spec.min and v < spec.min then return bad(where, k, "must be at least " .. spec.min) end
      if spec.max and v > spec.max then return bad(where, k, "must be at most " .. spec.max) end
    end
    out[k] = v
  end
  return out
end

--- An empty options table for a call without options: read-only, so a
-- callee cannot write into a table every call shares.
M.NO_OPTS = setmetatable({}, { __newindex = function() error("read-only", 2) end })

--- The options argument of a method: nil means none; anything but a table
-- is a programming mistake, raised at the caller's caller.
function M.call_opts(opts, fname)
  if opts == nil then return M.NO_OPTS end
  if type(opts) ~= "table" then
    errors.argerror(1, fname, "table expected", opts, 3)
  end
  return opts
end

return M
