-- Interop: the FAPI 2.0 Security Profile (`profile = "fapi2"`) against oidc-provider with
-- its FAPI 2.0 mode on, served over https (spec/interop/ext/fapi.js): pushed requests
-- required, private_key_jwt (ES256) and tls_client_auth, certificate-bound tokens; the
-- whole code flow, refresh and a bound-token API call; requests FAPI forbids refused by
-- the provider itself.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"
local certs = require "helpers.certs"
local json = require "cjson"

local PW = "pw-for-fapi-tests"

describe("#interop FAPI 2.0 with oidc-provider", function()
  local op, c, cert, other

  setup(function()
    c = certs.make()
    cert = certs.client(c, "fapi-client", PW)
    other = certs.client(c, "fapi-other", PW)
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/fapi.js",
      tls = { cert = c.cert, key = c.key, ca = c.ca_file } }
  end)
  teardown(function()
    if op then op:stop() end
    certs.cleanup(c)
  end)

  local function discover(o)
    o.ca_file, o.retry = c.ca_file, false
    o.redirect_uri = o.redirect_uri or "http://127.0.0.1/cb"
    o.scope = o.scope or "openid email"
    return assert(smartauth.discover(op.issuer, o))
  end
  local function pkjwt(extra)
    local o = { profile = "fapi2", client_id = "fapi-pkjwt-client", client_auth = "private_key_jwt",
      client_assertion_key = op.fapi_key_file, client_assertion_kid = op.fapi_kid,
      client_cert = cert.cert, client_key = cert.key }
    for k, v in pairs(extra or {}) do o[k] = v end
    return discover(o)
  end
  local function mtls(extra)
    local o = { profile = "fapi2", client_id = "fapi-mtls-client", client_auth = "tls_client_auth",
      client_cert = cert.cert, client_key = cert.enc_key, client_key_password = PW }
    for k, v in pairs(extra or {}) do o[k] = v end
    return discover(o)
  end
  local function whoami(p, tok)
    return assert(p:request { url = op.issuer .. "/api/whoami", token = tok })
  end

  -- Plays the user; the authorization URL, the redirect and the token.
  local function login(p, who)
    local u, session = p:authorization_url()
    assert(u, tostring(session))
    local redirect = op:login(u, { login = who, password = "x" })
    local tok, err = p:exchange_code { url = redirect, session = session }
    assert(tok, tostring(err))
    return u, redirect, tok
  end

  it("discovers an https provider that requires pushed requests", function()
    local p = pkjwt()
    assert.equal(op.issuer .. "/request", p:endpoint("pushed_authorization_request_endpoint"))
    assert.matches("^https://127%.0%.0%.1:%d+$", p:endpoint("issuer"))
    assert.is_true(p:metadata().require_pushed_authorization_requests)
    assert.is_true(p:metadata().tls_client_certificate_bound_access_tokens)
  end)

  for _, case in ipairs {
    { "private_key_jwt", pkjwt, "PS256", "alice" },
    { "tls_client_auth", mtls, "ES256", "bob" },
  } do
    local method, make, id_alg, who = case[1], case[2], case[3], case[4]
    it(method .. ": the code flow, a bound token at the API, refresh", function()
      local p = make()
      local u, redirect, tok = login(p, who)
      -- pushed: the browser saw only client_id and request_uri
      local q = oidc.parse_query(u)
      assert.equal(p.options.client_id, q.client_id)
      assert.matches("^urn:ietf:params:oauth:request_uri:", q.request_uri)
      assert.is_nil(q.code_challenge)
      -- the response carried iss (RFC 9207)
      assert.equal(op.issuer, oidc.parse_query(redirect).iss)
      assert.equal(who, tok.claims.sub)
      local h = oidc.jwt_decode(tok.id_token)
      assert.equal(id_alg, h.alg)
      -- bound to the certificate: accepted over it, refused over another one
      local x5t = smartauth.cert_thumbprint(cert.cert)
      assert.equal(x5t, assert(p:introspect(tok)).cnf["x5t#S256"])
      local res = whoami(p, tok)
      assert.equal(200, res.status, res.body)
      assert.equal(who, json.decode(res.body).sub)
      assert.equal(x5t, json.decode(res.body).x5t)
      local stranger = assert(smartauth.provider { issuer = op.issuer, ca_file = c.ca_file, retry = false,
        client_cert = other.cert, client_key = other.key })
      assert.equal(401, whoami(stranger, tok).status)
      -- refresh (authenticated the same way), the new token bound the same way
      local fresh = assert(p:refresh(tok))
      assert.are_not.equal(tok.access_token, fresh.access_token)
      res = whoami(p, fresh)
      assert.equal(200, res.status, res.body)
      assert.equal(x5t, json.decode(res.body).x5t)
    end)
  end

  it("private_key_jwt with DPoP as the sender constraint: the code flow, a DPoP-bound token, refresh", function()
    local p = discover { profile = "fapi2", client_id = "fapi-dpop-client", client_auth = "private_key_jwt",
      client_assertion_key = op.fapi_key_file, client_assertion_kid = op.fapi_kid, dpop = true }
    local _, _, tok = login(p, "carol")
    assert.equal("DPoP", tok.token_type)
    local info = assert(p:introspect(tok))
    assert.equal(tok.ext.dpop_jkt, info.cnf and info.cnf.jkt)
    assert.equal("carol", assert(p:userinfo(tok)).sub)
    local fresh = assert(p:refresh(tok))
    assert.equal("DPoP", fresh.token_type)
    assert.equal(tok.ext.dpop_jkt, fresh.ext.dpop_jkt)
    -- without a proof the bound token is refused at userinfo
    local plain = assert(smartauth.provider { issuer = op.issuer, ca_file = c.ca_file, retry = false,
      userinfo_endpoint = p:endpoint("userinfo_endpoint") })
    local res = assert(plain:request { url = p:endpoint("userinfo_endpoint"),
      token = { access_token = fresh.access_token, token_type = "Bearer" } })
    assert.equal(401, res.status)
  end)

  it("oidc-provider refuses what FAPI 2.0 forbids: no PKCE, no pushed request", function()
    -- the same client without the profile (smartauth would refuse both itself)
    local base = { issuer = op.issuer, ca_file = c.ca_file, retry = false, client_id = "fapi-mtls-client",
      client_auth = "tls_client_auth", client_cert = cert.cert, client_key = cert.key,
      redirect_uri = "http://127.0.0.1/cb", scope = "openid" }
    -- a confidential client needs PKCE only in FAPI 2.0 mode
    local p = assert(smartauth.discover(op.issuer, base))
    local u, err = p:authorization_url { pkce = false }
    assert.is_nil(u)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_request", err.code)
    assert.matches("PKCE", err.description)
    -- not pushed: endpoints set by hand, no metadata to say PAR is required
    local direct = {}
    for k, v in pairs(base) do direct[k] = v end
    direct.authorization_endpoint = p:endpoint("authorization_endpoint")
    direct.token_endpoint = p:endpoint("token_endpoint")
    local d = assert(smartauth.provider(direct))
    local session
    u, session = assert(d:authorization_url())
    assert.is_nil(oidc.parse_query(u).request_uri)
    local redirect = op:login(u, { login = "alice", password = "x" })
    local tok
    tok, err = d:exchange_code { url = redirect, session = session }
    assert.is_nil(tok)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_request", err.code)
  end)

  it("runs the flow and a bound API call inside smartauth.spawn", function()
    local p = pkjwt()
    local task = smartauth.spawn(function()
      local u, session = p:authorization_url()
      if not u then return nil, session end
      local redirect = op:login(u, { login = "carol", password = "x" })
      local tok, err = p:exchange_code { url = redirect, session = session }
      if not tok then return nil, err end
      return tok, p:request { url = op.issuer .. "/api/whoami", token = tok }
    end)
    smartauth.run()
    local ok, tok, res = task:result()
    assert.is_true(ok)
    assert(tok, tostring(res))
    assert.equal("carol", tok.claims.sub)
    assert.equal(200, res.status, res.body)
    assert.equal(smartauth.cert_thumbprint(cert.cert), json.decode(res.body).x5t)
  end)
end)
