-- Interop, dynamic client registration (RFC 7591, RFC 7592) against oidc-provider
-- (spec/interop/ext/register.js: registration with a fixed initial access token,
-- management with the registration access token rotated on each update): register,
-- discover with reg:options(), client credentials and the code flow with the registered
-- client, read, update, delete; RFC 8414 discovery by its own well-known name.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"

describe("#interop dynamic registration against oidc-provider", function()
  local op

  setup(function()
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/register.js" }
  end)
  teardown(function() if op then op:stop() end end)

  local SERVICE = { client_name = "svc", grant_types = { "client_credentials" }, response_types = {},
    redirect_uris = {}, token_endpoint_auth_method = "client_secret_basic", scope = "api:read api:write" }

  it("registers a confidential client that gets tokens, then reads, updates and deletes it", function()
    local reg = assert(smartauth.register(op.issuer, SERVICE, { initial_access_token = op.initial_access_token }))
    assert.is_string(reg.client_id)
    assert.is_string(reg.client_secret)
    assert.equal(0, reg.client_secret_expires_at)
    assert.equal(op.issuer .. "/reg/" .. reg.client_id, reg.registration_client_uri)
    local rat1 = reg.registration_access_token
    assert.is_string(rat1)

    local p = assert(smartauth.discover(op.issuer, assert(reg:options())))
    assert.equal("basic", p.options.client_auth)
    local tok = assert(p:client_credentials { scope = "api:read", resource = op.resource })
    assert.equal("api:read", tok.scope)

    assert.equal(reg, assert(reg:read()))
    assert.equal("svc", reg.metadata.client_name)

    local md = {}
    for k, v in pairs(SERVICE) do md[k] = v end
    md.client_name = "svc v2"
    assert(reg:update(md))
    assert.equal("svc v2", reg.metadata.client_name)
    assert.is_string(reg.registration_access_token)
    assert.not_equal(rat1, reg.registration_access_token) -- rotated, and the new one works
    assert(reg:read())

    local id = reg.client_id
    assert.is_true(reg:delete())
    -- the client is gone: its secret no longer gets tokens
    local gone = assert(smartauth.discover(op.issuer, { client_id = id, client_secret = "whatever" }))
    local none, err = gone:client_credentials()
    assert.is_nil(none)
    assert.equal("invalid_client", err.code)
  end)

  it("registers a public native client that logs a person in with PKCE", function()
    local reg = assert(smartauth.register(op.issuer, { client_name = "cli", application_type = "native",
      redirect_uris = { "http://127.0.0.1/callback" }, grant_types = { "authorization_code", "refresh_token" },
      response_types = { "code" }, token_endpoint_auth_method = "none" },
      { initial_access_token = op.initial_access_token }))
    assert.is_nil(reg.client_secret)
    local o = assert(reg:options { scope = "openid email" })
    assert.equal("none", o.client_auth)
    local p = assert(smartauth.discover(op.issuer, o))
    local u, session = assert(p:authorization_url())
    local redirect = op:login(u, { login = "alice", password = "x" })
    local tok = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("alice", tok.claims.sub)
    assert.equal(reg.client_id, tok.claims.aud)
  end)

  it("refuses a wrong initial access token, and bad metadata with the server's code", function()
    local reg, err = smartauth.register(op.issuer, SERVICE, { initial_access_token = "wrong" })
    assert.is_nil(reg)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_token", err.code)
    reg, err = smartauth.register(op.issuer, { redirect_uris = { "not a url" } },
      { initial_access_token = op.initial_access_token })
    assert.is_nil(reg)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_redirect_uri", err.code)
  end)

  it("finds the server by RFC 8414's name too, and registers inside smartauth.spawn", function()
    local p = assert(smartauth.discover(op.issuer, { discovery = "oauth" }))
    assert.is_string(p:metadata().registration_endpoint)
    local out, e
    smartauth.spawn(function()
      local reg, err = smartauth.register(p:metadata(), SERVICE, { initial_access_token = op.initial_access_token })
      if not reg then e = err; return end
      local c = assert(smartauth.provider(assert(reg:options())))
      out = c:client_credentials { scope = "api:write", resource = op.resource }
      assert(reg:delete())
    end)
    smartauth.run()
    assert(out, e)
    assert.equal("api:write", out.scope)
  end)
end)
