-- The grants of lua/smartauth/grant.lua against the recording server: the bytes of
-- client_credentials, password and refresh (client authentication included), revoke
-- and introspect, and a token endpoint that echoes the request (secrets scrubbed).
local smartauth = require "smartauth"
local core = require "smartauth.core"
local clock = require "smartauth.clock"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local ODD_ID = "cl:ie nt%+ü"
local ODD_SECRET = "se:cr et%+ü=&"

describe("provider", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  describe("client_credentials", function()
    it("sends id and secret form-encoded in HTTP Basic (RFC 6749 §2.3.1)", function()
      local p = provider { client_id = ODD_ID, client_secret = ODD_SECRET }
      local tok = assert(p:client_credentials { scope = "read write" })
      assert.matches("^at%-", tok.access_token)
      local r = s:last_request()
      assert.equal("POST", r.method)
      assert.equal("/token", r.path)
      assert.equal(ODD_ID, r.basic.user)
      assert.equal(ODD_SECRET, r.basic.pass)
      assert.equal("application/json", r.headers.accept)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert.equal("grant_type=client_credentials&scope=read%20write", r.body)
      assert.is_nil(r.form.client_secret)
    end)

    it("sends credentials in the body with client_auth = post", function()
      local p = provider { client_id = ODD_ID, client_secret = ODD_SECRET, client_auth = "post" }
      assert(p:client_credentials())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.equal(ODD_ID, r.form.client_id)
      assert.equal(ODD_SECRET, r.form.client_secret)
      assert.equal("client_credentials", r.form.grant_type)
    end)

    it("sends only client_id with client_auth = none", function()
      local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "pub" })
      assert.equal("none", p.options.client_auth)
      assert(p:client_credentials())
      local r = s:last_request()
      assert.is_nil(r.headers.authorization)
      assert.same({ grant_type = "client_credentials", client_id = "pub" }, r.form)
    end)

    it("sends extra parameters such as resource and audience", function()
      local p = provider()
      assert(p:client_credentials { resource = "https://api.example/", audience = "api" })
      local r = s:last_request()
      assert.equal("https://api.example/", r.form.resource)
      assert.equal("api", r.form.audience)
    end)

    -- A grant without extra parameters is built once and sent again as is;
    -- everything that changes the bytes must still reach the wire.
    it("sends the same bytes on repeated grants and follows every change", function()
      local p = provider { token_headers = { ["X-B"] = "2", ["X-A"] = "1" }, timeout = 5 }
      for _ = 1, 3 do assert(p:client_credentials()) end
      local reqs = s:requests()
      assert.equal(3, #reqs)
      for _, r in ipairs(reqs) do
        assert.equal("grant_type=client_credentials", r.body)
        assert.equal("cid", r.basic.user)
        assert.equal("1", r.headers["x-a"])
      end
      -- extra headers in sorted order: stable bytes
      local names = {}
      for _, h in ipairs(reqs[1].raw_headers) do names[#names + 1] = h[1]:lower() end
      assert.truthy(table.concat(names, ","):find("x-a,x-b", 1, true))
      -- another scope, then extras: their own bytes, the plain grant unchanged
      assert(p:client_credentials { scope = "read" })
      assert.equal("grant_type=client_credentials&scope=read", s:last_request().body)
      assert(p:client_credentials { resource = "urn:r1" })
      assert.equal("grant_type=client_credentials&resource=urn%3Ar1", s:last_request().body)
      assert(p:client_credentials { resource = "urn:r2" })
      assert.equal("grant_type=client_credentials&resource=urn%3Ar2", s:last_request().body)
      assert(p:client_credentials())
      assert.equal("grant_type=client_credentials", s:last_request().body)
      -- options are fixed at construction: changing one is a programming mistake
      assert.has_error(function() p.options.client_auth = "post" end)
      assert.equal(7, #s:requests())
      -- many scopes: the kept requests stay bounded, each still right
      for i = 1, 20 do
        assert(p:client_credentials { scope = "s" .. i })
        assert.equal("client_credentials", s:last_request().form.grant_type)
        assert.equal("s" .. i, s:last_request().form.scope)
      end
      for _, v in pairs(p) do
        if type(v) == "table" then
          for _, w in pairs(v) do assert.is_not.equal("csecret", w) end
        end
        assert.is_not.equal("csecret", v)
      end
    end)

    it("signs a fresh client assertion for every grant (no prepared bytes)", function()
      local p = provider { client_auth = "client_secret_jwt", client_secret = ("k"):rep(32) }
      assert(p:client_credentials())
      local a1 = s:last_request().form.client_assertion
      assert(p:client_credentials())
      local a2 = s:last_request().form.client_assertion
      assert.is_string(a1)
      assert.is_not.equal(a1, a2)
    end)
  end)

  describe("password", function()
    it("sends username and password, and keeps the password out of errors", function()
      s:script("/token", { status = 400, json = { error = "invalid_grant",
        error_description = "bad password p@ss w0rd!" } })
      local p = provider()
      local tok, err = p:password { username = "me@example.com", password = "p@ss w0rd!", scope = "x" }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.equal(400, err.status)
      assert.is_false(err.retryable)
      assert.not_matches("p@ss", tostring(err))
      local r = s:last_request()
      assert.same({ grant_type = "password", username = "me@example.com", password = "p@ss w0rd!", scope = "x" },
        r.form)
    end)

    it("uses the provider's username and password by default", function()
      local p = provider { username = "u", password = "pw" }
      assert(p:password())
      assert.equal("u", s:last_request().form.username)
    end)

    it("is a config error without credentials", function()
      local _, err = provider():password()
      assert.equal("config", err.kind)
    end)
  end)

  describe("refresh", function()
    it("keeps the refresh token when the server does not rotate it", function()
      local p = provider()
      s:script("/token", { json = { access_token = "new-at", token_type = "Bearer", expires_in = 60 } })
      local tok = assert(p:refresh("old-rt"))
      assert.equal("new-at", tok.access_token)
      assert.equal("old-rt", tok.refresh_token)
      assert.same({ grant_type = "refresh_token", refresh_token = "old-rt" }, s:last_request().form)
    end)

    it("takes the new refresh token when the server rotates it", function()
      local p = provider()
      local tok = assert(p:refresh("old-rt"))
      assert.not_equal("old-rt", tok.refresh_token)
    end)

    it("is a validation error without a refresh token", function()
      local _, err = provider():refresh({ access_token = "x" })
      assert.equal("validation", err.kind)
    end)
  end)
end)

-- Security issue 12, item 6: a token endpoint that echoes the request (its
-- form body, its Authorization header) gets the secrets back into the error
-- in the encodings the library made of them.
describe("provider against a token endpoint that echoes the request", function()
  local cjson = require "cjson.safe"
  local mime = require "mime"
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local SECRET = 'p@ss w/rd+&=\195\169"\\'
  local PASSWORD = 'pw: "x" + y/z&=\195\188\\n'

  -- Every way the library itself encodes v: form (the body), JSON, and
  -- base64 as in Basic (form-escaped inside, RFC 6749 §2.3.1).
  local function encodings(v)
    return { raw = v, form = core.form_escape(v), json = cjson.encode(v):sub(2, -2) }
  end

  -- Every 6-byte piece of the secret's raw and form-escaped bytes, to find
  -- what a base64 run in the text still carries.
  local function pieces(v)
    local out = {}
    for _, e in ipairs { v, core.form_escape(v) } do
      for i = 1, #e - 5 do out[#out + 1] = e:sub(i, i + 5) end
    end
    return out
  end

  -- The bytes behind every run of base64 characters in text, at each alignment.
  local function decoded_runs(text)
    local out = {}
    for run in text:gmatch("[%w+/=]+") do
      for k = 0, 3 do
        local r = run:sub(k + 1):gsub("=", "")
        r = r:sub(1, #r - #r % 4)
        out[#out + 1] = mime.unb64(r) or ""
      end
    end
    return out
  end

  local function assert_clean(err, secret)
    local texts = { err.description, tostring(err), err.code or "" }
    for _, text in ipairs(texts) do
      for what, e in pairs(encodings(secret)) do
        assert.is_nil(text:find(e, 1, true), what .. " encoding of the secret in: " .. text)
      end
      for _, bytes in ipairs(decoded_runs(text)) do
        for _, piece in ipairs(pieces(secret)) do
          assert.is_nil(bytes:find(piece, 1, true), "base64 of the secret in: " .. text)
        end
      end
    end
  end

  -- Runs grant() once to record what is sent, then again against an answer
  -- that echoes it all: the body, the Authorization header, and the secrets
  -- JSON-escaped.
  local function echoed(grant, secrets)
    assert(grant())
    local r = s:last_request()
    s:reset()
    local parts = { "body=" .. r.body }
    if r.headers.authorization then parts[#parts + 1] = "authorization=" .. r.headers.authorization end
    for _, v in ipairs(secrets) do parts[#parts + 1] = "json=" .. encodings(v).json end
    s:script("/token", { status = 401, json = { error = "invalid_client",
      error_description = table.concat(parts, " ") } })
    local tok, err = grant()
    assert.is_nil(tok)
    assert.equal("oauth", err.kind)
    assert.equal(r.body, s:last_request().body, "the second request differs from the first")
    assert.matches("grant_type=", err.description, 1, true) -- the echo came through
    return err
  end

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "c:id é", client_secret = SECRET, retry = false }
    for k, v in pairs(extra) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  it("scrubs the client secret of client_auth = basic in every encoding", function()
    local p = provider { client_auth = "basic" }
    local err = echoed(function() return p:client_credentials() end, { SECRET })
    assert.matches("authorization=Basic [redacted] ", err.description, 1, true)
    assert_clean(err, SECRET)
  end)

  it("scrubs the client secret of client_auth = post in every encoding", function()
    local p = provider { client_auth = "post" }
    local err = echoed(function() return p:client_credentials() end, { SECRET })
    assert.matches("client_secret=[redacted]", err.description, 1, true)
    assert_clean(err, SECRET)
  end)

  it("scrubs the password and the client secret of the password grant in every encoding", function()
    for _, auth in ipairs { "basic", "post" } do
      s:reset()
      local p = provider { client_auth = auth, username = "me@example.com", password = PASSWORD }
      local err = echoed(function() return p:password() end, { SECRET, PASSWORD })
      assert.matches("password=[redacted]", err.description, 1, true)
      assert_clean(err, SECRET)
      assert_clean(err, PASSWORD)
    end
  end)

  it("scrubs the password of a public client (no client secret before it in the list)", function()
    local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "pub", retry = false,
      username = "me@example.com", password = PASSWORD })
    local err = echoed(function() return p:password() end, { PASSWORD })
    assert.matches("password=[redacted]", err.description, 1, true)
    assert_clean(err, PASSWORD)
  end)

  it("scrubs a secret at any position of a base64 text, and leaves other text alone", function()
    local errors = smartauth.errors
    for _, prefix in ipairs { "", "a", "ab", "abc", "c:id é:" } do
      for _, enc in ipairs { core.b64_encode(prefix .. SECRET .. "tail"), core.b64_encode(prefix .. SECRET),
          core.b64_encode(prefix .. core.form_escape(SECRET)) } do
        local out = errors.scrub("x " .. enc .. " y", { SECRET })
        assert.equal("x [redacted] y", out)
      end
    end
    assert.equal("invalid client (cid) grant_type=password",
      errors.scrub("invalid client (cid) grant_type=password", { SECRET, "abc" }))
  end)
end)

describe("OpenID Connect", function()
  local s
  local T = idp.new()
  local provider, token = T.provider, T.token
  local SECRET = idp.SECRET

  setup(function()
    s = server.start()
    T.s = s
  end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function() s:reset() end)
  after_each(function() clock.offset = 0 end)

  describe("revoke and introspect", function()
    local function api_provider(extra)
      local o = {
        client_secret = SECRET, userinfo_endpoint = s.url .. "/userinfo",
        revocation_endpoint = s.url .. "/revoke", introspection_endpoint = s.url .. "/introspect",
      }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end

    local function tok_with_id_token(sub)
      local t = assert(smartauth.token.from_response({ access_token = "at-1", token_type = "Bearer",
        expires_in = 3600, refresh_token = "rt-1", id_token = token("RS256", { sub = sub }) }, clock.now()))
      return t
    end

    it("revoke sends the refresh token with its hint and returns true on 200", function()
      local p = api_provider()
      s:script("/revoke", { status = 200, body = "" })
      assert.is_true(p:revoke(tok_with_id_token("alice")))
      local r = s:last_request()
      assert.equal("/revoke", r.path)
      assert.equal("POST", r.method)
      assert.equal("rt-1", r.form.token)
      assert.equal("refresh_token", r.form.token_type_hint)
      assert.equal("cid", r.basic.user)
      assert.equal(SECRET, r.basic.pass)
    end)

    it("revoke turns an error body into an oauth error without the token in it", function()
      local p = api_provider()
      s:script("/revoke", { status = 400, json = { error = "unsupported_token_type",
        error_description = "cannot revoke rt-1" } })
      local ok, err = p:revoke(tok_with_id_token("alice"))
      assert.is_nil(ok)
      assert.equal("oauth", err.kind)
      assert.equal("unsupported_token_type", err.code)
      assert.equal(400, err.status)
      assert.is_nil(tostring(err):find("rt-1", 1, true))
    end)

    it("introspect returns the response object", function()
      local p = api_provider()
      s:script("/introspect", { json = { active = true, scope = "read", sub = "alice", exp = 2000000000 } })
      local data = assert(p:introspect(tok_with_id_token("alice")))
      assert.is_true(data.active)
      assert.equal("read", data.scope)
      assert.equal("alice", data.sub)
      local r = s:last_request()
      assert.equal("/introspect", r.path)
      assert.equal("at-1", r.form.token)
      s:script("/introspect", { json = { active = false } })
      assert.is_false(assert(p:introspect("at-1")).active)
    end)

    it("introspect rejects a response without a boolean active", function()
      local p = api_provider()
      for _, doc in ipairs { { scope = "read" }, { active = "true" }, { active = 1 } } do
        s:script("/introspect", { json = doc })
        local data, err = p:introspect("at-1")
        assert.is_nil(data)
        assert.equal("validation", err.kind)
      end
      s:script("/introspect", { body = "active" })
      local data, err = p:introspect("at-1")
      assert.is_nil(data)
      assert.equal("validation", err.kind)
    end)
  end)
end)
