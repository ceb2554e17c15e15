-- The OpenID Foundation's Relying Party certification tests (the `rp-*` ids of
-- rohe/oidctest, test_tool/cp/test_rplib/rp/flows; profiles Basic, Implicit, Hybrid,
-- Config, Dynamic, Form Post) that smartauth can play today, one `it` per test id.
-- What a certified provider does right is played against oidc-provider
-- (spec/interop/ext/rpcert.js adds its clients); what it will not do wrong (bad
-- signatures, wrong claims, a key set without kids, a lying discovery document) is
-- played against a fake on the recording server whose tokens are signed with the
-- test keys (spec/helpers/idp.lua). Each test asserts what the RP must do: accept,
-- or reject with the `check` that names the failed rule. The Dynamic and Form Post
-- profiles, request_uri, WebFinger and claims sources are in rp_cert_dynamic_spec.lua.
-- README.md ("Certification profiles (OpenID RP tests)") lists every test id and why
-- the others are absent.
local smartauth = require "smartauth"
local oidc = require "helpers.oidc"
local server = require "helpers.server"
local idp = require "helpers.idp"
local J = require "helpers.jwt"

local NONE = idp.NONE
local REDIRECT = "http://127.0.0.1/cb"

-- the parameters of a URL's fragment (implicit and hybrid responses)
local function fragment(u)
  return oidc.parse_query("?" .. (u:match("#(.*)$") or ""))
end

-- a compact JWS with one bit of its signature flipped
local function bad_signature(tok)
  local h, p, s = idp.segments(tok)
  local raw = J.unb64(s)
  raw = string.char((raw:byte(1) + 1) % 256) .. raw:sub(2)
  return h .. "." .. p .. "." .. J.b64(raw)
end

