-- The debug hook (option on_http, smartauth.on_http; lua/smartauth/wire.lua):
-- one event per HTTP exchange, useful (method, URL, status, attempts, timing)
-- and without a secret in any field, in any encoding the library makes of one,
-- for every grant, flow and request, against a server that answers normally and
-- against one that echoes each request back (spec/helpers/echo.js). A negative
-- control proves the checks catch a secret: with redaction off (a test-only
-- switch) the same events must fail them. And `smartauth --verbose`.
local smartauth = require "smartauth"
local core = require "smartauth.core"
local cjson = require "cjson.safe"
local mime = require "mime"
local wire = require "smartauth.wire"
local server = require "helpers.server"
local proc = require "helpers.proc"
local J = require "helpers.jwt"

local ROOT = (function()
  local _, _, cwd = proc.run("pwd")
  return (cwd:gsub("%s+$", ""))
end)()

-- Secrets with every character an encoding treats specially.
local SECRET = 'se:cr et%+\195\188=&"\\/x'
local PASSWORD = 'pw: "x" + y/z&=\195\188\\n'
local API_KEY = "ak/+\195\169%20key"
local API_PASSWORD = 'ap:"w&=+/\195\169'
local CODE = 'co/de+&=\195\169 "x"'
local DEVICE_CODE = "dc/+=&\195\169-device-code"
local CLIENT_ID = "c:id \195\169"

---------------------------------------------------------------- the checks

-- Every way the library itself encodes v: raw, form (bodies, queries), JSON
-- (lua-cjson); base64 (HTTP Basic) is found by decoding runs, below.
local function encodings(v)
  return { raw = v, form = core.form_escape(v), json = cjson.encode(v):sub(2, -2) }
end

-- Every 6-byte piece of v and of its form escape: what a base64 run that
-- carries v (in Basic: "id:secret", form-escaped or not) still holds.
local function pieces(v)
  local out = {}
  for _, e in ipairs { v, core.form_escape(v) } do
    if #e < 6 then out[#out + 1] = e end
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

