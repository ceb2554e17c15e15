--- SmartTask: authorization code + OpenID Connect; the other endpoints come
-- from its discovery document. Native and CLI apps may use the
-- out-of-band redirect URI.
local M = {}

M.OOB = "urn:ietf:wg:oauth:2.0:oob"

M.defaults = {
  name = "smarttask",
  issuer = "https://auth.smarttask.io",
  userinfo_endpoint = "https://auth.smarttask.io/openid_connect/userinfo",
  discovery_url = "https://auth.smarttask.io/.well-known/openid-configuration",
  scope = "openid",
  grant = "authorization_code",
}

function M.endpoints()
  return {}
end

return M
