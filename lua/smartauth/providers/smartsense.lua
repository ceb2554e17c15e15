--- Internal: SmartSense: client credentials (RFC 6749 §4.4), id and secret in HTTP
-- Basic, JSON asked for explicitly.
-- @module smartauth.providers.smartsense
local M = {}

M.defaults = {
  name = "smartsense", client_auth = "basic", grant = "client_credentials",
  token_endpoint = "https://api.smartsense.co/auth/oauth",
}

function M.endpoints()
  return {}
end

return M
