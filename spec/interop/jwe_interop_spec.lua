-- Interop: encrypted ID tokens and UserInfo answers (JWE, nested in a JWS) from
-- oidc-provider, configured by spec/interop/ext/jwe.js: clients whose public
-- encryption keys are registered with the provider; smartauth holds the private
-- ones in decryption_keys. The code flow is played with op:login.
local smartauth = require "smartauth"
local jwe = require "smartauth.jwe"
local cjson = require "cjson"
local core = require "smartauth.core"
local oidc = require "helpers.oidc"

describe("#interop encrypted ID tokens against oidc-provider", function()
  local op

  setup(function() op = oidc.start { extend = "spec/interop/ext/jwe.js" } end)
  teardown(function() if op then op:stop() end end)

  local function client(id, keys)
    return assert(smartauth.discover(op.issuer, { client_id = id, client_secret = "jwe-secret",
      redirect_uri = "http://127.0.0.1/cb", scope = "openid email", decryption_keys = keys }))
  end

  local function login(p)
    local u, session = assert(p:authorization_url())
    local redirect = op:login(u, { login = "alice", password = "x" })
    return p:exchange_code { url = redirect, session = session }
  end

  local function header(tok)
    return cjson.decode((core.jwe_parse(tok)))
  end

  for _, c in ipairs {
    { "jwe-rsa", "RSA-OAEP-256", "A256GCM", "jwe_rsa_key_file", "jwe_rsa_kid" },
    { "jwe-ec", "ECDH-ES", "A128CBC-HS256", "jwe_ec_key_file", "jwe_ec_kid" },
    { "jwe-ec-kw", "ECDH-ES+A256KW", "A256CBC-HS512", "jwe_ec_key_file", "jwe_ec_kid" },
    { "jwe-x25519", "ECDH-ES+A128KW", "A256GCM", "jwe_x25519_key_file", "jwe_x25519_kid" },
  } do
    it(c[1] .. ": the ID token comes " .. c[2] .. " + " .. c[3] .. ", decrypts and verifies", function()
      local p = client(c[1], { op[c[4]] })
      local tok, err = login(p)
      assert(tok, tostring(err))
      assert.equal(5, select(2, tok.id_token:gsub("%.", "")) + 1)
      local h = header(tok.id_token)
      assert.equal(c[2], h.alg)
      assert.equal(c[3], h.enc)
      assert.equal(op[c[5]], h.kid)
      assert.equal("alice", tok.claims.sub)
      assert.equal("alice@example.com", tok.claims.email)
      -- and again through verify_id_token
      local claims = assert(p:verify_id_token(tok.id_token))
      assert.equal("alice", claims.sub)
    end)
  end

  it("without decryption_keys the encrypted ID token is a validation error", function()
    local p = client("jwe-rsa", nil)
    local tok, err = login(p)
    assert.is_nil(tok)
    assert.equal("validation", err.kind)
    assert.equal("jwe", err.check)
  end)

  it("with the wrong key the ID token is refused with the generic message", function()
    -- an RSA key for an ECDH-ES token: no key fits
    local p = client("jwe-ec", { op.jwe_rsa_key_file })
    local tok, err = login(p)
    assert.is_nil(tok)
    assert.equal("jwe", err.check)
    assert.matches("no decryption key with kid .* for ECDH%-ES", err.description)
    -- another P-256 key (as PEM text): the one message of every failed decryption
    local f = assert(io.popen("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null"))
    local pem = f:read("*a")
    f:close()
    tok, err = login(client("jwe-ec", { pem }))
    assert.is_nil(tok)
    assert.equal("ID token: JWE decryption failed", err.description)
  end)

  it("the published JWKS of decryption_keys matches what the provider holds", function()
    local p = client("jwe-rsa", { op.jwe_rsa_key_file, op.jwe_ec_key_file })
    local doc = assert(jwe.provider_jwks(p))
    assert.equal(2, #doc.keys)
    assert.equal("RSA-OAEP-256", doc.keys[1].alg)
    assert.equal("enc", doc.keys[2].use)
    assert.is_nil(doc.keys[1].d)
  end)

  it("an encrypted, signed UserInfo answer decrypts with jwe.maybe_decrypt", function()
    local p = client("jwe-rsa", { op.jwe_rsa_key_file })
    local tok = assert(login(p))
    local res = assert(p:request { url = p:endpoint("userinfo_endpoint"), token = tok,
      headers = { "Accept: application/jwt" } })
    assert.equal(200, res.status)
    assert.matches("application/jwt", res.headers["content-type"])
    local inner = assert(jwe.maybe_decrypt(p, res.body, "UserInfo response"))
    local payload = inner:match("^[^.]+%.([^.]+)%.[^.]+$")
    local info = cjson.decode((core.b64url_decode(payload)))
    assert.equal("alice", info.sub)
  end)

  it("p:userinfo decrypts an encrypted, signed UserInfo answer and verifies it (rp-userinfo-sig+enc)", function()
    local p = client("jwe-rsa", { op.jwe_rsa_key_file })
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    -- without the keys: a validation error, never the raw answer
    local bare = client("jwe-rsa", nil)
    local i2, err = bare:userinfo(tok)
    assert.is_nil(i2)
    assert.equal("validation", err.kind)
    assert.equal("jwe", err.check)
    -- with another key: the one generic decryption failure
    local other = client("jwe-rsa", { op.jwe_ec_key_file })
    local i3, err3 = other:userinfo(tok)
    assert.is_nil(i3)
    assert.equal("validation", err3.kind)
  end)

  it("an X25519 client (RFC 8037): the epk is an OKP key; UserInfo ECDH-ES + A128GCM decrypts and verifies",
      function()
    local p = client("jwe-x25519", { op.jwe_x25519_key_file })
    local tok = assert(login(p))
    local h = header(tok.id_token)
    assert.same({ "OKP", "X25519" }, { h.epk.kty, h.epk.crv })
    assert.is_nil(h.epk.y)
    local res = assert(p:request { url = p:endpoint("userinfo_endpoint"), token = tok })
    local uh = header(res.body)
    assert.same({ "ECDH-ES", "A128GCM", "X25519" }, { uh.alg, uh.enc, uh.epk.crv })
    local info = assert(p:userinfo(tok))
    assert.equal("alice@example.com", info.email)
    -- the key's published JWK is the one the provider holds
    local doc = assert(jwe.provider_jwks(p))
    assert.same({ "OKP", "X25519", "ECDH-ES" }, { doc.keys[1].kty, doc.keys[1].crv, doc.keys[1].alg })
  end)

  it("works inside smartauth.spawn", function()
    local p = client("jwe-ec", { op.jwe_ec_key_file })
    local u, session = assert(p:authorization_url())
    local redirect = op:login(u, { login = "alice", password = "x" })
    local task = smartauth.spawn(function() return p:exchange_code { url = redirect, session = session } end)
    smartauth.run()
    local ok, tok = task:result()
    assert.is_true(ok)
    assert.equal("alice", tok.claims.sub)
  end)
end)
