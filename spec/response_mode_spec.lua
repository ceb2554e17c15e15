-- Response modes (lua/smartauth/jarm.lua, authcode.lua, flow/loopback.lua): form_post
-- bodies given to exchange_code and POSTed to the loopback listener, JARM responses
-- (signed JWTs verified before use), request_uri pass-through (RFC 9101), and the
-- response types refused by policy (RFC 9700 §2.1.2). Against the recording server
-- (the token endpoint and JWKS) and a child process speaking raw HTTP to the listener.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local cjson = require "cjson"
local server = require "helpers.server"
local proc = require "helpers.proc"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local REDIRECT = "http://127.0.0.1:8765/cb"

local function esc(v)
  return (v:gsub("[^%w._~-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

describe("response modes", function()
  local s
  local T = idp.new()

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
  after_each(function() clock.offset = 0 end)

  local function provider(extra)
    return T.provider(idp.merge({ authorization_endpoint = s.url .. "/authorize", redirect_uri = REDIRECT,
      scope = "files", retry = false }, extra))
  end

  local function token_ok()
    s:script("/token", { json = { access_token = "at-1", token_type = "Bearer", expires_in = 3600 } })
  end

  local function token_requests()
    local n = 0
    for _, r in ipairs(s:requests()) do if r.path == "/token" then n = n + 1 end end
    return n
  end

  local refused
  local function refused_by(check, tok, err) return refused(tok, err, nil, check) end

  function refused(tok, err, kind, check)
    assert.is_nil(tok)
    assert.is_table(err)
    assert.equal(kind or "validation", err.kind)
    if check then assert.equal(check, err.check) end
    assert.equal(0, token_requests(), "the code was sent")
  end

  describe("response_mode", function()
    it("is sent from the option, and the call's value wins", function()
      local p = provider { response_mode = "form_post" }
      local u, session = assert(p:authorization_url())
      assert.matches("response_mode=form_post", u, 1, true)
      assert.equal("form_post", session.response_mode)
      u, session = assert(p:authorization_url { response_mode = "query.jwt" })
      assert.matches("response_mode=query.jwt", u, 1, true)
      assert.equal("query.jwt", session.response_mode)
    end)

    it("refuses an unknown mode, as an option and in a call", function()
      local p, err = smartauth.provider { client_id = "cid", response_mode = "web_message" }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      local _, cerr = provider():authorization_url { response_mode = "query.jwe" }
      assert.equal("config", cerr.kind)
      assert.matches("response_mode", cerr.description)
    end)
  end)

  describe("form_post", function()
    local p, session
    before_each(function()
      p = provider { response_mode = "form_post" }
      session = select(2, assert(p:authorization_url()))
      s:reset()
    end)

    it("exchange_code takes the POSTed body", function()
      token_ok()
      local tok = assert(p:exchange_code { form = "code=code-1&state=" .. esc(session.state), session = session })
      assert.equal("at-1", tok.access_token)
      assert.equal("code-1", s:last_request().form.code)
      assert.equal(session.code_verifier, s:last_request().form.code_verifier)
    end)

    it("parse_redirect reads a body as it reads a query", function()
      local cb = assert(smartauth.parse_redirect("code=c%2B1&state=xyz"))
      assert.same({ code = "c+1", state = "xyz" }, cb)
    end)

    it("refuses an oversized body", function()
      local body = "code=c&state=" .. esc(session.state) .. "&pad=" .. ("x"):rep(70000)
      local tok, err = p:exchange_code { form = body, session = session }
      refused(tok, err)
      assert.matches("too long", err.description)
    end)

    it("refuses a badly encoded body", function()
      refused_by(nil, p:exchange_code { form = "code=%zz&state=" .. esc(session.state), session = session })
    end)

    it("refuses a parameter given twice", function()
      local tok, err = p:exchange_code { form = "code=a&code=b&state=" .. esc(session.state), session = session }
      refused(tok, err)
      assert.matches("repeated", err.description)
    end)

    it("refuses a body without state, or with another", function()
      refused_by("state", p:exchange_code { form = "code=a", session = session })
      local tok, err = p:exchange_code { form = "code=a&state=forged", session = session }
      refused(tok, err, nil, "state")
    end)

    it("needs one string: url or form", function()
      assert.has_error(function() p:exchange_code { form = {}, session = session } end)
      assert.has_error(function() p:exchange_code { form = "a=b", url = REDIRECT, session = session } end)
    end)
  end)

  describe("JARM", function()
    local function jarm_provider(mode, extra)
      local p = provider(idp.merge({ response_mode = mode }, extra))
      local _, session = assert(p:authorization_url())
      s:reset()
      T.serve_jwks()
      return p, session
    end

    -- a signed response for the session (claims added/removed by extra)
    local function response(session, extra, alg, header)
      local c = { sub = idp.NONE, iat = idp.NONE, code = "code-1", state = session.state }
      for k, v in pairs(extra or {}) do c[k] = v end -- NONE kept: T.claims removes it
      return T.token(alg or "RS256", c, header)
    end

    it("query.jwt: the verified response's code is exchanged", function()
      local p, session = jarm_provider("query.jwt")
      token_ok()
      local tok = assert(p:exchange_code { url = REDIRECT .. "?response=" .. response(session), session = session })
      assert.equal("at-1", tok.access_token)
      assert.equal("code-1", s:last_request().form.code)
    end)

    it("fragment.jwt reads the fragment, form_post.jwt the body, jwt the query for code", function()
      for _, case in ipairs({ { "fragment.jwt", "#response=" }, { "jwt", "?response=" } }) do
        local p, session = jarm_provider(case[1])
        token_ok()
        assert(p:exchange_code { url = REDIRECT .. case[2] .. response(session), session = session })
      end
      local p, session = jarm_provider("form_post.jwt")
      token_ok()
      assert(p:exchange_code { form = "response=" .. response(session), session = session })
    end)

    it("takes nothing from outside the JWT", function()
      local p, session = jarm_provider("query.jwt")
      local tok, err = p:exchange_code { url = REDIRECT .. "?code=plain&state=" .. esc(session.state),
        session = session }
      refused(tok, err, nil, "response")
    end)

    it("an error travels inside the JWT, after its state is checked", function()
      local p, session = jarm_provider("query.jwt")
      local r = response(session, { code = idp.NONE, error = "access_denied", error_description = "nope" })
      local tok, err = p:exchange_code { url = REDIRECT .. "?response=" .. r, session = session }
      refused(tok, err, "oauth")
      assert.equal("access_denied", err.code)
      r = response(session, { code = idp.NONE, state = "forged", error = "access_denied" })
      refused_by("state", p:exchange_code { url = REDIRECT .. "?response=" .. r, session = session })
    end)

    it("refuses a bad signature", function()
      local p, session = jarm_provider("query.jwt")
      local h, c = idp.segments(response(session))
      local other = response(session, { code = "code-2" })
      local forged = h .. "." .. c .. "." .. select(3, idp.segments(other))
      local tok, err = p:exchange_code { url = REDIRECT .. "?response=" .. forged, session = session }
      refused(tok, err, nil, "signature")
      assert.matches("^JARM response rejected", err.description)
    end)

    it("refuses another audience, another issuer, an expired response", function()
      local p, session = jarm_provider("query.jwt")
      for extra, check in pairs({ [{ aud = "someone-else" }] = "aud", [{ iss = "https://evil.example" }] = "iss",
          [{ exp = clock.now() - 600 }] = "exp", [{ exp = idp.NONE }] = "exp" }) do
        local tok, err = p:exchange_code { url = REDIRECT .. "?response=" .. response(session, extra),
          session = session }
        refused(tok, err, nil, check)
      end
    end)

    it("refuses an exp that decodes to infinity (a response valid forever)", function()
      local p, session = jarm_provider("query.jwt")
      local c = T.claims { sub = idp.NONE, iat = idp.NONE, code = "code-1", state = session.state, exp = 4242424242 }
      local text = cjson.encode(c):gsub("4242424242", "1e999")
      local r = J.sign({ alg = "RS256", typ = "JWT", kid = idp.KID.RSA }, text, J.key("RSA"), "RS256")
      refused_by("exp", p:exchange_code { url = REDIRECT .. "?response=" .. r, session = session })
    end)

    it("never accepts alg none", function()
      local p, session = jarm_provider("query.jwt")
      local claims = T.claims { code = "code-1", state = session.state }
      local unsigned = J.compact({ alg = "none" }, claims, "")
      refused_by("alg", p:exchange_code { url = REDIRECT .. "?response=" .. unsigned, session = session })
    end)

    it("takes only authorization_signed_response_alg when set", function()
      -- by default RS256 (JARM §3), else the metadata's list
      local p, session = jarm_provider("query.jwt")
      refused_by("alg", p:exchange_code { url = REDIRECT .. "?response=" .. response(session, nil, "ES256"),
        session = session })
      p, session = jarm_provider("query.jwt", { authorization_signed_response_alg = "ES256" })
      refused_by("alg", p:exchange_code { url = REDIRECT .. "?response=" .. response(session, nil, "RS256"),
        session = session })
      token_ok()
      assert(p:exchange_code { url = REDIRECT .. "?response=" .. response(session, nil, "ES256"), session = session })
      local bad, err = smartauth.provider { client_id = "c", authorization_signed_response_alg = "none" }
      assert.is_nil(bad)
      assert.equal("config", err.kind)
    end)

    it("refuses truncated, oversized and non-string responses", function()
      local p, session = jarm_provider("query.jwt")
      local r = response(session)
      refused_by(nil, p:exchange_code { url = REDIRECT .. "?response=" .. r:sub(1, #r - 12),
        session = session })
      refused_by("format", p:exchange_code { url = REDIRECT .. "?response=" .. r:match("^(.-%..-)%."),
        session = session })
      refused_by("format", p:exchange_code { url = REDIRECT .. "?response=" ..
        response(session, { pad = ("x"):rep(40000) }), session = session })
      refused_by("format", p:exchange_code { url = REDIRECT .. "?response=" .. response(session, { code = 42 }),
        session = session })
    end)

    it("an encrypted response (JWE) needs decryption keys", function()
      local p, session = jarm_provider("query.jwt")
      local jwe = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a.b.c.d"
      local tok, err = p:exchange_code { url = REDIRECT .. "?response=" .. jwe, session = session }
      refused(tok, err, nil, "jwe")
      assert.matches("no decryption_keys are configured", err.description)
    end)

    it("an encrypted response is decrypted with decryption_keys, then verified (signed inside)", function()
      local enc_key = J.key("P-384")
      local to = J.public_jwk(enc_key, { use = "enc", alg = "ECDH-ES" })
      local p, session = jarm_provider("query.jwt", { decryption_keys = { enc_key.pem } })
      local sealed = assert(require("smartauth.jwe").encrypt(response(session), to, { enc = "A128GCM", cty = "JWT" }))
      token_ok()
      local tok = assert(p:exchange_code { url = REDIRECT .. "?response=" .. sealed, session = session })
      assert.equal("at-1", tok.access_token)
      s:reset()
      T.serve_jwks()
      -- an encrypted but unsigned response is never accepted
      local bare = require("smartauth.json").encode { iss = T.s.url, aud = "cid", exp = clock.now() + 300,
        code = "code-1", state = session.state }
      local unsigned = assert(require("smartauth.jwe").encrypt(bare, to, { enc = "A128GCM" }))
      refused_by("jwe", p:exchange_code { url = REDIRECT .. "?response=" .. unsigned, session = session })
      -- the signed one inside still has to verify
      local inner_forged = response(session, { aud = "someone-else" })
      local sealed2 = assert(require("smartauth.jwe").encrypt(inner_forged, to, { enc = "A128GCM", cty = "JWT" }))
      refused_by("aud", p:exchange_code { url = REDIRECT .. "?response=" .. sealed2, session = session })
    end)

    it("works inside smartauth.spawn", function()
      local p, session = jarm_provider("query.jwt")
      s:script("/jwks", { json = idp.default_jwks(), delay_ms = 200 }, 0)
      token_ok()
      local task = smartauth.spawn(function()
        return p:exchange_code { url = REDIRECT .. "?response=" .. response(session), session = session }
      end)
      local t0 = os.clock()
      smartauth.step(0)
      assert.is_true(os.clock() - t0 < 0.15)
      smartauth.run()
      local ok, tok = task:result()
      assert.is_true(ok)
      assert.equal("at-1", tok.access_token)
    end)
  end)

  describe("request_uri (RFC 9101, a request object the application hosts)", function()
    it("sends only client_id and request_uri, and response_type and scope for OpenID", function()
      local p = provider()
      local u, session = assert(p:authorization_url { request_uri = "https://app.example/req/1", state = "st-1" })
      local q = assert(smartauth.parse_redirect(u))
      assert.same({ client_id = "cid", request_uri = "https://app.example/req/1" }, q)
      assert.equal("st-1", session.state)
      u = assert(p:authorization_url { request_uri = "https://app.example/req/2", state = "st-2",
        scope = "openid", nonce = "n-2" })
      q = assert(smartauth.parse_redirect(u))
      assert.same({ client_id = "cid", request_uri = "https://app.example/req/2", response_type = "code",
        scope = "openid" }, q)
    end)

    it("checks the callback against the state and verifier the object holds", function()
      local p = provider()
      local _, session = assert(p:authorization_url { request_uri = "https://app.example/r", state = "st-9",
        code_verifier = "verifier-of-the-object-0123456789-abcdefghijk" })
      token_ok()
      assert(p:exchange_code { url = REDIRECT .. "?code=c9&state=st-9", session = session })
      assert.equal("verifier-of-the-object-0123456789-abcdefghijk", s:last_request().form.code_verifier)
    end)

    it("refuses other parameters, a missing state, a bad URI, and JAR or PAR with it", function()
      local p = provider()
      for _, o in ipairs({
        { request_uri = "https://app.example/r", state = "s", prompt = "login" },
        { request_uri = "https://app.example/r" },
        { request_uri = "not a uri", state = "s" },
        { request_uri = "https://app.example/" .. ("x"):rep(5000), state = "s" },
      }) do
        local u, err = p:authorization_url(o)
        assert.is_nil(u)
        assert.equal("config", err.kind)
      end
      local par = provider { par = true, pushed_authorization_request_endpoint = s.url .. "/par" }
      local _, err = par:authorization_url { request_uri = "https://app.example/r", state = "s" }
      assert.equal("config", err.kind)
    end)
  end)

  describe("response types refused by policy (RFC 9700 §2.1.2)", function()
    it("are a config error that says why, as an option and in a call", function()
      for _, rt in ipairs({ "token", "id_token token", "code token", "code id_token token" }) do
        local p, err = smartauth.provider { client_id = "cid", response_type = rt }
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.matches("RFC 9700", err.description, 1, true)
        assert.matches("access token in the redirect", err.description, 1, true)
        local u, cerr = provider():authorization_url { response_type = rt }
        assert.is_nil(u)
        assert.equal("config", cerr.kind)
        assert.matches("RFC 9700", cerr.description, 1, true)
      end
    end)

    it("leave code, id_token and the Hybrid code id_token", function()
      for _, rt in ipairs({ "code", "id_token", "code id_token" }) do
        assert(smartauth.provider { client_id = "cid", response_type = rt })
        assert(provider():authorization_url { response_type = rt, scope = "openid" })
      end
    end)
  end)
end)

-- A child process that sends raw HTTP requests to the loopback listener, one
-- connection each, and prints the status codes as JSON.
local RAW = [[
local socket = require "socket"
local cjson = require "cjson"
local out = {}
for _, raw in ipairs(cjson.decode(arg[2])) do
  local c = assert(socket.connect("127.0.0.1", tonumber(arg[1])))
  c:settimeout(5)
  c:send(raw)
  local line = c:receive("*l")
  out[#out + 1] = tonumber(line and line:match("^HTTP/1%.1 (%d+)")) or 0
  c:close()
end
io.write(cjson.encode(out))
]]

describe("the loopback listener and form_post", function()
  local s, tmp, script
  local T = idp.new()
  local loopback = require "smartauth.flow.loopback"

  setup(function()
    s = server.start()
    T.s = s
    tmp = proc.tmpdir("smartauth-respmode.XXXXXX")
    script = tmp .. "/raw.lua"
    local f = assert(io.open(script, "w"))
    f:write(RAW)
    f:close()
  end)
  teardown(function()
    s:stop()
    proc.rmtree(tmp)
  end)
  before_each(function()
    s:reset()
    T.serve_jwks()
  end)

  local function post(body, headers)
    local h = headers or ("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body .. "\r\n")
    return "POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. h .. "\r\n" .. body
  end

  -- Listen, send the raw requests from a child, serve until the callback:
  -- the child's statuses and what the login got.
  local function run(mode, build)
    local p = T.provider { authorization_endpoint = s.url .. "/authorize", scope = "files", retry = false }
    local l = assert(loopback.listen(assert(loopback.target(nil, {}))))
    local _, session = assert(p:authorization_url { redirect_uri = l.redirect_uri, response_mode = mode })
    s:script("/token", { json = { access_token = "at-lb", token_type = "Bearer", expires_in = 3600 } })
    local child = proc.spawn({ proc.LUA, script, tostring(l.port), cjson.encode(build(session)) },
      tmp .. "/raw.err")
    local done, tok, err = l:serve(session.state, 20, function(u)
      return p:exchange_code { url = u, session = session }
    end)
    local statuses = cjson.decode(child:read("*a"))
    child:close()
    return statuses, done, tok, err
  end

  it("accepts the POSTed form after refusing hostile ones", function()
    local statuses, done, tok = run("form_post", function(session)
      local st = "state=" .. esc(session.state)
      return {
        post("code=x&" .. st, "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"),
        post("code=x&" .. st, "Content-Type: text/plain\r\nContent-Length: " .. #("code=x&" .. st) .. "\r\n"),
        post("", "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999\r\n"),
        post("code=x&" .. st, "Content-Type: application/x-www-form-urlencoded\r\n"),
        post("code=x&" .. st, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n" ..
          "Content-Length: " .. #("code=x&" .. st) .. "\r\n"),
        post("code=%zz&" .. st),
        post("code=a&code=b&" .. st),
        post("code=<script>&" .. st),
        post("code=x"),
        post("code=x&state=forged"),
        "POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST /callback?code=x&" .. st .. " HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        post("code=code-lb&" .. st),
      }
    end)
    assert.same({ 411, 415, 413, 411, 411, 400, 400, 400, 400, 400, 404, 405, 200 }, statuses)
    assert.is_true(done)
    assert.equal("at-lb", tok.access_token)
    assert.equal("code-lb", s:last_request().form.code)
  end)

  it("routes a JARM response by the state inside it, then the login verifies it", function()
    local statuses, done, tok, err = run("form_post.jwt", function(session)
      local function r(extra)
        return T.token("RS256", idp.merge({ sub = idp.NONE, code = "code-j", state = session.state }, extra))
      end
      return {
        post("response=" .. r { state = "forged" }),
        post("response=" .. r { aud = "other" }),
      }
    end)
    assert.same({ 400, 200 }, statuses)
    assert.is_true(done)
    assert.is_nil(tok)
    assert.equal("aud", err.check)
  end)
end)
