-- The four service presets (DESIGN.md, "The services it must speak to"): the URLs they
-- build and the bytes they put on the wire, checked against the local test server by
-- overriding each preset's endpoints with the server's URLs.
local smartauth = require "smartauth"
local server = require "helpers.server"
local proc = require "helpers.proc"
local mime = require "mime"

-- application/x-www-form-urlencoded decoding of one component, written here so that
-- the spec does not check the library with the library.
local function form_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Splits a URL into the part before '?' and its decoded query parameters.
local function split_url(u)
  local base, query = u:match("^([^?#]*)%??([^#]*)")
  local args, names = {}, {}
  for part in query:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    k, v = form_decode(k), form_decode(v)
    assert(args[k] == nil, "parameter '" .. k .. "' repeated")
    args[k] = v
    names[#names + 1] = k
  end
  table.sort(names)
  return base, args, names
end

-- Sorted names of a recorded form.
local function form_names(req)
  local names = {}
  for _, p in ipairs(req.form_pairs or {}) do names[#names + 1] = p[1] end
  table.sort(names)
  return names
end

-- S256 code challenge (RFC 7636 §4.2) computed by the openssl command line tool.
local function s256(verifier)
  local ok, _, out = proc.run("printf %s " .. proc.shell_quote(verifier) ..
    " | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\\n'")
  assert(ok, "openssl failed")
  return out
end

local function paths(s)
  local list = {}
  for _, r in ipairs(s:requests()) do list[#list + 1] = r.method .. " " .. r.path end
  return list
end

local function assert_config_error(p, err, pattern)
  assert.is_nil(p)
  assert.is_table(err)
  assert.equal("config", err.kind)
  if pattern then assert.matches(pattern, err.description, 1, true) end
end

describe("presets", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function() s:reset() end)

  ------------------------------------------------------------------ SmartFile
  describe("smartfile (OAuth2 authorization code)", function()
    local function sf(extra)
      local o = {
        domain = "example.smartfile.com", client_id = "sf-client", client_secret = "sf-secret-value",
        redirect_uri = "https://app.example.com/callback",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      if o.redirect_uri == false then o.redirect_uri = nil end
      return smartauth.smartfile(o)
    end

    it("builds the authorization URL on the customer's domain", function()
      local p = assert(sf())
      local u, session = p:authorization_url()
      assert.is_string(u)
      assert.equal("https://example.smartfile.com/oauth2/authorize/?",
        u:sub(1, #"https://example.smartfile.com/oauth2/authorize/?"))
      local base, args = split_url(u)
      assert.equal("https://example.smartfile.com/oauth2/authorize/", base)
      assert.equal("sf-client", args.client_id)
      assert.equal("code", args.response_type)
      assert.equal("https://app.example.com/callback", args.redirect_uri)
      assert.equal(session.state, args.state)
      assert.is_nil(args.client_secret)
      assert.is_nil(u:find("sf-secret-value", 1, true))
    end)

    it("uses https://<domain>/oauth2/token/ as the token endpoint", function()
      local p = assert(sf())
      assert.equal("https://example.smartfile.com/oauth2/token/", p:endpoint("token_endpoint"))
      assert.equal("https://example.smartfile.com/oauth2/authorize/", p:endpoint("authorization_endpoint"))
    end)

    it("exchanges the code with client_id, client_secret, code, grant_type and redirect_uri in the form", function()
      local p = assert(sf { token_endpoint = s.url .. "/oauth2/token/" })
      assert.equal(s.url .. "/oauth2/token/", p:endpoint("token_endpoint"))
      s:script("/oauth2/token/", { json = {
        access_token = "sf-access-token-1", expires_in = 36000, refresh_token = "sf-refresh-token-1",
        scope = "read write", token_type = "Bearer",
      } })
      local _, session = p:authorization_url { pkce = false }
      local t0 = os.time()
      local tok, err = p:exchange_code { code = "the-code", state = session.state, session = session }
      assert.is_nil(err)
      assert.equal("sf-access-token-1", tok.access_token)
      assert.equal("sf-refresh-token-1", tok.refresh_token)
      assert.equal("read write", tok.scope)
      assert.equal("Bearer", tok.token_type)
      assert.is_true(tok.expires_at >= t0 + 36000 and tok.expires_at <= os.time() + 36000)

      local reqs = s:requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal("POST", r.method)
      assert.equal("/oauth2/token/", r.path)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.is_nil(r.headers.authorization) -- client_auth post: nothing in a header
      assert.same({ "client_id", "client_secret", "code", "grant_type", "redirect_uri" }, form_names(r))
      assert.same({
        client_id = "sf-client", client_secret = "sf-secret-value", code = "the-code",
        grant_type = "authorization_code", redirect_uri = "https://app.example.com/callback",
      }, r.form)
    end)

    it("sends the PKCE verifier along when the authorization request had a challenge", function()
      local p = assert(sf { token_endpoint = s.url .. "/token" })
      local u, session = p:authorization_url()
      local _, args = split_url(u)
      assert.equal("S256", args.code_challenge_method)
      assert.equal(s256(session.code_verifier), args.code_challenge)
      assert(p:exchange_code { code = "c2", state = session.state, session = session })
      local r = s:last_request()
      assert.equal(session.code_verifier, r.form.code_verifier)
      assert.equal("c2", r.form.code)
    end)

    it("carries no redirect_uri anywhere when none is configured (the verifier is pasted)", function()
      local p = assert(sf { redirect_uri = false, token_endpoint = s.url .. "/token" })
      local u, session = p:authorization_url { pkce = false }
      local _, args = split_url(u)
      assert.is_nil(args.redirect_uri)
      assert.equal("code", args.response_type)
      assert.equal("sf-client", args.client_id)
      local tok, err = p:exchange_code { code = "pasted-verifier", state = session.state, session = session }
      assert.is_nil(err)
      assert.is_string(tok.access_token)
      local r = s:last_request()
      assert.same({ "client_id", "client_secret", "code", "grant_type" }, form_names(r))
      assert.is_nil(r.form.redirect_uri)
      assert.equal("pasted-verifier", r.form.code)
    end)

    it("turns 400 {\"error\":\"invalid_grant\"} into an oauth error", function()
      local p = assert(sf { token_endpoint = s.url .. "/token" })
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local _, session = p:authorization_url()
      local tok, err = p:exchange_code { code = "expired", state = session.state, session = session }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.equal(400, err.status)
      assert.is_false(err.retryable)
      assert.is_nil(tostring(err):find("sf-secret-value", 1, true))
    end)

    it("sends the token as Authorization: Bearer by default", function()
      local p = assert(sf { token_endpoint = s.url .. "/token" })
      local _, session = p:authorization_url()
      local tok = assert(p:exchange_code { code = "c", state = session.state, session = session })
      s:reset()
      local res, err = p:request { url = s.url .. "/api" }
      assert.is_nil(err)
      assert.equal(200, res.status)
      local reqs = s:requests()
      assert.equal(1, #reqs) -- no second token request
      assert.equal("GET", reqs[1].method)
      assert.equal("/api", reqs[1].path)
      assert.equal("Bearer " .. tok.access_token, reqs[1].headers.authorization)
      assert.equal("", reqs[1].query)
    end)

    it("sends the token as the access_token query parameter with token_placement = \"query\"", function()
      local p = assert(sf { token_endpoint = s.url .. "/token", token_placement = "query" })
      local _, session = p:authorization_url()
      local tok = assert(p:exchange_code { code = "c", state = session.state, session = session })
      s:reset()
      local res, err = p:request { url = s.url .. "/api", query = { page = "2" } }
      assert.is_nil(err)
      assert.equal(200, res.status)
      local r = s:last_request()
      assert.equal("/api", r.path)
      assert.is_nil(r.headers.authorization)
      assert.same({ access_token = tok.access_token, page = "2" }, r.args)
    end)
  end)

  describe("smartfile (API key)", function()
    it("sends HTTP Basic with key:password and makes no token request", function()
      local p, err = smartauth.smartfile {
        domain = "example.smartfile.com", api_key = "my-api-key", api_password = "my-api-password",
        api_base = s.url .. "/api/",
      }
      assert.is_nil(err)
      assert.is_table(p)
      s:script("/api/ping", { json = { ping = "pong" } })
      local res, rerr = p:request { url = "/ping" }
      assert.is_nil(rerr)
      assert.equal(200, res.status)
      local reqs = s:requests()
      assert.same({ "GET /api/ping" }, paths(s))
      local r = reqs[1]
      assert.equal("Basic " .. mime.b64("my-api-key:my-api-password"), r.headers.authorization)
      assert.equal("my-api-key", r.basic.user)
      assert.equal("my-api-password", r.basic.pass)
    end)

    it("refuses both api_key and client_id", function()
      local p, err = smartauth.smartfile {
        domain = "example.smartfile.com", api_key = "k", api_password = "pw",
        client_id = "id", client_secret = "secret",
      }
      assert_config_error(p, err, "not both")
    end)

    for _, d in ipairs { "evil.com/x", "a@b", "", "http://x", "evil.com:443", "evil.com?x", "-x.com", "a..b" } do
      it("refuses the domain " .. ("%q"):format(d), function()
        local p, err = smartauth.smartfile { domain = d, client_id = "id", client_secret = "secret" }
        assert_config_error(p, err, "domain")
      end)
    end

    it("requires a domain", function()
      local p, err = smartauth.smartfile { client_id = "id", client_secret = "secret" }
      assert_config_error(p, err, "'domain'")
    end)
  end)

  --------------------------------------------------------------- SmartConnect
  describe("smartconnect", function()
    local REGIONS = {
      NA = "apina", NA2 = "apina2", NA3 = "apina3", UK = "apieuk",
      EU = "apieuw", EU2 = "apieuw2", AU = "apiau",
    }
    local function sc(extra)
      local o = {
        client_id = "sc-client", client_secret = "sc-secret-value",
        username = "me@example.com", password = "sc-user-password",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      return smartauth.smartconnect(o)
    end

    for region, host in pairs(REGIONS) do
      it("maps region " .. region .. " to https://" .. host .. ".smartconnect.com/token", function()
        local p, err = sc { region = region }
        assert.is_nil(err)
        assert.equal("https://" .. host .. ".smartconnect.com/token", p:endpoint("token_endpoint"))
      end)
    end

    it("refuses an unknown region with a config error listing the valid ones", function()
      local p, err = sc { region = "MARS" }
      assert_config_error(p, err, "MARS")
      for region in pairs(REGIONS) do
        assert.matches("%f[%w]" .. region .. "%f[^%w]", err.description)
      end
    end)

    it("runs the password grant with every field in the form", function()
      local p = assert(sc { region = "EU", token_endpoint = s.url .. "/token" })
      assert.equal(s.url .. "/token", p:endpoint("token_endpoint"))
      local tok, err = p:token()
      assert.is_nil(err)
      assert.is_string(tok.access_token)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal("POST", r.method)
      assert.equal("/token", r.path)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.is_nil(r.headers.authorization)
      assert.same({ "client_id", "client_secret", "grant_type", "password", "username" }, form_names(r))
      assert.same({
        grant_type = "password", username = "me@example.com", password = "sc-user-password",
        client_id = "sc-client", client_secret = "sc-secret-value",
      }, r.form)
    end)

    it("accepts token_type \"bearer\" without expires_in and then sends Authorization: Bearer", function()
      local issued = s:issue() -- a token the server's /api accepts
      s:script("/token", { json = { access_token = issued.access_token, token_type = "bearer" } })
      local p = assert(sc { region = "NA", token_endpoint = s.url .. "/token" })
      local tok, err = p:token()
      assert.is_nil(err)
      assert.equal(issued.access_token, tok.access_token)
      assert.equal("Bearer", tok.token_type)
      assert.is_nil(tok.expires_at)
      assert.is_false(tok:expired())
      local res, rerr = p:request { url = s.url .. "/api/contacts" }
      assert.is_nil(rerr)
      assert.equal(200, res.status)
      assert.same({ "POST /token", "GET /api/contacts" }, paths(s))
      assert.equal("Bearer " .. issued.access_token, s:last_request().headers.authorization)
      -- the token without an expiry is reused, not fetched again
      assert(p:request { url = s.url .. "/api/contacts" })
      assert.same({ "POST /token", "GET /api/contacts", "GET /api/contacts" }, paths(s))
    end)
  end)

  ----------------------------------------------------------------- SmartSense
  describe("smartsense", function()
    it("defaults to https://api.smartsense.co/auth/oauth", function()
      local p = assert(smartauth.smartsense { client_id = "id", client_secret = "secret" })
      assert.equal("https://api.smartsense.co/auth/oauth", p:endpoint("token_endpoint"))
    end)

    it("runs client credentials with the form-encoded id and secret in HTTP Basic", function()
      local id = "client:id %41+plus é"
      local secret = "s3cr:et%zz + ü/=&x"
      local p = assert(smartauth.smartsense {
        client_id = id, client_secret = secret, token_endpoint = s.url .. "/auth/oauth",
      })
      s:script("/auth/oauth", { json = { access_token = "ss-access", token_type = "Bearer", expires_in = 600 } })
      local tok, err = p:token()
      assert.is_nil(err)
      assert.equal("ss-access", tok.access_token)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal("POST", r.method)
      assert.equal("/auth/oauth", r.path)
      assert.equal("application/json", r.headers.accept)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.equal("grant_type=client_credentials", r.body)
      assert.same({ { "grant_type", "client_credentials" } }, r.form_pairs)
      assert.is_nil(r.form.client_secret)
      assert.is_nil(r.form.client_id)
      -- RFC 6749 §2.3.1: each side form-encoded, then base64
      assert.is_table(r.basic)
      assert.equal(id, r.basic.user)
      assert.equal(secret, r.basic.pass)
      local _, colons = r.basic.raw:gsub(":", "")
      assert.equal(1, colons)
      assert.is_nil(r.basic.raw:find(" ", 1, true))
      assert.is_nil(r.basic.raw:find("é", 1, true))
      assert.is_nil(r.basic.raw:find("ü", 1, true))
    end)
  end)

  ------------------------------------------------------------------ SmartTask
  describe("smarttask", function()
    local OOB = "urn:ietf:wg:oauth:2.0:oob"

    local function st(extra)
      local o = {
        client_id = "st-client", redirect_uri = OOB, scope = "openid email",
        authorization_endpoint = s.url .. "/authorize",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      return smartauth.smarttask(o)
    end

    it("knows its userinfo endpoint and issuer", function()
      local p = assert(smartauth.smarttask { client_id = "st-client" })
      assert.equal("https://auth.smarttask.io/openid_connect/userinfo", p:endpoint("userinfo_endpoint"))
      assert.equal("https://auth.smarttask.io", p:endpoint("issuer"))
      assert.equal("https://auth.smarttask.io/.well-known/openid-configuration", p.options.discovery_url)
    end)

    it("builds a code request with the out-of-band redirect URI, scope, nonce and PKCE", function()
      local p = assert(st())
      local u, session = p:authorization_url()
      local base, args = split_url(u)
      assert.equal(s.url .. "/authorize", base)
      assert.equal("code", args.response_type)
      assert.equal("st-client", args.client_id)
      assert.equal(OOB, args.redirect_uri)
      assert.equal("openid email", args.scope)
      assert.equal(session.state, args.state)
      assert.is_string(args.nonce)
      assert.equal(session.nonce, args.nonce)
      assert.is_true(#args.nonce >= 22)
      assert.equal("S256", args.code_challenge_method)
      assert.equal(s256(session.code_verifier), args.code_challenge)
      assert.same({}, s:requests()) -- no discovery needed, nothing sent
    end)

    it("builds an id_token request with a nonce and no PKCE", function()
      local p = assert(st())
      local u, session = p:authorization_url { response_type = "id_token" }
      local _, args = split_url(u)
      assert.equal("id_token", args.response_type)
      assert.equal(OOB, args.redirect_uri)
      assert.equal("openid email", args.scope)
      assert.equal(session.nonce, args.nonce)
      assert.is_string(args.nonce)
      assert.is_nil(args.code_challenge)
      assert.is_nil(args.code_challenge_method)
      assert.is_nil(session.code_verifier)
    end)

    it("builds a \"code id_token\" request with a nonce and PKCE", function()
      local p = assert(st())
      local u, session = p:authorization_url { response_type = "code id_token" }
      local _, args = split_url(u)
      assert.equal("code id_token", args.response_type)
      assert.equal(session.nonce, args.nonce)
      assert.is_string(args.nonce)
      assert.equal("S256", args.code_challenge_method)
      assert.equal(s256(session.code_verifier), args.code_challenge)
    end)

    it("uses the discovered authorization endpoint", function()
      local dpath = "/.well-known/openid-configuration"
      s:script(dpath, { json = {
        issuer = s.url,
        authorization_endpoint = s.url .. "/oauth/authorize",
        token_endpoint = s.url .. "/oauth/token",
        jwks_uri = s.url .. "/oauth/jwks",
        response_types_supported = { "code", "id_token", "code id_token" },
      } })
      local p, err = smartauth.smarttask {
        issuer = s.url, discovery_url = s.url .. dpath, client_id = "st-client", redirect_uri = OOB,
      }
      assert.is_nil(err)
      local u, session = p:authorization_url()
      assert.is_string(u)
      assert.is_table(session)
      local base, args = split_url(u)
      assert.equal(s.url .. "/oauth/authorize", base)
      assert.equal("openid", args.scope)
      assert.equal(OOB, args.redirect_uri)
      assert.equal(s.url .. "/oauth/token", p:endpoint("token_endpoint"))
      local reqs = s:requests()
      assert.equal(1, #reqs)
      assert.equal("GET", reqs[1].method)
      assert.equal(dpath, reqs[1].path)
    end)

    it("refuses a discovery document whose issuer is not the configured one", function()
      local dpath = "/other/.well-known/openid-configuration"
      s:script(dpath, { json = {
        issuer = "https://evil.example.com",
        authorization_endpoint = s.url .. "/oauth/authorize",
        token_endpoint = s.url .. "/oauth/token",
      } })
      local p = assert(smartauth.smarttask { issuer = s.url, discovery_url = s.url .. dpath, client_id = "st-client" })
      local u, err = p:authorization_url()
      assert.is_nil(u)
      assert.equal("validation", err.kind)
      assert.matches("issuer", err.description, 1, true)
      assert.is_nil(p:endpoint("authorization_endpoint"))
    end)
  end)

  ------------------------------------------------------------ every preset
  describe("option checking", function()
    local MINIMAL = {
      smartfile = { domain = "example.smartfile.com", client_id = "id", client_secret = "secret" },
      smartconnect = { region = "EU", client_id = "id", client_secret = "secret",
                       username = "u@x.com", password = "pw" },
      smartsense = { client_id = "id", client_secret = "secret" },
      smarttask = { client_id = "id" },
    }
    local function with(name, extra)
      local o = {}
      for k, v in pairs(MINIMAL[name]) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return smartauth[name](o)
    end

    for name in pairs(MINIMAL) do
      describe(name, function()
        it("builds from its minimal options", function()
          local p, err = with(name, {})
          assert.is_nil(err)
          assert.equal(name, p.options.preset)
        end)

        it("rejects an unknown option key with a config error naming it", function()
          local p, err = with(name, { clinet_secret = "typo" })
          assert_config_error(p, err, "'clinet_secret'")
          assert.equal("clinet_secret", err.option)
        end)

        it("rejects a non-loopback http endpoint override", function()
          for _, ep in ipairs { "token_endpoint", "authorization_endpoint", "userinfo_endpoint" } do
            local p, err = with(name, { [ep] = "http://auth.example.com/x" })
            assert_config_error(p, err, "'" .. ep .. "'")
            assert.matches("loopback", err.description, 1, true)
          end
        end)

        it("accepts a loopback http endpoint override, which wins over the preset", function()
          local p, err = with(name, { token_endpoint = s.url .. "/token", userinfo_endpoint = "http://localhost:9/ui" })
          assert.is_nil(err)
          assert.equal(s.url .. "/token", p:endpoint("token_endpoint"))
          assert.equal("http://localhost:9/ui", p:endpoint("userinfo_endpoint"))
        end)
      end)
    end

    it("raises on a non-table argument", function()
      assert.has_error(function() smartauth.smartsense("id") end)
    end)
  end)
end)
