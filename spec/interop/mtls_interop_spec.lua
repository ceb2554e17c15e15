-- Interop: mutual TLS (RFC 8705) against oidc-provider served over https
-- (spec/interop/ext/mtls.js): tls_client_auth and self_signed_tls_client_auth,
-- the mtls_endpoint_aliases, certificate-bound access tokens (cnf x5t#S256)
-- used over the same certificate and refused over another or none.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"
local certs = require "helpers.certs"
local proc = require "helpers.proc"
local json = require "cjson"

local q = proc.shell_quote
local PW = "pw-for-mtls-tests"

-- A self-signed client certificate (self_signed_tls_client_auth): cert and key files.
local function self_signed(c, name)
  local cert, key = c.dir .. "/" .. name .. ".pem", c.dir .. "/" .. name .. ".key"
  assert(proc.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 " ..
    "-subj " .. q("/CN=" .. name) .. " -keyout " .. q(key) .. " -out " .. q(cert) .. " 2>/dev/null"))
  c.extra = c.extra or {}
  table.insert(c.extra, cert)
  table.insert(c.extra, key)
  return { cert = cert, key = key }
end

describe("#interop mutual TLS with oidc-provider", function()
  local op, c, a, b, stranger, ss, ss_other

  setup(function()
    c = certs.make()
    -- the subject of client-a from an unknown CA, moved aside before client-a's own
    stranger = certs.client(c, "client-a", PW, { other_ca = true })
    for _, f in ipairs { "cert", "key", "enc_key" } do
      local moved = stranger[f]:gsub("client%-a", "stranger-a")
      assert(os.rename(stranger[f], moved))
      stranger[f] = moved
      c.extra[#c.extra + 1] = moved
    end
    a = certs.client(c, "client-a", PW)
    b = certs.client(c, "client-b", PW)
    ss = self_signed(c, "self-signed")
    ss_other = self_signed(c, "self-signed-other")
    local f = assert(io.open(c.dir .. "/mtls-ext.json", "wb"))
    f:write(json.encode { subject_dn = "CN=client-a", self_signed_pem = proc.read_file(ss.cert) })
    f:close()
    c.extra[#c.extra + 1] = c.dir .. "/mtls-ext.json"
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/mtls.js",
      tls = { cert = c.cert, key = c.key, ca = c.ca_file } }
  end)
  teardown(function()
    if op then op:stop() end
    certs.cleanup(c)
  end)

  local function discover(o)
    o.ca_file, o.retry = c.ca_file, false
    return assert(smartauth.discover(op.issuer, o))
  end
  local function ca_client(cert)
    cert = cert or a
    return discover { client_id = "mtls-ca-client", client_auth = "tls_client_auth",
      client_cert = cert.cert, client_key = cert.enc_key or cert.key,
      client_key_password = cert.enc_key and PW or nil }
  end
  local function self_client(cert)
    cert = cert or ss
    return discover { client_id = "mtls-self-client", client_auth = "self_signed_tls_client_auth",
      client_cert = cert.cert, client_key = cert.key }
  end
  -- a provider with no certificate at all, for the same server
  local function bare()
    return discover { client_id = "basic-client", client_secret = "s3cret: %+ x" }
  end
  local function whoami(p, tok)
    return assert(p:request { url = op.issuer .. "/api/whoami", token = tok })
  end

  it("discovers the aliases and uses them for a tls_client_auth client", function()
    local p = ca_client()
    assert.equal(op.issuer .. "/mtls/token", p:endpoint("token_endpoint"))
    assert.equal(op.issuer .. "/mtls/token/introspection", p:endpoint("introspection_endpoint"))
    assert.equal(op.issuer .. "/mtls/token/revocation", p:endpoint("revocation_endpoint"))
    assert.equal(op.issuer .. "/mtls/me", p:endpoint("userinfo_endpoint"))
    assert.equal(op.issuer .. "/device/auth", p:endpoint("device_authorization_endpoint"))
    assert.equal(op.issuer .. "/auth", p:endpoint("authorization_endpoint"))
    assert.is_true(p:metadata().tls_client_certificate_bound_access_tokens)
    -- a provider that does not speak mTLS keeps the conventional ones
    assert.equal(op.issuer .. "/token", bare():endpoint("token_endpoint"))
  end)

  for _, case in ipairs {
    { "tls_client_auth", ca_client, function() return a end },
    { "self_signed_tls_client_auth", self_client, function() return ss end },
  } do
    local method, make, cert = case[1], case[2], case[3]
    it(method .. ": client credentials, a token bound to the certificate, used over it", function()
      local p = make()
      local tok = assert(p:client_credentials { scope = "api:read" })
      assert.equal("Bearer", tok.token_type)
      local info = assert(p:introspect(tok))
      assert.is_true(info.active)
      assert.equal(p.options.client_id, info.client_id)
      local x5t = smartauth.cert_thumbprint(cert().cert)
      assert.equal(x5t, info.cnf["x5t#S256"])
      -- the API gets the token over the certificate it is bound to
      local res = whoami(p, tok)
      assert.equal(200, res.status, res.body)
      assert.equal(x5t, json.decode(res.body).x5t)
      -- p:token() and p:request's own token, the same way
      res = assert(p:request { url = op.issuer .. "/api/whoami" })
      assert.equal(200, res.status, res.body)
      -- without the certificate, the same token is refused
      res = whoami(bare(), tok)
      assert.equal(401, res.status)
      assert.matches('invalid_token', res.headers["www-authenticate"], 1, true)
      -- revocation through its alias ends it
      assert(p:revoke(tok))
      assert.is_false(assert(p:introspect(tok)).active)
    end)
  end

  it("a person's token: userinfo through its alias over the certificate, refused without it", function()
    local p = discover { client_id = "mtls-ca-client", client_auth = "tls_client_auth",
      client_cert = a.cert, client_key = a.key, redirect_uri = "http://127.0.0.1/cb", scope = "openid email" }
    local url, session = assert(p:authorization_url())
    local redirect = op:login(url, { login = "alice", password = "x" })
    local tok = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("alice", tok.claims.sub)
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    local res = whoami(p, tok)
    assert.equal(200, res.status)
    assert.equal("alice", json.decode(res.body).sub)
    -- the same token from a provider without a certificate (conventional endpoint)
    local bare_p = discover { client_id = "basic-client", client_secret = "s3cret: %+ x",
      redirect_uri = "http://127.0.0.1/cb" }
    local none, err = bare_p:userinfo(tok)
    assert.is_nil(none)
    assert.equal(401, err.status)
    assert.equal(401, whoami(bare_p, tok).status)
    -- the refresh token is bound too: refreshed over the certificate, through the alias
    local fresh = assert(p:refresh(tok))
    assert.equal(smartauth.cert_thumbprint(a.cert), assert(p:introspect(fresh)).cnf["x5t#S256"])
  end)

  it("a client_secret_basic client with a certificate gets bound tokens through the aliases", function()
    local p = discover { client_id = "mtls-basic-client", client_secret = "mtls-basic-secret",
      client_cert = b.cert, client_key = b.key }
    assert.equal(op.issuer .. "/mtls/token", p:endpoint("token_endpoint"))
    local tok = assert(p:client_credentials { scope = "api:read" })
    assert.equal(smartauth.cert_thumbprint(b.cert), assert(p:introspect(tok)).cnf["x5t#S256"])
    assert.equal(200, whoami(p, tok).status)
    -- turned off, the conventional endpoint is called, where this server
    -- wants no certificate
    local off = discover { client_id = "mtls-basic-client", client_secret = "mtls-basic-secret",
      client_cert = b.cert, client_key = b.key, use_mtls_endpoint_aliases = false }
    local t2, err = off:client_credentials { scope = "api:read" }
    assert.is_nil(t2)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_request", err.code)
  end)

  it("refuses a bound token over another certificate, and the wrong certificates", function()
    local tok = assert(ca_client():client_credentials { scope = "api:read" })
    -- another certificate the same CA issued: the token is not bound to it
    local other = discover { client_id = "mtls-basic-client", client_secret = "mtls-basic-secret",
      client_cert = b.cert, client_key = b.key }
    assert.equal(401, whoami(other, tok).status)
    -- tls_client_auth: a certificate of another subject, or of an unknown CA
    for _, cert in ipairs { b, stranger, ss } do
      local t, err = ca_client(cert):client_credentials()
      assert.is_nil(t)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_client", err.code)
    end
    -- self_signed_tls_client_auth: a self-signed certificate not registered, or a CA-issued one
    for _, cert in ipairs { ss_other, a } do
      local t, err = self_client(cert):client_credentials()
      assert.is_nil(t)
      assert.equal("invalid_client", err.code)
    end
  end)

  it("works inside smartauth.spawn, next to a provider without a certificate", function()
    local out = {}
    smartauth.spawn(function()
      local p = ca_client()
      local tok = assert(p:client_credentials { scope = "api:read" })
      out.info = assert(p:introspect(tok))
      out.with = whoami(p, tok).status
      out.without = whoami(bare(), tok).status
    end)
    smartauth.spawn(function()
      local p = self_client()
      out.self = whoami(p, assert(p:token { scope = "api:read" })).status
    end)
    smartauth.run()
    assert.equal(smartauth.cert_thumbprint(a.cert), out.info.cnf["x5t#S256"])
    assert.same({ 200, 401, 200 }, { out.with, out.without, out.self })
  end)

  it("a missing certificate for an mTLS method is a config error before any request", function()
    local p, err = smartauth.discover(op.issuer, { client_id = "mtls-ca-client", client_auth = "tls_client_auth",
      ca_file = c.ca_file })
    assert.is_nil(p)
    assert.equal("config", err.kind)
    assert.equal("client_cert", err.option)
  end)
end)