-- every on_http event of a provider, for the tests that check what went on the wire
local function recorder()
  local events = {}
  return events, function(ev) events[#events + 1] = ev end
end

local function find_event(events, path)
  for _, ev in ipairs(events) do
    if ev.url:match("^https?://[^/]+([^?#]*)") == path then return ev end
  end
end

describe("#interop RP certification, against oidc-provider", function()
  local op

  setup(function() op = oidc.start { extend = "spec/interop/ext/rpcert.js" } end)
  teardown(function() if op then op:stop() end end)

  local function discover(opts)
    local o = { redirect_uri = REDIRECT, scope = "openid" }
    for k, v in pairs(opts) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  -- the user logs in and consents; the redirect to the client, and the request's session
  local function authorize(p, extra)
    local url, session = assert(p:authorization_url(extra))
    return op:login(url, { login = "alice", password = "x" }), session, url
  end

  local function login(p, extra)
    local redirect, session = authorize(p, extra)
    return p:exchange_code { url = redirect, session = session }
  end

  local function basic_client(extra)
    local o = { client_id = "basic-client", client_secret = "s3cret: %+ x" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return discover(o)
  end

  -- Basic profile (response_type code)

  it("rp-response_type-code: a code flow request gets a code in the query and a verified ID token", function()
    local p = basic_client()
    local redirect, session, url = authorize(p)
    assert.equal("code", oidc.parse_query(url).response_type)
    local q = oidc.parse_query(redirect)
    assert.is_string(q.code)
    assert.is_nil(redirect:match("#"))
    local tok = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("alice", tok.claims.sub)
    assert.equal(op.issuer, tok.claims.iss)
  end)

  it("rp-response_type-code: the same flow inside smartauth.spawn", function()
    local p = basic_client()
    local tok, err
    smartauth.spawn(function()
      local url, session = assert(p:authorization_url())
      local redirect = op:login(url, { login = "alice", password = "x" })
      tok, err = p:exchange_code { url = redirect, session = session }
    end)
    smartauth.run()
    assert.is_nil(err)
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-scope-userinfo-claims: claims asked with scope values come back from UserInfo", function()
    local p = basic_client { scope = "openid email profile" }
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    assert.equal(true, info.email_verified)
    assert.equal("Alice", info.name)
  end)

  -- client authentication at the token endpoint: the flow succeeds and the wire shows the method
  local AUTH = {
    { "client_secret_basic", { client_id = "basic-client", client_secret = "s3cret: %+ x" },
      function(ev)
        assert.equal("Basic [redacted]", ev.request_headers.authorization)
        assert.not_matches("client_secret", ev.request_body)
      end },
    { "client_secret_post", { client_id = "post-client", client_secret = "p0st: %+ &=x", client_auth = "post" },
      function(ev)
        assert.is_nil(ev.request_headers.authorization)
        assert.matches("client_secret=", ev.request_body, 1, true)
      end },
    { "client_secret_jwt", { client_id = "jwt-secret-client", client_auth = "client_secret_jwt",
        client_secret = "jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz" },
      function(ev)
        assert.matches("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
          ev.request_body, 1, true)
        assert.not_matches("client_secret=", ev.request_body, 1, true)
      end },
    { "private_key_jwt", { client_id = "pkjwt-client", client_auth = "private_key_jwt" },
      function(ev)
        assert.matches("client_assertion=", ev.request_body, 1, true)
        assert.is_nil(ev.request_headers.authorization)
      end },
  }
  for _, case in ipairs(AUTH) do
    local method, opts, wire = case[1], case[2], case[3]
    it("rp-token_endpoint-" .. method .. ": the code is exchanged with " .. method ..
        " and the answer has a verified ID token", function()
      local events, hook = recorder()
      local o = { on_http = hook }
      for k, v in pairs(opts) do o[k] = v end
      if method == "private_key_jwt" then
        o.client_assertion_key, o.client_assertion_kid = op.pkjwt_key_file, op.pkjwt_kid
      end
      local p = discover(o)
      local tok = assert(login(p))
      assert.is_string(tok.id_token)
      assert.equal("alice", tok.claims.sub)
      local ev = assert(find_event(events, "/token"), "no token request seen")
      assert.equal("POST", ev.method)
      assert.equal(200, ev.status)
      wire(ev)
    end)
  end

  it("rp-id_token-sig-rs256: an RS256 ID token is verified with the provider's key and accepted", function()
    local tok = assert(login(basic_client()))
    local h = oidc.jwt_decode(tok.id_token)
    assert.equal("RS256", h.alg)
    assert.is_string(h.kid)
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-userinfo-bearer-header: the access token goes in the Authorization header to UserInfo", function()
    local events, hook = recorder()
    local p = basic_client { on_http = hook }
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    local ev = assert(find_event(events, "/me"), "no UserInfo request seen")
    assert.equal("Bearer [redacted]", ev.request_headers.authorization)
    assert.not_matches("access_token", ev.url)
  end)

  -- optional tests of every profile

  it("rp-id_token-sig-es256: an ES256 ID token is verified with the provider's EC key and accepted", function()
    local p = discover { client_id = "es256-client", client_secret = "es256-secret" }
    local tok = assert(login(p))
    assert.equal("ES256", oidc.jwt_decode(tok.id_token).alg)
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-id_token-sig-hs256: an HS256 ID token is verified with the client secret and accepted", function()
    local p = discover { client_id = "rpcert-hs256", client_secret = "rpcert-hs256-secret-0123456789-abcdefghij",
      id_token_signed_response_alg = "HS256" }
    local tok = assert(login(p))
    assert.equal("HS256", oidc.jwt_decode(tok.id_token).alg)
    assert.equal("alice", tok.claims.sub)
    -- the same token for a client that did not register HS256: refused (no secret-as-key surprise)
    local other = discover { client_id = "rpcert-hs256", client_secret = "rpcert-hs256-secret-0123456789-abcdefghij" }
    local claims, err = other:verify_id_token(tok.id_token)
    assert.is_nil(claims)
    assert.equal("alg", err.check)
  end)

  it("rp-userinfo-sig: a signed UserInfo answer (application/jwt) is verified and its claims used", function()
    local events, hook = recorder()
    local p = discover { client_id = "rpcert-uisig", client_secret = "rpcert-uisig-secret",
      scope = "openid email", on_http = hook }
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    local ev = assert(find_event(events, "/me"))
    assert.matches("application/jwt", ev.response_headers["content-type"], 1, true)
  end)

  it("rp-claims_request-id_token: a claim asked with the claims parameter comes back in the ID token", function()
    local p = basic_client()
    local tok = assert(login(p, { claims = { id_token = { email = { essential = true } } } }))
    assert.equal("alice@example.com", tok.claims.email)
    assert.is_nil(tok.claims.name)
  end)

  it("rp-claims_request-userinfo: a claim asked with the claims parameter comes back from UserInfo", function()
    local p = basic_client()
    local tok = assert(login(p, { claims = { userinfo = { name = { essential = true } } } }))
    local info = assert(p:userinfo(tok))
    assert.equal("Alice", info.name)
    assert.is_nil(info.email)
  end)

  -- Implicit profile (response_type id_token; `id_token token` is refused by policy)

  it("rp-response_type-id_token: an implicit request gets a verified ID token in the fragment", function()
    local p = discover { client_id = "rpcert-hybrid", client_secret = "rpcert-hybrid-secret",
      scope = "openid email" }
    local redirect, session, url = authorize(p, { response_type = "id_token" })
    local q = oidc.parse_query(url)
    assert.equal("id_token", q.response_type)
    assert.is_nil(q.code_challenge) -- no code, no PKCE
    local f = fragment(redirect)
    assert.is_string(f.id_token)
    assert.is_nil(f.code)
    local res = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("alice", res.claims.sub)
    -- rp-scope-userinfo-claims's implicit variant: no access token, the claims are in the ID token
    assert.equal("alice@example.com", res.claims.email)
  end)

  for _, rt in ipairs { "id_token", "code id_token" } do
    it("rp-nonce-unless-code-flow: a nonce is sent with response_type " .. rt ..
        " and the ID token's nonce must equal it", function()
      local p = discover { client_id = "rpcert-hybrid", client_secret = "rpcert-hybrid-secret" }
      local redirect, session, url = authorize(p, { response_type = rt })
      local nonce = oidc.parse_query(url).nonce
      assert.is_string(nonce)
      assert.truthy(#nonce >= 32)
      local front = select(2, oidc.jwt_decode(fragment(redirect).id_token))
      assert.equal(nonce, front.nonce)
      local res = assert(p:exchange_code { url = redirect, session = session })
      assert.equal(nonce, res.claims.nonce)
      -- a second request never reuses it
      local _, _, url2 = authorize(p, { response_type = rt })
      assert.not_equal(nonce, oidc.parse_query(url2).nonce)
    end)
  end

  -- Hybrid profile (code id_token; `code token` and `code id_token token` are refused by policy)

  it("rp-response_type-code+id_token: a hybrid request gets a code and an ID token whose c_hash binds it", function()
    local p = discover { client_id = "rpcert-hybrid", client_secret = "rpcert-hybrid-secret" }
    local redirect, session = authorize(p, { response_type = "code id_token" })
    local f = fragment(redirect)
    assert.is_string(f.code)
    local front = select(2, oidc.jwt_decode(f.id_token))
    assert.is_string(front.c_hash)
    local tok = assert(p:exchange_code { url = redirect, session = session })
    assert.equal("alice", tok.claims.sub)
    assert.is_string(tok.access_token)
  end)

  -- Config profile

  it("rp-discovery-openid-configuration: every endpoint comes from the provider configuration", function()
    local _, doc = oidc.request_json { url = op.issuer .. "/.well-known/openid-configuration" }
    local p = discover { client_id = "basic-client", client_secret = "s3cret: %+ x" }
    for _, k in ipairs { "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
      "end_session_endpoint" } do
      assert.equal(doc[k], p:endpoint(k), k)
    end
    assert.equal(doc.issuer, p:metadata().issuer)
  end)

  it("rp-discovery-jwks_uri-keys: ID tokens are verified with the keys of the discovered jwks_uri", function()
    local events, hook = recorder()
    local p = basic_client { on_http = hook }
    local tok = assert(login(p))
    local ev = assert(find_event(events, "/jwks"), "the key set was not fetched from jwks_uri")
    assert.equal(op.issuer .. "/jwks", ev.url)
    local kid = oidc.jwt_decode(tok.id_token).kid
    local found = false
    for _, k in ipairs(op:health().kids) do if k == kid then found = true end end
    assert.is_true(found)
  end)

  -- last: these change the provider's keys

  it("rp-key-rotation-op-sign-key: after the provider rotates its signing key, the next ID token " ..
      "is verified by fetching the new key set (once)", function()
    local events, hook = recorder()
    local p = basic_client { on_http = hook }
    local first = assert(login(p))
    local kid1 = oidc.jwt_decode(first.id_token).kid
    op:rotate()
    local second = assert(login(p))
    local kid2 = oidc.jwt_decode(second.id_token).kid
    assert.not_equal(kid1, kid2)
    assert.equal("alice", second.claims.sub)
    local n = 0
    for _, ev in ipairs(events) do if ev.url == op.issuer .. "/jwks" then n = n + 1 end end
    assert.equal(2, n)
  end)

  it("rp-key-rotation-op-sign-key-native: a native (public, PKCE) client verifies an ID token " ..
      "signed with a key published after it first read the key set", function()
    local p = discover { client_id = "public-client" }
    local before = assert(login(p))
    op:rotate()
    local after = assert(login(p))
    assert.not_equal(oidc.jwt_decode(before.id_token).kid, oidc.jwt_decode(after.id_token).kid)
    assert.equal("alice", after.claims.sub)
  end)
end)

describe("#interop RP certification, against a misbehaving provider (fake)", function()
  local s
  local T = idp.new()
  local SECRET = idp.SECRET

  setup(function()
    s = server.start()
    T.s = s
  end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function()
    s:reset()
    T.serve_jwks()
  end)

  local function provider(extra)
    local o = { client_secret = SECRET, authorization_endpoint = s.url .. "/authorize",
      userinfo_endpoint = s.url .. "/userinfo", redirect_uri = REDIRECT, scope = "openid" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return T.provider(o)
  end

  -- A code flow whose token endpoint answers with make(nonce) as the ID token.
  local function code_flow(p, make, access_token)
    local url, session = assert(p:authorization_url())
    local q = oidc.parse_query(url)
    access_token = access_token or "at-rpcert-1"
    s:script("/token", { json = { access_token = access_token, token_type = "Bearer", expires_in = 300,
      id_token = make(q.nonce) } }, 0)
    return p:exchange_code { url = REDIRECT .. "?code=code-1&state=" .. oidc.url_encode(q.state), session = session }
  end

  local function rejected(check, tok, err)
    assert.is_nil(tok)
    assert.equal("validation", err.kind)
    assert.equal(check, err.check)
  end

  -- the control: the fake's well-formed token is accepted, so each rejection below is the one defect
  it("the fake provider's well-formed ID token is accepted (control)", function()
    local tok = assert(code_flow(provider(), function(n) return T.token("RS256", { nonce = n }) end))
    assert.equal("alice", tok.claims.sub)
    local form
    for _, r in ipairs(s:requests()) do if r.path == "/token" then form = r.form end end
    assert.equal("authorization_code", form.grant_type)
    assert.equal("code-1", form.code)
  end)

  it("rp-id_token-bad-sig-rs256: an RS256 ID token whose signature does not verify is rejected", function()
    rejected("signature", code_flow(provider(), function(n) return bad_signature(T.token("RS256", { nonce = n })) end))
  end)

  it("rp-id_token-bad-sig-es256: an ES256 ID token whose signature does not verify is rejected", function()
    rejected("signature", code_flow(provider(), function(n) return bad_signature(T.token("ES256", { nonce = n })) end))
  end)

  it("rp-id_token-bad-sig-hs256: an HS256 ID token not made with the client secret is rejected", function()
    local p = provider { id_token_signed_response_alg = "HS256" }
    rejected("signature", code_flow(p, function(n)
      return J.hmac({ alg = "HS256", typ = "JWT" }, T.claims { nonce = n }, "not-the-client-secret-0123456789")
    end))
    -- control: made with the client secret, it is accepted
    assert(code_flow(p, function(n) return J.hmac({ alg = "HS256", typ = "JWT" }, T.claims { nonce = n }, SECRET) end))
  end)

  it("rp-id_token-sig-none: an unsigned ID token (alg none) is rejected, even from the token endpoint " ..
      "(deliberate: the test expects acceptance)", function()
    rejected("alg", code_flow(provider(), function(n)
      return J.b64('{"alg":"none","typ":"JWT"}') .. "." .. J.b64(require("cjson").encode(T.claims { nonce = n })) .. "."
    end))
  end)

  it("rp-id_token-issuer-mismatch: an ID token whose iss is not the issuer is rejected", function()
    rejected("iss", code_flow(provider(), function(n)
      return T.token("RS256", { nonce = n, iss = "https://op.example.org" })
    end))
  end)

  it("rp-id_token-aud: an ID token whose aud is another client is rejected", function()
    rejected("aud", code_flow(provider(), function(n) return T.token("RS256", { nonce = n, aud = "other-client" }) end))
    rejected("aud", code_flow(provider(), function(n) return T.token("RS256", { nonce = n, aud = NONE }) end))
  end)

  it("rp-id_token-iat: an ID token without iat is rejected", function()
    rejected("iat", code_flow(provider(), function(n) return T.token("RS256", { nonce = n, iat = NONE }) end))
  end)

  it("rp-id_token-sub: an ID token without sub is rejected", function()
    rejected("sub", code_flow(provider(), function(n) return T.token("RS256", { nonce = n, sub = NONE }) end))
  end)

  it("rp-nonce-invalid: an ID token whose nonce is not the request's is rejected", function()
    rejected("nonce", code_flow(provider(), function()
      return T.token("RS256", { nonce = "not-the-request-nonce" })
    end))
    rejected("nonce", code_flow(provider(), function() return T.token("RS256", { nonce = NONE }) end))
  end)

  it("rp-id_token-kid-absent-single-jwks: without kid, the one matching key of the set verifies " ..
      "the ID token and it is accepted", function()
    T.serve_jwks(J.jwks(idp.public_jwk("RSA")))
    local tok = assert(code_flow(provider(), function(n) return T.token("RS256", { nonce = n }, { kid = NONE }) end))
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-id_token-kid-absent-multiple-jwks: without kid and several keys, only a key of the set " ..
      "can verify it (each key of the alg is tried; a token of no key in the set is rejected)", function()
    local other = J.new_key("RSA")
    T.serve_jwks(J.jwks(J.public_jwk(other, { kid = "rsa-2", use = "sig" }), idp.public_jwk("RSA"),
      idp.public_jwk("P-256")))
    local tok = assert(code_flow(provider(), function(n) return T.token("RS256", { nonce = n }, { kid = NONE }) end))
    assert.equal("alice", tok.claims.sub)
    local stranger = J.new_key("RSA")
    rejected("signature", code_flow(provider(), function(n)
      return J.sign({ alg = "RS256", typ = "JWT" }, T.claims { nonce = n }, stranger)
    end))
  end)

  -- hybrid front channel: the callback itself carries the code and the ID token
  local function hybrid(make)
    local p = provider()
    local url, session = assert(p:authorization_url { response_type = "code id_token" })
    local q = oidc.parse_query(url)
    local code = "hybrid-code-1"
    s:script("/token", { json = { access_token = "at-h", token_type = "Bearer", expires_in = 300,
      id_token = T.token("RS256", { nonce = q.nonce }) } }, 0)
    local redirect = REDIRECT .. "#" .. oidc.form_encode { code = code, state = q.state,
      id_token = make(q.nonce, code) }
    return p:exchange_code { url = redirect, session = session }
  end

  it("rp-id_token-bad-c_hash: a hybrid ID token whose c_hash is not the code's is rejected " ..
      "before the code is sent", function()
    local tok, err = hybrid(function(n)
      return T.token("RS256", { nonce = n, c_hash = J.half_hash("RS256", "other") })
    end)
    rejected("c_hash", tok, err)
    assert.equal(0, T.fetches("/token"))
    -- control: the right c_hash
    assert(hybrid(function(n, code) return T.token("RS256", { nonce = n, c_hash = J.half_hash("RS256", code) }) end))
  end)

  it("rp-id_token-missing-c_hash: a hybrid ID token without c_hash is rejected", function()
    rejected("c_hash", hybrid(function(n) return T.token("RS256", { nonce = n }) end))
  end)

  it("rp-id_token-bad-at_hash (code flow variant): a token endpoint ID token whose at_hash is not " ..
      "the access token's is rejected", function()
    rejected("at_hash", code_flow(provider(), function(n)
      return T.token("RS256", { nonce = n, at_hash = J.half_hash("RS256", "another-access-token") })
    end, "at-rpcert-2"))
    assert(code_flow(provider(), function(n)
      return T.token("RS256", { nonce = n, at_hash = J.half_hash("RS256", "at-rpcert-3") })
    end, "at-rpcert-3"))
  end)

  it("rp-response_type-code+id_token: when the metadata promises iss (RFC 9207), a hybrid response " ..
      "without iss is taken on its ID token's verified iss, and refused when that names another issuer", function()
    s:script("/rfc9207/.well-known/openid-configuration", { json = {
      issuer = s.url, authorization_endpoint = s.url .. "/authorize", token_endpoint = s.url .. "/token",
      jwks_uri = s.url .. "/jwks", authorization_response_iss_parameter_supported = true } }, 0)
    local function play(rt, iss)
      local p = assert(smartauth.provider { issuer = s.url, client_id = "cid", client_secret = SECRET,
        discovery_url = s.url .. "/rfc9207/.well-known/openid-configuration", redirect_uri = REDIRECT,
        scope = "openid" })
      local url, session = assert(p:authorization_url { response_type = rt })
      local q = oidc.parse_query(url)
      s:script("/token", { json = { access_token = "at-i", token_type = "Bearer", expires_in = 300,
        id_token = T.token("RS256", { nonce = q.nonce }) } }, 0)
      local params = { code = "c-9207", state = q.state }
      if rt ~= "code" then
        params.id_token = T.token("RS256", { nonce = q.nonce, iss = iss, c_hash = J.half_hash("RS256", "c-9207") })
      end
      local sep = rt == "code" and "?" or "#"
      return p:exchange_code { url = REDIRECT .. sep .. oidc.form_encode(params), session = session }
    end
    local tok = assert(play("code id_token"))
    assert.equal("alice", tok.claims.sub)
    rejected("iss", play("code id_token", "https://op.example.org"))
    -- a response without an ID token still needs the promised iss parameter
    rejected("iss", play("code"))
  end)

  it("rp-userinfo-bad-sub-claim: a UserInfo answer whose sub is not the ID token's is rejected", function()
    local p = provider()
    local tok = assert(code_flow(p, function(n) return T.token("RS256", { nonce = n }) end))
    s:script("/userinfo", { json = { sub = "mallory", email = "mallory@example.com" } })
    local info, err = p:userinfo(tok)
    rejected("sub", info, err)
    s:script("/userinfo", { json = { sub = "alice" } })
    assert.equal("alice", assert(p:userinfo(tok)).sub)
    assert.equal("Bearer at-rpcert-1", s:last_request().headers.authorization)
  end)

  it("rp-discovery-issuer-not-matching-config: a provider configuration naming another issuer is rejected",
      function()
    s:script("/.well-known/openid-configuration", { json = {
      issuer = "https://op.example.org", authorization_endpoint = s.url .. "/authorize",
      token_endpoint = s.url .. "/token", jwks_uri = s.url .. "/jwks",
      response_types_supported = { "code" }, subject_types_supported = { "public" },
      id_token_signing_alg_values_supported = { "RS256" } } })
    local p, err = smartauth.discover(s.url, { client_id = "cid", redirect_uri = REDIRECT })
    rejected("iss", p, err)
  end)
end)

-- The tests that need JWE (spec/interop/ext/rpcert_enc.js): nested ID tokens and
-- UserInfo answers decrypted with decryption_keys or with the keys derived from the
-- client secret (OIDC Core §10.2), then verified.
describe("#interop RP certification, encrypted responses against oidc-provider", function()
  local jwe = require "smartauth.jwe"
  local cjson = require "cjson"
  local core = require "smartauth.core"
  local op

  setup(function() op = oidc.start { extend = "spec/interop/ext/rpcert_enc.js" } end)
  teardown(function() if op then op:stop() end end)

  local function client(id, extra)
    local o = { client_id = id, client_secret = op.rpenc_secret, redirect_uri = REDIRECT,
      scope = "openid email" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  local function login(p)
    local url, session = assert(p:authorization_url())
    local redirect = op:login(url, { login = "alice", password = "x" })
    return p:exchange_code { url = redirect, session = session }
  end

  local function header(tok)
    assert.equal(4, select(2, tok:gsub("%.", "")))
    return cjson.decode((core.jwe_parse(tok)))
  end

  -- the UserInfo answer as it came on the wire
  local function raw_userinfo(p, tok)
    local res = assert(p:request { url = p:endpoint("userinfo_endpoint"), token = tok })
    assert.equal(200, res.status)
    assert.matches("^application/jwt", res.headers["content-type"])
    return res.body
  end

  it("rp-id_token-sig+enc: a signed, then encrypted (RSA-OAEP + A128CBC-HS256) ID token is decrypted " ..
      "and its signature verified with the issuer's keys", function()
    local p = client("rpenc-rsa", { decryption_keys = { op.rpenc_rsa_key_file } })
    local tok, err = login(p)
    assert(tok, tostring(err))
    local h = header(tok.id_token)
    assert.same({ "RSA-OAEP", "A128CBC-HS256", "JWT" }, { h.alg, h.enc, h.cty })
    assert.equal("alice", tok.claims.sub)
    assert.equal(op.issuer, tok.claims.iss)
    -- the inner token is a JWS signed with a key of the issuer's set
    local inner = assert(jwe.maybe_decrypt(p, tok.id_token, "ID token"))
    local ih = cjson.decode((core.b64url_decode(inner:match("^[^.]+"))))
    assert.equal("RS256", ih.alg)
    -- without the client's key: refused, never read
    local bare = client("rpenc-rsa")
    local c, verr = bare:verify_id_token(tok.id_token)
    assert.is_nil(c)
    assert.equal("jwe", verr.check)
  end)

  it("rp-id_token-sig+enc: the test's own key management, RSA1_5, stays refused by policy " ..
      "(the PKCS#1 v1.5 padding oracle), before any decryption", function()
    local p = client("rpenc-rsa", { decryption_keys = { op.rpenc_rsa_key_file } })
    local h = core.b64url_encode('{"alg":"RSA1_5","enc":"A128CBC-HS256","cty":"JWT"}')
    local c, err = p:verify_id_token(h .. ".AAAA.AAAAAAAAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA")
    assert.is_nil(c)
    assert.equal("jwe", err.check)
    assert.matches("RSA1_5 is never accepted", err.description)
  end)

  it("rp-id_token-sig+enc-a128kw: an ID token encrypted A128KW + A256CBC-HS512 with the key derived " ..
      "from the client secret is decrypted and verified", function()
    local p = client("rpenc-a128kw") -- no decryption_keys: the client secret is the key
    local tok, err = login(p)
    assert(tok, tostring(err))
    local h = header(tok.id_token)
    assert.same({ "A128KW", "A256CBC-HS512" }, { h.alg, h.enc })
    assert.equal("alice", tok.claims.sub)
    -- another secret derives another key: the one generic failure, no secret in it
    local other = client("rpenc-a128kw", { client_secret = op.rpenc_secret .. "x" })
    local c, verr = other:verify_id_token(tok.id_token)
    assert.is_nil(c)
    assert.equal("ID token: JWE decryption failed", verr.description)
    assert.is_nil(verr.description:find(op.rpenc_secret, 1, true))
  end)

  it("rp-id_token-sig+enc-a128kw (dir variant): dir + A256CBC-HS512, the 64-byte key from SHA-512 " ..
      "of the client secret", function()
    local p = client("rpenc-dir")
    local tok, err = login(p)
    assert(tok, tostring(err))
    local h = header(tok.id_token)
    assert.same({ "dir", "A256CBC-HS512" }, { h.alg, h.enc })
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-userinfo-sig+enc: a signed, then encrypted (ECDH-ES + A256GCM) UserInfo answer is decrypted " ..
      "and verified", function()
    local p = client("rpenc-uisig", { decryption_keys = { op.rpenc_ec_key_file } })
    local tok = assert(login(p))
    local h = header(raw_userinfo(p, tok))
    assert.same({ "ECDH-ES", "A256GCM" }, { h.alg, h.enc })
    local info, err = p:userinfo(tok)
    assert(info, tostring(err))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
  end)

  it("rp-userinfo-enc: an encrypted, unsigned UserInfo answer (a JSON object inside) is decrypted " ..
      "and used as a plain answer is (sub checked against the ID token)", function()
    local p = client("rpenc-ui", { decryption_keys = { op.rpenc_rsa_key_file } })
    local tok = assert(login(p))
    local body = raw_userinfo(p, tok)
    local h = header(body)
    assert.same({ "RSA-OAEP-256", "A128CBC-HS256" }, { h.alg, h.enc })
    local plain = assert(jwe.open(p, body, "UserInfo response"))
    assert.equal("alice", cjson.decode(plain).sub) -- no signature inside
    local info, err = p:userinfo(tok)
    assert(info, tostring(err))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    -- another user's ID token: the answer's sub does not match
    local t2 = setmetatable({ claims = { sub = "bob" } }, { __index = tok })
    local i2, e2 = p:userinfo(t2)
    assert.is_nil(i2)
    assert.equal("sub", e2.check)
    -- without the client's key the answer is refused, never read
    local i3, e3 = client("rpenc-ui"):userinfo(tok)
    assert.is_nil(i3)
    assert.equal("jwe", e3.check)
  end)

  it("rp-userinfo-enc and rp-id_token-sig+enc-a128kw inside smartauth.spawn", function()
    local p = client("rpenc-ui", { decryption_keys = { op.rpenc_rsa_key_file } })
    local q = client("rpenc-a128kw")
    local info, claims, err
    smartauth.spawn(function()
      local tok
      tok, err = login(p)
      if tok then info, err = p:userinfo(tok) end
      if not err then
        tok, err = login(q)
        claims = tok and tok.claims
      end
    end)
    smartauth.run()
    assert.is_nil(err)
    assert.equal("alice", info.sub)
    assert.equal("alice", claims.sub)
  end)
end)
