--- Internal: SmartConnect: resource-owner password grant against the region's /token.
-- @module smartauth.providers.smartconnect
local M = {}

M.REGIONS = {
  NA = "apina", NA2 = "apina2", NA3 = "apina3", UK = "apieuk",
  EU = "apieuw", EU2 = "apieuw2", AU = "apiau",
}

M.defaults = { name = "smartconnect", client_auth = "post", grant = "password" }

M.extra_options = { region = "string" }

local function region_list()
  local names = {}
  for k in pairs(M.REGIONS) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

function M.validate(opts)
  if opts.region == nil then
    if opts.token_endpoint then return true end
    return nil, "option 'region' is required (one of " .. region_list() .. ")"
  end
  if not M.REGIONS[opts.region:upper()] then
    return nil, "unknown region '" .. opts.region .. "' (valid: " .. region_list() .. ")"
  end
  return true
end

function M.endpoints(opts)
  if not opts.region then return {} end
  return { token_endpoint = "https://" .. M.REGIONS[opts.region:upper()] .. ".smartconnect.com/token" }
end

return M
