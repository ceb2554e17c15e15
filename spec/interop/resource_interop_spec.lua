-- Interop, resource servers: RFC 9068 JWT access tokens that oidc-provider issued for an
-- RFC 8707 resource (spec/interop/ext/resource.js) verified by p:verify_access_token,
-- their challenges, and the introspection cache counted in the requests oidc-provider
-- received (its /test/counts), blocking and inside smartauth.spawn.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"

describe("#interop resource servers against oidc-provider", function()
  local op, RS, PS

  setup(function()
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/resource.js" }
    RS, PS = op.resource_servers.es256, op.resource_servers.ps256
  end)
  teardown(function() if op then op:stop() end end)

  local function discover(extra)
    local o = { client_id = "basic-client", client_secret = "s3cret: %+ x" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  local function introspections()
    local status, body = oidc.request_json(op.issuer .. "/test/counts")
    assert.equal(200, status)
    return body.introspection
  end

  -- A JWT access token for `resource` (client credentials; `resource` sent as a form
  -- parameter of the grant).
  local function jwt_token(p, resource, scope)
    local tok = assert(p:client_credentials { scope = scope or "api:read", resource = resource })
    assert.equal(3, select(2, tok.access_token:gsub("%.", "")) + 1)
    return tok
  end

  it("verifies an ES256 access token the provider issued for the resource", function()
    local client = discover()
    local tok = jwt_token(client, RS, "api:read api:write")
    -- the resource server: a provider of its own, knowing only the issuer
    local rs = assert(smartauth.discover(op.issuer))
    local c = assert(rs:verify_access_token(tok.access_token, { audience = RS, scope = "api:read" }))
    assert.equal(op.issuer, c.iss)
    assert.equal("basic-client", c.client_id)
    assert.equal("basic-client", c.sub)
    assert.equal(RS, c.aud)
    assert.is_string(c.jti)
    assert.truthy(c.scope:find("api:write", 1, true))
    assert(rs:verify_access_token(tok.access_token, { audience = RS, scope = { "api:read", "api:write" } }))
  end)

  it("verifies a PS256 one with the RSA key of the same key set", function()
    local tok = jwt_token(discover(), PS)
    local rs = assert(smartauth.discover(op.issuer))
    assert(rs:verify_access_token(tok.access_token, { audience = PS }))
  end)

  it("refuses it for another audience, a scope not granted, another token's signature", function()
    local tok = jwt_token(discover(), RS, "api:read")
    local rs = assert(smartauth.discover(op.issuer))
    local c, err = rs:verify_access_token(tok.access_token, { audience = PS })
    assert.is_nil(c)
    assert.equal("aud", err.check)
    c, err = rs:verify_access_token(tok.access_token, { audience = RS, scope = "api:write" })
    assert.is_nil(c)
    assert.equal("scope", err.check)
    local v, status = smartauth.www_authenticate(err, { realm = "api" })
    assert.equal(403, status)
    assert.equal('Bearer realm="api", error="insufficient_scope", error_description="the access token lacks ' ..
      'the scope this request needs", scope="api:write"', v)
    assert.is_nil(v:find(tok.access_token, 1, true))
    -- its claims under another token's signature
    local other = jwt_token(discover(), RS, "api:read api:write")
    local forged = tok.access_token:match("^[^.]*%.[^.]*%.") .. other.access_token:match("[^.]*$")
    c, err = rs:verify_access_token(forged, { audience = RS })
    assert.is_nil(c)
    assert.equal("signature", err.check)
  end)

  it("refuses it once expired (the clock moved past exp)", function()
    local tok = jwt_token(discover(), RS)
    local rs = assert(smartauth.discover(op.issuer))
    local claims = assert(rs:verify_access_token(tok.access_token, { audience = RS }))
    local c, err = rs:verify_access_token(tok.access_token, { audience = RS, now = claims.exp + 1, leeway = 0 })
    assert.is_nil(c)
    assert.equal("exp", err.check)
  end)

  it("an opaque token of the same provider is malformed as a JWT", function()
    local p = discover()
    local tok = assert(p:client_credentials { scope = "api:read" })
    local c, err = p:verify_access_token(tok.access_token, { audience = RS })
    assert.is_nil(c)
    assert.equal("format", err.check)
  end)

  it("introspection_cache: a positive answer is asked once, an inactive one every time", function()
    local p = discover { introspection_cache = true }
    local tok = assert(p:client_credentials { scope = "api:read" })
    local before = introspections()
    local a = assert(p:introspect(tok))
    assert.is_true(a.active)
    assert.equal("basic-client", a.client_id)
    for _ = 1, 3 do assert.is_true(assert(p:introspect(tok)).active) end
    assert.equal(before + 1, introspections())
    -- a revoked token is inactive: never cached
    local tok2 = assert(p:client_credentials { scope = "api:read" })
    assert(p:revoke(tok2))
    assert.is_false(assert(p:introspect(tok2)).active)
    assert.is_false(assert(p:introspect(tok2)).active)
    assert.equal(before + 3, introspections())
    -- without the option every call asks
    local plain = discover()
    assert(plain:introspect(tok))
    assert(plain:introspect(tok))
    assert.equal(before + 5, introspections())
  end)

  it("inside smartauth.spawn: the JWT verified and introspection cached without blocking", function()
    local p = discover { introspection_cache = true }
    local rs = assert(smartauth.discover(op.issuer))
    local got = {}
    local before = introspections()
    smartauth.spawn(function()
      local tok = jwt_token(p, RS)
      got.claims = assert(rs:verify_access_token(tok.access_token, { audience = RS, scope = "api:read" }))
      local opaque = assert(p:client_credentials { scope = "api:read" })
      got.a = assert(p:introspect(opaque))
      got.b = assert(p:introspect(opaque))
    end)
    smartauth.run()
    assert.equal("basic-client", got.claims.client_id)
    assert.is_true(got.a.active and got.b.active)
    assert.equal(before + 1, introspections())
  end)
end)
