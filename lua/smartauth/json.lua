--- Decoding outside JSON: one guarded place, so every response handler
-- treats bodies the same way.
local cjson = require "cjson.safe"

local M = {}

--- The JSON object in s as a table, or nil for anything else: not a
-- string, invalid JSON, or a JSON value that is not an object (an array,
-- a string, a number). cjson cannot tell {} from [], so the first
-- non-space character decides.
function M.object(s)
  if type(s) ~= "string" or not s:match("^%s*{") then return nil end
  local t = cjson.decode(s)
  if type(t) ~= "table" then return nil end
  return t
end

return M
