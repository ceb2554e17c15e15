--- Decoding outside JSON: one guarded place, so every response handler
-- treats bodies the same way.
local core = require "smartauth.core"

local M = {}

--- The JSON object in s as a table, or nil for anything else: not a
-- string, invalid JSON, or a JSON value that is not an object (an array,
-- a string, a number). The core's strict parser (csrc/json.c): null is
-- cjson.null, integers that fit are Lua integers, depth is bounded.
function M.object(s)
  if type(s) ~= "string" then return nil end
  return (core.json_decode(s, true))
end

--- Any JSON value, or nil, message.
M.decode = core.json_decode

return M
