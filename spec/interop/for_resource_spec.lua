-- Interop, the resource-discovery flow end to end (RFC 9728 → discovery → RFC 7591 →
-- RFC 8707 tokens) against oidc-provider and the protected resource of
-- spec/interop/ext/register.js, which answers a call without a valid token with
-- `401 WWW-Authenticate: Bearer resource_metadata="..."` and keeps no well-known copy of
-- its metadata: smartauth.for_resource finds everything from the resource's URL.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"
local cjson = require "cjson.safe"

describe("#interop smartauth.for_resource against oidc-provider", function()
  local op

  setup(function()
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/register.js" }
  end)
  teardown(function() if op then op:stop() end end)

  it("registers a public client, logs a person in with PKCE and the resource, calls the API", function()
    local p, reg = smartauth.for_resource(op.resource, { initial_access_token = op.initial_access_token })
    assert(p, reg)
    assert.equal(reg.client_id, p.options.client_id)
    assert.equal("none", p.options.client_auth)
    assert.equal(op.resource, p.options.resource)
    assert.equal("api:read", p.options.scope) -- the metadata's scopes_supported
    assert.equal(op.issuer, p:endpoint("issuer"))
    local u, session = assert(p:authorization_url())
    assert.truthy(u:find("code_challenge_method=S256", 1, true))
    local redirect = op:login(u, { login = "alice", password = "x" })
    local tok = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("api:read", tok.scope)
    local res = assert(p:request { url = op.resource })
    assert.equal(200, res.status)
    local body = cjson.decode(res.body)
    assert.is_true(body.ok)
    assert.equal(reg.client_id, body.client_id)
    -- a path that needs api:write: log in again with the union of the scopes
    local none, err = p:request { url = op.resource .. "/admin" }
    assert.is_nil(none)
    assert.equal("insufficient_scope", err.code)
    assert.is_true(err.reauth)
    assert.equal("api:read api:write", err.scope)
    u, session = assert(p:authorization_url { scope = err.scope })
    redirect = op:login(u, { login = "alice", password = "x" })
    assert(p:exchange_code { url = redirect, session = session })
    res = assert(p:request { url = op.resource .. "/admin" })
    assert.equal(200, res.status)
  end)

  it("without a token, the resource answers 401 naming its metadata", function()
    local p = assert(smartauth.provider { token_endpoint = op.issuer .. "/token" })
    local res = assert(p:request { url = op.resource, token = "not-a-token" })
    assert.equal(401, res.status)
    assert.equal('Bearer error="invalid_token", resource_metadata="' .. op.resource_metadata .. '"',
      res.headers["www-authenticate"])
  end)

  it("a registered service client steps up by itself, inside smartauth.spawn", function()
    local out, e, reqs = nil, nil, {}
    smartauth.spawn(function()
      local p, err = smartauth.for_resource(op.resource, {
        initial_access_token = op.initial_access_token, scope = "api:read",
        on_http = function(ev)
          -- the authorization server's document may be cached by the test before
          if not ev.url:find("openid-configuration", 1, true) then
            reqs[#reqs + 1] = ev.method .. " " .. ev.url:gsub("%?.*", "")
          end
        end,
        client_metadata = { client_name = "svc", grant_types = { "client_credentials" }, response_types = {},
          redirect_uris = {}, token_endpoint_auth_method = "client_secret_basic" },
      })
      if not p then e = err; return end
      assert.equal("client_credentials", p:default_grant())
      out, e = p:request { url = op.resource .. "/admin" }
    end)
    smartauth.run()
    assert(out, tostring(e))
    assert.equal(200, out.status)
    assert.equal("api:read api:write", cjson.decode(out.body).scope)
    local I = op.issuer
    assert.same({
      "GET " .. I .. "/.well-known/oauth-protected-resource/rs/api", -- absent
      "GET " .. op.resource,                                         -- 401 resource_metadata
      "GET " .. op.resource_metadata,
      "POST " .. I .. "/reg",
      "POST " .. I .. "/token",                                      -- api:read
      "GET " .. op.resource .. "/admin",                             -- 403 insufficient_scope
      "POST " .. I .. "/token",                                      -- api:read api:write
      "GET " .. op.resource .. "/admin",
    }, reqs)
  end)
end)
