--- Internal: JSON in and out: the only module that uses lua-cjson (its `safe`
-- flavour: bad input is `nil, err`, never an error raised), so every
-- response handler treats bodies the same way.
-- @module smartauth.json
local cjson = require "cjson.safe"

local M = {}

--- What JSON null decodes to (and encodes from).
M.null = cjson.null

--- Encode a value: the JSON text, or nil, err (a function, NaN, a cycle ...).
M.encode = cjson.encode

--- Decode any JSON text: the value, or nil, err.
M.decode = cjson.decode

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
