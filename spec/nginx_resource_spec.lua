-- #nginx The resource-server example (examples/nginx/resource) in a real nginx
-- against oidc-provider: JWT access tokens (RFC 9068, RS256) checked in the access phase
-- with the key set fetched over cosockets, introspected opaque tokens with the cache,
-- 401/403 with WWW-Authenticate, hostile Authorization headers.
local nginx_lua = require "helpers.nginx_lua"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"
local server = require "helpers.server"
local smartauth = require "smartauth"
local core = require "smartauth.core"

local available, why = nginx_lua.available()
local EXAMPLE = "examples/nginx/resource/nginx.conf"
local EXAMPLE_PATH = (function()
  local _, _, cwd = proc.run("pwd")
  return cwd:gsub("%s+$", "") .. "/examples/nginx/resource/?.lua"
end)()
local EXT = "spec/interop/ext/nginx.js"
local SECRET = "s3cret: %+ x" -- basic-client's

local function get(url, headers)
  local status, h, body = oidc.request { url = url, headers = headers }
  return status, h, body
end

local function bearer(t) return { authorization = "Bearer " .. t } end

local function counts(op)
  local _, c = oidc.request_json(op.issuer .. "/test/counts")
  return c
end

describe("#nginx the resource-server example", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end

  local op, up, n, cc
  setup(function()
    op = oidc.start { extend = EXT }
    up = server.start()
    n = nginx_lua.start { conf = EXAMPLE, path = EXAMPLE_PATH, env = {
      SMARTAUTH_ISSUER = op.issuer, SMARTAUTH_AUDIENCE = op.resource_server, SMARTAUTH_SCOPE = "api:read",
      SMARTAUTH_CLIENT_ID = "basic-client", SMARTAUTH_CLIENT_SECRET = SECRET,
    }, subs = {
      { "worker_processes %d+;", "worker_processes 1;" },
      { "server 127%.0%.0%.1:9000;", "server 127.0.0.1:" .. up.port .. ";" },
    } }
    cc = assert(smartauth.discover(op.issuer, { client_id = "basic-client", client_secret = SECRET }))
  end)
  teardown(function()
    if n then n:stop() end
    if up then up:stop() end
    if op then op:stop() end
  end)
  before_each(function() up:reset() end)

  local function jwt(scope)
    return assert(cc:grant("client_credentials", { scope = scope or "api:read", resource = op.resource_server }))
      .access_token
  end
  local function opaque(scope)
    return assert(cc:grant("client_credentials", { scope = scope or "api:read" })).access_token
  end

  local function refused(status, path, headers, want_error)
    local st, h, body = get(n.url .. path, headers)
    assert.are.equal(status, st, body .. n:error_log())
    local www = h["www-authenticate"]
    assert.truthy(www, "no WWW-Authenticate")
    assert.matches('^Bearer realm="api"', www)
    if want_error then
      assert.matches('error="' .. want_error .. '"', www, 1, true)
    else
      assert.is_nil(www:find("error=", 1, true))
    end
    return www
  end

  it("passes a JWT access token from oidc-provider, with its subject and client, to the upstream", function()
    up:script("/api/items", { json = { items = {} } }, 3)
    local at = jwt()
    assert.are.equal(3, select(2, at:gsub("%.", "")) + 1)
    for _ = 1, 3 do
      local hs = bearer(at)
      hs["x-auth-sub"] = "mallory" -- replaced, never passed on
      local st, _, body = get(n.url .. "/api/items", hs)
      assert.are.equal(200, st, body .. n:error_log())
      assert.are.equal('{"items":{}}', body)
    end
    local reqs = up:requests()
    assert.are.equal(3, #reqs)
    for _, r in ipairs(reqs) do
      assert.are.equal("basic-client", r.headers["x-auth-client"])
      assert.are.equal("basic-client", r.headers["x-auth-sub"])
    end
  end)

  it("answers 401 with the challenge alone to a request without a token", function()
    local www = refused(401, "/api/items", nil)
    assert.matches('scope="api:read"', www, 1, true)
    refused(401, "/api/items", { authorization = "Basic YTpi" })
    assert.are.equal(0, #up:requests())
  end)

  it("answers 403 insufficient_scope to a token without the scope", function()
    local www = refused(403, "/api/items", bearer(jwt("api:write")), "insufficient_scope")
    assert.matches('scope="api:read"', www, 1, true)
    assert.are.equal(0, #up:requests())
  end)

  it("answers 401 invalid_token to a forged, an opaque or a garbage token, without echoing it", function()
    local at = jwt()
    local h, c, s = at:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local forged = h .. "." .. c .. "." .. (s:sub(1, 1) == "A" and "B" or "A") .. s:sub(2)
    local www = refused(401, "/api/items", bearer(forged), "invalid_token")
    assert.matches("signature", www)
    assert.is_nil(www:find(s:sub(2, 20), 1, true))
    -- another audience's claims under the same signature
    local claims = oidc.b64url_decode(c):gsub("rs%.example", "xx.example")
    assert.matches("xx.example", claims, 1, true)
    www = refused(401, "/api/items", bearer(h .. "." .. core.b64url_encode(claims) .. "." .. s), "invalid_token")
    assert.matches("signature", www)
    refused(401, "/api/items", bearer(opaque()), "invalid_token")
    refused(401, "/api/items", bearer("a.b.c"), "invalid_token")
    refused(401, "/api/items", bearer(("A"):rep(6000) .. ".e30.AA"), "invalid_token")
    -- not token68: no token at all
    refused(401, "/api/items", { authorization = "Bearer a b" })
    refused(401, "/api/items", { authorization = "Bearer " })
    refused(401, "/api/items", { authorization = "Bearer\t" .. at })
    assert.are.equal(0, #up:requests())
    assert.is_nil(n:error_log():find(s, 1, true))
  end)

  it("introspects an opaque token once, caches the answer, and refuses inactive ones every time", function()
    up:script("/introspected/x", { json = { ok = true } }, 4)
    local before = counts(op).introspection
    local at = opaque()
    for _ = 1, 4 do
      local st, _, body = get(n.url .. "/introspected/x", bearer(at))
      assert.are.equal(200, st, body .. n:error_log())
    end
    assert.are.equal(before + 1, counts(op).introspection)
    assert.are.equal("basic-client", up:requests()[1].headers["x-auth-client"])
    -- a token the provider does not know: inactive, asked about each time
    refused(401, "/introspected/x", bearer("not-a-token-of-theirs"), "invalid_token")
    refused(401, "/introspected/x", bearer("not-a-token-of-theirs"), "invalid_token")
    assert.are.equal(before + 3, counts(op).introspection)
    refused(403, "/introspected/x", bearer(opaque("api:write")), "insufficient_scope")
    refused(401, "/introspected/x", nil)
    assert.are.equal(4, #up:requests())
  end)
end)
