-- Interop: DPoP (RFC 9449) against oidc-provider with features.dPoP on and a
-- nonce required in every proof (spec/interop/ext/dpop.js): DPoP-bound
-- client-credentials tokens, the authorization code flow of a public client
-- and the refresh of its DPoP-bound refresh token, p:request to userinfo
-- (a resource that checks the proof and asks for its own nonce), and
-- verify_proof on proofs this client made; also inside smartauth.spawn.
local smartauth = require "smartauth"
local dpop = require "smartauth.dpop"
local core = require "smartauth.core"
local oidc = require "helpers.oidc"

describe("#interop DPoP with oidc-provider", function()
  local op

  setup(function() op = oidc.start { extend = "spec/interop/ext/dpop.js" } end)
  teardown(function() if op then op:stop() end end)

  local function discover(opts)
    local o = { redirect_uri = "http://127.0.0.1/cb", retry = false }
    for k, v in pairs(opts) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  local function recorder()
    local events = {}
    return events, function(ev) events[#events + 1] = ev end
  end

  local function login(p, extra)
    local url, session = p:authorization_url(extra)
    local redirect = op:login(url, { login = "alice", password = "x" })
    return p:exchange_code { url = redirect, session = session }
  end

  it("gets a DPoP-bound client-credentials token, taking the server's nonce", function()
    local events, hook = recorder()
    local p = discover { client_id = "dpop-client", client_secret = "dpop-secret", dpop = true, on_http = hook }
    local tok = assert(p:client_credentials { scope = "api:read" })
    assert.equal("DPoP", tok.token_type)
    -- discovery, use_dpop_nonce, the token
    local token_events = {}
    for _, ev in ipairs(events) do
      if ev.url == p:endpoint("token_endpoint") then token_events[#token_events + 1] = ev end
    end
    assert.equal(2, #token_events)
    assert.equal(400, token_events[1].status)
    assert.matches("use_dpop_nonce", token_events[1].response_body)
    assert.equal(200, token_events[2].status)
    assert.equal("[redacted]", token_events[2].request_headers.dpop)
    -- the server bound it to our key
    local info = assert(p:introspect(tok))
    assert.is_true(info.active)
    assert.equal("DPoP", info.token_type)
    assert.equal(tok.ext.dpop_jkt, info.cnf and info.cnf.jkt)
    -- a second grant uses the remembered nonce: one request
    local before = #events
    assert(p:client_credentials { scope = "api:read" })
    assert.equal(before + 1, #events)
  end)

  it("refuses a client whose tokens must be DPoP-bound when no proof is sent", function()
    local p = discover { client_id = "dpop-client", client_secret = "dpop-secret" }
    local tok, err = p:client_credentials { scope = "api:read" }
    assert.is_nil(tok)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_grant", err.code) -- oidc-provider's answer to a missing proof
  end)

  it("runs a public client's code flow, calls userinfo, refreshes its bound refresh token", function()
    local p = discover { client_id = "public-client", scope = "openid email offline_access", dpop = true }
    local tok = assert(login(p, { prompt = "consent" }))
    assert.equal("DPoP", tok.token_type)
    assert.is_string(tok.refresh_token)
    local res = assert(p:request { url = p:endpoint("userinfo_endpoint") })
    assert.equal(200, res.status, res.body)
    assert.matches('"sub":"alice"', res.body, 1, true)
    -- the refresh token is bound to the key: refreshed with a proof by the same key
    local nt = assert(p:refresh(tok))
    assert.equal("DPoP", nt.token_type)
    assert.not_equal(tok.access_token, nt.access_token)
    assert.equal(tok.ext.dpop_jkt, nt.ext.dpop_jkt)
    res = assert(p:request { url = p:endpoint("userinfo_endpoint") })
    assert.equal(200, res.status)
    -- another key cannot use it
    local thief = discover { client_id = "public-client", scope = "openid email offline_access", dpop = true }
    local stolen, err = thief:refresh(nt.refresh_token)
    assert.is_nil(stolen)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_grant", err.code)
  end)

  it("p:userinfo sends the DPoP-bound token with a proof", function()
    local p = discover { client_id = "public-client", scope = "openid email", dpop = true }
    assert(login(p, { prompt = "consent" }))
    local info = assert(p:userinfo())
    assert.equal("alice", info.sub)
  end)

  it("a resource server verifies the DPoP-bound JWT access token the provider issued, with the client's proof",
    function()
    local RES = "https://api.example/dpop"
    local client = discover { client_id = "dpop-client", client_secret = "dpop-secret", dpop = true }
    local tok = assert(client:client_credentials { scope = "api:read", resource = RES })
    assert.equal("DPoP", tok.token_type)
    local rs = discover { client_id = "resource-server" }
    local url = RES .. "/v1/items?x=1"
    local proof = assert(dpop.proof(client, "GET", url, tok.access_token))
    local claims = assert(rs:verify_access_token(tok.access_token,
      { audience = RES, scope = "api:read", dpop = { proof = proof, method = "GET", url = url } }))
    assert.equal("dpop-client", claims.client_id)
    assert.equal(tok.ext.dpop_jkt, claims.cnf.jkt)
    -- the same proof again is a replay (its jti is remembered in the RS's store)
    local again, rerr = rs:verify_access_token(tok.access_token,
      { audience = RES, dpop = { proof = proof, method = "GET", url = url } })
    assert.is_nil(again)
    assert.equal("dpop", rerr.check)
    -- a proof for another method, by another key, or none at all is refused
    local post = assert(dpop.proof(client, "POST", url, tok.access_token))
    local c2, e2 = rs:verify_access_token(tok.access_token,
      { audience = RES, dpop = { proof = post, method = "GET", url = url } })
    assert.is_nil(c2)
    assert.equal("dpop", e2.check)
    local thief = discover { client_id = "dpop-client", client_secret = "dpop-secret", dpop = true }
    local stolen = assert(dpop.proof(thief, "GET", url, tok.access_token))
    local c3, e3 = rs:verify_access_token(tok.access_token,
      { audience = RES, dpop = { proof = stolen, method = "GET", url = url } })
    assert.is_nil(c3)
    assert.equal("dpop", e3.check)
    local c4, e4 = rs:verify_access_token(tok.access_token, { audience = RES })
    assert.is_nil(c4)
    assert.equal("dpop", e4.check)
    local hdr, status = smartauth.www_authenticate(e4, { dpop = true })
    assert.equal(401, status)
    assert.matches('DPoP error="invalid_dpop_proof"', hdr, 1, true)
  end)

  it("takes a resource server's nonce on a 401 and sends the request once more", function()
    local jwk = assert(core.key_generate("EC", "P-256")):private_jwk()
    local p = discover { client_id = "public-client", scope = "openid email", dpop_key = jwk }
    local tok = assert(login(p))
    assert.equal(dpop.thumbprint(jwk), tok.ext.dpop_jkt)
    -- a new provider with the same key has no nonce yet: userinfo asks for one
    local events, hook = recorder()
    local p2 = discover { client_id = "public-client", scope = "openid email", dpop_key = jwk, on_http = hook }
    local res = assert(p2:request { url = p2:endpoint("userinfo_endpoint"), token = tok })
    assert.equal(200, res.status, res.body)
    local calls = {}
    for _, ev in ipairs(events) do
      if ev.url == p2:endpoint("userinfo_endpoint") then calls[#calls + 1] = ev end
    end
    assert.equal(2, #calls)
    assert.equal(401, calls[1].status)
    assert.matches('use_dpop_nonce', calls[1].response_headers["www-authenticate"])
    assert.equal("DPoP [redacted]", calls[2].request_headers.authorization)
  end)

  it("verify_proof accepts the proofs this client makes and the server accepted", function()
    local p = discover { client_id = "dpop-client", client_secret = "dpop-secret", dpop = true }
    local tok = assert(p:client_credentials { scope = "api:read" })
    local info = assert(p:introspect(tok))
    local url = op.issuer .. "/resource?x=1"
    local proof = assert(dpop.proof(p, "POST", url, tok.access_token))
    local store = smartauth.store.memory()
    local claims = assert(dpop.verify_proof(proof, { method = "POST", url = url,
      access_token = tok.access_token, jkt = info.cnf.jkt, store = store }))
    assert.equal(op.issuer .. "/resource", claims.htu)
    assert.is_string(claims.nonce) -- the server's, remembered from the token endpoint
    local again, err = dpop.verify_proof(proof, { method = "POST", url = url,
      access_token = tok.access_token, jkt = info.cnf.jkt, store = store })
    assert.is_nil(again)
    assert.equal("jti", err.check)
    local _, werr = dpop.verify_proof(proof, { method = "POST", url = url, access_token = "other" })
    assert.equal("ath", werr.check)
  end)

  it("works inside smartauth.spawn", function()
    local p = discover { client_id = "dpop-client", client_secret = "dpop-secret", dpop = true }
    assert(p:discover())
    local got, gerr
    smartauth.spawn(function()
      local tok, err = p:client_credentials { scope = "api:read" }
      if not tok then gerr = err return end
      got = tok
    end)
    smartauth.run()
    assert.is_nil(gerr)
    assert.equal("DPoP", got.token_type)
    assert.equal(got.ext.dpop_jkt, assert(p:introspect(got)).cnf.jkt)
  end)
end)
