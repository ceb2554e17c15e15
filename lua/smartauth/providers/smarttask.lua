--- Internal: SmartTask: authorization code + OpenID Connect; the other endpoints come
-- from its discovery document. Native and CLI apps may use the
-- out-of-band redirect URI.
-- @module smartauth.providers.smarttask
local M = {}

M.OOB = require("smartauth.url").OOB

M.defaults = {
  name = "smarttask",
  issuer = "https://auth.smarttask.io",
  userinfo_endpoint = "https://auth.smarttask.io/openid_connect/userinfo",
  discovery_url = "https://auth.smarttask.io/.well-known/openid-configuration",
  scope = "openid",
  grant = "authorization_code",
}

-- Another issuer (a staging tenant, a test server) has its own discovery
-- document and userinfo endpoint: SmartTask's must not leak onto it.
function M.adjust(merged, opts)
  if opts.issuer and opts.issuer ~= M.defaults.issuer then
    if opts.discovery_url == nil then merged.discovery_url = nil end
    if opts.userinfo_endpoint == nil then merged.userinfo_endpoint = nil end
  end
end

function M.endpoints()
  return {}
end

return M