-- Every string of an event: its fields, header names and values, the error's
-- fields and text, and every string inside a body that is JSON (decoded: a
-- server may escape a secret as the library does not).
local function strings(v, out, depth)
  out = out or {}
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
    local doc = v:find("^%s*[{%[]") and cjson.decode(v)
    if type(doc) == "table" and depth < 8 then strings(doc, out, depth + 1) end
  elseif t == "number" or t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" and depth < 16 then
    if getmetatable(v) and getmetatable(v).__tostring then out[#out + 1] = tostring(v) end
    for k, x in pairs(v) do
      strings(k, out, depth + 1)
      strings(x, out, depth + 1)
    end
  end
  return out
end

-- Where secret shows in text, or nil.
local function find_secret(text, secret)
  for what, e in pairs(encodings(secret)) do
    if text:find(e, 1, true) then return what end
  end
  if #secret >= 6 then
    for _, bytes in ipairs(decoded_runs(text)) do
      for _, piece in ipairs(pieces(secret)) do
        if bytes:find(piece, 1, true) then return "base64" end
      end
    end
  end
  return nil
end

-- The first (secret, encoding, text) found in the events, or nil.
local function leak(events, secrets)
  for _, ev in ipairs(events) do
    for _, text in ipairs(strings(ev)) do
      for _, secret in ipairs(secrets) do
        local how = find_secret(text, secret)
        if how then return secret, how, text end
      end
    end
  end
  return nil
end

local function assert_no_secret(events, secrets)
  local secret, how, text = leak(events, secrets)
  assert(secret == nil, ("%s encoding of secret #%s in an event field: %s"):format(
    tostring(how), tostring(secret and #secret), tostring(text)))
end

describe("the secret checks of this spec", function()
  -- the checks themselves must be able to fail: each encoding is caught
  it("catch a secret raw, form-encoded, JSON-escaped and in base64 at any offset", function()
    for _, secret in ipairs { SECRET, PASSWORD, API_KEY, CODE } do
      local texts = {
        "x " .. secret .. " y",
        "a=" .. core.form_escape(secret) .. "&b=1",
        cjson.encode { v = secret },
        "Basic " .. core.b64_encode(core.form_escape(CLIENT_ID) .. ":" .. core.form_escape(secret)),
        "Basic " .. core.b64_encode(secret .. ":" .. "pw"),
      }
      for _, prefix in ipairs { "", "a", "ab" } do
        texts[#texts + 1] = core.b64_encode(prefix .. secret .. "tail")
      end
      for _, text in ipairs(texts) do
        assert.is_string(leak({ { response_body = text } }, { secret }), "not caught: " .. text)
      end
      -- inside a JSON body escaped the way another JSON encoder does ("\u00fc")
      local escaped = cjson.encode { v = secret }:gsub("\195\188", "\\u00fc"):gsub("\195\169", "\\u00e9")
      assert.is_string(leak({ { response_body = escaped } }, { secret }), "not caught: " .. escaped)
    end
    assert.is_nil(leak({ { url = "https://h/x?y=[redacted]", status = 200 } }, { SECRET }))
  end)
end)

describe("on_http", function()
  local s
  local events = {}
  local function hook(ev) events[#events + 1] = ev end

  setup(function() s = server.start { fake = ROOT .. "/spec/helpers/echo.js" } end)
  teardown(function()
    s:stop()
    J.cleanup()
    wire._test_unredacted = false
    smartauth.on_http(nil)
  end)
  before_each(function()
    s:reset()
    for i = #events, 1, -1 do events[i] = nil end
  end)

  local function provider(extra)
    local o = { name = "test", token_endpoint = s.url .. "/token", client_id = CLIENT_ID,
      client_secret = SECRET, retry = false, on_http = hook }
    -- false removes an option
    for k, v in pairs(extra or {}) do if v == false then o[k] = nil else o[k] = v end end
    return assert(smartauth.provider(o))
  end

  -- A token from the server's own token endpoint, by a provider without a hook.
  local function issued()
    local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "other",
      username = "u", password = "p", retry = false })
    return assert(p:password())
  end

  local function add_token(list, tok)
    if type(tok) == "table" then
      list[#list + 1] = tok.access_token
      list[#list + 1] = tok.refresh_token
      list[#list + 1] = tok.id_token
    end
    return list
  end

  local function assertion_sent()
    for _, r in ipairs(s:requests()) do
      if r.form and r.form.client_assertion then return r.form.client_assertion end
    end
    error("no client assertion was sent")
  end

  -- Each scenario runs its requests against base ("" for the normal
  -- endpoints, "/echo/json" or "/echo/text" for echoing ones) and returns the
  -- secrets that went over the wire.
  local SCENARIOS = {}
  local ORDER = {}
  local function scenario(name, fn)
    SCENARIOS[name] = fn
    ORDER[#ORDER + 1] = name
  end

  scenario("client_credentials, client_auth basic", function(base)
    local p = provider { client_auth = "basic", token_endpoint = s.url .. base .. "/token" }
    return add_token({ SECRET }, (p:client_credentials()))
  end)

  scenario("client_credentials, client_auth post", function(base)
    local p = provider { client_auth = "post", token_endpoint = s.url .. base .. "/token" }
    return add_token({ SECRET }, (p:client_credentials()))
  end)

  scenario("client_credentials, client_secret_jwt", function(base)
    local p = provider { client_auth = "client_secret_jwt", token_endpoint = s.url .. base .. "/token" }
    local tok = p:client_credentials()
    return add_token({ assertion_sent() }, tok) -- the secret is the HMAC key: never sent
  end)

  scenario("client_credentials, private_key_jwt", function(base)
    local p = provider { client_secret = false, client_auth = "private_key_jwt",
      client_assertion_key = J.key("P-256").pem, token_endpoint = s.url .. base .. "/token" }
    local tok = p:client_credentials()
    return add_token({ assertion_sent() }, tok)
  end)

  scenario("password grant with an ID token in the answer", function(base)
    local AT, RT, IDT = "at-pw/+=\195\169-0123456789", "rt-pw/+=-0123456789", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig"
    if base == "" then
      s:script("/token", { json = { access_token = AT, refresh_token = RT, id_token = IDT,
        token_type = "Bearer", expires_in = 3600 } })
    end
    local p = provider { username = "me@example.com", password = PASSWORD,
      token_endpoint = s.url .. base .. "/token" }
    return add_token({ SECRET, PASSWORD, AT, RT, IDT }, (p:password()))
  end)

  scenario("refresh", function(base)
    local old = issued()
    local p = provider { token_endpoint = s.url .. base .. "/token" }
    local tok = p:refresh(old.refresh_token)
    return add_token({ SECRET, old.refresh_token }, tok)
  end)

  scenario("authorization code exchange with PKCE", function(base)
    local p = provider { authorization_endpoint = s.url .. "/authorize", scope = "files",
      redirect_uri = "http://127.0.0.1:8765/cb", token_endpoint = s.url .. base .. "/token" }
    local _, session = p:authorization_url()
    assert.is_string(session.code_verifier)
    local tok = p:exchange_code { code = CODE, state = session.state, session = session }
    return add_token({ SECRET, CODE, session.code_verifier }, tok)
  end)

  scenario("device flow", function(base)
    local AT, RT = "at-device-0123456789/+=", "rt-device-0123456789/+="
    local p = provider { token_endpoint = s.url .. base .. "/token",
      device_authorization_endpoint = s.url .. base .. "/device" }
    if base == "" then
      s:script("/device", { json = { device_code = DEVICE_CODE, user_code = "WDJB-MJHT",
        verification_uri = "https://example.com/device", expires_in = 600, interval = 1 } })
      s:script("/token", { status = 400, json = { error = "authorization_pending" } })
      s:script("/token", { json = { access_token = AT, refresh_token = RT, token_type = "Bearer",
        expires_in = 3600 } })
    end
    local dev = p:device_authorization()
    if base ~= "" then
      assert.is_nil(dev) -- the echo is an error: poll with the code all the same
      dev = { device_code = DEVICE_CODE, interval = 1, expires_in = 600 }
    end
    local tok = p:poll_device(dev, { sleep = function() end })
    if base == "" then assert.equal(AT, tok and tok.access_token) end
    return add_token({ SECRET, DEVICE_CODE }, tok)
  end)

  scenario("revoke and introspect", function(base)
    local tok = issued()
    local p = provider { revocation_endpoint = s.url .. base .. "/revoke",
      introspection_endpoint = s.url .. base .. "/introspect" }
    if base == "" then
      s:script("/revoke", { body = "" })
      s:script("/introspect", { json = { active = true, scope = "a b", sub = "u", token_type = "Bearer" } })
    end
    p:introspect(tok)
    p:revoke(tok)
    p:revoke(tok.access_token)
    return add_token({ SECRET }, tok)
  end)

  scenario("userinfo", function(base)
    local tok = issued()
    local p = provider { userinfo_endpoint = s.url .. base .. "/userinfo" }
    if base == "" then s:script("/userinfo", { json = { sub = "u1", email = "u@example.com" } }) end
    local info = p:userinfo(tok)
    if base == "" then assert.equal("u1", info and info.sub) end
    return { tok.access_token }
  end)

  scenario("API request, token in the header", function(base)
    local tok = issued()
    local p = provider()
    local res = assert(p:request { url = s.url .. base .. "/api/x", token = tok })
    if base == "" then assert.equal(200, res.status) end
    return { tok.access_token }
  end)

  scenario("API request, token in the query", function(base)
    local tok = issued()
    local p = provider { token_placement = "query" }
    local res = assert(p:request { url = s.url .. base .. "/api/x", token = tok, query = { q = "1" } })
    if base == "" then assert.equal(200, res.status) end
    local p2 = provider { token_placement = "query", token_param = "key" }
    assert(p2:request { url = s.url .. base .. "/api/y", token = tok })
    return { tok.access_token }
  end)

  scenario("API request with a token the provider holds", function(base)
    local p = provider { token_endpoint = s.url .. "/token", username = "u", password = PASSWORD }
    local tok = assert(p:token())
    assert(p:request { url = s.url .. base .. "/api/z", method = "POST", json = { access_token = tok.access_token } })
    return add_token({ SECRET, PASSWORD }, tok)
  end)

  scenario("SmartFile API key", function(base)
    local p = assert(smartauth.smartfile { domain = "acme.smartfile.com", api_key = API_KEY,
      api_password = API_PASSWORD, api_base = s.url .. base .. "/api/2/", on_http = hook, retry = false })
    assert(p:request { url = "ping/" })
    return { API_KEY, API_PASSWORD }
  end)

  local BASES = { [""] = "the normal endpoints", ["/echo/json"] = "an echo as JSON",
    ["/echo/text"] = "an echo as text" }

  for _, name in ipairs(ORDER) do
    for _, base in ipairs { "", "/echo/json", "/echo/text" } do
      it("reaches no secret to the hook: " .. name .. ", " .. BASES[base], function()
        local secrets = SCENARIOS[name](base)
        assert.is_true(#events >= 1, "no event")
        for _, ev in ipairs(events) do
          assert.is_string(ev.method)
          assert.matches("^http://127%.0%.0%.1:" .. s.port .. "/", ev.url)
          assert.is_number(ev.attempt)
          assert.is_number(ev.elapsed)
        end
        assert_no_secret(events, secrets)
      end)
    end
  end

  -- The negative control: the same scenarios with redaction switched off
  -- must fail the checks above, for every secret they name.
  describe("with redaction off (negative control)", function()
    after_each(function() wire._test_unredacted = false end)
    for _, name in ipairs(ORDER) do
      it("finds every secret of: " .. name, function()
        wire._test_unredacted = true
        local secrets = SCENARIOS[name]("/echo/json")
        local all = {}
        for _, v in ipairs(events) do all[#all + 1] = v end
        for i = #events, 1, -1 do events[i] = nil end
        local more = SCENARIOS[name]("")
        for _, v in ipairs(events) do all[#all + 1] = v end
        for _, v in ipairs(more) do secrets[#secrets + 1] = v end
        for _, secret in ipairs(secrets) do
          assert.is_string(leak(all, { secret }), "secret #" .. #secret .. " not found unredacted")
        end
      end)
    end
  end)

  describe("events", function()
    it("say what was exchanged: method, URL, status, headers, bodies, provider", function()
      local p = provider { client_auth = "post" }
      local tok = assert(p:client_credentials { scope = "read" })
      assert.equal(1, #events)
      local ev = events[1]
      assert.equal("test", ev.provider)
      assert.equal("POST", ev.method)
      assert.equal(s.url .. "/token", ev.url)
      assert.equal(200, ev.status)
      assert.equal(1, ev.attempt)
      assert.is_nil(ev.error)
      assert.is_true(ev.elapsed >= 0 and ev.elapsed < 10)
      assert.equal("application/x-www-form-urlencoded", ev.request_headers["content-type"])
      assert.equal("client_id=" .. core.form_escape(CLIENT_ID) .. "&client_secret=[redacted]" ..
        "&grant_type=client_credentials&scope=read", ev.request_body)
      assert.equal("application/json", ev.response_headers["content-type"])
      local body = cjson.decode(ev.response_body)
      assert.equal("[redacted]", body.access_token)
      assert.equal("Bearer", body.token_type)
      assert.not_equal("[redacted]", tok.access_token) -- the caller's token is whole
    end)

    it("name each attempt of a retried 503, and whether the connection was reused", function()
      s:script("/token", { status = 503, json = { error = "temporarily_unavailable" } })
      local p = provider { retry = smartauth.retry.policy { attempts = 3, base = 0.001 } }
      assert(p:client_credentials())
      assert.equal(2, #events)
      assert.same({ 1, 503 }, { events[1].attempt, events[1].status })
      assert.same({ 2, 200 }, { events[2].attempt, events[2].status })
      assert.equal("Basic [redacted]", events[1].request_headers.authorization)
      assert.is_true(events[2].reused)
      assert.is_boolean(events[1].reused)
    end)

    it("carry a transport failure as an error object", function()
      local p = provider { token_endpoint = "http://127.0.0.1:1/token" }
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal(1, #events)
      assert.is_nil(events[1].status)
      assert.equal(err.kind, events[1].error.kind)
      assert.is_true(smartauth.errors.is(events[1].error))
    end)

    it("redact the query of a URL and leave its other parameters readable", function()
      local tok = issued()
      local p = provider { token_placement = "query" }
      assert(p:request { url = s.url .. "/api/x", token = tok, query = { page = "2" } })
      assert.equal(s.url .. "/api/x?page=2&access_token=[redacted]", events[1].url)
    end)
  end)

  describe("the process-wide hook", function()
    after_each(function() smartauth.on_http(nil) end)

    it("is set and cleared by smartauth.on_http, which returns the previous one", function()
      local seen = {}
      local function g(ev) seen[#seen + 1] = ev end
      assert.is_nil(smartauth.on_http(g))
      local p = assert(smartauth.provider { name = "plain", token_endpoint = s.url .. "/token",
        client_id = "cid", client_secret = SECRET, retry = false })
      assert(p:client_credentials())
      assert.equal(1, #seen)
      assert.equal("plain", seen[1].provider)
      assert.equal(g, smartauth.on_http(nil))
      assert(p:client_credentials { scope = "x" })
      assert.equal(1, #seen)
      assert.has_error(function() smartauth.on_http("print") end,
        "bad argument #1 to 'on_http' (function or nil expected, got string)")
    end)

    it("gets the events a provider's own hook gets too", function()
      local seen = {}
      smartauth.on_http(function(ev) seen[#seen + 1] = ev end)
      assert(provider():client_credentials())
      assert.equal(1, #events)
      assert.equal(1, #seen)
    end)
  end)

  describe("a hook that raises", function()
    it("does not break the request and is reported once on stderr", function()
      local said = {}
      local real = io.stderr
      -- luacheck: push ignore 122 (stderr stands in for a file while the hook runs)
      io.stderr = { write = function(_, ...) for _, v in ipairs { ... } do said[#said + 1] = v end end }
      local ok, a, b = pcall(function()
        local p = provider { on_http = function() error("hook bug") end }
        return p:client_credentials(), p:client_credentials { scope = "again" }
      end)
      io.stderr = real
      -- luacheck: pop
      assert.is_true(ok, tostring(a))
      assert.is_string(a.access_token)
      assert.is_string(b.access_token)
      local text = table.concat(said)
      assert.matches("on_http hook failed", text, 1, true)
      assert.matches("hook bug", text, 1, true)
      local _, n = text:gsub("on_http hook failed", "")
      assert.equal(1, n)
    end)
  end)

  describe("without a hook", function()
    it("builds no event", function()
      local real, n = wire.event, 0
      wire.event = function(...) n = n + 1; return real(...) end
      local ok, err = pcall(function()
        local p = provider { on_http = false }
        assert(p:client_credentials())
        assert.equal(0, n)
        assert(provider():client_credentials())
        assert.equal(1, n)
      end)
      wire.event = real
      assert(ok, err)
    end)
  end)

  describe("smartauth --verbose", function()
    local q = proc.shell_quote

    local function cli(args)
      local dir = proc.tmpdir("smartauth-verbose.XXXXXX")
      local cfg = dir .. "/config.lua"
      local f = assert(io.open(cfg, "w"))
      f:write(([[return { profiles = { svc = { token_endpoint = %q, client_id = "cid",
        client_secret = "${SVC_SECRET}", grant = "client_credentials", store = { kind = "memory" } } } }]])
        :format(s.url .. "/token"))
      f:close()
      local cmd = "SVC_SECRET=" .. q(SECRET) .. " SMARTAUTH_CONFIG=" .. q(cfg) ..
        " LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;") ..
        " LUA_CPATH=" .. q(ROOT .. "/" .. proc.BUILD .. "/?.so;;") .. " " .. proc.LUA .. " "
        .. q(ROOT .. "/bin/smartauth") ..
        " " .. args .. " 2>" .. q(dir .. "/err")
      local _, code, out = proc.run(cmd)
      local err = proc.read_file(dir .. "/err") or ""
      proc.rmtree(dir)
      return code, out, err
    end

    for _, args in ipairs { "--verbose token svc", "token svc --verbose" } do
      it("prints the exchange on stderr, readable and without a secret: " .. args, function()
        local code, out, err = cli(args)
        assert.equal(0, code, err)
        local tok = out:gsub("%s+$", "")
        assert.matches("^at%-", tok)
        assert.matches("> POST " .. s.url .. "/token", err, 1, true)
        assert.matches("> authorization: Basic [redacted]", err, 1, true)
        assert.matches("> grant_type=client_credentials", err, 1, true)
        assert.matches("< 200 ", err, 1, true)
        assert.matches("< content-type: application/json", err, 1, true)
        assert.matches('"access_token":"[redacted]"', err, 1, true)
        assert.matches(" ms", err, 1, true)
        assert_no_secret({ { text = err } }, { SECRET, tok })
      end)
    end

    it("prints nothing of the wire without it", function()
      local code, _, err = cli("token svc")
      assert.equal(0, code, err)
      assert.equal("", err)
    end)
  end)
end)
