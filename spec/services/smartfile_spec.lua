-- SmartFile end to end against a fake that speaks its documented wire format, in both
-- of its modes: HTTP Basic with an API key, and OAuth2 authorization code where the
-- user pastes the code (or the whole address the browser was sent to). Driven as the
-- preset in a script, the `smartauth` command with a config profile, and the preset
-- inside smartauth.spawn. OAuth: first token, cached token, expiry (refresh), the
-- server revoking everything (a clear "log in again"), logout.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local services = require "helpers.services"
local oidc = require "helpers.oidc"

local C = services.CREDS.sf
local TOKEN_PATH = "/sf/oauth2/token/"
local REDIRECT = "https://app.example.com/smartfile/callback"

describe("SmartFile end to end", function()
  local fake

  setup(function() fake = services.start() end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function() fake:reset() end)
  after_each(function() clock.offset = 0 end)

  local function api_ok(tok)
    local status = oidc.request { url = fake:base("sf") .. "/api/2/ping/",
      headers = { authorization = "Bearer " .. tok } }
    return status == 200
  end

  -- The documented code exchange: client_id, client_secret, code,
  -- grant_type=authorization_code, redirect_uri in the form (plus the PKCE verifier).
  local function assert_code_wire(r, redirect_uri)
    assert.equal("POST", r.method)
    assert.equal(TOKEN_PATH, r.path)
    assert.matches("^application/x%-www%-form%-urlencoded", r.headers["content-type"])
    local names = services.form_names(r)
    local want = { "client_id", "client_secret", "code", "code_verifier", "grant_type", "redirect_uri" }
    if not redirect_uri then table.remove(want, 6) end
    if not r.form.code_verifier then table.remove(want, 4) end
    assert.same(want, names)
    assert.equal("authorization_code", r.form.grant_type)
    assert.equal(C.client_id, r.form.client_id)
    assert.equal(C.client_secret, r.form.client_secret)
    assert.equal(redirect_uri, r.form.redirect_uri)
    assert.is_nil(r.basic)
  end

  local function assert_refresh_wire(r)
    assert.equal(TOKEN_PATH, r.path)
    assert.equal("refresh_token", r.form.grant_type)
    assert.is_string(r.form.refresh_token)
    assert.equal(C.client_id, r.form.client_id)
    assert.equal(C.client_secret, r.form.client_secret)
  end

  local function assert_reauth(tok, err)
    assert.is_nil(tok)
    assert.is_table(err)
    assert.is_true(err.reauth)
  end

  -- The user: opens the URL the login shows and pastes the whole address the browser
  -- lands on (redirect) or the code the page shows.
  local function user()
    local seen = {}
    return {
      flow = "oob",
      show = function(info) seen.url = info.url end,
      ask = function()
        local kind, v = fake:browse(seen.url)
        seen.kind = kind
        return v
      end,
    }, seen
  end

  local function new(extra)
    return assert(smartauth.smartfile(fake:options("smartfile", extra)))
  end

  local function logged_in(extra)
    local p = new(extra)
    local opts = user()
    return p, assert(p:login(opts))
  end

  describe("API key over HTTP Basic", function()
    it("calls the API with Basic key:password and never asks for a token (script)", function()
      local p = assert(smartauth.smartfile(fake:options("smartfile_key")))
      local res = assert(p:request { url = "ping/" })
      assert.equal(200, res.status)
      local reqs = fake:requests()
      assert.equal(1, #reqs)
      assert.same({ C.api_key, C.api_password }, { reqs[1].basic.user, reqs[1].basic.pass })
    end)

    it("calls the API inside smartauth.spawn", function()
      local p = assert(smartauth.smartfile(fake:options("smartfile_key")))
      local res = services.in_task(function() return assert(p:request { url = "ping/" }) end)
      assert.is_true(services.yielded)
      assert.equal(200, res.status)
    end)

    it("the CLI says the profile uses HTTP Basic with an API key, for token and login", function()
      local cli = services.cli(fake)
      finally(function() cli:cleanup() end)
      cli:config { filekey = fake:options("smartfile_key", { preset = "smartfile" }) }
      local r = cli:run { "token", "filekey" }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("API key", r.err, 1, true)
      assert.is_nil(r.err:find("smartauth login", 1, true))
      local l = cli:run { "login", "filekey", "--flow", "oob" }
      assert.matches("API key", l.out .. l.err, 1, true)
      assert.is_nil((l.out .. l.err):find("oauth2/authorize", 1, true))
      assert.equal(0, #fake:requests())
    end)
  end)

  describe("OAuth code with the paste flow, the preset in a script", function()
    it("has authorization_code as its grant and asks to log in before anything is stored", function()
      local p = new()
      assert.equal("authorization_code", p:default_grant())
      local tok, err = p:token()
      assert_reauth(tok, err)
      assert.equal("config", err.kind)
      assert.matches("log in", tostring(err))
      assert.equal(0, #fake:requests())
    end)

    it("gets a first token from the pasted address with the documented exchange", function()
      local p = new()
      local opts, seen = user()
      local tok = assert(p:login(opts))
      assert.equal("redirect", seen.kind)
      assert.equal("read write", tok.scope)
      assert.is_string(tok.refresh_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_code_wire(reqs[1], REDIRECT)
      local res = assert(p:request { url = "ping/" })
      assert.equal(200, res.status)
      assert.equal("Bearer " .. tok.access_token, fake:requests("/sf/api/")[1].headers.authorization)
    end)

    it("gets a first token from the pasted code when there is no callback URL", function()
      local p = new { redirect_uri = false }
      local opts, seen = user()
      local tok = assert(p:login(opts))
      assert.equal("code", seen.kind)
      assert.is_true(api_ok(tok.access_token))
    end)

    it("serves the cached token without a request", function()
      local p, t1 = logged_in()
      fake:reset()
      assert.equal(t1.access_token, assert(p:token()).access_token)
      assert.equal(0, #fake:requests())
    end)

    it("refreshes once the token expires", function()
      local p, t1 = logged_in()
      fake:reset()
      clock.offset = 36000
      local t2 = assert(p:token())
      assert.are_not.equal(t1.access_token, t2.access_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_refresh_wire(reqs[1])
      assert.equal(t1.refresh_token, reqs[1].form.refresh_token)
      assert.is_true(api_ok(t2.access_token))
    end)

    for _, dead in ipairs { "invalid_grant", "empty400" } do
      it("says log in again when the server revoked everything (refresh answered " .. dead .. ")", function()
        local p = logged_in()
        fake:revoke_all("sf", dead)
        local res, err = p:request { url = "ping/" }
        assert_reauth(res, err)
        assert.is_nil(p:stored())
        assert_reauth(p:token())
        -- a new login works
        assert(p:login((user())))
        assert.equal(200, assert(p:request { url = "ping/" }).status)
      end)
    end

    it("logs out: forgets the token (SmartFile documents no revocation) and asks to log in", function()
      local p = logged_in()
      fake:reset()
      local out = assert(p:logout())
      assert.same({}, out.revoked)
      assert.is_nil(p:stored())
      assert.equal(0, #fake:requests())
      assert_reauth(p:token())
    end)
  end)

  describe("OAuth code with the paste flow, the smartauth command", function()
    local cli
    before_each(function()
      cli = services.cli(fake)
      cli:config {
        file = fake:options("smartfile", { preset = "smartfile" }),
        filecode = fake:options("smartfile", { preset = "smartfile", redirect_uri = false }),
      }
    end)
    after_each(function() cli:cleanup() end)

    local function login(name, args)
      local h = cli:start(args or { "login", name, "--flow", "oob" })
      local u = h.wait_stderr("(http://127%.0%.0%.1:%d+/sf/oauth2/authorize/%?%S+)")
      local _, v = fake:browse(u)
      h.send(v)
      return h.finish()
    end

    local function assert_login_hint(r, name)
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("smartauth login " .. name, r.err, 1, true)
    end

    it("asks to log in first, then logs in by the pasted address and prints the token", function()
      assert_login_hint(cli:run { "token", "file" }, "file")
      assert.equal(0, #fake:requests())
      local l = login("file")
      assert.equal(0, l.code, l.err)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_code_wire(reqs[1], REDIRECT)
      local r = cli:run { "token", "file" }
      assert.equal(0, r.code, r.err)
      assert.is_true(api_ok((r.out:gsub("\n$", ""))))
    end)

    it("logs in by the pasted code without a callback URL (flow chosen by itself)", function()
      local l = login("filecode", { "login", "filecode", "--no-browser" })
      assert.equal(0, l.code, l.err)
      -- no callback URL: the out-of-band URI stands for it, in the request and the exchange
      assert.equal(services.OOB, fake:requests("/sf/oauth2/authorize/")[1].args.redirect_uri)
      assert_code_wire(fake:requests(TOKEN_PATH)[1], services.OOB)
      local r = cli:run { "token", "filecode" }
      assert.equal(0, r.code, r.err)
      assert.is_true(api_ok((r.out:gsub("\n$", ""))))
    end)

    it("prints the cached token without a request", function()
      assert.equal(0, login("file").code)
      local r1 = cli:run { "token", "file" }
      fake:reset()
      local r2 = cli:run { "token", "file" }
      assert.equal(0, r2.code, r2.err)
      assert.equal(r1.out, r2.out)
      assert.equal(0, #fake:requests())
    end)

    it("refreshes after a short real expiry", function()
      fake:setup("sf", { expires_in = 1 })
      finally(function() fake:setup("sf", { expires_in = 36000 }) end)
      cli:config { file = fake:options("smartfile", { preset = "smartfile", leeway = 0 }) }
      assert.equal(0, login("file").code)
      local r1 = cli:run { "token", "file" }
      local deadline = os.time() + 2
      while os.time() < deadline do services.sleep(0.05) end
      fake:reset()
      local r2 = cli:run { "token", "file" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_refresh_wire(reqs[1])
    end)

    it("says run smartauth login, with nothing on stdout, when the server revoked everything", function()
      assert.equal(0, login("file").code)
      fake:revoke_all("sf", "empty400")
      assert_login_hint(cli:run { "token", "file", "--force" }, "file")
      assert_login_hint(cli:run { "token", "file" }, "file")
      assert.equal(0, login("file").code)
      assert.equal(0, cli:run({ "token", "file" }).code)
    end)

    it("logs out truthfully, and token then asks to log in", function()
      assert.equal(0, login("file").code)
      fake:reset()
      local r = cli:run { "logout", "file" }
      assert.equal(0, r.code, r.err)
      assert.is_nil(r.out:lower():find("token revoked", 1, true))
      assert.equal(0, #fake:requests())
      assert_login_hint(cli:run { "token", "file" }, "file")
    end)
  end)

  describe("OAuth code with the paste flow, inside smartauth.spawn", function()
    it("logs in and calls the API without blocking", function()
      local p = new()
      local tok, res = services.in_task(function()
        local t = assert(p:login((user())))
        return t, assert(p:request { url = "ping/" })
      end)
      assert.is_true(services.yielded)
      assert.equal(200, res.status)
      assert_code_wire(fake:requests(TOKEN_PATH)[1], REDIRECT)
      assert.is_true(api_ok(tok.access_token))
    end)

    it("serves the cached token without a request", function()
      local p, t1 = logged_in()
      fake:reset()
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.is_false(services.yielded)
      assert.equal(t1.access_token, t2.access_token)
      assert.equal(0, #fake:requests())
    end)

    it("refreshes once the token expires", function()
      local p, t1 = logged_in()
      clock.offset = 36000
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.is_true(services.yielded)
      assert.are_not.equal(t1.access_token, t2.access_token)
    end)

    it("says log in again when the server revoked everything", function()
      local p = logged_in()
      fake:revoke_all("sf", "empty400")
      local res, err = services.in_task(function() return p:request { url = "ping/" } end)
      assert_reauth(res, err)
    end)

    it("logs out", function()
      local p = logged_in()
      local out = services.in_task(function() return assert(p:logout()) end)
      assert.same({}, out.revoked)
      assert.is_nil(p:stored())
    end)
  end)
end)
