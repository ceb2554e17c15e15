-- Authorization requests as they travel: RFC 9126 PAR (the pushed form, its client
-- authentication, hostile answers), RFC 9101 JAR (the request object's claims, verified
-- with the public key by the openssl CLI), RFC 8707 resource indicators (repeated
-- `resource` parameters on every request that takes them). The recording server checks
-- the exact bytes.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local server = require "helpers.server"
local J = require "helpers.jwt"
local proc = require "helpers.proc"

local AUTHZ = "https://idp.example/authorize"
local REDIRECT = "http://127.0.0.1:8765/cb"
local PAR_OK = { status = 201, json = { request_uri = "urn:ietf:params:oauth:request_uri:abc123", expires_in = 60 } }

local function esc(v)
  return (v:gsub("[^%w._~-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- The bytes a sorted form of these pairs has ({ {name, value}, ... } already in order).
local function form_bytes(pairs_list)
  local out = {}
  for i, kv in ipairs(pairs_list) do out[i] = esc(kv[1]) .. "=" .. esc(kv[2]) end
  return table.concat(out, "&")
end

-- Verifies an RS256 compact JWS with the openssl CLI (not the library under test).
local function openssl_verify_rs256(jws, public_file)
  local h, p, sig = jws:match("^([^.]+)%.([^.]+)%.([^.]+)$")
  assert(h, "not a compact JWS")
  local dir = proc.tmpdir("smartauth-authreq.XXXXXX")
  local f = assert(io.open(dir .. "/in", "wb")); f:write(h .. "." .. p); f:close()
  f = assert(io.open(dir .. "/sig", "wb")); f:write(J.unb64(sig)); f:close()
  local ok = proc.run("openssl dgst -sha256 -verify " .. proc.shell_quote(public_file) ..
    " -signature " .. proc.shell_quote(dir .. "/sig") .. " " .. proc.shell_quote(dir .. "/in") .. " >/dev/null 2>&1")
  proc.rmtree(dir)
  return ok
end

-- A string of the error and everything a hook saw, to look for secrets in.
local function dump(v, seen)
  seen = seen or {}
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "" end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[#out + 1] = tostring(k) .. "=" .. dump(x, seen) end
  return table.concat(out, ";")
end

describe("authorization requests", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop(); J.cleanup() end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { authorization_endpoint = AUTHZ, token_endpoint = s.url .. "/token",
      pushed_authorization_request_endpoint = s.url .. "/par", client_id = "cid", client_secret = "csecret",
      redirect_uri = REDIRECT, scope = "openid email", retry = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    if o.client_secret == false then o.client_secret = nil end
    return assert(smartauth.provider(o))
  end

  -- Discovery documents are cached per URL for the process: each test serves its own.
  local ndoc = 0
  local function serve_metadata(doc)
    ndoc = ndoc + 1
    local path = "/d" .. ndoc .. "/.well-known/openid-configuration"
    s:script(path, { json = doc })
    return s.url .. path
  end

  describe("PAR (RFC 9126)", function()
    it("pushes every parameter with HTTP Basic and returns the short URL and the session", function()
      s:script("/par", PAR_OK)
      local p = provider { par = true }
      local u, session = p:authorization_url { prompt = "login" }
      assert.equal(AUTHZ .. "?client_id=cid&request_uri=" .. esc("urn:ietf:params:oauth:request_uri:abc123"), u)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal("POST", r.method)
      assert.equal("/par", r.path)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.equal("cid", r.basic.user)
      assert.equal("csecret", r.basic.pass)
      assert.equal(form_bytes {
        { "client_id", "cid" },
        { "code_challenge", core.pkce_challenge(session.code_verifier) },
        { "code_challenge_method", "S256" },
        { "nonce", session.nonce },
        { "prompt", "login" },
        { "redirect_uri", REDIRECT },
        { "response_type", "code" },
        { "scope", "openid email" },
        { "state", session.state },
      }, r.body_raw)
      assert.is_string(session.state)
      assert.is_string(session.nonce)
      assert.is_string(session.code_verifier)
      assert.equal(REDIRECT, session.redirect_uri)
    end)

    it("a public client sends its client_id and no Authorization", function()
      s:script("/par", PAR_OK)
      local p = provider { par = true, client_secret = false, client_auth = "none" }
      assert(p:authorization_url())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.equal("cid", r.form.client_id)
    end)

    it("client_secret_post puts the secret in the pushed form", function()
      s:script("/par", PAR_OK)
      local p = provider { par = true, client_auth = "post" }
      assert(p:authorization_url())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.equal("csecret", r.form.client_secret)
      assert.equal("cid", r.form.client_id)
    end)

    it("private_key_jwt signs an assertion for the PAR endpoint", function()
      local k = J.key("RSA")
      s:script("/par", PAR_OK)
      local p = provider { par = true, client_secret = false, client_auth = "private_key_jwt",
        client_assertion_key = k.pem }
      assert(p:authorization_url())
      local r = s:last_request()
      assert.equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", r.form.client_assertion_type)
      assert.is_true(openssl_verify_rs256(r.form.client_assertion, k.public_file))
      local _, claims = J.decode(r.form.client_assertion)
      assert.equal(s.url .. "/par", claims.aud)
      assert.equal("cid", claims.iss)
    end)

    it("pushes by itself when the metadata requires it, from the discovered endpoint", function()
      local durl = serve_metadata {
        issuer = s.url, authorization_endpoint = AUTHZ, token_endpoint = s.url .. "/token",
        pushed_authorization_request_endpoint = s.url .. "/pushed",
        require_pushed_authorization_requests = true,
      }
      s:script("/pushed", PAR_OK)
      local p = assert(smartauth.provider { issuer = s.url, discovery_url = durl, client_id = "cid",
        client_secret = "csecret", redirect_uri = REDIRECT, retry = false })
      assert(p:discover())
      local u = assert(p:authorization_url())
      assert.matches("^https://idp%.example/authorize%?client_id=cid&request_uri=", u)
      assert.equal("/pushed", s:last_request().path)
    end)

    it("does not push without the option or the metadata's requirement", function()
      local p = provider()
      local u = assert(p:authorization_url())
      assert.matches("code_challenge=", u)
      assert.equal(0, #s:requests())
    end)

    describe("hostile answers", function()
      local function fails(response, kind, check)
        s:reset()
        s:script("/par", response)
        local p = provider { par = true }
        local u, err = p:authorization_url()
        assert.is_nil(u)
        assert.equal(kind, err.kind, tostring(err))
        if check then assert.equal(check, err.check) end
        assert.not_matches("csecret", tostring(err))
        return err
      end

      it("refuses an answer without a usable request_uri", function()
        fails({ status = 201, json = { expires_in = 60 } }, "validation", "request_uri")
        fails({ status = 201, json = { request_uri = 42, expires_in = 60 } }, "validation", "request_uri")
        fails({ status = 201, json = { request_uri = "", expires_in = 60 } }, "validation", "request_uri")
        fails({ status = 201, json = { request_uri = { "x" }, expires_in = 60 } }, "validation", "request_uri")
        fails({ status = 201, json = { request_uri = "urn:x\r\nSet-Cookie: a", expires_in = 60 } },
          "validation", "request_uri")
        fails({ status = 201, json = { request_uri = ("u"):rep(5000), expires_in = 60 } },
          "validation", "request_uri")
      end)

      it("refuses an expires_in that is missing, not a number, zero or negative", function()
        local ru = "urn:ietf:params:oauth:request_uri:x"
        fails({ status = 201, json = { request_uri = ru } }, "validation", "expires_in")
        fails({ status = 201, json = { request_uri = ru, expires_in = "60" } }, "validation", "expires_in")
        fails({ status = 201, json = { request_uri = ru, expires_in = 0 } }, "validation", "expires_in")
        fails({ status = 201, json = { request_uri = ru, expires_in = -5 } }, "validation", "expires_in")
        fails({ status = 201, body = '{"request_uri":"' .. ru .. '","expires_in":1e999}',
          headers = { ["content-type"] = "application/json" } }, "validation", "expires_in")
      end)

      it("reports an error answer as an oauth error", function()
        local err = fails({ status = 400, json = { error = "invalid_request",
          error_description = "redirect_uri is not registered" } }, "oauth")
        assert.equal("invalid_request", err.code)
        assert.equal(400, err.status)
        assert.matches("redirect_uri is not registered", tostring(err))
      end)

      it("reports other failures as http errors", function()
        fails({ status = 500, body = "<html>oops</html>" }, "http")
        fails({ status = 201, body = "not json" }, "http")
        fails({ status = 201, json = { "a", "list" } }, "http")
        fails({ status = 302, headers = { location = "https://elsewhere.example/" } }, "http")
        fails({ status = 201, body_size = 2 * 1048576 }, "http")
        fails({ status = 201, truncate = 100, body = '{"request_uri":"urn:x",' }, "network")
      end)
    end)

    it("yields inside smartauth.spawn while the push is under way", function()
      s:script("/par", { status = 201, delay_ms = 300,
        json = { request_uri = "urn:ietf:params:oauth:request_uri:slow", expires_in = 30 } })
      local p = provider { par = true }
      local task = smartauth.spawn(function() return p:authorization_url() end)
      local t0 = os.clock()
      smartauth.step(0)
      assert.is_true(os.clock() - t0 < 0.2)
      assert.is_nil(select(2, task:result()))
      smartauth.run()
      local ok, u, session = task:result()
      assert.is_true(ok)
      assert.matches("request_uri=urn%%3Aietf%%3Aparams%%3Aoauth%%3Arequest_uri%%3Aslow$", u)
      assert.is_string(session.code_verifier)
    end)
  end)

  describe("JAR (RFC 9101)", function()
    local k

    setup(function() k = J.key("RSA") end)

    local function jar_provider(extra)
      local o = { request_object = true, client_assertion_key = k.pem, client_assertion_kid = "k1",
        issuer = "https://idp.example" }
      for key, v in pairs(extra or {}) do o[key] = v end
      return provider(o)
    end

    it("sends the request as a signed request object, every parameter inside", function()
      local p = jar_provider()
      local t0 = os.time()
      local u, session = p:authorization_url { claims = { id_token = { acr = { essential = true } } },
        max_age = 60, resource = { "https://api.example/a", "https://api.example/b" } }
      local q = core.form_decode(u:match("%?(.*)$"))
      local names = {}
      for name in pairs(q) do names[#names + 1] = name end
      table.sort(names)
      assert.same({ "client_id", "request" }, names)
      assert.equal("cid", q.client_id)
      assert.is_true(openssl_verify_rs256(q.request, k.public_file))
      local h, c = J.decode(q.request)
      assert.same({ alg = "RS256", typ = "oauth-authz-req+jwt", kid = "k1" }, h)
      assert.equal("cid", c.iss)
      assert.equal("https://idp.example", c.aud)
      assert.equal("cid", c.client_id)
      assert.equal("code", c.response_type)
      assert.equal(REDIRECT, c.redirect_uri)
      assert.equal("openid email", c.scope)
      assert.equal(session.state, c.state)
      assert.equal(session.nonce, c.nonce)
      assert.equal(core.pkce_challenge(session.code_verifier), c.code_challenge)
      assert.equal("S256", c.code_challenge_method)
      assert.equal(60, c.max_age)
      assert.same({ id_token = { acr = { essential = true } } }, c.claims)
      assert.same({ "https://api.example/a", "https://api.example/b" }, c.resource)
      assert.is_true(math.abs(c.iat - t0) <= 2)
      assert.equal(c.iat, c.nbf)
      assert.equal(c.iat + 300, c.exp)
      assert.is_true(#c.jti >= 24)
      -- without a resource the request object has no resource claim
      local u2 = assert(p:authorization_url())
      local _, c2 = J.decode(core.form_decode(u2:match("%?(.*)$")).request)
      assert.is_nil(c2.resource)
      assert.is_nil(c2.max_age)
    end)

    it("pushes the request object with the client's authentication", function()
      s:script("/par", PAR_OK)
      local p = jar_provider { par = true }
      local u, session = p:authorization_url()
      assert.equal(AUTHZ .. "?client_id=cid&request_uri=" .. esc("urn:ietf:params:oauth:request_uri:abc123"), u)
      local r = s:last_request()
      assert.equal("cid", r.basic.user)
      local names = {}
      for _, kv in ipairs(r.form_pairs) do names[#names + 1] = kv[1] end
      assert.same({ "client_id", "request" }, names)
      assert.is_true(openssl_verify_rs256(r.form.request, k.public_file))
      local _, c = J.decode(r.form.request)
      assert.equal(session.state, c.state)
    end)

    it("takes the alg from the option, else from the metadata within what the key signs", function()
      local p = jar_provider { request_object_signing_alg = "PS256" }
      local u = assert(p:authorization_url())
      local h = J.decode(core.form_decode(u:match("%?(.*)$")).request)
      assert.equal("PS256", h.alg)
      -- the metadata lists ES256 (the key cannot) and PS256: PS256
      local durl = serve_metadata { issuer = s.url, authorization_endpoint = AUTHZ,
        request_object_signing_alg_values_supported = { "none", "HS256", "ES256", "PS256" } }
      local p2 = provider { request_object = true, client_assertion_key = k.pem, issuer = s.url,
        discovery_url = durl }
      assert(p2:discover())
      h = J.decode(core.form_decode(assert(p2:authorization_url()):match("%?(.*)$")).request)
      assert.equal("PS256", h.alg)
    end)

    it("refuses none, HS*, a missing key and an alg the key cannot sign", function()
      for _, alg in ipairs { "none", "NONE", "HS256" } do
        local p, err = smartauth.provider { authorization_endpoint = AUTHZ, client_id = "cid",
          request_object = true, client_assertion_key = k.pem, request_object_signing_alg = alg }
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.equal("request_object_signing_alg", err.option)
      end
      local p, err = smartauth.provider { authorization_endpoint = AUTHZ, client_id = "cid", request_object = true }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.equal("client_assertion_key", err.option)
      local p2 = jar_provider { request_object_signing_alg = "ES256" }
      local u, err2 = p2:authorization_url()
      assert.is_nil(u)
      assert.equal("config", err2.kind)
      -- a metadata list with nothing the key signs
      local durl = serve_metadata { issuer = s.url, authorization_endpoint = AUTHZ,
        request_object_signing_alg_values_supported = { "none", "ES256" } }
      local p3 = provider { request_object = true, client_assertion_key = k.pem, issuer = s.url,
        discovery_url = durl }
      assert(p3:discover())
      local u3, err3 = p3:authorization_url()
      assert.is_nil(u3)
      assert.equal("config", err3.kind)
    end)

    it("keeps the request object out of errors and hook events", function()
      s:script("/par", { status = 400, json = { error = "invalid_request_object",
        error_description = "bad request object" } })
      local events = {}
      local p = jar_provider { par = true, on_http = function(ev) events[#events + 1] = ev end }
      local u, err = p:authorization_url()
      assert.is_nil(u)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_request_object", err.code)
      local sent = s:last_request().form.request
      assert.is_string(sent)
      assert.equal(1, #events)
      assert.matches("request=%[redacted%]", events[1].request_body)
      for _, text in ipairs { dump(events), dump(err), tostring(err) } do
        assert.is_nil(text:find(sent, 1, true))
        -- no part of the signed payload either
        assert.is_nil(text:find(sent:match("^[^.]+%.([^.]+)"):sub(1, 40), 1, true))
      end
    end)

    it("an error answer that echoes the request object is scrubbed of it", function()
      -- a fake PAR endpoint that puts what it got into its error description
      local dir = proc.tmpdir("smartauth-authreq.XXXXXX")
      local f = assert(io.open(dir .. "/echo.js", "w"))
      f:write([[
module.exports = {
  handle(rec, res, send) {
    if (rec.path !== '/par') return false;
    send(res, 400, { error: 'invalid_request_object', error_description: 'got ' + rec.form.request });
    return true;
  },
};
]])
      f:close()
      local echo = server.start { fake = dir .. "/echo.js" }
      local events = {}
      local p = jar_provider { par = true, pushed_authorization_request_endpoint = echo.url .. "/par",
        on_http = function(ev) events[#events + 1] = ev end }
      local u, err = p:authorization_url()
      local sent = echo:last_request().form.request
      echo:stop()
      proc.rmtree(dir)
      assert.is_nil(u)
      assert.equal("oauth", err.kind)
      assert.is_string(sent)
      assert.matches("got", err.description)
      for _, text in ipairs { dump(events), dump(err), tostring(err) } do
        assert.is_nil(text:find(sent, 1, true))
        assert.is_nil(text:find(sent:match("^[^.]+%.([^.]+)"):sub(1, 40), 1, true))
      end
    end)
  end)

  describe("resource indicators (RFC 8707)", function()
    local function resources(r)
      local out = {}
      for _, kv in ipairs(r.form_pairs or {}) do
        if kv[1] == "resource" then out[#out + 1] = kv[2] end
      end
      return out
    end
    local TOKEN = { json = { access_token = "at-1", token_type = "Bearer", expires_in = 600, refresh_token = "rt-1" } }

    it("repeats resource in the authorization URL", function()
      local p = provider()
      local u = assert(p:authorization_url { resource = { "https://api.example/a", "urn:example:b" } })
      assert.matches("&resource=https%%3A%%2F%%2Fapi%.example%%2Fa&resource=urn%%3Aexample%%3Ab&", u)
      local u2 = assert(p:authorization_url { resource = "https://api.example/one" })
      assert.matches("&resource=https%%3A%%2F%%2Fapi%.example%%2Fone&", u2)
    end)

    it("sends the authorization request's resource with the code, unless the call names one", function()
      local p = provider { scope = "files" }
      local _, session = assert(p:authorization_url { resource = { "https://api.example/a", "https://api.example/b" } })
      s:script("/token", TOKEN)
      assert(p:exchange_code { code = "c1", state = session.state, session = session })
      assert.same({ "https://api.example/a", "https://api.example/b" }, resources(s:last_request()))
      local _, s2 = assert(p:authorization_url { resource = { "https://api.example/a", "https://api.example/b" } })
      s:script("/token", TOKEN)
      assert(p:exchange_code { code = "c2", state = s2.state, session = s2, resource = "https://api.example/b" })
      assert.same({ "https://api.example/b" }, resources(s:last_request()))
    end)

    it("sends resource on client_credentials, password and refresh; the option is the default", function()
      local p = provider { resource = { "https://api.example/x", "https://api.example/y" } }
      s:script("/token", TOKEN)
      assert(p:client_credentials())
      local r = s:last_request()
      assert.equal("client_credentials", r.form.grant_type)
      assert.same({ "https://api.example/x", "https://api.example/y" }, resources(r))
      assert.equal("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example%2Fx" ..
        "&resource=https%3A%2F%2Fapi.example%2Fy&scope=openid%20email", r.body_raw)
      s:script("/token", TOKEN)
      assert(p:client_credentials { resource = "https://api.example/z" })
      assert.same({ "https://api.example/z" }, resources(s:last_request()))
      s:script("/token", TOKEN)
      assert(p:password { username = "u", password = "pw", resource = "https://api.example/p" })
      assert.same({ "https://api.example/p" }, resources(s:last_request()))
      s:script("/token", TOKEN)
      assert(p:refresh("rt-1", { resource = { "https://api.example/r1", "https://api.example/r2" } }))
      r = s:last_request()
      assert.equal("refresh_token", r.form.grant_type)
      assert.same({ "https://api.example/r1", "https://api.example/r2" }, resources(r))
      s:script("/token", TOKEN)
      assert(p:refresh("rt-1"))
      assert.same({ "https://api.example/x", "https://api.example/y" }, resources(s:last_request()))
      -- token() runs the grant with the option's resource too
      s:script("/token", TOKEN)
      assert(p:token { force = true })
      assert.same({ "https://api.example/x", "https://api.example/y" }, resources(s:last_request()))
    end)

    it("refuses relative URIs, fragments, empty lists and non-strings", function()
      local bad = { "/api", "api.example/x", "https://api.example/x#frag", "", {}, { "https://a.example/", 5 },
        "https://api.example/ x", { n = 1, "https://a.example/" } }
      for _, v in ipairs(bad) do
        local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c", resource = v }
        assert.is_nil(p, dump(v))
        assert.equal("config", err.kind)
        assert.equal("resource", err.option)
        local p2 = provider()
        local u, uerr = p2:authorization_url { resource = v }
        assert.is_nil(u)
        assert.equal("config", uerr.kind)
        local tok, terr = p2:client_credentials { resource = v }
        assert.is_nil(tok)
        assert.equal("config", terr.kind)
      end
      local p = provider()
      assert.has_error(function() p:authorization_url { resource = 42 } end)
      assert.has_error(function() p:refresh("rt", { resource = true }) end)
      assert.equal(0, #s:requests())
    end)
  end)
end)
