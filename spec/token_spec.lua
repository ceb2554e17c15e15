-- Token responses (RFC 6749 §5.1, §5.2): through a real client_credentials request against
-- the test server and directly through smartauth.token.from_response; token objects
-- (expiry, tostring, store entries); error objects never showing a secret.
local smartauth = require "smartauth"
local token = require "smartauth.token"
local cjson = require "cjson.safe"
local server = require "helpers.server"

local SECRET = "cs-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
local NOW = 1700000000

local function from(t) return token.from_response(t, NOW) end

local function assert_err(kind, v, err)
  assert.is_nil(v)
  assert.is_table(err)
  assert.equal(kind, err.kind)
  assert.is_true(smartauth.errors.is(err))
  assert.is_string(tostring(err))
end

describe("token responses", function()
  local s, p

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function()
    s:reset()
    p = assert(smartauth.provider {
      token_endpoint = s.url .. "/token", client_id = "client-1", client_secret = SECRET,
      retry = false, -- one scripted answer, one request: retries have their own spec
    })
  end)

  -- One client_credentials request answered with `response` (a server.lua response spec).
  local function grant(response)
    s:script("/token", response)
    return p:client_credentials()
  end

  describe("access_token", function()
    it("is required", function()
      assert_err("validation", grant { json = { token_type = "Bearer", expires_in = 60 } })
      assert_err("validation", from { token_type = "Bearer" })
    end)

    it("must not be empty", function()
      assert_err("validation", grant { json = { access_token = "", token_type = "Bearer" } })
      assert_err("validation", from { access_token = "" })
    end)

    it("must be a string", function()
      assert_err("validation", grant { json = { access_token = 12345, token_type = "Bearer" } })
      assert_err("validation", from { access_token = { "x" } })
    end)

    it("comes back with the other fields of a full response", function()
      local t0 = os.time()
      local tok, err = grant { json = {
        access_token = "at-full", token_type = "Bearer", expires_in = 3600, refresh_token = "rt-full",
        scope = "a b", id_token = "h.p.s", custom = "x",
      } }
      assert.is_nil(err)
      assert.is_true(token.is(tok))
      assert.equal("at-full", tok.access_token)
      assert.equal("Bearer", tok.token_type)
      assert.equal(3600, tok.expires_in)
      assert.is_true(tok.expires_at >= t0 + 3600 and tok.expires_at <= os.time() + 3600)
      assert.equal(3600, tok.expires_at - tok.issued_at)
      assert.equal("rt-full", tok.refresh_token)
      assert.equal("a b", tok.scope)
      assert.equal("h.p.s", tok.id_token)
      assert.same({ custom = "x" }, tok.extra)
      local r = s:last_request()
      assert.equal("client_credentials", r.form.grant_type)
      assert.equal("client-1", r.basic.user)
      assert.equal(SECRET, r.basic.pass)
    end)
  end)

  describe("expires_in", function()
    it("is accepted as a number", function()
      local tok = assert(from { access_token = "a", expires_in = 3600 })
      assert.equal(NOW + 3600, tok.expires_at)
      assert.equal(NOW, tok.issued_at)
      local t2 = assert(grant { json = { access_token = "a", token_type = "Bearer", expires_in = 120 } })
      assert.equal(120, t2.expires_at - t2.issued_at)
    end)

    it("is accepted as a numeric string such as \"3600\"", function()
      local tok = assert(from { access_token = "a", expires_in = "3600" })
      assert.equal(NOW + 3600, tok.expires_at)
      assert.equal(3600, tok.expires_in)
      local t2 = assert(grant { body = '{"access_token":"a","token_type":"Bearer","expires_in":"3600"}',
        headers = { ["Content-Type"] = "application/json" } })
      assert.equal(3600, t2.expires_at - t2.issued_at)
    end)

    it("may be absent: the token then has no expiry", function()
      local tok = assert(from { access_token = "a" })
      assert.is_nil(tok.expires_at)
      assert.is_nil(tok.expires_in)
      assert.equal("Bearer", tok.token_type)
      assert.is_false(tok:expired(1e9))
    end)

    for _, bad in ipairs { "abc", -1, "-1", true, false, "", "1e3", { 3600 } } do
      local shown = type(bad) == "string" and ("%q"):format(bad) or type(bad) == "table" and "a table" or tostring(bad)
      it("is rejected as " .. shown, function()
        assert_err("validation", from { access_token = "a", expires_in = bad })
      end)
    end

    it("is rejected through a real request when it is not a number", function()
      assert_err("validation", grant { json = { access_token = "a", token_type = "Bearer", expires_in = "abc" } })
      assert_err("validation", grant { json = { access_token = "a", token_type = "Bearer", expires_in = -5 } })
      assert_err("validation", grant { json = { access_token = "a", token_type = "Bearer", expires_in = true } })
    end)
  end)

  describe("token_type", function()
    it("is compared case-insensitively", function()
      for _, tt in ipairs { "bearer", "BEARER", "Bearer", "bEaReR" } do
        local tok, err = grant { json = { access_token = "a", token_type = tt } }
        assert.is_nil(err)
        assert.equal("Bearer", tok.token_type)
        assert.equal("Bearer", assert(from { access_token = "a", token_type = tt }).token_type)
      end
    end)

    it("is refused when it is not Bearer, DPoP or N_A", function()
      local tok, err = grant { json = { access_token = "a", token_type = "mac" } }
      assert_err("validation", tok, err)
      assert.matches("mac", err.description, 1, true)
      -- issue 16: RFC 9449's DPoP and RFC 8693's N_A are token types too
      assert.equal("N_A", assert(from { access_token = "a", token_type = "N_A" }).token_type)
      assert.equal("DPoP", assert(from { access_token = "a", token_type = "dPoP" }).token_type)
      -- empty means absent, as null does (issue 11): RFC 6750's Bearer
      assert.equal("Bearer", assert(from { access_token = "a", token_type = "" }).token_type)
      assert_err("validation", from { access_token = "a", token_type = 1 })
    end)
  end)

  describe("errors from the token endpoint", function()
    it("an error field inside a 200 response is an oauth error", function()
      local tok, err = grant { json = { error = "invalid_scope", error_description = "scope x is unknown",
        access_token = "should-not-be-used" } }
      assert_err("oauth", tok, err)
      assert.equal("invalid_scope", err.code)
      assert.equal("scope x is unknown", err.description)
      assert.equal(200, err.status)
    end)

    it("400 gives code, description and status", function()
      local tok, err = grant { status = 400, json = { error = "invalid_request", error_description = "missing x" } }
      assert_err("oauth", tok, err)
      assert.equal("invalid_request", err.code)
      assert.equal("missing x", err.description)
      assert.equal(400, err.status)
      assert.is_false(err.retryable)
    end)

    it("401 invalid_client gives code, description and status", function()
      local tok, err = grant { status = 401, json = { error = "invalid_client", error_description = "bad client" },
        headers = { ["WWW-Authenticate"] = 'Basic realm="token"' } }
      assert_err("oauth", tok, err)
      assert.equal("invalid_client", err.code)
      assert.equal("bad client", err.description)
      assert.equal(401, err.status)
    end)

    it("an error without a description still reads well", function()
      local tok, err = grant { status = 400, json = { error = "invalid_grant" } }
      assert_err("oauth", tok, err)
      assert.equal("invalid_grant", err.code)
      assert.is_string(err.description)
      assert.matches("invalid_grant", tostring(err), 1, true)
      assert.matches("400", tostring(err), 1, true)
    end)

    it("500 with an HTML page is an http error with the status", function()
      local tok, err = grant { status = 500, body = "<html><body>Internal Server Error</body></html>",
        headers = { ["Content-Type"] = "text/html" } }
      assert_err("http", tok, err)
      assert.equal(500, err.status)
      assert.is_nil(err.code)
      assert.is_nil(tostring(err):find("<html>", 1, true))
    end)

    it("an HTML page with 200 is an http error, not a token", function()
      local tok, err = grant { status = 200, body = "<html><body>Log in</body></html>",
        headers = { ["Content-Type"] = "text/html; charset=utf-8" } }
      assert_err("http", tok, err)
      assert.equal(200, err.status)
      assert.matches("JSON", err.description, 1, true)
    end)

    it("syntactically truncated JSON is refused", function()
      local tok, err = grant { body = '{"access_token":"at-1","token_type":"Bea',
        headers = { ["Content-Type"] = "application/json" } }
      assert_err("http", tok, err)
      assert.equal(200, err.status)
    end)

    it("a body cut short on the wire (Content-Length not reached) is a network error", function()
      local tok, err = grant { json = { access_token = "at-1", token_type = "Bearer" }, truncate = true }
      assert_err("network", tok, err)
      assert.is_true(err.retryable)
    end)

    it("a JSON array instead of an object is refused", function()
      local tok, err = grant { json = { { access_token = "at-1", token_type = "Bearer" } } }
      assert_err("http", tok, err)
      assert.equal(200, err.status)
      assert_err("validation", from(cjson.decode('[{"access_token":"at-1"}]')))
      assert_err("validation", from("not a table"))
    end)

    it("a 10 MiB body is refused at the size limit", function()
      local tok, err = grant { body_size = 10 * 1024 * 1024 }
      assert_err("http", tok, err)
      assert.matches("limit", err.description, 1, true)
      -- the engine is still usable afterwards
      assert(grant { json = { access_token = "after", token_type = "Bearer" } })
    end)

    it("an error_description with control characters is cleaned", function()
      local tok, err = grant { status = 400, json = {
        error = "invalid_request", error_description = "line1\r\nInjected: header\0\27[31mred\tx\127",
      } }
      assert_err("oauth", tok, err)
      assert.is_nil(err.description:find("%c"))
      assert.matches("line1", err.description, 1, true)
      assert.matches("Injected: header", err.description, 1, true)
      assert.is_nil(tostring(err):find("%c"))
    end)

    it("a huge error_description and error code are bounded", function()
      local tok, err = grant { status = 400, json = {
        error = string.rep("E", 100000), error_description = string.rep("d", 200000),
      } }
      assert_err("oauth", tok, err)
      assert.is_true(#err.description <= 1024, "description of " .. #err.description .. " bytes")
      assert.is_true(#err.code <= 256, "code of " .. #err.code .. " bytes")
      assert.is_true(#tostring(err) <= 2048)
    end)

    it("a non-string error field is refused", function()
      local tok, err = grant { status = 400, json = { error = { nested = true } } }
      assert_err("validation", tok, err)
      assert.equal(400, err.status)
    end)

    it("a redirect is not followed", function()
      local tok, err = grant { status = 302, headers = { Location = s.url .. "/elsewhere" } }
      assert_err("http", tok, err)
      assert.equal(302, err.status)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      assert.equal("/token", reqs[1].path)
      for _, r in ipairs(reqs) do assert.not_equal("/elsewhere", r.path) end
    end)

    it("a 307 redirect is not followed either (it would repost the secret)", function()
      local tok, err = grant { status = 307, headers = { Location = s.url .. "/elsewhere" } }
      assert_err("http", tok, err)
      assert.equal(307, err.status)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      assert.equal("/token", reqs[1].path)
    end)
  end)

  describe("secrets in errors", function()
    it("tostring(err) never contains the client secret echoed in error_description", function()
      local tok, err = grant { status = 401, json = {
        error = "invalid_client", error_description = "client secret '" .. SECRET .. "' is wrong; again: " .. SECRET,
      } }
      assert_err("oauth", tok, err)
      assert.equal("invalid_client", err.code)
      assert.is_nil(tostring(err):find(SECRET, 1, true))
      assert.is_nil(err.description:find(SECRET, 1, true))
      assert.matches("is wrong", tostring(err), 1, true)
    end)

    it("tostring(err) never contains the client secret echoed in the error code", function()
      local tok, err = grant { status = 401, json = { error = "invalid_client:" .. SECRET } }
      assert_err("oauth", tok, err)
      assert.is_nil(tostring(err):find(SECRET, 1, true))
    end)

    it("tostring(err) shows no part of a secret cut by the length bound", function()
      -- the secret straddles the point where the description is cut
      local desc = string.rep("x", 490) .. SECRET .. string.rep("y", 100)
      local tok, err = grant { status = 400, json = { error = "invalid_client", error_description = desc } }
      assert_err("oauth", tok, err)
      assert.is_nil(tostring(err):find(SECRET:sub(1, 8), 1, true))
    end)

    it("tostring(err) never contains the password of the password grant", function()
      local pw = "user-password-123456"
      local pp = assert(smartauth.provider {
        token_endpoint = s.url .. "/token", client_id = "client-1", client_secret = SECRET,
        username = "me@example.com", password = pw,
      })
      s:script("/token", { status = 400, json = { error = "invalid_grant", error_description = "password " .. pw } })
      local tok, err = pp:password()
      assert_err("oauth", tok, err)
      assert.is_nil(tostring(err):find(pw, 1, true))
    end)
  end)
end)

describe("token objects", function()
  describe("expired(leeway)", function()
    local tok = assert(token.from_response({ access_token = "a", expires_in = 100 }, 1000))

    it("is false before expiry and true at and after it", function()
      assert.equal(1100, tok.expires_at)
      assert.is_false(tok:expired(0, 1099))
      assert.is_true(tok:expired(0, 1100))
      assert.is_true(tok:expired(0, 5000))
    end)

    it("counts the leeway as already gone", function()
      assert.is_false(tok:expired(10, 1089))
      assert.is_true(tok:expired(10, 1090))
      assert.is_true(tok:expired(200, 1000))
    end)

    it("treats a missing leeway as zero and a missing time as now", function()
      assert.is_false(tok:expired(nil, 1099))
      assert.is_true(tok:expired()) -- 1100 is long past
      local fresh = assert(token.from_response({ access_token = "a", expires_in = 3600 }, os.time()))
      assert.is_false(fresh:expired())
      assert.is_false(fresh:expired(60))
      assert.is_true(fresh:expired(3600))
    end)

    it("never expires by time without expires_in", function()
      local t = assert(token.from_response({ access_token = "a" }, 1000))
      assert.is_false(t:expired())
      assert.is_false(t:expired(1e9, 1e12))
    end)

    it("reports the seconds left with ttl", function()
      assert.equal(60, tok:ttl(1040))
      assert.is_nil(assert(token.from_response({ access_token = "a" }, 1)):ttl())
    end)
  end)

  describe("tostring", function()
    it("never contains the access or refresh token in full", function()
      local at = "eyJhbGciOiJSUzI1NiJ9.access-token-payload.signature-0123456789"
      local rt = "refresh-token-abcdefghijklmnop"
      local tok = assert(token.from_response({ access_token = at, refresh_token = rt, expires_in = 60,
        id_token = "id.token.value-secret", scope = "read" }, os.time()))
      local str = tostring(tok)
      assert.matches("^smartauth%.token%(", str)
      assert.is_nil(str:find(at, 1, true))
      assert.is_nil(str:find(rt, 1, true))
      assert.is_nil(str:find(rt:sub(1, 8), 1, true))
      assert.is_nil(str:find("id.token.value-secret", 1, true))
      assert.matches("read", str, 1, true)
    end)

    it("does not show a short token either", function()
      local tok = assert(token.from_response({ access_token = "abcdefgh" }, os.time()))
      assert.is_nil(tostring(tok):find("abcdefgh", 1, true))
    end)
  end)

  describe("store entries", function()
    it("round-trip through to_entry and from_entry", function()
      local tok = assert(token.from_response({
        access_token = "at-1", token_type = "bearer", expires_in = 600, refresh_token = "rt-1",
        scope = "a b", id_token = "h.p.s",
      }, NOW))
      local e = tok:to_entry()
      assert.equal(token.FORMAT, e.v)
      assert.is_nil(getmetatable(e))
      local back, err = token.from_entry(e)
      assert.is_nil(err)
      assert.is_true(token.is(back))
      for _, k in ipairs { "access_token", "token_type", "expires_at", "refresh_token", "scope", "id_token",
          "issued_at" } do
        assert.equal(tok[k], back[k], k)
      end
      assert.equal(tok:expired(0, NOW + 599), back:expired(0, NOW + 599))
      assert.equal(tok:expired(0, NOW + 600), back:expired(0, NOW + 600))
    end)

    it("round-trip through JSON (as file and Redis stores keep them)", function()
      local tok = assert(token.from_response({ access_token = "at-2", expires_in = 60 }, NOW))
      local back = assert(token.from_entry(cjson.decode(cjson.encode(tok:to_entry()))))
      assert.equal("at-2", back.access_token)
      assert.equal(NOW + 60, back.expires_at)
      assert.equal("Bearer", back.token_type)
      assert.is_nil(back.refresh_token)
    end)

    local BAD = {
      ["a string"] = "at-1",
      ["an empty table"] = {},
      ["no format version"] = { access_token = "at-1" },
      ["another format version"] = { v = 3, access_token = "at-1" },
      ["no access_token"] = { v = 1 },
      ["a numeric access_token"] = { v = 1, access_token = 5 },
      ["an empty access_token"] = { v = 1, access_token = "" },
      ["a non-numeric expires_at"] = { v = 1, access_token = "at-1", expires_at = "soon" },
      ["a non-string refresh_token"] = { v = 1, access_token = "at-1", refresh_token = { "x" } },
    }
    for what, e in pairs(BAD) do
      it("are rejected with a storage error: " .. what, function()
        local t, err = token.from_entry(e)
        assert_err("storage", t, err)
      end)
    end
    it("are rejected with a storage error: nil", function()
      assert_err("storage", token.from_entry(nil))
    end)
  end)
end)

-- Security issue 12, item 2: a token goes into an Authorization header (and
-- `smartauth token` prints it for a shell), so a byte outside 0x21-0x7E in it
-- would let the server choose a header or a terminal sequence.
describe("token bytes", function()
  local BAD = {
    ["CR"] = "at\rX-Evil: 1", ["LF"] = "at\nX-Evil: 1", ["CRLF"] = "at\r\nX-Evil: 1",
    ["NUL"] = "at\0rest", ["space"] = "at rest", ["tab"] = "at\trest", ["DEL"] = "at\127",
    ["ESC"] = "\27]0;title\7", ["0x80"] = "at\128", ["0xFF"] = "at\255", ["UTF-8"] = "at\195\169",
  }

  for what, v in pairs(BAD) do
    it("refuses an access_token with " .. what, function()
      local t, err = from { access_token = v, token_type = "Bearer" }
      assert_err("validation", t, err)
      assert.matches("access_token", err.description)
      assert.not_matches(v, tostring(err), 1, true)
    end)

    it("refuses a refresh_token with " .. what, function()
      local t, err = from { access_token = "at-1", refresh_token = v }
      assert_err("validation", t, err)
      assert.matches("refresh_token", err.description)
    end)

    it("refuses a stored entry whose access or refresh token has " .. what, function()
      assert_err("storage", token.from_entry { v = token.FORMAT, access_token = v })
      assert_err("storage", token.from_entry { v = token.FORMAT, access_token = "at-1", refresh_token = v })
    end)
  end

  it("refuses a stored entry whose times are not finite (a token that never expires)", function()
    for _, k in ipairs { "expires_at", "issued_at" } do
      for _, v in ipairs { math.huge, -math.huge, 0 / 0 } do
        assert_err("storage", token.from_entry { v = token.FORMAT, access_token = "at-1", [k] = v })
      end
    end
  end)

  it("accepts every printable ASCII byte, ! and | included", function()
    local all = {}
    for b = 0x21, 0x7E do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    for _, v in ipairs { "EwB!Aq|AAA", "1//0g|x!y", all } do
      local t = assert(from { access_token = v, refresh_token = v })
      assert.equal(v, t.access_token)
      assert.equal(v, t.refresh_token)
      assert(token.from_entry(t:to_entry()))
    end
  end)

  describe("through a real token request", function()
    local s, p
    setup(function() s = server.start() end)
    teardown(function() if s then s:stop() end end)
    before_each(function()
      s:reset()
      p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = SECRET, retry = false })
    end)

    for what, body in pairs {
      ["CRLF in access_token"] = '{"access_token":"at\\r\\nX-Evil: 1","token_type":"Bearer"}',
      ["NUL in access_token"] = '{"access_token":"at\\u0000x","token_type":"Bearer"}',
      ["0x80 in access_token"] = '{"access_token":"at\128x","token_type":"Bearer"}',
      ["LF in refresh_token"] = '{"access_token":"at","refresh_token":"rt\\nx","token_type":"Bearer"}',
    } do
      it("refuses " .. what .. ", stores nothing and sends no API call with it", function()
        s:script("/token", { status = 200, headers = { ["Content-Type"] = "application/json" }, body = body })
        local t, err = p:client_credentials()
        assert_err("validation", t, err)
        assert.is_nil(p.options.store:get(p:store_key()))
        assert.equal(1, #s:requests())
      end)
    end
  end)
end)
