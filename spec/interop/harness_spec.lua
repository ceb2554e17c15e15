-- Proves the interop harness (spec/interop/provider.js + spec/helpers/oidc.lua) works, by
-- talking to oidc-provider by hand, without smartauth.
--   cd /work/main && busted --exclude-pattern='^$' spec/interop/harness_spec.lua

local oidc = require "helpers.oidc"
local cjson = require "cjson"
local mime = require "mime"

local function sh(cmd)
  local h = assert(io.popen(cmd))
  local out = h:read("*a")
  h:close()
  return out
end

local function b64url(s)
  return (mime.b64(s):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

local function random_string()
  return (sh("openssl rand -hex 32"):gsub("%s", ""))
end

local function pkce_pair()
  local verifier = random_string()
  local challenge = sh("printf %s '" .. verifier ..
    "' | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\\n'")
  return verifier, challenge
end

local function tmpfile_with(content)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

-- compact JWS for client authentication: RS256 with a PEM key file, or HS256 with a secret
local function sign_jwt(header, claims, how)
  local input = b64url(cjson.encode(header)) .. "." .. b64url(cjson.encode(claims))
  local infile = tmpfile_with(input)
  local sig
  if how.pem then
    sig = sh("openssl dgst -sha256 -binary -sign '" .. how.pem .. "' '" .. infile .. "'")
  else
    sig = sh("openssl dgst -sha256 -binary -hmac '" .. how.secret .. "' '" .. infile .. "'")
  end
  os.remove(infile)
  assert(#sig > 0, "openssl signing failed")
  return input .. "." .. b64url(sig)
end

local function basic_auth(id, secret)
  -- RFC 6749 2.3.1: form-urlencode both, then base64
  return "Basic " .. mime.b64(oidc.url_encode(id) .. ":" .. oidc.url_encode(secret))
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function jwks_kids(op)
  local status, jwks = oidc.request_json { url = op.issuer .. "/jwks" }
  assert.equal(200, status)
  local kids = {}
  for _, k in ipairs(jwks.keys) do kids[#kids + 1] = k.kid end
  return kids
end

describe("interop harness (oidc-provider) #interop", function()
  local op, meta

  lazy_setup(function()
    op = oidc.start()
  end)

  lazy_teardown(function()
    if op then op:stop() end
  end)

  -- authorization code flow by hand, returns the token response and the id_token parts
  local function code_flow(client_id, secret, scope)
    local verifier, challenge = pkce_pair()
    local state, nonce = random_string(), random_string()
    local redirect_uri = "http://127.0.0.1:54321/cb" -- port differs from the registered one
    local url = meta.authorization_endpoint .. "?" .. oidc.form_encode {
      response_type = "code",
      client_id = client_id,
      redirect_uri = redirect_uri,
      scope = scope or "openid email profile",
      state = state,
      nonce = nonce,
      code_challenge = challenge,
      code_challenge_method = "S256",
    }
    local back = op:login(url, { login = "alice", password = "x" })
    assert.truthy(back:find(redirect_uri .. "?", 1, true), back)
    local q = oidc.parse_query(back)
    assert.is_nil(q.error, q.error_description)
    assert.truthy(q.code)
    assert.equal(state, q.state)
    assert.equal(op.issuer, q.iss)

    local body = {
      grant_type = "authorization_code", code = q.code, redirect_uri = redirect_uri,
      code_verifier = verifier,
    }
    local headers = {}
    if secret then
      headers.authorization = basic_auth(client_id, secret)
    else
      body.client_id = client_id
    end
    local status, tok, _, raw = oidc.request_json { url = meta.token_endpoint, body = body, headers = headers }
    assert.equal(200, status, raw)
    assert.truthy(tok.access_token)
    assert.truthy(tok.id_token)
    local h, p = oidc.jwt_decode(tok.id_token)
    assert.equal(op.issuer, p.iss)
    assert.equal(client_id, p.aud)
    assert.equal(nonce, p.nonce)
    assert.equal("alice", p.sub)
    return tok, h, p
  end

  it("serves discovery with the expected issuer and endpoints", function()
    local status, t, _, raw = oidc.request_json { url = op.discovery_url }
    assert.equal(200, status, raw)
    meta = t
    assert.equal(op.issuer, t.issuer)
    assert.truthy(op.issuer:match("^http://127%.0%.0%.1:%d+$"))
    for _, k in ipairs { "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                         "introspection_endpoint", "revocation_endpoint",
                         "device_authorization_endpoint" } do
      assert.truthy(t[k] and t[k]:sub(1, #op.issuer) == op.issuer, k)
    end
    assert.same({ "S256" }, t.code_challenge_methods_supported)
    local algs = set_of(t.id_token_signing_alg_values_supported)
    for _, a in ipairs { "RS256", "PS256", "ES256", "EdDSA" } do assert.truthy(algs[a], a) end
    assert.is_true(t.authorization_response_iss_parameter_supported)
    assert.same(op.kids, jwks_kids(op))
    assert.truthy(op:health().ok)
    -- the private_key_jwt key file exists and is a PEM private key
    local f = assert(io.open(op.pkjwt_key_file))
    assert.truthy(f:read("*a"):find("BEGIN PRIVATE KEY", 1, true))
    f:close()
  end)

  it("does client_credentials with client_secret_basic (form-urlencoded secret)", function()
    local c = op.clients["basic-client"]
    assert.equal("s3cret: %+ x", c.client_secret)
    local status, tok, _, raw = oidc.request_json {
      url = meta.token_endpoint,
      headers = { authorization = basic_auth(c.client_id, c.client_secret) },
      body = { grant_type = "client_credentials", scope = "api:read" },
    }
    assert.equal(200, status, raw)
    assert.truthy(tok.access_token)
    assert.equal("Bearer", tok.token_type)
    assert.equal("api:read", tok.scope)
    assert.truthy(tok.expires_in > 0)

    -- the same secret without the RFC 6749 encoding is refused ('%+' is not valid encoding)
    status, tok = oidc.request_json {
      url = meta.token_endpoint,
      headers = { authorization = "Basic " .. mime.b64(c.client_id .. ":" .. c.client_secret) },
      body = { grant_type = "client_credentials", scope = "api:read" },
    }
    assert.equal(400, status)
    assert.equal("invalid_request", tok.error)

    -- the access token introspects as active
    status, tok = oidc.request_json {
      url = meta.introspection_endpoint,
      headers = { authorization = basic_auth(c.client_id, c.client_secret) },
      body = { token = select(2, oidc.request_json {
        url = meta.token_endpoint,
        headers = { authorization = basic_auth(c.client_id, c.client_secret) },
        body = { grant_type = "client_credentials", scope = "api:read" },
      }).access_token },
    }
    assert.equal(200, status)
    assert.is_true(tok.active)
  end)

  it("does client_credentials with client_secret_post", function()
    local c = op.clients["post-client"]
    local status, tok, _, raw = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = "client_credentials", scope = "api:read",
               client_id = c.client_id, client_secret = c.client_secret },
    }
    assert.equal(200, status, raw)
    assert.truthy(tok.access_token)
  end)

  it("does client_credentials with private_key_jwt and client_secret_jwt", function()
    local now = os.time()
    for _, case in ipairs {
      { id = "pkjwt-client", header = { alg = "RS256", kid = op.pkjwt_kid, typ = "JWT" },
        how = { pem = op.pkjwt_key_file } },
      { id = "jwt-secret-client", header = { alg = "HS256", typ = "JWT" },
        how = { secret = op.clients["jwt-secret-client"].client_secret } },
    } do
      local assertion = sign_jwt(case.header, {
        iss = case.id, sub = case.id, aud = meta.token_endpoint, jti = random_string(),
        iat = now, exp = now + 60,
      }, case.how)
      local status, tok, _, raw = oidc.request_json {
        url = meta.token_endpoint,
        body = {
          grant_type = "client_credentials", scope = "api:read", client_id = case.id,
          client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion = assertion,
        },
      }
      assert.equal(200, status, case.id .. ": " .. raw)
      assert.truthy(tok.access_token)
    end
  end)

  local first -- token response of the public client, used after key rotation

  it("plays the user for a public client with PKCE and exchanges the code", function()
    local tok, h, p = code_flow("public-client")
    first = tok
    assert.truthy(tok.refresh_token)
    assert.equal("RS256", h.alg)
    assert.truthy(set_of(op.kids)[h.kid])
    assert.equal("alice@example.com", p.email)
    assert.equal("Alice", p.name)

    local status, info = oidc.request_json {
      url = meta.userinfo_endpoint, headers = { authorization = "Bearer " .. tok.access_token },
    }
    assert.equal(200, status)
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    assert.is_true(info.email_verified)
  end)

  it("rotates refresh tokens and rejects the used one", function()
    local tok = code_flow("public-client")
    local rt1 = tok.refresh_token
    local status, t2, _, raw = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = "refresh_token", refresh_token = rt1, client_id = "public-client" },
    }
    assert.equal(200, status, raw)
    assert.truthy(t2.access_token)
    assert.truthy(t2.refresh_token)
    assert.are_not.equal(rt1, t2.refresh_token)
    assert.truthy(t2.id_token)

    local status2, t3 = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = "refresh_token", refresh_token = rt1, client_id = "public-client" },
    }
    assert.equal(400, status2)
    assert.equal("invalid_grant", t3.error)

    -- reuse of a rotated refresh token revokes the whole grant, the new one included
    local status3, t4 = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = "refresh_token", refresh_token = t2.refresh_token, client_id = "public-client" },
    }
    assert.equal(400, status3)
    assert.equal("invalid_grant", t4.error)
  end)

  it("reports a denial as error=access_denied and keeps a session across logins", function()
    local function auth_url(extra)
      local params = {
        response_type = "code", client_id = "basic-client", redirect_uri = "http://127.0.0.1/cb",
        scope = "openid", state = "st",
      }
      for k, v in pairs(extra or {}) do params[k] = v end
      return meta.authorization_endpoint .. "?" .. oidc.form_encode(params)
    end
    local q = oidc.parse_query(op:login(auth_url(), { deny = true }))
    assert.equal("access_denied", q.error)
    assert.equal("st", q.state)

    -- without a session, prompt=none fails with login_required
    q = oidc.parse_query(op:login(auth_url { prompt = "none" }))
    assert.equal("login_required", q.error)

    local session = {}
    q = oidc.parse_query(op:login(auth_url(), { login = "carol", session = session }))
    assert.truthy(q.code)
    q = oidc.parse_query(op:login(auth_url { prompt = "none" }, { session = session }))
    assert.truthy(q.code, q.error)
    local status, tok = oidc.request_json {
      url = meta.token_endpoint,
      headers = { authorization = basic_auth("basic-client", op.clients["basic-client"].client_secret) },
      body = { grant_type = "authorization_code", code = q.code, redirect_uri = "http://127.0.0.1/cb" },
    }
    assert.equal(200, status)
    assert.equal("carol", select(2, oidc.jwt_decode(tok.id_token)).sub)
    assert.truthy(tok.refresh_token) -- confidential client, no offline_access scope needed
  end)

  it("signs ID tokens with the client's registered alg", function()
    for id, alg in pairs { ["es256-client"] = "ES256", ["eddsa-client"] = "EdDSA", ["ps256-client"] = "PS256" } do
      local _, h = code_flow(id, op.clients[id].client_secret)
      assert.equal(alg, h.alg, id)
      assert.truthy(set_of(op.kids)[h.kid], id)
    end
  end)

  it("plays the user for the device flow", function()
    local status, d, _, raw = oidc.request_json {
      url = meta.device_authorization_endpoint,
      body = { client_id = "device-client", scope = "openid email" },
    }
    assert.equal(200, status, raw)
    assert.truthy(d.device_code and d.user_code and d.verification_uri_complete)
    local grant = "urn:ietf:params:oauth:grant-type:device_code"
    local s1, pending = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = grant, device_code = d.device_code, client_id = "device-client" },
    }
    assert.equal(400, s1)
    assert.equal("authorization_pending", pending.error)

    assert.is_true(op:device_login(d.verification_uri_complete, { login = "bob" }))
    -- a used user code is refused
    assert.has_error(function() op:device_login(d.verification_uri_complete) end)

    local s2, tok, _, raw2 = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = grant, device_code = d.device_code, client_id = "device-client" },
    }
    assert.equal(200, s2, raw2)
    assert.truthy(tok.access_token and tok.id_token and tok.refresh_token)
    local _, p = oidc.jwt_decode(tok.id_token)
    assert.equal("bob", p.sub)

    -- typing the user code on the verification page works too
    local _, d2 = oidc.request_json {
      url = meta.device_authorization_endpoint, body = { client_id = "device-client", scope = "openid" },
    }
    assert.is_true(op:device_login(d2.verification_uri, { login = "dave", user_code = d2.user_code }))
    local s3, tok2 = oidc.request_json {
      url = meta.token_endpoint,
      body = { grant_type = grant, device_code = d2.device_code, client_id = "device-client" },
    }
    assert.equal(200, s3)
    assert.equal("dave", select(2, oidc.jwt_decode(tok2.id_token)).sub)
  end)

  it("rotates signing keys: new kids in the JWKS and in later ID tokens", function()
    local before = jwks_kids(op)
    local new = op:rotate()
    local after = jwks_kids(op)
    assert.same(new, after)
    assert.same(op.kids, after)
    assert.equal(3, #after)
    local old = set_of(before)
    for _, kid in ipairs(after) do assert.is_nil(old[kid], kid) end

    local _, h = code_flow("public-client")
    assert.truthy(set_of(after)[h.kid])

    -- state survives the rotation (same storage): the first access token still works
    local status = oidc.request { url = meta.userinfo_endpoint,
                                  headers = { authorization = "Bearer " .. first.access_token } }
    assert.equal(200, status)

    -- keep_previous: the new keys come first and sign, the old ones stay published
    local prev = jwks_kids(op)
    local kids = op:rotate { keep_previous = true }
    assert.equal(6, #kids)
    assert.same(prev, { kids[4], kids[5], kids[6] })
    local _, h2 = code_flow("public-client")
    assert.equal(kids[1], h2.kid)
  end)

  it("stops and leaves no process behind", function()
    local pid, port = op.pid, op.port
    op:stop()
    assert.is_false(op:running())
    assert.is_not_true(os.execute("kill -0 " .. pid .. " 2>/dev/null"))
    assert.has_error(function() oidc.request { url = "http://127.0.0.1:" .. port .. "/jwks" } end)
    op = nil
  end)
end)

describe("interop harness start-up errors #interop", function()
  it("reports the provider's stderr when it cannot start", function()
    local ok, err = pcall(oidc.start, { node = "false" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("did not get ready", 1, true))
  end)

  it("reports a busy port with the provider's stderr", function()
    local op1 = oidc.start()
    local ok, err = pcall(oidc.start, { port = op1.port })
    op1:stop()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("EADDRINUSE", 1, true), err)
  end)

  it("listens on a port given by the caller", function()
    local probe = oidc.start()
    local port = probe.port
    probe:stop()
    local op2 = oidc.start { port = port }
    assert.equal("http://127.0.0.1:" .. port, op2.issuer)
    assert.equal(200, (oidc.request { url = op2.discovery_url }))
    op2:stop()
  end)
end)
