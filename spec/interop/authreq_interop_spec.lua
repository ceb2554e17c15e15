-- Interop: pushed authorization requests (RFC 9126), signed request objects (RFC 9101)
-- and resource indicators (RFC 8707) against oidc-provider, configured by
-- spec/interop/ext/authreq.js (par-client must push; jar-client signs with its own key;
-- https://api.example/ gets JWT access tokens).
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"

describe("#interop authorization requests against oidc-provider", function()
  local op

  setup(function() op = oidc.start { extend = "spec/interop/ext/authreq.js" } end)
  teardown(function() if op then op:stop() end end)

  local function discover(opts)
    local o = { redirect_uri = "http://127.0.0.1/cb", scope = "openid email" }
    for k, v in pairs(opts) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  local function par_client(extra)
    local o = { client_id = "par-client", client_secret = "par-secret", par = true }
    for k, v in pairs(extra or {}) do o[k] = v end
    return discover(o)
  end

  local function jar_client(extra)
    local o = { client_id = "jar-client", client_auth = "private_key_jwt",
      client_assertion_key = op.authreq_key_file, client_assertion_kid = op.authreq_kid,
      request_object = true }
    for k, v in pairs(extra or {}) do o[k] = v end
    return discover(o)
  end

  -- Plays the user; returns the token exchange_code gave, or nil, err.
  local function login(p, params)
    local u, session = p:authorization_url(params)
    assert(u, tostring(session))
    local redirect = op:login(u, { login = "alice", password = "x" })
    local tok, err = p:exchange_code { url = redirect, session = session }
    return tok, err, u
  end

  local function query(u)
    return oidc.parse_query(u)
  end

  it("finds the PAR endpoint by discovery", function()
    local p = par_client()
    assert.equal(op.issuer .. "/request", p:endpoint("pushed_authorization_request_endpoint"))
  end)

  describe("PAR", function()
    it("logs a client in that must push its requests (HTTP Basic)", function()
      local p = par_client()
      local tok, err, u = login(p)
      assert(tok, tostring(err))
      local q = query(u)
      assert.same({ "client_id", "request_uri" }, (function()
        local names = {}
        for k in pairs(q) do names[#names + 1] = k end
        table.sort(names)
        return names
      end)())
      assert.equal("par-client", q.client_id)
      assert.matches("^urn:ietf:params:oauth:request_uri:", q.request_uri)
      assert.equal("alice", tok.claims.sub)
      assert.equal("alice@example.com", tok.claims.email)
    end)

    it("the same client without PAR is refused by the provider", function()
      local p = par_client { par = false }
      local u, session = assert(p:authorization_url())
      local redirect = op:login(u, { login = "alice", password = "x" })
      local tok, err = p:exchange_code { url = redirect, session = session }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_request", err.code)
    end)

    it("a public client pushes with its client_id", function()
      local p = discover { client_id = "public-client", par = true }
      local tok = assert(login(p))
      assert.equal("alice", tok.claims.sub)
    end)

    it("a pushed request the provider refuses is an oauth error", function()
      local p = par_client { redirect_uri = "http://127.0.0.1/not-registered" }
      local u, err = p:authorization_url()
      assert.is_nil(u)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_request", err.code)
      assert.matches("redirect_uri", err.description)
      assert.not_matches("par%-secret", tostring(err))
    end)
  end)

  describe("request objects", function()
    it("logs in with a signed request object in the URL", function()
      local p = jar_client()
      local tok, err, u = login(p)
      assert(tok, tostring(err))
      local q = query(u)
      assert.equal("jar-client", q.client_id)
      assert.is_string(q.request)
      assert.is_nil(q.state)
      assert.equal("alice", tok.claims.sub)
    end)

    it("logs in with a pushed request object", function()
      local p = jar_client { par = true }
      local tok, err, u = login(p)
      assert(tok, tostring(err))
      assert.matches("request_uri=", u)
      assert.not_matches("request=", u)
      assert.equal("alice", tok.claims.sub)
    end)

    it("a request object signed with another key is refused", function()
      local other = require("helpers.jwt").key("RSA")
      local p = jar_client { par = true, client_auth = "basic", client_secret = "x",
        client_id = "par-client", client_assertion_key = other.pem }
      -- par-client has no key set: its request object cannot be verified
      local u, err = p:authorization_url()
      assert.is_nil(u)
      assert.equal("oauth", err.kind)
      assert.matches("^invalid_", err.code)
    end)
  end)

  describe("resource indicators", function()
    local function at_claims(tok)
      local _, claims = oidc.jwt_decode(tok.access_token)
      return claims
    end

    it("gets a JWT access token for the resource through the code flow", function()
      local p = jar_client { par = true }
      local tok = assert(login(p, { scope = "openid api:read", resource = op.authreq_resource }))
      local c = at_claims(tok)
      assert.equal(op.authreq_resource, c.aud)
      assert.equal("jar-client", c.client_id)
      assert.equal("api:read", c.scope)
      assert.equal("alice", c.sub)
      -- a refresh for the same resource
      local t2 = assert(p:refresh(tok, { resource = op.authreq_resource }))
      assert.equal(op.authreq_resource, at_claims(t2).aud)
    end)

    it("client credentials with the provider's resource option", function()
      local p = par_client { resource = op.authreq_resource, scope = "api:write" }
      local tok = assert(p:client_credentials())
      local c = at_claims(tok)
      assert.equal(op.authreq_resource, c.aud)
      assert.equal("api:write", c.scope)
    end)

    it("an unknown resource is invalid_target", function()
      local p = par_client { scope = "api:read" }
      local tok, err = p:client_credentials { resource = "https://other.example/" }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_target", err.code)
    end)
  end)

  it("p:login's loopback flow pushes the request of a client that must push", function()
    local p = par_client()
    local opened
    local tok, err = p:login { flow = "loopback", timeout = 30, show = function() end, open = function(u)
      opened = u
      -- the person's browser: through the OP, then to the listener (already
      -- listening), from another process so that the flow can serve it
      local back = op:login(u, { login = "carol", password = "x" })
      os.execute("curl -s -o /dev/null --max-time 20 '" .. back:gsub("'", "") .. "' &")
      return true
    end }
    assert(tok, tostring(err))
    assert.matches("%?client_id=par%-client&request_uri=urn", opened)
    assert.equal("carol", tok.claims.sub)
  end)

  it("runs the pushed, signed flow with a resource inside smartauth.spawn", function()
    local p = jar_client { par = true }
    local task = smartauth.spawn(function()
      local u, session = p:authorization_url { scope = "openid api:read", resource = op.authreq_resource }
      if not u then return nil, session end
      local redirect = op:login(u, { login = "bob", password = "x" })
      return p:exchange_code { url = redirect, session = session }
    end)
    smartauth.run()
    local ok, tok, err = task:result()
    assert.is_true(ok)
    assert(tok, tostring(err))
    assert.equal("bob", tok.claims.sub)
    local _, c = oidc.jwt_decode(tok.access_token)
    assert.equal(op.authreq_resource, c.aud)
  end)
end)
