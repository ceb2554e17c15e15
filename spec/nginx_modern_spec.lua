-- #nginx The modern-OAuth features inside a real nginx (the ngx transport, the
-- shared-dict store) against oidc-provider (spec/interop/ext/nginx_modern.js):
-- DPoP with the server's nonces (a client-credentials token bound to a
-- `dpop_key`, kept in the shared dictionary and read by another provider
-- object; a code-flow token sent to userinfo by `p:request`), `dpop = true`
-- refused with the shared-dict store, PAR pushed from a content handler,
-- JAR request objects alone and pushed, and token exchange. The spec runs
-- under Lua 5.4 and drives nginx from outside; everything OAuth happens in
-- the worker.
local cjson = require "cjson.safe"
local core = require "smartauth.core"
local dpop = require "smartauth.dpop"
local nginx_lua = require "helpers.nginx_lua"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local available, why = nginx_lua.available()
local EXT = "spec/interop/ext/nginx_modern.js"
local CB = "http://127.0.0.1/cb"
local EXCHANGE_AUD = "https://backend.example.test"

-- The Lua the worker runs, as a module made in init_by_lua (the workers
-- inherit it). Errors are answered as their kind, check, option and text.
local APP = [[
  init_by_lua_block {
    local smartauth = require "smartauth"
    local cjson = require "cjson.safe"
    local M = {}
    local issuer = os.getenv("ISSUER")
    local dpop_key = cjson.decode(os.getenv("DPOP_KEY")) -- a private JWK
    local events -- the on_http events of the request being served
    local function hook(ev)
      if events then
        events[#events + 1] = { url = ev.url, status = ev.status, body = ev.response_body,
          dpop = ev.request_headers.dpop, authorization = ev.request_headers.authorization,
          www = ev.response_headers and ev.response_headers["www-authenticate"] }
      end
    end
    local function reply(t)
      ngx.header["Content-Type"] = "application/json"
      ngx.say(cjson.encode(t))
      return ngx.exit(200)
    end
    local function failed(err)
      return reply { error = { kind = err.kind, description = err.description, option = err.option,
        check = err.check, code = err.code } }
    end
    local function shdict() return assert(smartauth.store.shdict { dict = "smartauth" }) end
    local OPTS = {
      dpop = { client_id = "ngx-dpop", client_secret = "ngx-dpop-secret", dpop_key = dpop_key,
        scope = "openid email" },
      jar = { client_id = "ngx-jar", client_auth = "private_key_jwt", client_assertion_key = os.getenv("JAR_KEY"),
        client_assertion_kid = os.getenv("JAR_KID"), request_object = true, scope = "openid email" },
      exchange = { client_id = "exchange-client", client_secret = "exchange-secret" },
    }
    local CC = { client_id = "ngx-dpop", client_secret = "ngx-dpop-secret", dpop_key = dpop_key,
      grant = "client_credentials", retry = false, on_http = hook, issuer = issuer }
    -- one provider per kind and PAR setting in a worker, discovered on first use
    local providers = {}
    local function provider(kind, par)
      local name = kind .. (par and "+par" or "")
      if providers[name] then return providers[name] end
      local o = { redirect_uri = "http://127.0.0.1/cb", retry = false, on_http = hook, store = shdict(),
        par = par or nil }
      for k, v in pairs(OPTS[kind]) do o[k] = v end
      local p, err = smartauth.discover(issuer, o)
      if p then providers[name] = p end
      return p, err
    end
    M.provider = provider

    -- a DPoP-bound client-credentials token in the shared dictionary
    function M.cc()
      events = {}
      local o = { store = shdict() }
      for k, v in pairs(CC) do o[k] = v end
      local p, err = smartauth.discover(issuer, o)
      if not p then return failed(err) end
      local tok, terr = p:token()
      if not tok then return failed(terr) end
      local info, ierr = p:introspect(tok)
      if not info then return failed(ierr) end
      local ev = events
      events = nil
      -- another provider with the same key and store (as another worker's):
      -- the stored token, no request
      o = { store = shdict(), token_endpoint = p:endpoint("token_endpoint") }
      for k, v in pairs(CC) do o[k] = v end
      local p2 = assert(smartauth.provider(o))
      events = {}
      local tok2, t2err = p2:token()
      if not tok2 then return failed(t2err) end
      local later = events
      events = nil
      return reply { token_type = tok.token_type, jkt = tok.ext.dpop_jkt, events = ev,
        active = info.active, info_token_type = info.token_type, info_jkt = info.cnf and info.cnf.jkt,
        stored_same = tok2.access_token == tok.access_token, stored_jkt = tok2.ext.dpop_jkt,
        stored_requests = #later }
    end

    -- dpop = true keeps a generated key in the entry: refused with this store
    function M.dpop_true()
      local p, err = smartauth.provider { token_endpoint = issuer .. "/token", client_id = "ngx-dpop",
        client_secret = "ngx-dpop-secret", dpop = true, store = shdict() }
      if p then return reply { made = true } end
      return failed(err)
    end

    -- the authorization URL, its session kept under its state
    function M.authz()
      events = {}
      local p, err = provider(ngx.var.arg_kind, ngx.var.arg_par == "1")
      if not p then return failed(err) end
      local url, session = p:authorization_url()
      if not url then return failed(session) end
      ngx.shared.sessions:set(session.state, cjson.encode(session), 600)
      local ev = events
      events = nil
      return reply { url = url, events = ev }
    end

    -- the callback: the code exchanged, then the token used
    function M.callback()
      events = {}
      local p, err = provider(ngx.var.arg_kind, ngx.var.arg_par == "1")
      if not p then return failed(err) end
      local cb = ngx.unescape_uri(ngx.var.arg_u)
      local state = cb:match("[?&]state=([^&]*)")
      local session = cjson.decode(ngx.shared.sessions:get(ngx.unescape_uri(state or "")) or "null")
      if not session then return reply { error = { description = "no session" } } end
      local keep = ngx.var.arg_keep ~= "0"
      local tok, xerr = p:exchange_code { url = cb, session = session, keep = keep }
      if not tok then return failed(xerr) end
      local out = { token_type = tok.token_type, jkt = tok.ext and tok.ext.dpop_jkt, sub = tok.claims.sub }
      local stored = p:stored()
      out.kept = stored ~= nil and stored.access_token == tok.access_token
      -- userinfo with the token (DPoP: a proof with ath, the server's nonce taken);
      -- p:request's own when it was kept
      local res, rerr = p:request { url = p:endpoint("userinfo_endpoint"), token = (not keep) and tok or nil }
      if not res then return failed(rerr) end
      out.userinfo_status, out.userinfo = res.status, cjson.decode(res.body)
      out.events = events
      if ngx.var.arg_kind == "dpop" then
        -- a new provider object with the same key has no nonce yet: userinfo asks for one
        events = {}
        local o = { redirect_uri = "http://127.0.0.1/cb", retry = false, on_http = hook, store = shdict() }
        for k, v in pairs(OPTS.dpop) do o[k] = v end
        local fresh = assert(smartauth.discover(issuer, o))
        local res2, r2err = fresh:request { url = p:endpoint("userinfo_endpoint"), token = tok }
        if not res2 then return failed(r2err) end
        out.fresh_status, out.fresh_events = res2.status, events
      end
      events = nil
      if ngx.var.arg_exchange == "1" then
        local ex, eerr = provider("exchange")
        if not ex then return failed(eerr) end
        local got, gerr = ex:token_exchange { subject_token = tok, subject_token_type = "access_token",
          audience = os.getenv("EXCHANGE_AUD") }
        if not got then return failed(gerr) end
        out.exchanged = { issued_token_type = got.issued_token_type, token_type = got.token_type,
          scope = got.scope, differs = got.access_token ~= tok.access_token, kept = ex:stored() ~= nil }
      end
      return reply(out)
    end

    package.loaded["modern_app"] = M
  }
]]

local HTTP = APP .. [[
  lua_shared_dict smartauth 1m;
  lua_shared_dict sessions 1m;
  server {
    listen 127.0.0.1:$PORT;
    location = /cc { content_by_lua_block { require("modern_app").cc() } }
    location = /dpop_true { content_by_lua_block { require("modern_app").dpop_true() } }
    location = /authz { content_by_lua_block { require("modern_app").authz() } }
    location = /callback { content_by_lua_block { require("modern_app").callback() } }
  }
]]

describe("#nginx the modern-OAuth features inside nginx", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end

  local op, n, jwk
  setup(function()
    op = oidc.start { extend = EXT }
    jwk = assert(core.key_generate("EC", "P-256")):private_jwk()
    n = nginx_lua.start { http = HTTP, workers = 1, env = {
      ISSUER = op.issuer, DPOP_KEY = cjson.encode(jwk), JAR_KEY = assert(proc.read_file(op.ngx_jar_key_file)),
      JAR_KID = op.ngx_jar_kid, EXCHANGE_AUD = EXCHANGE_AUD,
    } }
  end)
  teardown(function()
    if n then n:stop() end
    if op then op:stop() end
  end)

  local function counts()
    local _, c = oidc.request_json(op.issuer .. "/test/counts")
    return c
  end

  local function call(path)
    local st, _, body = oidc.request { url = n.url .. path }
    assert.are.equal(200, st, n:error_log())
    return assert(cjson.decode(body), body)
  end

  -- the token endpoint's events, in order
  local function at(events, path)
    local out = {}
    for _, ev in ipairs(events or {}) do
      if ev.url == op.issuer .. path then out[#out + 1] = ev end
    end
    return out
  end

  -- a whole login through nginx: /authz, the person at the provider, /callback
  local function login(query, extra)
    local a = call("/authz?" .. query)
    assert.is_nil(a.error, a.error and a.error.description)
    local redirect = op:login(a.url, { login = "alice", password = "x" })
    assert.are.equal(CB, redirect:match("^[^?]+"))
    local r = call("/callback?" .. query .. (extra or "") .. "&u=" .. oidc.url_encode(redirect))
    return a, r
  end

  it("gets a DPoP-bound client-credentials token with dpop_key, taking the server's nonce, kept in the shdict",
    function()
    local r = call("/cc")
    assert.is_nil(r.error, r.error and r.error.description)
    assert.are.equal("DPoP", r.token_type)
    assert.are.equal(dpop.thumbprint(jwk), r.jkt)
    local tev = at(r.events, "/token")
    assert.are.equal(2, #tev, cjson.encode(r.events))
    assert.are.equal(400, tev[1].status)
    assert.matches("use_dpop_nonce", tev[1].body, 1, true)
    assert.are.equal(200, tev[2].status)
    assert.are.equal("[redacted]", tev[2].dpop)
    -- the provider bound it to the key
    assert.is_true(r.active)
    assert.are.equal("DPoP", r.info_token_type)
    assert.are.equal(r.jkt, r.info_jkt)
    -- another provider object with the same key reads it from the shared dictionary
    assert.is_true(r.stored_same)
    assert.are.equal(r.jkt, r.stored_jkt)
    assert.are.equal(0, r.stored_requests)
  end)

  it("refuses dpop = true with the shared-dict store, which does not encrypt", function()
    local r = call("/dpop_true")
    assert.is_nil(r.made)
    assert.are.equal("config", r.error.kind)
    assert.are.equal("dpop", r.error.option)
    assert.matches("does not encrypt", r.error.description, 1, true)
    assert.matches("dpop_key", r.error.description, 1, true)
  end)

  it("pushes the request (PAR) from a content handler, then runs a DPoP code flow to userinfo " ..
    "and exchanges the token", function()
    local c0 = counts()
    local a, r = login("kind=dpop&par=1", "&exchange=1")
    -- the URL carries only client_id and request_uri: the rest was pushed by the worker
    local q = oidc.parse_query(a.url:match("%?(.*)$"))
    local names = {}
    for k in pairs(q) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "client_id", "request_uri" }, names)
    assert.are.equal("ngx-dpop", q.client_id)
    assert.matches("^urn:ietf:params:oauth:request_uri:", q.request_uri)
    assert.are.equal(c0.par + 1, counts().par)
    local pev = at(a.events, "/request")
    assert.are.equal(201, pev[#pev].status)
    -- the code flow's token is DPoP-bound to the key, userinfo answered after its nonce
    assert.is_nil(r.error, r.error and r.error.description)
    assert.is_true(r.kept) -- in the shared dictionary, as the provider's own
    assert.is_true(r.kept) -- in the shared dictionary, as the provider's own
    assert.are.equal("DPoP", r.token_type)
    assert.are.equal(dpop.thumbprint(jwk), r.jkt)
    assert.are.equal("alice", r.sub)
    assert.are.equal(200, r.userinfo_status)
    assert.are.equal("alice", r.userinfo.sub)
    -- the nonce the token endpoint gave is used at userinfo (one server): one request
    local uev = at(r.events, "/me")
    assert.are.equal(1, #uev, cjson.encode(r.events))
    assert.are.equal(200, uev[1].status)
    assert.are.equal("DPoP [redacted]", uev[1].authorization)
    -- a provider object without that nonce gets userinfo's 401 and sends the request once more
    assert.are.equal(200, r.fresh_status)
    uev = at(r.fresh_events, "/me")
    assert.are.equal(2, #uev, cjson.encode(r.fresh_events))
    assert.are.equal(401, uev[1].status)
    assert.matches("use_dpop_nonce", uev[1].www, 1, true)
    assert.are.equal(200, uev[2].status)
    assert.are.equal("DPoP [redacted]", uev[2].authorization)
    assert.are.equal("[redacted]", uev[2].dpop)
    -- token exchange (RFC 8693) of that token by another client, inside nginx: a new
    -- token for the backend, returned and not kept
    local x = r.exchanged
    assert.are.equal("urn:ietf:params:oauth:token-type:access_token", x.issued_token_type)
    assert.are.equal("Bearer", x.token_type)
    assert.are.equal("openid email", x.scope)
    assert.is_true(x.differs)
    assert.is_false(x.kept)
  end)

  it("sends a signed request object (JAR), alone and pushed; keep = false keeps nothing", function()
    local c0 = counts()
    local a, r = login("kind=jar", "&keep=0")
    local q = oidc.parse_query(a.url:match("%?(.*)$"))
    local names = {}
    for k in pairs(q) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "client_id", "request" }, names)
    local h, claims = oidc.jwt_decode(q.request)
    assert.are.equal("oauth-authz-req+jwt", h.typ)
    assert.are.equal("RS256", h.alg)
    assert.are.equal(op.ngx_jar_kid, h.kid)
    assert.are.equal("ngx-jar", claims.iss)
    assert.are.equal(op.issuer, claims.aud)
    assert.are.equal(CB, claims.redirect_uri)
    assert.are.equal("S256", claims.code_challenge_method)
    assert.is_string(claims.nonce)
    assert.are.equal(c0.par, counts().par) -- nothing pushed
    assert.is_nil(r.error, r.error and r.error.description)
    assert.are.equal("Bearer", r.token_type)
    assert.are.equal("alice", r.sub)
    assert.are.equal(200, r.userinfo_status)
    assert.is_false(r.kept) -- keep = false: not in the shared dictionary
    -- pushed: the request object goes to the PAR endpoint, the URL has its request_uri
    a, r = login("kind=jar&par=1")
    q = oidc.parse_query(a.url:match("%?(.*)$"))
    assert.is_nil(q.request)
    assert.matches("^urn:ietf:params:oauth:request_uri:", q.request_uri)
    assert.are.equal(c0.par + 1, counts().par)
    assert.is_nil(r.error, r.error and r.error.description)
    assert.are.equal("alice", r.sub)
    assert.is_true(r.kept)
  end)
end)

-- Mutual TLS (RFC 8705) inside nginx: tls_client_auth with the certificate
-- sent through tcpsock:setclientcert, the mtls_endpoint_aliases, a
-- certificate-bound token used at an API over the same certificate and
-- refused over none. oidc-provider serves https with a certificate for
-- 127.0.0.1 as a DNS name (nginx checks DNS names only), trusted through
-- lua_ssl_trusted_certificate (spec/interop/ext/mtls.js).
local MTLS_APP = [[
  lua_ssl_trusted_certificate $CA_FILE;
  init_by_lua_block {
    local smartauth = require "smartauth"
    local cjson = require "cjson.safe"
    local issuer = os.getenv("ISSUER")
    local M = {}
    local function reply(t)
      ngx.header["Content-Type"] = "application/json"
      ngx.say(cjson.encode(t))
      return ngx.exit(200)
    end
    local function failed(err)
      return reply { error = { kind = err.kind, description = err.description, option = err.option } }
    end
    function M.run()
      local p, err = smartauth.discover(issuer, { client_id = "mtls-ca-client", client_auth = "tls_client_auth",
        client_cert = os.getenv("CLIENT_CERT"), client_key = os.getenv("CLIENT_KEY"), retry = false,
        grant = "client_credentials", scope = "api:read" })
      if not p then return failed(err) end
      local tok, terr = p:token()
      if not tok then return failed(terr) end
      local info, ierr = p:introspect(tok)
      if not info then return failed(ierr) end
      local res, rerr = p:request { url = issuer .. "/api/whoami" }
      if not res then return failed(rerr) end
      -- the same token from a provider without a certificate
      local bare = assert(smartauth.discover(issuer, { client_id = "basic-client", client_secret = "s3cret: %+ x",
        retry = false }))
      local res2, r2err = bare:request { url = issuer .. "/api/whoami", token = tok }
      if not res2 then return failed(r2err) end
      return reply { token_endpoint = p:endpoint("token_endpoint"), token_type = tok.token_type,
        active = info.active, x5t = info.cnf and info.cnf["x5t#S256"], api_status = res.status,
        api = cjson.decode(res.body), bare_status = res2.status, bare_www = res2.headers["www-authenticate"] }
    end
    package.loaded["mtls_app"] = M
  }
  server {
    listen 127.0.0.1:$PORT;
    location = /run { content_by_lua_block { require("mtls_app").run() } }
  }
]]

describe("#nginx mutual TLS inside nginx", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end
  local smartauth = require "smartauth"
  local certs = require "helpers.certs"
  local q = proc.shell_quote
  local op, n, c, a

  setup(function()
    c = certs.make()
    a = certs.client(c, "client-a", "unused-password")
    -- ext/mtls.js also registers a self_signed_tls_client_auth client: its certificate
    local ss_cert, ss_key = c.dir .. "/ss.pem", c.dir .. "/ss.key"
    assert(proc.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
      "-subj /CN=self-signed -keyout " .. q(ss_key) .. " -out " .. q(ss_cert) .. " 2>/dev/null"))
    local f = assert(io.open(c.dir .. "/mtls-ext.json", "wb"))
    f:write(cjson.encode { subject_dn = "CN=client-a", self_signed_pem = proc.read_file(ss_cert) })
    f:close()
    local cert, key = nginx_lua.loopback_cert(c)
    for _, x in ipairs { ss_cert, ss_key, c.dir .. "/mtls-ext.json", cert, key, c.dir .. "/ngx.csr",
      c.dir .. "/ngx.ext" } do
      c.extra[#c.extra + 1] = x
    end
    op = oidc.start { extend = oidc.root .. "/spec/interop/ext/mtls.js",
      tls = { cert = cert, key = key, ca = c.ca_file } }
    -- PEM text: the workers (user nobody) cannot read the spec's private directory
    n = nginx_lua.start { http = (MTLS_APP:gsub("%$CA_FILE", function() return c.ca_file end)), workers = 1, env = {
      ISSUER = op.issuer, CLIENT_CERT = proc.read_file(a.cert), CLIENT_KEY = proc.read_file(a.key) } }
  end)
  teardown(function()
    if n then n:stop() end
    if op then op:stop() end
    if c then certs.cleanup(c) end
  end)

  it("authenticates with the client certificate at the alias, and uses the bound token over it", function()
    local st, _, body = oidc.request { url = n.url .. "/run" }
    assert.are.equal(200, st, n:error_log())
    local r = assert(cjson.decode(body), body)
    assert.is_nil(r.error, r.error and r.error.description)
    assert.are.equal(op.issuer .. "/mtls/token", r.token_endpoint)
    assert.are.equal("Bearer", r.token_type)
    assert.is_true(r.active)
    local x5t = smartauth.cert_thumbprint(a.cert)
    assert.are.equal(x5t, r.x5t)
    assert.are.equal(200, r.api_status)
    assert.are.equal("mtls-ca-client", r.api.client_id)
    assert.are.equal(x5t, r.api.x5t)
    -- without the certificate the same token is refused
    assert.are.equal(401, r.bare_status)
    assert.matches("invalid_token", r.bare_www, 1, true)
  end)
end)
