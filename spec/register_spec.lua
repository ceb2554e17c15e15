-- Dynamic client registration (RFC 7591, RFC 7592) against the recording server: the
-- exact request, the answer's checks (hostile answers refused), secrets kept off the
-- object and out of errors and on_http events, reg:options() for smartauth.provider,
-- management (read, update with a rotated registration access token, delete), secrets
-- that expire (registered again), stores (encrypted at rest), and inside smartauth.spawn.
-- The same against oidc-provider: interop/register_interop_spec.lua.
local smartauth = require "smartauth"
local server = require "helpers.server"
local proc = require "helpers.proc"
local cjson = require "cjson.safe"

describe("smartauth.register", function()
  local s, n

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function() s:reset() end)

  local SECRET, RAT, RAT2, IAT = "cs-Very-Secret-1", "rat-Very-Secret-2", "rat-Very-Secret-3", "iat-Very-Secret-4"

  local function meta()
    n = (n or 0) + 1
    return { issuer = s.url .. "/i" .. n, registration_endpoint = s.url .. "/reg",
      token_endpoint = s.url .. "/token", authorization_endpoint = s.url .. "/authorize",
      jwks_uri = s.url .. "/jwks" }
  end

  local CM = { client_name = "tool", redirect_uris = { "http://127.0.0.1/callback", "https://app.example/cb" },
    grant_types = { "authorization_code", "client_credentials" }, token_endpoint_auth_method = "client_secret_post" }

  local function answer(extra, drop)
    local a = { client_id = "c-1", client_secret = SECRET, client_secret_expires_at = 0,
      client_id_issued_at = 1700000000,
      registration_access_token = RAT, registration_client_uri = s.url .. "/reg/c-1",
      redirect_uris = CM.redirect_uris, grant_types = CM.grant_types, client_name = "tool",
      token_endpoint_auth_method = "client_secret_post" }
    for k, v in pairs(extra or {}) do a[k] = v end
    for _, k in ipairs(drop or {}) do a[k] = nil end
    return { status = 201, json = a }
  end

  it("POSTs the metadata as JSON with the initial access token, and keeps the answer", function()
    s:script("/reg", answer())
    local reg = assert(smartauth.register(meta(), CM, { initial_access_token = IAT }))
    local r = s:last_request()
    assert.equal("POST", r.method)
    assert.equal("/reg", r.path)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("application/json", r.headers.accept)
    assert.equal("Bearer " .. IAT, r.headers.authorization)
    assert.same(CM, cjson.decode(r.body))
    assert.equal("c-1", reg.client_id)
    assert.equal(SECRET, reg.client_secret)
    assert.equal(RAT, reg.registration_access_token)
    assert.equal(0, reg.client_secret_expires_at)
    assert.equal(1700000000, reg.client_id_issued_at)
    assert.equal(s.url .. "/reg/c-1", reg.registration_client_uri)
    assert.equal("tool", reg.metadata.client_name)
    assert.is_nil(reg.metadata.client_secret)
    assert.is_nil(reg.metadata.registration_access_token)
    -- nothing secret shows when the object is dumped
    local function dump(v, seen, out)
      seen, out = seen or {}, out or {}
      if type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do dump(k, seen, out); dump(x, seen, out) end
      elseif type(v) == "string" then out[#out + 1] = v end
      return out
    end
    local all = table.concat(dump(reg), "\n") .. tostring(reg)
    for _, secret in ipairs { SECRET, RAT, IAT } do assert.is_nil(all:find(secret, 1, true)) end
    -- no initial access token: no Authorization header
    s:script("/reg", answer())
    assert(smartauth.register(meta(), CM))
    assert.is_nil(s:last_request().headers.authorization)
  end)

  it("sends empty array fields as [] and keys in a stable order", function()
    s:script("/reg", answer({}, { "redirect_uris" }))
    assert(smartauth.register(meta(), { response_types = {}, redirect_uris = {}, grant_types = { "client_credentials" },
      jwks = { keys = { { kty = "oct" } } }, client_name = "a\"b" }))
    assert.equal('{"client_name":"a\\"b","grant_types":["client_credentials"],"jwks":{"keys":[{"kty":"oct"}]},' ..
      '"redirect_uris":[],"response_types":[]}', s:last_request().body)
  end)

  it("gives options smartauth.provider takes (client_auth from token_endpoint_auth_method)", function()
    s:script("/reg", answer())
    local m = meta()
    local reg = assert(smartauth.register(m, CM, { allow_http = true, timeout = 7 }))
    local o = assert(reg:options { name = "mine" })
    assert.same({ issuer = m.issuer, token_endpoint = m.token_endpoint,
      authorization_endpoint = m.authorization_endpoint,
      jwks_uri = m.jwks_uri, client_id = "c-1", client_secret = SECRET, client_auth = "post",
      redirect_uri = "http://127.0.0.1/callback", allow_http = true, timeout = 7, name = "mine" }, o)
    local p = assert(smartauth.provider(o))
    s:script("/token", { json = { access_token = "at", token_type = "Bearer", expires_in = 60 } })
    assert(p:client_credentials())
    assert.same({ grant_type = "client_credentials", client_id = "c-1", client_secret = SECRET }, s:last_request().form)
    local map = { client_secret_basic = "basic", none = "none", [false] = "basic" }
    for method, auth in pairs(map) do
      local a = answer({ token_endpoint_auth_method = method or nil }, method == "none" and { "client_secret" } or nil)
      if method == false then a.json.token_endpoint_auth_method = nil end
      s:script("/reg", a)
      local r = assert(smartauth.register(meta(), { client_name = "x" }))
      assert.equal(auth, assert(r:options()).client_auth)
    end
  end)

  it("discovers the registration endpoint from an issuer", function()
    local m = meta()
    local path = m.issuer:match("^http://[^/]+(.*)$")
    s:script(path .. "/.well-known/openid-configuration", { json = m })
    s:script("/reg", answer())
    local reg = assert(smartauth.register(m.issuer, CM))
    assert.equal("c-1", reg.client_id)
    assert.equal(m.issuer, assert(reg:options()).issuer)
    -- none advertised
    local m2 = meta()
    m2.registration_endpoint = nil
    s:script(m2.issuer:match("^http://[^/]+(.*)$") .. "/.well-known/openid-configuration", { json = m2 })
    local r, err = smartauth.register(m2.issuer, CM)
    assert.is_nil(r)
    assert.equal("config", err.kind)
  end)

  it("refuses hostile answers", function()
    local cases = {
      { answer({}, { "client_id" }), "client_id" },
      { answer { client_id = 42 }, "client_id" },
      { answer { client_id = "" }, "client_id" },
      { answer { client_id = "a\nb" }, "client_id" },
      { answer({}, { "client_secret_expires_at" }), "client_secret_expires_at" },
      { answer { client_secret_expires_at = -1 }, "client_secret_expires_at" },
      { answer { client_secret_expires_at = 1.5 }, "client_secret_expires_at" },
      { answer { client_secret_expires_at = "0" }, "client_secret_expires_at" },
      { answer { client_secret = 7 }, "client_secret" },
      { answer { client_id_issued_at = "now" }, "client_id_issued_at" },
      { answer { registration_client_uri = "http://evil.example/reg" }, "registration_client_uri" },
      { answer { registration_client_uri = "javascript:alert(1)" }, "registration_client_uri" },
      { answer { registration_access_token = {} }, "registration_access_token" },
      { answer { redirect_uris = { "https://evil.example/cb" } }, "redirect URI" },
      { answer({}, { "redirect_uris" }), "redirect URI" },
      { answer { redirect_uris = "http://127.0.0.1/callback" }, "redirect_uris" },
      { answer { token_endpoint_auth_method = "magic" }, "token_endpoint_auth_method" },
      { answer({}, { "client_secret" }), "client_secret" },
      { { status = 201, body = "not json" }, "JSON" },
      { { status = 201, json = { "a", "b" } }, "JSON" },
      { { status = 302, headers = { Location = "https://evil.example" } }, "HTTP 302" },
      { { status = 500, body = "oops" }, "HTTP 500" },
      { { body_size = 2000000 }, nil },
    }
    for i, c in ipairs(cases) do
      s:script("/reg", c[1])
      local reg, err = smartauth.register(meta(), CM, { retry = false, initial_access_token = IAT })
      assert.is_nil(reg, "case " .. i)
      assert.is_table(err, "case " .. i)
      local text = tostring(err)
      if c[2] then assert.truthy(text:find(c[2], 1, true), "case " .. i .. ": " .. text) end
      for _, secret in ipairs { SECRET, RAT, IAT } do assert.is_nil(text:find(secret, 1, true), "case " .. i) end
    end
  end)

  it("reports the server's OAuth error, never a secret it echoes", function()
    s:script("/reg", { status = 400, json = { error = "invalid_redirect_uri",
      error_description = "bad uri; your token was " .. IAT } })
    local reg, err = smartauth.register(meta(), CM, { initial_access_token = IAT })
    assert.is_nil(reg)
    assert.equal("oauth", err.kind)
    assert.equal("invalid_redirect_uri", err.code)
    assert.equal(400, err.status)
    assert.is_nil(tostring(err):find(IAT, 1, true))
    s:script("/reg", { status = 401, json = { error = "invalid_token" } })
    reg, err = smartauth.register(meta(), CM, { initial_access_token = "wrong" })
    assert.is_nil(reg)
    assert.equal("invalid_token", err.code)
  end)

  it("shows on_http hooks the exchange with every secret redacted", function()
    local events = {}
    local function hook(ev) events[#events + 1] = ev end
    s:script("/reg", answer())
    local reg = assert(smartauth.register(meta(), CM, { initial_access_token = IAT, on_http = hook }))
    s:script("/reg/c-1", { json = answer({ registration_access_token = RAT2 }).json })
    assert(reg:update { client_name = "tool 2", redirect_uris = CM.redirect_uris,
      token_endpoint_auth_method = "client_secret_post" })
    assert.equal(2, #events)
    local text = cjson.encode(events)
    for _, secret in ipairs { SECRET, RAT, RAT2, IAT } do assert.is_nil(text:find(secret, 1, true), secret) end
    assert.equal("Bearer [redacted]", events[1].request_headers.authorization)
    assert.equal("[redacted]", cjson.decode(events[1].response_body).client_secret)
    assert.equal("[redacted]", cjson.decode(events[2].response_body).registration_access_token)
  end)

  describe("RFC 7592 management", function()
    local reg
    before_each(function()
      s:script("/reg", answer())
      reg = assert(smartauth.register(meta(), CM))
      s:reset()
    end)

    it("reads with the registration access token", function()
      s:script("/reg/c-1", { json = answer({ client_name = "renamed" }).json })
      assert.equal(reg, assert(reg:read()))
      local r = s:last_request()
      assert.equal("GET", r.method)
      assert.equal("Bearer " .. RAT, r.headers.authorization)
      assert.equal("renamed", reg.metadata.client_name)
      -- another client's record is refused
      s:script("/reg/c-1", { json = answer({ client_id = "c-2" }).json })
      local ok, err = reg:read()
      assert.is_nil(ok)
      assert.equal("validation", err.kind)
      assert.equal("c-1", reg.client_id)
    end)

    it("updates with client_id and keeps the rotated registration access token", function()
      s:script("/reg/c-1", { json = answer({ registration_access_token = RAT2, client_name = "v2" }).json })
      local md = { client_name = "v2", redirect_uris = CM.redirect_uris,
        token_endpoint_auth_method = "client_secret_post" }
      assert(reg:update(md))
      local r = s:last_request()
      assert.equal("PUT", r.method)
      assert.equal("Bearer " .. RAT, r.headers.authorization)
      assert.equal("application/json", r.headers["content-type"])
      local body = cjson.decode(r.body)
      assert.same({ client_id = "c-1", client_name = "v2", redirect_uris = CM.redirect_uris,
        token_endpoint_auth_method = "client_secret_post" }, body)
      assert.equal(RAT2, reg.registration_access_token)
      assert.equal(SECRET, reg.client_secret) -- the answer repeats it; kept either way
      assert.equal("v2", reg.metadata.client_name)
      s:script("/reg/c-1", { status = 204 })
      assert.is_true(reg:delete())
      assert.equal("DELETE", s:last_request().method)
      assert.equal("Bearer " .. RAT2, s:last_request().headers.authorization)
      assert.is_nil(reg.client_secret)
      assert.is_nil(reg.registration_access_token)
    end)

    it("returns the server's refusal", function()
      s:script("/reg/c-1", { status = 401, json = { error = "invalid_token", error_description = "nope" } })
      local ok, err = reg:delete()
      assert.is_nil(ok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_token", err.code)
      assert.equal(RAT, reg.registration_access_token)
      assert.has_error(function() reg:update("x") end)
    end)

    it("needs registration_client_uri and a registration access token", function()
      s:script("/reg", answer({}, { "registration_client_uri", "registration_access_token" }))
      local r = assert(smartauth.register(meta(), CM))
      for _, m in ipairs { "read", "delete" } do
        local ok, err = r[m](r)
        assert.is_nil(ok)
        assert.equal("config", err.kind)
      end
    end)
  end)

  it("registers again when the client secret is due, not before", function()
    local now = os.time()
    s:script("/reg", answer { client_secret_expires_at = now + 3600 })
    local reg = assert(smartauth.register(meta(), CM))
    assert.is_false(reg:due())
    assert(reg:options())
    assert.equal(1, #s:requests())
    s:script("/reg", answer { client_secret_expires_at = now + 3600 })
    local soon = assert(smartauth.register(meta(), CM, { leeway = 3700 }))
    assert.equal("c-1", soon.client_id)
    assert.is_true(soon:due())
    s:reset()
    s:script("/reg", answer { client_id = "c-new", client_secret = "cs-new", client_secret_expires_at = now + 7200,
      registration_client_uri = s.url .. "/reg/c-new" })
    local o = assert(soon:options())
    assert.equal("c-new", o.client_id)
    assert.equal("cs-new", o.client_secret)
    assert.equal(1, #s:requests())
    assert.same(CM, cjson.decode(s:last_request().body))
    -- 0 never expires
    s:reset()
    s:script("/reg", answer())
    local never = assert(smartauth.register(meta(), CM, { leeway = 1e9 }))
    assert.is_false(never:due())
  end)

  it("is kept in a store, encrypted at rest by a file store with a key", function()
    local dir = proc.tmpdir("smartauth-reg.XXXXXX")
    finally(function() proc.rmtree(dir) end)
    local st = assert(smartauth.store.file { dir = dir, key = "a-key-of-sixteen-bytes-or-more" })
    s:script("/reg", answer())
    local reg = assert(smartauth.register(meta(), CM, { store = st, key = "reg-1", on_http = function() end,
      proxy = "http://user:proxy-Pass-5@127.0.0.1:9", no_proxy = "*" }))
    assert.equal("http://user:proxy-Pass-5@127.0.0.1:9", assert(reg:options()).proxy)
    local shown = {}
    for k, v in pairs(reg) do shown[#shown + 1] = tostring(k) .. "=" .. tostring(v) end
    for _, v in pairs(reg._transport) do shown[#shown + 1] = tostring(v) end
    assert.is_nil(table.concat(shown, " "):find("proxy-Pass-5", 1, true))
    local files = proc.read_file(dir .. "/" .. assert(io.popen("ls " .. dir):read("*l")))
    for _, secret in ipairs { SECRET, RAT, "proxy-Pass-5" } do assert.is_nil(files:find(secret, 1, true)) end
    local again = assert(smartauth.registration(st, "reg-1"))
    assert.equal("c-1", again.client_id)
    assert.equal(SECRET, again.client_secret)
    assert.equal(RAT, again.registration_access_token)
    local o1, o2 = assert(reg:options()), assert(again:options())
    assert.is_function(o1.on_http)
    o1.on_http = nil -- a hook is not kept in a store
    assert.same(o1, o2)
    -- management saves what rotates
    s:script("/reg/c-1", { json = answer({ registration_access_token = RAT2 }).json })
    assert(again:update { client_name = "v2", redirect_uris = CM.redirect_uris,
      token_endpoint_auth_method = "client_secret_post" })
    assert.equal(RAT2, assert(smartauth.registration(st, "reg-1")).registration_access_token)
    s:script("/reg/c-1", { status = 204 })
    assert(again:delete())
    assert.is_nil(smartauth.registration(st, "reg-1"))
    -- absent; an entry that is no registration
    assert.is_nil(smartauth.registration(st, "none"))
    assert(st:set("tok", { v = 2, access_token = "x" }))
    local r, err = smartauth.registration(st, "tok")
    assert.is_nil(r)
    assert.equal("validation", err.kind)
  end)

  it("refuses wrong arguments", function()
    assert.has_error(function() smartauth.register(nil, CM) end)
    assert.has_error(function() smartauth.register(meta(), "x") end)
    assert.has_error(function() smartauth.register(meta(), CM, { bogus = 1 }) end)
    assert.has_error(function() smartauth.register(meta(), CM, { initial_access_token = 5 }) end)
    local m = meta()
    m.registration_endpoint = "http://evil.example/reg"
    local r, err = smartauth.register(m, CM)
    assert.is_nil(r)
    assert.equal("validation", err.kind)
  end)

  it("works inside smartauth.spawn", function()
    s:script("/reg", answer())
    s:script("/reg/c-1", { json = answer().json })
    local out = {}
    smartauth.spawn(function()
      local reg = assert(smartauth.register(meta(), CM))
      out.id = reg.client_id
      out.read = reg:read() == reg
    end)
    smartauth.run()
    assert.same({ id = "c-1", read = true }, out)
  end)
end)
