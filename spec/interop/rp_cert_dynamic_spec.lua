-- The OpenID Foundation's Relying Party certification tests (rohe/oidctest,
-- test_tool/cp/test_rplib/rp/flows) of the Dynamic and Form Post profiles, and the
-- optional ones that need registration, request_uri, WebFinger, claims from other
-- sources or the response-type policy; spec/interop/rp_cert_spec.lua has the others.
-- One `it` per test id. Against oidc-provider (spec/interop/ext/rpcert_dyn.js: open
-- registration, request objects, a claims provider at ISSUER/cp and accounts with
-- aggregated and distributed claims); WebFinger against a fake on the recording server
-- over TLS (oidc-provider has none); request objects hosted on the recording server.
-- Dynamic-profile tests use a client registered by the test with smartauth.register.
-- README.md ("Certification profiles (OpenID RP tests)") lists every test id.
local smartauth = require "smartauth"
local cjson = require "cjson"
local core = require "smartauth.core"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"
local server = require "helpers.server"
local certs = require "helpers.certs"
local J = require "helpers.jwt"

local REDIRECT = "http://127.0.0.1/cb"
local ISSUER_REL = "http://openid.net/specs/connect/1.0/issuer"

-- a confidential web-style client (loopback redirect, any port: application_type native)
local CLIENT = { application_type = "native", redirect_uris = { REDIRECT }, response_types = { "code" },
  grant_types = { "authorization_code" }, token_endpoint_auth_method = "client_secret_basic" }

