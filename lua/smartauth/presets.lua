--- Internal: Presets: a service's data (endpoints, client authentication, default
-- grant) merged under the user's options, then the generic provider.
-- @module smartauth.presets
local errors = require "smartauth.errors"
local provider = require "smartauth.provider"

local M = {}

M.NAMES = { "smartfile", "smartconnect", "smartsense", "smarttask" }

--- Build the named preset. Options given by the user always win over the
-- preset's, endpoints included.
function M.build(name, opts)
  if type(opts) ~= "table" then
    errors.argerror(1, name, "table expected", opts, 3)
  end
  local preset = require("smartauth.providers." .. name)
  local where = "smartauth." .. name
  local extra = preset.extra_options or {}
  local base = {}
  for k, v in pairs(opts) do
    if extra[k] then
      if type(v) ~= extra[k] then
        return nil, errors.new("config", where .. ": option '" .. k .. "' must be a " .. extra[k],
          { option = k })
      end
    elseif provider.SCHEMA[k] == nil then
      -- let the generic check name the unknown key
      base[k] = v
    else
      base[k] = v
    end
  end
  if preset.validate then
    local ok, msg = preset.validate(opts)
    if not ok then return nil, errors.new("config", where .. ": " .. msg) end
  end
  local merged = {}
  for k, v in pairs(preset.defaults) do merged[k] = v end
  for k, v in pairs(preset.endpoints(opts)) do merged[k] = v end
  for k, v in pairs(base) do merged[k] = v end
  if preset.adjust then preset.adjust(merged, opts) end
  local kept = {}
  for k in pairs(extra) do kept[k] = opts[k] end
  kept.preset = name
  return provider.new(merged, where, kept)
end

return M
