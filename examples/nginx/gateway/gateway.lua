--- The gateway example's Lua: one client-credentials provider per worker,
-- its token kept in the shared dictionary "smartauth" (so the workers share
-- one token and one of them renews it), attached to each proxied request.
-- luacheck: globals ngx
local smartauth = require "smartauth"

local M = {}

local provider
local last_token, header -- the header string, made once per token

--- init_worker_by_lua: make the provider (nothing is sent yet).
function M.init()
  local store = assert(smartauth.store.shdict { dict = "smartauth" })
  provider = assert(smartauth.provider {
    token_endpoint = os.getenv("SMARTAUTH_TOKEN_ENDPOINT"),
    client_id = os.getenv("SMARTAUTH_CLIENT_ID"),
    client_secret = os.getenv("SMARTAUTH_CLIENT_SECRET"),
    scope = os.getenv("SMARTAUTH_SCOPE"),
    grant = "client_credentials",
    store = store,
  })
end

--- access_by_lua: a valid token (cached, or renewed by one worker while
-- the others wait for it) as the upstream request's Authorization header.
function M.access()
  local tok, err = provider:token()
  if not tok then
    ngx.log(ngx.ERR, "smartauth: no token for the upstream: ", tostring(err))
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  if tok ~= last_token then
    last_token, header = tok, "Bearer " .. tok.access_token
  end
  ngx.req.set_header("Authorization", header)
end

return M