local function with(base, extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function recorder()
  local events = {}
  return events, function(ev) events[#events + 1] = ev end
end

local function find_event(events, path)
  for _, ev in ipairs(events) do
    if ev.url:match("^https?://[^/]+([^?#]*)") == path then return ev end
  end
end

-- p:login in a child process (the loopback listener and the user run at the same time):
-- prints the authorization URL, then the login's result as JSON.
local CHILD = [[
package.path = arg[1] .. ";" .. package.path
package.cpath = arg[2] .. ";" .. package.cpath
local smartauth = require "smartauth"
local cjson = require "cjson"
local p = assert(smartauth.discover(arg[3], { client_id = arg[4], client_secret = arg[5],
  redirect_uri = "http://127.0.0.1/cb", scope = "openid email", response_mode = "form_post" }))
local tok, err = p:login { timeout = 30, params = cjson.decode(arg[6]), show = function() end, open = function(u)
  io.write(u, "\n")
  io.flush()
  return true
end }
io.write(cjson.encode({ sub = tok and tok.claims and tok.claims.sub or false,
  kind = err and err.kind or false, code = err and err.code or false, err = err and tostring(err) or false }))
]]

describe("#interop RP certification (Dynamic, Form Post and optional profiles), against oidc-provider", function()
  local op, s, tmp

  setup(function()
    op = oidc.start { extend = "spec/interop/ext/rpcert_dyn.js" }
    s = server.start()
    tmp = proc.tmpdir("smartauth-rpcert-dyn.XXXXXX")
  end)
  teardown(function()
    if op then op:stop() end
    if s then s:stop() end
    if tmp then proc.rmtree(tmp) end
    J.cleanup()
  end)
  before_each(function() s:reset() end)

  local function register(md, opts)
    return assert(smartauth.register(op.issuer, with(CLIENT, md), opts))
  end

  -- a provider for a registration (reg:options), with more options
  local function client(reg, extra)
    return assert(smartauth.discover(op.issuer, assert(reg:options(with({ scope = "openid" }, extra)))))
  end

  local function login(p, who, extra)
    local url, session = assert(p:authorization_url(extra))
    local redirect = op:login(url, { login = who or "alice", password = "x" })
    return p:exchange_code { url = redirect, session = session }
  end

  -- What a browser does with the OP's auto-submitting form_post page (oidc-provider answers
  -- an error's page with HTTP 400, which op:login does not walk): POST its fields to its action.
  local function submit_form(html)
    local function unescape(v)
      return (v:gsub("&#x(%x+);", function(h) return string.char(tonumber(h, 16)) end)
        :gsub("&#(%d+);", function(d) return string.char(tonumber(d)) end)
        :gsub("&quot;", '"'):gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&amp;", "&"))
    end
    local open = assert(html:match("<form[^>]*>"), "no form on the page")
    assert.matches('method="post"', open:lower(), 1, true)
    local action = unescape(assert(open:match('action="([^"]*)"')))
    local fields = {}
    for tag in html:gmatch("<input[^>]*>") do
      local name, value = tag:match('name="([^"]*)"'), tag:match('value="([^"]*)"')
      if name then fields[#fields + 1] = { unescape(name), unescape(value or "") } end
    end
    return oidc.request { method = "POST", url = action, body = oidc.form_encode(fields),
      headers = { ["content-type"] = "application/x-www-form-urlencoded" } }
  end

  -- p:login with response_mode form_post in a child; the user (or the browser) is played here
  local function loopback_login(reg, params, browser)
    local script = tmp .. "/login.lua"
    local f = assert(io.open(script, "w"))
    f:write(CHILD)
    f:close()
    local child = proc.spawn({ proc.LUA, script, "./lua/?.lua;./lua/?/init.lua", "./" .. proc.BUILD .. "/?.so",
      op.issuer, reg.client_id, reg.client_secret, cjson.encode(params or {}) }, tmp .. "/login.err")
    local u = child:read("*l")
    assert.matches("response_mode=form_post", u, 1, true)
    if browser then
      browser(u)
    else
      -- the OP's form is posted to the listener, which answers with its own page (no redirect)
      local ok, e = pcall(op.login, op, u, { login = "alice" })
      assert.is_false(ok)
      assert.matches("You are logged in", tostring(e), 1, true)
    end
    local got = cjson.decode(child:read("*a"))
    child:close()
    return got, proc.read_file(tmp .. "/login.err") or ""
  end

  -- Dynamic profile

  it("rp-registration-dynamic: the RP registers at the discovered registration_endpoint and logs in " ..
      "with the client it was given", function()
    local events, hook = recorder()
    local reg = register({ client_name = "rp-registration-dynamic" }, { on_http = hook })
    assert.is_string(reg.client_id)
    assert.is_string(reg.client_secret)
    assert.is_string(reg.registration_access_token)
    local ep = assert(smartauth.discover(op.issuer, { client_id = "x" })):metadata().registration_endpoint
    local ev
    for _, e in ipairs(events) do if e.url == ep then ev = e end end
    assert(ev, "no request to the registration endpoint")
    assert.equal("POST", ev.method)
    assert.equal(201, ev.status)
    assert.matches("application/json", ev.request_headers["content-type"], 1, true)
    local sent = cjson.decode(ev.request_body)
    assert.same({ REDIRECT }, sent.redirect_uris)
    assert.equal("client_secret_basic", sent.token_endpoint_auth_method)
    -- the secrets it got never reach the hook
    for _, e in ipairs(events) do
      local text = cjson.encode(e)
      assert.not_matches(reg.client_secret, text, 1, true)
      assert.not_matches(reg.registration_access_token, text, 1, true)
    end
    local tok = assert(login(client(reg)))
    assert.equal(reg.client_id, tok.claims.aud)
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-registration-dynamic: registration, discovery and the code exchange inside smartauth.spawn", function()
    local tok, err
    smartauth.spawn(function()
      local reg, rerr = smartauth.register(op.issuer, with(CLIENT, { client_name = "spawned" }))
      if not reg then err = rerr; return end
      local p = assert(smartauth.discover(op.issuer, assert(reg:options { scope = "openid" })))
      local url, session = assert(p:authorization_url())
      local redirect = op:login(url, { login = "alice", password = "x" })
      tok, err = p:exchange_code { url = redirect, session = session }
    end)
    smartauth.run()
    assert(tok, tostring(err))
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-userinfo-sig: a client registered with userinfo_signed_response_alg RS256 gets a signed " ..
      "UserInfo answer, verified before its claims are used", function()
    local reg = register { userinfo_signed_response_alg = "RS256" }
    assert.equal("RS256", reg.metadata.userinfo_signed_response_alg)
    local events, hook = recorder()
    local p = client(reg, { scope = "openid email", on_http = hook })
    local tok = assert(login(p))
    local info = assert(p:userinfo(tok))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    local ev = assert(find_event(events, "/me"))
    assert.matches("application/jwt", ev.response_headers["content-type"], 1, true)
  end)

  it("rp-id_token-sig-es256: a client registered with id_token_signed_response_alg ES256 verifies " ..
      "the ES256 ID token", function()
    local reg = register { id_token_signed_response_alg = "ES256" }
    local tok = assert(login(client(reg)))
    assert.equal("ES256", oidc.jwt_decode(tok.id_token).alg)
    assert.equal("alice", tok.claims.sub)
  end)

  it("rp-id_token-sig-hs256: a client registered with id_token_signed_response_alg HS256 verifies " ..
      "the HS256 ID token with the secret it was given (reg:options carries the registered alg)", function()
    local reg = register { id_token_signed_response_alg = "HS256" }
    assert.equal("HS256", reg.metadata.id_token_signed_response_alg)
    local p = client(reg)
    assert.equal("HS256", p.options.id_token_signed_response_alg)
    local tok, err = login(p)
    assert(tok, tostring(err))
    assert.equal("HS256", oidc.jwt_decode(tok.id_token).alg)
    assert.equal("alice", tok.claims.sub)
  end)

  -- request_uri: the application builds and hosts the request object; smartauth passes the
  -- URI and checks the callback against the state, nonce and verifier the object holds
  local function hosted_login(reg, sign, path)
    local p = client(reg, { scope = "openid email" })
    local state, nonce = "st-" .. J.b64(core.random(12)), "n-" .. J.b64(core.random(12))
    local verifier = core.pkce_verifier()
    local now = os.time()
    local claims = { iss = reg.client_id, aud = op.issuer, client_id = reg.client_id, response_type = "code",
      redirect_uri = REDIRECT, scope = "openid email", state = state, nonce = nonce,
      code_challenge = core.pkce_challenge(verifier), code_challenge_method = "S256",
      iat = now, exp = now + 300, jti = J.b64(core.random(12)) }
    local ro = sign(claims)
    s:script(path, { headers = { ["Content-Type"] = "application/oauth-authz-req+jwt" }, body = ro })
    local url, session = assert(p:authorization_url { request_uri = s.url .. path, state = state, nonce = nonce,
      code_verifier = verifier })
    local q = oidc.parse_query(url)
    assert.same({ "client_id", "request_uri", "response_type", "scope" }, (function()
      local names = {}
      for k in pairs(q) do names[#names + 1] = k end
      table.sort(names)
      return names
    end)())
    assert.equal(s.url .. path, q.request_uri)
    local redirect = op:login(url, { login = "alice", password = "x" })
    local fetched = 0
    for _, r in ipairs(s:requests()) do if r.path == path then fetched = fetched + 1 end end
    assert.equal(1, fetched)
    return p:exchange_code { url = redirect, session = session }, nonce
  end

  it("rp-request_uri-unsigned: an unsigned request object passed by reference (request_uri) " ..
      "gets an authentication response", function()
    local reg = register {}
    local tok, nonce = hosted_login(reg, function(claims) return J.compact({ alg = "none" }, claims) end,
      "/ro/unsigned.jwt")
    assert(tok)
    assert.equal(nonce, tok.claims.nonce)
    assert.equal(reg.client_id, tok.claims.aud)
    assert.equal("alice@example.com", tok.claims.email)
  end)

  it("rp-request_uri-sig: a request object signed RS256 with the client's registered key, passed by " ..
      "reference, gets an authentication response", function()
    local key = J.key("RSA")
    local reg = register { request_object_signing_alg = "RS256",
      jwks = { keys = { J.public_jwk(key, { kid = "rp-ro-1", use = "sig", alg = "RS256" }) } } }
    local sign = function(claims) return J.sign({ alg = "RS256", kid = "rp-ro-1", typ = "oauth-authz-req+jwt" },
      claims, key) end
    local tok, nonce = hosted_login(reg, sign, "/ro/signed.jwt")
    assert(tok)
    assert.equal(nonce, tok.claims.nonce)
    -- the control: the provider does check that signature (another key's object is refused)
    local other = J.new_key("RSA")
    local p = client(reg)
    s:script("/ro/forged.jwt", { body = J.sign({ alg = "RS256", kid = "rp-ro-1" }, { iss = reg.client_id,
      aud = op.issuer, client_id = reg.client_id, response_type = "code", redirect_uri = REDIRECT,
      scope = "openid", state = "st-forged", nonce = "n-forged" }, other) })
    local url, session = assert(p:authorization_url { request_uri = s.url .. "/ro/forged.jwt", state = "st-forged",
      nonce = "n-forged" })
    -- the OP refuses it in the redirect (state checked first, then the error reported)
    local redirect = op:login(url, { login = "alice", password = "x" })
    local bad, err = p:exchange_code { url = redirect, session = session }
    assert.is_nil(bad)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_request_object", err.code)
  end)

  -- Form Post profile

  it("rp-response_mode-form_post: a code flow with response_mode form_post, through the loopback " ..
      "listener of p:login", function()
    local reg = register {}
    local got, log = loopback_login(reg)
    assert.equal("alice", got.sub, tostring(got.err) .. " " .. log)
  end)

  it("rp-response_mode-form_post: the Basic, Implicit and Hybrid response types with form_post " ..
      "(the form's body given to exchange_code); 'id_token token' is refused by policy", function()
    local reg = register { redirect_uris = { REDIRECT }, response_types = { "code", "id_token", "code id_token" },
      grant_types = { "authorization_code", "implicit" } }
    for _, rt in ipairs { "code", "id_token", "code id_token" } do
      s:reset()
      s:script("/cb", { status = 302, headers = { Location = s.url .. "/done" } }, 0)
      local p = client(reg, { redirect_uri = s.url .. "/cb", response_mode = "form_post", scope = "openid email" })
      local url, session = assert(p:authorization_url { response_type = rt })
      assert.equal("form_post", oidc.parse_query(url).response_mode)
      op:login(url, { login = "alice", password = "x" })
      local req
      for _, r in ipairs(s:requests()) do if r.path == "/cb" then req = r end end
      assert(req, "nothing was posted to the redirect URI for " .. rt)
      assert.equal("POST", req.method)
      assert.equal("", req.query)
      assert.matches("application/x-www-form-urlencoded", req.headers["content-type"], 1, true)
      assert.equal(rt:find("code", 1, true) ~= nil, req.form.code ~= nil, rt)
      assert.equal(rt:find("id_token", 1, true) ~= nil, req.form.id_token ~= nil, rt)
      local tok, err = p:exchange_code { form = req.body, session = session }
      assert(tok, rt .. ": " .. tostring(err))
      assert.equal("alice", tok.claims.sub)
    end
    local p = client(reg, { response_mode = "form_post" })
    local url, err = p:authorization_url { response_type = "id_token token" }
    assert.is_nil(url)
    assert.equal("config", err.kind)
    assert.matches("RFC 9700", err.description, 1, true)
  end)

  it("rp-response_mode-form_post-error: prompt=none with max_age=0 gets an error by form_post, " ..
      "which the loopback listener takes and p:login returns", function()
    local reg = register {}
    local got, log = loopback_login(reg, { prompt = "none", max_age = 0 }, function(u)
      local status, _, page = oidc.request(u)
      assert.equal(400, status)
      assert.matches("login_required", page, 1, true)
      local lstatus, _, lpage = submit_form(page)
      assert.equal(200, lstatus)
      assert.matches("Login failed", lpage, 1, true)
      assert.matches("login_required", lpage, 1, true)
    end)
    assert.is_false(got.sub)
    assert.equal("oauth", got.kind, tostring(got.err) .. " " .. log)
    assert.equal("login_required", got.code)
  end)

  -- aggregated and distributed claims (OIDC Core §5.6.2): the accounts of rpcert_dyn.js
  local function claims_client(events_hook)
    local reg = register {}
    return client(reg, { scope = "openid address phone", claims_issuers = { op.cp_issuer }, allow_http = true,
      on_http = events_hook })
  end

  it("rp-claims-aggregated: the aggregated claims in UserInfo are verified with their issuer's " ..
      "keys and put in place", function()
    local p = claims_client()
    local tok = assert(login(p, "carol"))
    local raw = assert(p:userinfo(tok))
    assert.equal("src1", raw._claim_names.address)
    assert.is_nil(raw.address)
    local info = assert(p:userinfo(tok, { resolve_claims = true }))
    assert.equal("carol", info.sub)
    assert.same({ country = "NZ", locality = "Wellington" }, info.address)
    assert.equal("+64 4 555 0100", info.phone_number)
    assert.is_nil(info._claim_names)
    assert.is_nil(info._claim_sources)
    -- the ID token carries the same sources (scope claims go into it too): p:resolve_claims
    local idc = assert(p:resolve_claims(tok.claims))
    assert.equal("+64 4 555 0100", idc.phone_number)
    -- a source whose signature does not verify: the call fails, nothing unverified comes back
    local etok = assert(login(p, "eve"))
    local bad, err = p:userinfo(etok, { resolve_claims = true })
    assert.is_nil(bad)
    assert.equal("validation", err.kind)
    assert.equal("signature", err.check)
  end)

  it("rp-claims-distributed: the distributed claims are fetched with the source's own access token " ..
      "and verified", function()
    local events, hook = recorder()
    local p = claims_client(hook)
    local tok = assert(login(p, "dave"))
    local info = assert(p:userinfo(tok, { resolve_claims = true }))
    assert.equal("dave", info.sub)
    assert.equal("+64 9 555 0199", info.phone_number)
    local ev = assert(find_event(events, "/cp/claims"), "the distributed source was not fetched")
    assert.equal("Bearer [redacted]", ev.request_headers.authorization)
    assert.equal(200, ev.status)
    for _, e in ipairs(events) do assert.not_matches(op.cp_access_token, cjson.encode(e), 1, true) end
  end)

  -- token-in-redirect response types: refused by policy (RFC 9700 §2.1.2)

  for _, case in ipairs {
    { "rp-response_type-id_token+token", "id_token token" },
    { "rp-response_type-code+token", "code token" },
    { "rp-response_type-code+id_token+token", "code id_token token" },
  } do
    it(case[1] .. ": response_type '" .. case[2] .. "' is a config error naming RFC 9700, as an option " ..
        "and per request", function()
      local p, err = smartauth.discover(op.issuer, { client_id = "x", redirect_uri = REDIRECT,
        response_type = case[2] })
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.matches("RFC 9700", err.description, 1, true)
      assert.matches("access token in the redirect", err.description, 1, true)
      local ok = assert(smartauth.discover(op.issuer, { client_id = "x", redirect_uri = REDIRECT, scope = "openid" }))
      local url, uerr = ok:authorization_url { response_type = case[2] }
      assert.is_nil(url)
      assert.equal("config", uerr.kind)
      assert.matches("RFC 9700", uerr.description, 1, true)
    end)
  end

  -- last: these change the provider's keys

  it("rp-key-rotation-op-sign-key: a dynamically registered client verifies the ID token signed " ..
      "with the provider's new key (the key set fetched once more)", function()
    local reg = register {}
    local events, hook = recorder()
    local p = client(reg, { on_http = hook })
    local first = assert(login(p))
    op:rotate()
    local second = assert(login(p))
    assert.not_equal(oidc.jwt_decode(first.id_token).kid, oidc.jwt_decode(second.id_token).kid)
    assert.equal(reg.client_id, second.claims.aud)
    local n = 0
    for _, ev in ipairs(events) do if ev.url == op.issuer .. "/jwks" then n = n + 1 end end
    assert.equal(2, n)
  end)

  it("rp-key-rotation-op-sign-key-native: a dynamically registered native public client (PKCE) " ..
      "verifies the ID token signed with the provider's new key", function()
    local reg = register { token_endpoint_auth_method = "none", grant_types = { "authorization_code" } }
    assert.is_nil(reg.client_secret)
    local p = client(reg)
    assert.equal("none", p.options.client_auth)
    local before = assert(login(p))
    op:rotate()
    local after = assert(login(p))
    assert.not_equal(oidc.jwt_decode(before.id_token).kid, oidc.jwt_decode(after.id_token).kid)
    assert.equal("alice", after.claims.sub)
  end)
end)

describe("#interop RP certification, WebFinger (a fake on the recording server over TLS)", function()
  local op, ws, c

  setup(function()
    c = certs.make()
    ws = server.start { tls = { cert = c.cert, key = c.key } }
    op = oidc.start { extend = "spec/interop/ext/rpcert_dyn.js" }
  end)
  teardown(function()
    if op then op:stop() end
    if ws then ws:stop() end
    if c then certs.cleanup(c) end
  end)
  before_each(function() ws:reset() end)

  local function answer(doc)
    ws:script("/.well-known/webfinger", { headers = { ["Content-Type"] = "application/jrd+json" },
      body = cjson.encode(doc) })
  end

  local function asked()
    local r = assert(ws:last_request())
    assert.equal("GET", r.method)
    assert.equal("/.well-known/webfinger", r.path)
    assert.equal(ISSUER_REL, r.args.rel)
    return r.args.resource
  end

  -- the rest of the Dynamic profile from the found issuer: discover, register, log in
  local function dynamic_login(issuer)
    local reg = assert(smartauth.register(issuer, with(CLIENT, { client_name = "webfinger" })))
    local p = assert(smartauth.discover(issuer, assert(reg:options { scope = "openid" })))
    local url, session = assert(p:authorization_url())
    local tok = assert(p:exchange_code { url = op:login(url, { login = "alice" }), session = session })
    assert.equal(reg.client_id, tok.claims.aud)
    return tok
  end

  it("rp-discovery-webfinger-acct: an acct: identifier finds the issuer over https, which is then " ..
      "discovered, registered with and logged in at", function()
    local host = "127.0.0.1:" .. ws.port
    answer { subject = "acct:alice@" .. host, links = { { rel = ISSUER_REL, href = op.issuer } } }
    local issuer = assert(smartauth.webfinger("acct:alice@" .. host, { ca_file = c.ca_file }))
    assert.equal(op.issuer, issuer)
    assert.equal("acct:alice@" .. host, asked())
    -- the e-mail-like form is the same account
    answer { subject = "acct:alice@" .. host, links = { { rel = ISSUER_REL, href = op.issuer } } }
    assert.equal(op.issuer, assert(smartauth.webfinger("alice@" .. host, { ca_file = c.ca_file })))
    assert.equal("acct:alice@" .. host, asked())
    assert.equal("alice", dynamic_login(issuer).claims.sub)
  end)

  it("rp-discovery-webfinger-url: a URL identifier finds the issuer (the resource is the URL)", function()
    local u = "https://127.0.0.1:" .. ws.port .. "/joe"
    answer { subject = u, links = { { rel = ISSUER_REL, href = op.issuer } } }
    local issuer = assert(smartauth.webfinger(u, { ca_file = c.ca_file }))
    assert.equal(op.issuer, issuer)
    assert.equal(u, asked())
    -- host:port without a scheme is an https URL (OIDC Discovery §2.1)
    answer { subject = "https://127.0.0.1:" .. ws.port, links = { { rel = ISSUER_REL, href = op.issuer } } }
    assert.equal(op.issuer, assert(smartauth.webfinger("127.0.0.1:" .. ws.port, { ca_file = c.ca_file })))
    assert.equal("https://127.0.0.1:" .. ws.port, asked())
    assert.equal("alice", dynamic_login(issuer).claims.sub)
  end)

  it("rp-discovery-webfinger-http-href: an issuer link with a plain http href is refused", function()
    local host = "127.0.0.1:" .. ws.port
    answer { subject = "acct:alice@" .. host, links = { { rel = ISSUER_REL, href = "http://op.example.org" } } }
    local issuer, err = smartauth.webfinger("acct:alice@" .. host, { ca_file = c.ca_file })
    assert.is_nil(issuer)
    assert.equal("validation", err.kind)
    assert.matches("http", err.description, 1, true)
    -- the control: the same answer with an https href is taken
    answer { subject = "acct:alice@" .. host, links = { { rel = ISSUER_REL, href = "https://op.example.org" } } }
    assert.equal("https://op.example.org", assert(smartauth.webfinger("acct:alice@" .. host, { ca_file = c.ca_file })))
  end)

  it("rp-discovery-webfinger-unknown-member: members the RP does not know are ignored", function()
    local host = "127.0.0.1:" .. ws.port
    answer { subject = "acct:alice@" .. host, aliases = { "https://example.org/~alice" },
      properties = { ["http://example.org/ns/unknown"] = "x" }, dummy = { nested = { 1, 2, 3 } },
      links = {
        { rel = "http://webfinger.net/rel/profile-page", href = "https://example.org/~alice", type = "text/html" },
        { rel = ISSUER_REL, href = op.issuer, titles = { en = "the OP" }, unknown = true },
      } }
    local issuer = assert(smartauth.webfinger("acct:alice@" .. host, { ca_file = c.ca_file }))
    assert.equal(op.issuer, issuer)
  end)
end)
