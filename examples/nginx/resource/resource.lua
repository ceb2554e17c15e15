--- The resource-server example's Lua: every request to /api/ must carry a
-- JWT access token (RFC 9068) from the issuer, for this audience, with the
-- scope this server needs; /introspected/ asks the issuer about an opaque
-- token instead (RFC 7662). A refused request gets 401 or 403 with a
-- WWW-Authenticate challenge; an accepted one goes upstream with the
-- token's subject and client in X-Auth-Sub and X-Auth-Client.
-- luacheck: globals ngx
local smartauth = require "smartauth"

local M = {}

local jwt_provider, introspector
local audience, scope, realm

--- init_worker_by_lua: make the providers (nothing is sent yet: the
-- discovery document and the key set are fetched over cosockets by the
-- first request that needs them, then kept; a key set refetch is
-- rate-limited).
function M.init()
  local issuer = os.getenv("SMARTAUTH_ISSUER")
  audience = os.getenv("SMARTAUTH_AUDIENCE")
  scope = os.getenv("SMARTAUTH_SCOPE")
  realm = os.getenv("SMARTAUTH_REALM") or "api"
  jwt_provider = assert(smartauth.provider {
    issuer = issuer,
    client_id = os.getenv("SMARTAUTH_CLIENT_ID"),
    -- the claims of an accepted token, per worker, by the token's SHA-256,
    -- until its exp: a repeated token costs no signature check
    verified_cache = { max_entries = 10000 },
  })
  introspector = assert(smartauth.provider {
    issuer = issuer,
    client_id = os.getenv("SMARTAUTH_CLIENT_ID"),
    client_secret = os.getenv("SMARTAUTH_CLIENT_SECRET"),
    -- positive answers kept until the token's exp, at most 60 s: a revoked
    -- token is accepted for up to a minute more
    introspection_cache = { max_entries = 10000, max_ttl = 60 },
  })
end

-- The bearer token of the request (RFC 6750 §2.1), or nil. One
-- Authorization header only, scheme without case, token68 characters.
local function bearer()
  local h = ngx.var.http_authorization
  if not h then return nil end
  return h:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +([%w%-%._~%+/]+=*)$")
end

local function refuse(err)
  local value, status = smartauth.www_authenticate(err, { realm = realm, scope = scope })
  ngx.header["WWW-Authenticate"] = value
  return ngx.exit(status)
end

local function pass(sub, client)
  ngx.req.set_header("X-Auth-Sub", sub)
  ngx.req.set_header("X-Auth-Client", client)
end

--- access_by_lua for /api/: a JWT access token, checked here.
function M.jwt()
  local token = bearer()
  if not token then return refuse(nil) end
  local claims, err = jwt_provider:verify_access_token(token, { audience = audience, scope = scope })
  if not claims then
    if err.kind ~= "validation" then
      -- the key set could not be had: not the client's fault
      ngx.log(ngx.ERR, "smartauth: cannot check access tokens: ", tostring(err))
      return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    return refuse(err)
  end
  pass(claims.sub, claims.client_id)
end

--- access_by_lua for /introspected/: any token the issuer vouches for.
function M.introspect()
  local token = bearer()
  if not token then return refuse(nil) end
  local info, err = introspector:introspect(token)
  if not info then
    ngx.log(ngx.ERR, "smartauth: introspection failed: ", tostring(err))
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  if not info.active then
    return refuse { kind = "validation", check = "active" }
  end
  local have = {}
  for w in (type(info.scope) == "string" and info.scope or ""):gmatch("%S+") do have[w] = true end
  for w in (scope or ""):gmatch("%S+") do
    if not have[w] then return refuse { kind = "validation", check = "scope", scope = scope } end
  end
  pass(info.sub or "", info.client_id or "")
end

return M
