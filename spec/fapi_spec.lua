-- The FAPI 2.0 Security Profile (`profile = "fapi2"`): every rule a `config` error at
-- construction that names the rule and the option; the requests it shapes (pushed, PKCE
-- S256, client assertions addressed to the issuer) and the responses it refuses (no iss),
-- against the recording server over TLS; discovery documents that break the profile.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local provider_mod = require "smartauth.provider"
local profile = require "smartauth.profile"
local server = require "helpers.server"
local certs = require "helpers.certs"
local J = require "helpers.jwt"
local proc = require "helpers.proc"

local REDIRECT = "http://127.0.0.1:8765/cb"
local ISS = "https://127.0.0.1:9/as"   -- never contacted: construction makes no request

local function esc(v)
  return (v:gsub("[^%w._~-]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

-- An RSA key of `bits` bits (PEM text), made by the openssl CLI.
local function rsa_pem(bits)
  local dir = proc.tmpdir("smartauth-fapi.XXXXXX")
  assert(proc.run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" .. bits ..
    " -out " .. proc.shell_quote(dir .. "/k.pem") .. " 2>/dev/null"))
  local pem = proc.read_file(dir .. "/k.pem")
  proc.rmtree(dir)
  return pem
end

describe("profile fapi2", function()
  local c, cli, rsa, ec, ed, p384

  setup(function()
    c = certs.make()
    cli = certs.client(c, "fapi-client", "unused-pw")
    rsa, ec, ed, p384 = J.key("RSA"), J.key("P-256"), J.key("Ed25519"), J.key("P-384")
  end)
  teardown(function()
    certs.cleanup(c)
    J.cleanup()
  end)

  -- A FAPI 2.0 client: private_key_jwt with an RSA key, tokens bound to a certificate.
  local function opts(extra)
    local o = { profile = "fapi2", issuer = ISS, client_id = "fapi-cid",
      authorization_endpoint = ISS .. "/authorize", token_endpoint = ISS .. "/token",
      pushed_authorization_request_endpoint = ISS .. "/par",
      client_auth = "private_key_jwt", client_assertion_key = rsa.pem,
      client_cert = cli.cert, client_key = cli.key, redirect_uri = REDIRECT, retry = false }
    for k, v in pairs(extra or {}) do
      if v == false and k ~= "par" and k ~= "allow_http" then v = nil end
      o[k] = v
    end
    return o
  end

  local function refused(o, option, pattern)
    local p, err = smartauth.provider(o)
    assert.is_nil(p, "made a provider that breaks the profile (" .. option .. ")")
    assert.equal("config", err.kind)
    assert.equal(option, err.option)
    assert.matches("profile 'fapi2'", err.description, 1, true)
    assert.matches(pattern, err.description)
    return err
  end

  describe("at construction", function()
    it("accepts a FAPI 2.0 client and turns on par, PKCE and the alg allow-lists", function()
      local p = assert(smartauth.provider(opts()))
      assert.is_true(p.options.par)
      assert.equal("PS256", p.options.client_assertion_alg)
      assert.same({ "PS256", "ES256", "EdDSA" }, p.options.id_token_algs)
      for _, o in ipairs {
        opts { client_auth = "tls_client_auth", client_assertion_key = false },
        opts { client_auth = "self_signed_tls_client_auth", client_assertion_key = false },
        opts { client_assertion_key = ec.pem },
        opts { client_assertion_key = ed.pem, request_object = true },
        opts { issuer = false, discovery_url = ISS .. "/.well-known/openid-configuration" },
        opts { id_token_algs = { "ES256" }, response_type = "code", par = true },
      } do
        assert(smartauth.provider(o))
      end
      assert.equal("ES256", smartauth.provider(opts { client_assertion_key = ec.pem }).options.client_assertion_alg)
      local e = smartauth.provider(opts { client_assertion_key = ed.pem, request_object = true })
      assert.equal("EdDSA", e.options.request_object_signing_alg)
    end)

    it("knows no other profile", function()
      local p, err = smartauth.provider(opts { profile = "fapi1" })
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.equal("profile", err.option)
    end)

    it("needs https for the issuer and every endpoint, loopback included, and no allow_http", function()
      refused(opts { allow_http = true }, "allow_http", "allow_http")
      refused(opts { issuer = false }, "issuer", "needs option 'issuer'")
      refused(opts { issuer = "http://127.0.0.1:9/as" }, "issuer", "needs https endpoints: option 'issuer'")
      refused(opts { discovery_url = "http://localhost:9/d" }, "discovery_url", "https")
      refused(opts { api_base = "http://127.0.0.1:9/api" }, "api_base", "https")
      for _, k in ipairs(provider_mod.ENDPOINTS) do
        refused(opts { [k] = "http://127.0.0.1:9/" .. k }, k, "needs https endpoints: option '" .. k .. "'")
      end
    end)

    it("needs private_key_jwt, tls_client_auth or self_signed_tls_client_auth", function()
      for _, m in ipairs { "basic", "post", "client_secret_jwt" } do
        refused(opts { client_auth = m, client_secret = "s" }, "client_auth", "got '" .. m .. "'")
      end
      refused(opts { client_auth = "none" }, "client_auth", "private_key_jwt, tls_client_auth")
      -- the default (a secret: basic) is refused too
      refused(opts { client_auth = false, client_secret = "s" }, "client_auth", "got 'basic'")
    end)

    it("needs sender-constrained tokens", function()
      refused(opts { client_cert = false, client_key = false }, "client_cert",
        "sender%-constrained tokens: option 'dpop' or 'dpop_key'")
    end)

    it("counts dpop and dpop_key as a sender constraint (the options' names)", function()
      local function check(extra)
        local o = { issuer = ISS, client_auth = "private_key_jwt" }
        for k, v in pairs(extra) do o[k] = v end
        return profile.check(o, "t", provider_mod.ENDPOINTS)
      end
      assert.is_true(check { dpop = true })
      assert.is_true(check { dpop_key = ec.pem })
      local ok, err = check { dpop = false }
      assert.is_nil(ok)
      assert.equal("client_cert", err.option)
      assert.matches("sender%-constrained", err.description)
    end)

    -- live once the DPoP options are in the provider's SCHEMA
    if provider_mod.SCHEMA.dpop then
      it("makes a DPoP client without a certificate", function()
        assert(smartauth.provider(opts { client_cert = false, client_key = false, dpop = true }))
        assert(smartauth.provider(opts { client_cert = false, client_key = false, dpop_key = ec.pem }))
      end)
    end

    it("allows only response_type code, the pushed request, no password grant, no out-of-band code", function()
      for _, rt in ipairs { "id_token", "code id_token" } do
        refused(opts { response_type = rt }, "response_type", "only response_type 'code'")
      end
      -- the token-in-redirect types are refused for every provider (RFC 9700), fapi2 or not
      for _, rt in ipairs { "id_token token", "code token", "code id_token token" } do
        local p, err = smartauth.provider(opts { response_type = rt })
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.matches("RFC 9700", err.description, 1, true)
      end
      refused(opts { par = false }, "par", "'par' cannot be false")
      refused(opts { grant = "password" }, "grant", "password grant")
      refused(opts { grant = "oob" }, "grant", "out%-of%-band")
      refused(opts { redirect_uri = "urn:ietf:wg:oauth:2.0:oob" }, "redirect_uri", "out%-of%-band")
    end)

    it("allows only PS256, ES256 and EdDSA", function()
      refused(opts { client_assertion_alg = "RS256" }, "client_assertion_alg",
        "allows only PS256, ES256, EdDSA signatures %(option 'client_assertion_alg' is 'RS256'%)")
      refused(opts { request_object_signing_alg = "RS256" }, "request_object_signing_alg", "'RS256'")
      refused(opts { id_token_signed_response_alg = "HS256" }, "id_token_signed_response_alg", "'HS256'")
      refused(opts { id_token_signed_response_alg = "RS256" }, "id_token_signed_response_alg", "'RS256'")
      refused(opts { id_token_algs = { "ES256", "RS256" } }, "id_token_algs", "'RS256'")
      refused(opts { id_token_algs = { "PS384" } }, "id_token_algs", "'PS384'")
    end)

    it("needs RSA keys of 2048+ bits and EC P-256 or Ed25519 keys", function()
      refused(opts { client_assertion_key = rsa_pem(1024) }, "client_assertion_key", "at least 2048 bits %(got 1024%)")
      refused(opts { client_assertion_key = p384.pem }, "client_assertion_key", "got EC P%-384")
      -- the key is checked for request objects too, whatever the client authentication
      refused(opts { client_auth = "tls_client_auth", client_assertion_key = p384.pem, request_object = true },
        "client_assertion_key", "P%-256")
      -- an alg the key cannot make
      refused(opts { client_assertion_key = ec.pem, client_assertion_alg = "PS256" }, "client_assertion_alg",
        "signs with PS256")
    end)

    it("keeps the key out of its messages", function()
      local err = refused(opts { client_assertion_key = p384.pem }, "client_assertion_key", "P%-384")
      local body = p384.pem:match("%-%-%-%-%-\n(.-)\n")
      assert.is_nil(tostring(err):find(body, 1, true))
    end)
  end)

  describe("on the wire (TLS)", function()
    local s

    setup(function() s = server.start { tls = { cert = c.cert, key = c.key } } end)
    teardown(function() if s then s:stop() end end)
    before_each(function() s:reset() end)

    local PAR_OK = { status = 201, json = { request_uri = "urn:ietf:params:oauth:request_uri:f1", expires_in = 60 } }
    local TOKEN_OK = { json = { access_token = "at-1", token_type = "Bearer", expires_in = 300 } }

    local function live(extra)
      local o = opts { issuer = s.url, authorization_endpoint = s.url .. "/authorize",
        token_endpoint = s.url .. "/token", pushed_authorization_request_endpoint = s.url .. "/par",
        ca_file = c.ca_file }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end

    -- The client assertion of a recorded form: header and claims, and the claims' raw JSON.
    local function assertion_of(req)
      assert.equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", req.form.client_assertion_type)
      local h, claims = J.decode(req.form.client_assertion)
      local raw = J.unb64(req.form.client_assertion:match("^[^.]+%.([^.]+)%."))
      return h, claims, raw
    end

    it("pushes the request with PKCE S256, its assertion addressed to the issuer", function()
      s:script("/par", PAR_OK)
      local p = live()
      local u, session = assert(p:authorization_url { scope = "openid" })
      assert.equal(s.url .. "/authorize?client_id=fapi-cid&request_uri=" ..
        "urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Af1", u)
      local req = s:last_request()
      assert.equal("/par", req.path)
      assert.equal("code", req.form.response_type)
      assert.equal("S256", req.form.code_challenge_method)
      assert.equal(core.pkce_challenge(session.code_verifier), req.form.code_challenge)
      local h, claims, raw = assertion_of(req)
      assert.equal("PS256", h.alg)
      assert.equal(s.url, claims.aud)
      -- the exact bytes: one string, the issuer, not the PAR endpoint nor a list
      assert.truthy(raw:find('"aud":"' .. s.url:gsub("/", "\\/") .. '"', 1, true), raw)
    end)

    it("refuses pkce = false and another response_type per request", function()
      local p = live()
      for _, o in ipairs { { pkce = false }, { response_type = "code id_token" } } do
        local u, err = p:authorization_url(o)
        assert.is_nil(u)
        assert.equal("config", err.kind)
        assert.matches("profile 'fapi2'", err.description, 1, true)
      end
      assert.equal(0, #s:requests())
    end)

    it("refuses a callback without iss and sends nothing; takes one with it, the assertion aud = issuer", function()
      s:script("/par", PAR_OK)
      s:script("/token", TOKEN_OK)
      local p = live()
      local _, session = assert(p:authorization_url())
      s:reset()
      s:script("/token", TOKEN_OK)
      local tok, err = p:exchange_code { url = REDIRECT .. "?code=c1&state=" .. session.state, session = session }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      assert.equal("iss", err.check)
      assert.matches("profile 'fapi2'", err.description, 1, true)
      -- nor may a caller say there was no response to carry it
      tok, err = p:exchange_code { code = "c1", state = session.state, iss = false, session = session }
      assert.is_nil(tok)
      assert.equal("iss", err.check)
      -- a wrong iss
      tok, err = p:exchange_code { url = REDIRECT .. "?code=c1&state=" .. session.state ..
        "&iss=https%3A%2F%2Fevil.example", session = session }
      assert.is_nil(tok)
      assert.equal("iss", err.check)
      assert.equal(0, #s:requests())
      tok = assert(p:exchange_code { url = REDIRECT .. "?code=c1&state=" .. session.state ..
        "&iss=" .. esc(s.url), session = session })
      assert.equal("at-1", tok.access_token)
      local req = s:last_request()
      assert.equal("/token", req.path)
      assert.equal(session.code_verifier, req.form.code_verifier)
      local _, claims, raw = assertion_of(req)
      assert.equal(s.url, claims.aud)
      assert.truthy(raw:find('"aud":"' .. s.url:gsub("/", "\\/") .. '"', 1, true), raw)
    end)

    it("a tls_client_auth client sends no assertion", function()
      s:script("/par", PAR_OK)
      local p = live { client_auth = "tls_client_auth", client_assertion_key = false }
      assert(p:authorization_url())
      local req = s:last_request()
      assert.equal("fapi-cid", req.form.client_id)
      assert.is_nil(req.form.client_assertion)
    end)

    describe("discovery", function()
      local n = 0
      -- a document at a path of its own (documents are cached per URL)
      local function serve(doc)
        n = n + 1
        local path = "/f" .. n .. "/.well-known/openid-configuration"
        s:script(path, { json = doc }, "default")
        return s.url .. path
      end
      local function doc(extra)
        local d = { issuer = s.url, authorization_endpoint = s.url .. "/authorize",
          token_endpoint = s.url .. "/token", pushed_authorization_request_endpoint = s.url .. "/par",
          jwks_uri = s.url .. "/jwks" }
        for k, v in pairs(extra or {}) do d[k] = v ~= false and v or nil end
        return d
      end
      local function disc(o)
        local p, err = smartauth.provider(o)
        if not p then return nil, err end
        return p:discover()
      end
      local function bare(durl)
        return opts { issuer = false, discovery_url = durl, authorization_endpoint = false,
          token_endpoint = false, pushed_authorization_request_endpoint = false, ca_file = c.ca_file }
      end

      it("fills in an https document and addresses assertions to its issuer", function()
        local p = assert(disc(bare(serve(doc()))))
        assert.equal(s.url .. "/par", p:endpoint("pushed_authorization_request_endpoint"))
        assert.equal(s.url, p:endpoint("issuer"))
        s:script("/par", PAR_OK)
        assert(p:authorization_url())
        local _, claims = assertion_of(s:last_request())
        assert.equal(s.url, claims.aud)
      end)

      local function breaks(d, pattern)
        local o = bare(serve(d))
        local p, err = disc(o)
        assert.is_nil(p)
        assert.equal("validation", err.kind)
        assert.equal("profile", err.check)
        assert.matches(pattern, err.description)
        -- nothing of it was filled in: a lazy discovery fails the same way, every time
        local q = assert(smartauth.provider(o))
        local u, uerr = q:authorization_url()
        assert.is_nil(u)
        assert.equal("profile", uerr.check, tostring(uerr))
        assert.is_nil(q:endpoint("token_endpoint"))
        assert.is_nil(q:endpoint("pushed_authorization_request_endpoint"))
      end

      it("refuses a document without a pushed authorization request endpoint", function()
        breaks(doc { pushed_authorization_request_endpoint = false }, "no pushed_authorization_request_endpoint")
        -- hostile: null, a number, an empty string, an object where the URL should be
        local null = require("cjson").null
        breaks(doc { pushed_authorization_request_endpoint = null }, "pushed_authorization_request_endpoint")
        breaks(doc { pushed_authorization_request_endpoint = 443 }, "pushed_authorization_request_endpoint")
        breaks(doc { pushed_authorization_request_endpoint = "" }, "pushed_authorization_request_endpoint")
        breaks(doc { token_endpoint = { url = s.url } }, "field 'token_endpoint'")
        breaks(doc { issuer = 12 }, "issuer that is not an https URL")
      end)

      it("refuses http endpoints, an http issuer and http mTLS aliases", function()
        breaks(doc { token_endpoint = "http://127.0.0.1:9/token" }, "field 'token_endpoint' is not an https URL")
        breaks(doc { userinfo_endpoint = "http://localhost:9/me" }, "field 'userinfo_endpoint'")
        breaks(doc { issuer = "http://127.0.0.1:9" }, "issuer that is not an https URL")
        local aliases = { token_endpoint = "http://127.0.0.1:9/mtls/token" }
        breaks(doc { mtls_endpoint_aliases = aliases, tls_client_certificate_bound_access_tokens = true },
          "mtls_endpoint_aliases field 'token_endpoint'")
        -- aliases this client does not use (the server binds no tokens) are not looked at
        assert(disc(bare(serve(doc { mtls_endpoint_aliases = aliases }))))
        -- an option set for the endpoint replaces the document's: nothing to refuse
        local o = bare(serve(doc { token_endpoint = "http://127.0.0.1:9/token" }))
        o.token_endpoint = s.url .. "/token"
        assert(disc(o))
      end)
    end)

    it("runs the pushed request and the exchange inside smartauth.spawn", function()
      s:script("/par", { status = 201, delay_ms = 200, json = PAR_OK.json })
      s:script("/token", TOKEN_OK)
      local p = live()
      local task = smartauth.spawn(function()
        local _, session = p:authorization_url()
        if not session then return nil, "no session" end
        return p:exchange_code { url = REDIRECT .. "?code=c2&state=" .. session.state ..
          "&iss=" .. esc(s.url), session = session }
      end)
      smartauth.step(0)
      assert.is_nil(select(2, task:result()))
      smartauth.run()
      local ok, tok, err = task:result()
      assert.is_true(ok)
      assert(tok, tostring(err))
      assert.equal("at-1", tok.access_token)
      local _, claims = assertion_of(s:last_request())
      assert.equal(s.url, claims.aud)
    end)
  end)
end)
