--- Internal: SmartFile: per-customer domain; OAuth2 authorization code (client id and
-- secret in the form) or HTTP Basic with an API key and password.
-- @module smartauth.providers.smartfile
local M = {}

M.defaults = { name = "smartfile", client_auth = "post" }

function M.endpoints(opts)
  local d = opts.domain
  return {
    authorization_endpoint = "https://" .. d .. "/oauth2/authorize/",
    token_endpoint = "https://" .. d .. "/oauth2/token/",
    api_base = "https://" .. d .. "/api/2/",
  }
end

M.extra_options = { domain = "string" }

-- API-key mode has no OAuth client, so no client authentication and no
-- grant; OAuth mode is an authorization-code service (a person logs in).
function M.adjust(merged, opts)
  if opts.api_key and opts.client_auth == nil then merged.client_auth = "none" end
  if merged.grant == nil then merged.grant = opts.api_key and "none" or "authorization_code" end
end

-- A host name only: a slash, '@' or scheme would send credentials elsewhere.
function M.validate(opts)
  local d = opts.domain
  if d == nil then return nil, "option 'domain' is required (your SmartFile site, e.g. example.smartfile.com)" end
  if not d:match("^[%w][%w.-]*[%w]$") or d:find("..", 1, true) then
    return nil, "option 'domain' must be a host name like example.smartfile.com"
  end
  if opts.api_key and opts.client_id then
    return nil, "give either api_key/api_password or client_id/client_secret, not both"
  end
  return true
end

return M
