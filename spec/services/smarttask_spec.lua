-- SmartTask end to end (OAuth2 authorization code + OpenID Connect: discovery, the
-- out-of-band redirect with the code pasted, the `code id_token` hybrid response type
-- chosen by the provider option response_type, userinfo) against a fake that speaks its
-- documented wire format: the preset in a script, the `smartauth` command with a config
-- profile, and the preset inside smartauth.spawn. Each: first token, cached token,
-- expiry (refresh), the server revoking everything (a clear "log in again"), logout.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local services = require "helpers.services"
local oidc = require "helpers.oidc"

local C = services.CREDS.st
local TOKEN_PATH = "/st/oauth2/token"
local REVOKE_PATH = "/st/oauth2/revoke"
local USER = "st-user-42"
local HYBRID_REDIRECT = "https://app.example.com/smarttask/callback"

describe("SmartTask end to end", function()
  local fake

  setup(function() fake = services.start() end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function() fake:reset() end)
  after_each(function() clock.offset = 0 end)

  local function userinfo_ok(tok)
    return (oidc.request { url = fake:base("st") .. "/openid_connect/userinfo",
      headers = { authorization = "Bearer " .. tok } }) == 200
  end

  local function assert_reauth(tok, err)
    assert.is_nil(tok)
    assert.is_table(err)
    assert.is_true(err.reauth)
  end

  local function assert_code_wire(r, redirect_uri)
    assert.equal("POST", r.method)
    assert.equal(TOKEN_PATH, r.path)
    assert.equal("authorization_code", r.form.grant_type)
    assert.equal(redirect_uri, r.form.redirect_uri)
    assert.is_string(r.form.code)
    assert.is_string(r.form.code_verifier)
    assert.same({ C.client_id, C.client_secret }, { r.basic.user, r.basic.pass })
  end

  -- The user: opens the URL the login shows, pastes the code the page shows or the
  -- address the browser lands on.
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
    return assert(smartauth.smarttask(fake:options("smarttask", extra)))
  end

  local function logged_in(extra)
    local p = new(extra)
    return p, assert(p:login((user())))
  end

  local function hint_set(reqs)
    local hints = {}
    for _, r in ipairs(reqs) do hints[r.form.token_type_hint] = r.form.token end
    return hints
  end

  describe("the preset in a script", function()
    it("has authorization_code as its grant and asks to log in before anything is stored", function()
      local p = new()
      assert.equal("authorization_code", p:default_grant())
      assert_reauth(p:token())
      assert.equal(0, #fake:requests(TOKEN_PATH))
    end)

    it("logs in out of band (code pasted), verifies the ID token and calls userinfo with Bearer", function()
      local p = new()
      local opts, seen = user()
      local tok = assert(p:login(opts))
      assert.equal("code", seen.kind)
      local authz = fake:requests("/st/oauth2/authorize")[1]
      assert.equal("code", authz.args.response_type)
      assert.equal(services.OOB, authz.args.redirect_uri)
      assert.equal(1, #fake:requests("/st/.well-known/openid-configuration"))
      assert_code_wire(fake:requests(TOKEN_PATH)[1], services.OOB)
      assert.equal(USER, tok.claims.sub)
      local info = assert(p:userinfo(tok))
      assert.equal(USER, info.sub)
      local ui = fake:requests("/st/openid_connect/userinfo")
      assert.equal(1, #ui)
      assert.equal("GET", ui[1].method)
      assert.equal("Bearer " .. tok.access_token, ui[1].headers.authorization)
    end)

    it("asks for code id_token when the provider option response_type says so and checks c_hash", function()
      local p = new { response_type = "code id_token", redirect_uri = HYBRID_REDIRECT }
      local opts, seen = user()
      local tok = assert(p:login(opts))
      assert.equal("redirect", seen.kind)
      assert.equal("code id_token", fake:requests("/st/oauth2/authorize")[1].args.response_type)
      assert.equal(USER, tok.claims.sub)
      assert_code_wire(fake:requests(TOKEN_PATH)[1], HYBRID_REDIRECT)
      -- the front-channel ID token binds the code: another code with it is refused
      local url_a, session_a = p:authorization_url()
      local url_b = p:authorization_url()
      local _, loc_a = fake:browse(url_a)
      local _, loc_b = fake:browse(url_b)
      local code_b = oidc.parse_query("?" .. loc_b:match("#(.*)$")).code
      local swapped = loc_a:gsub("([#&]code=)[^&]*", "%1" .. code_b)
      local bad, err = p:exchange_code { url = swapped, session = session_a }
      assert.is_nil(bad)
      assert.equal("validation", err.kind)
      assert.equal("c_hash", err.check)
    end)

    it("serves the cached token without a request", function()
      local p, t1 = logged_in()
      fake:reset()
      assert.equal(t1.access_token, assert(p:token()).access_token)
      assert.equal(0, #fake:requests())
    end)

    it("refreshes once the token expires and keeps the verified claims", function()
      local p, t1 = logged_in()
      fake:reset()
      clock.offset = 3600
      local t2 = assert(p:token())
      assert.are_not.equal(t1.access_token, t2.access_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert.equal("refresh_token", reqs[1].form.grant_type)
      assert.equal(t1.refresh_token, reqs[1].form.refresh_token)
      assert.equal(USER, t2.claims and t2.claims.sub)
      assert.equal(USER, assert(p:userinfo(t2)).sub)
    end)

    for _, dead in ipairs { "invalid_grant", "empty400", "empty401" } do
      it("says log in again when the server revoked everything (refresh answered " .. dead .. ")", function()
        local p = logged_in()
        fake:revoke_all("st", dead)
        local res, err = p:request { url = fake:base("st") .. "/openid_connect/userinfo" }
        assert_reauth(res, err)
        assert.is_nil(p:stored())
        assert_reauth(p:token())
      end)
    end

    it("logs out: revokes the access and the refresh token (two RFC 7009 requests) and forgets", function()
      local p, tok = logged_in()
      fake:reset()
      local out = assert(p:logout())
      local revoked = {}
      for _, name in ipairs(out.revoked) do revoked[name] = true end
      assert.same({ access_token = true, refresh_token = true }, revoked)
      assert.same({}, out.failed or {})
      assert.matches("^" .. fake:base("st"):gsub("%p", "%%%0") .. "/logout", out.end_session_url)
      local reqs = fake:requests(REVOKE_PATH)
      assert.equal(2, #reqs)
      assert.same({ access_token = tok.access_token, refresh_token = tok.refresh_token }, hint_set(reqs))
      assert.same({ access = 0, refresh = 0 }, fake:live("st"))
      assert.is_nil(p:stored())
      assert_reauth(p:token())
    end)

    it("logout says which revocation failed, and forgets all the same", function()
      local p = logged_in()
      fake:reset()
      fake.server:script(REVOKE_PATH, { status = 400, json = { error = "unsupported_token_type" } })
      local out = assert(p:logout())
      assert.equal(1, #out.revoked)
      local failed = {}
      for name, err in pairs(out.failed) do
        failed[#failed + 1] = name
        assert.is_table(err)
      end
      assert.equal(1, #failed)
      assert.are_not.equal(out.revoked[1], failed[1])
      assert.is_nil(p:stored())
    end)
  end)

  describe("the smartauth command with a profile", function()
    local cli
    before_each(function()
      cli = services.cli(fake)
      cli:config { task = fake:options("smarttask", { preset = "smarttask" }) }
    end)
    after_each(function() cli:cleanup() end)

    local function login(name, args)
      local h = cli:start(args or { "login", name, "--flow", "oob" })
      local u = h.wait_stderr("(http://127%.0%.0%.1:%d+/st/oauth2/authorize%?%S+)")
      local _, v = fake:browse(u)
      h.send(v)
      return h.finish()
    end

    local function assert_login_hint(r, name)
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("smartauth login " .. name, r.err, 1, true)
    end

    it("asks to log in, logs in by the pasted code, then prints the token and the userinfo", function()
      assert_login_hint(cli:run { "token", "task" }, "task")
      local l = login("task", { "login", "task", "--no-browser" })
      assert.equal(0, l.code, l.err)
      assert_code_wire(fake:requests(TOKEN_PATH)[1], services.OOB)
      local r = cli:run { "token", "task", "--json" }
      assert.equal(0, r.code, r.err)
      local obj = services.json(r.out)
      assert.is_true(userinfo_ok(obj.access_token))
      assert.equal("openid email", obj.scope)
      local u = cli:run { "userinfo", "task" }
      assert.equal(0, u.code, u.err)
      assert.equal(USER, services.json(u.out).sub)
    end)

    it("logs in with code id_token from the profile's response_type (the whole address pasted)", function()
      cli:config { hybrid = fake:options("smarttask", { preset = "smarttask", response_type = "code id_token",
        redirect_uri = HYBRID_REDIRECT }) }
      local l = login("hybrid")
      assert.equal(0, l.code, l.err)
      assert.equal("code id_token", fake:requests("/st/oauth2/authorize")[1].args.response_type)
      assert_code_wire(fake:requests(TOKEN_PATH)[1], HYBRID_REDIRECT)
      assert.equal(0, cli:run({ "token", "hybrid" }).code)
    end)

    it("prints the cached token without a request", function()
      assert.equal(0, login("task").code)
      local r1 = cli:run { "token", "task" }
      fake:reset()
      local r2 = cli:run { "token", "task" }
      assert.equal(0, r2.code, r2.err)
      assert.equal(r1.out, r2.out)
      assert.equal(0, #fake:requests(TOKEN_PATH))
    end)

    it("refreshes after a short real expiry", function()
      fake:setup("st", { expires_in = 1 })
      finally(function() fake:setup("st", { expires_in = 3600 }) end)
      cli:config { task = fake:options("smarttask", { preset = "smarttask", leeway = 0 }) }
      local lr = login("task")
      assert.equal(0, lr.code, lr.err)
      local r1 = cli:run { "token", "task" }
      local deadline = os.time() + 2
      while os.time() < deadline do services.sleep(0.05) end
      fake:reset()
      local r2 = cli:run { "token", "task" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      assert.equal("refresh_token", fake:requests(TOKEN_PATH)[1].form.grant_type)
    end)

    it("says run smartauth login, with nothing on stdout, when the server revoked everything", function()
      assert.equal(0, login("task").code)
      fake:revoke_all("st", "empty400")
      assert_login_hint(cli:run { "token", "task", "--force" }, "task")
      assert_login_hint(cli:run { "token", "task" }, "task")
    end)

    it("logs out: says both tokens were revoked, and they were", function()
      assert.equal(0, login("task").code)
      fake:reset()
      local r = cli:run { "logout", "task" }
      assert.equal(0, r.code, r.err)
      local text = r.out:lower()
      assert.matches("access token", text, 1, true)
      assert.matches("refresh token", text, 1, true)
      assert.matches("revoked", text, 1, true)
      assert.equal(2, #fake:requests(REVOKE_PATH))
      assert.same({ access = 0, refresh = 0 }, fake:live("st"))
      assert_login_hint(cli:run { "token", "task" }, "task")
    end)
  end)

  describe("inside smartauth.spawn", function()
    it("logs in (discovery, token, JWKS) and calls userinfo without blocking", function()
      local p = new()
      local tok, info = services.in_task(function()
        local t = assert(p:login((user())))
        return t, assert(p:userinfo(t))
      end)
      assert.is_true(services.yielded)
      assert.equal(USER, tok.claims.sub)
      assert.equal(USER, info.sub)
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
      clock.offset = 3600
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.equal(USER, t2.claims and t2.claims.sub)
    end)

    it("says log in again when the server revoked everything", function()
      local p = logged_in()
      fake:revoke_all("st", "invalid_grant")
      local res, err = services.in_task(function()
        return p:request { url = fake:base("st") .. "/openid_connect/userinfo" }
      end)
      assert_reauth(res, err)
    end)

    it("logs out with two revocation requests", function()
      local p = logged_in()
      fake:reset()
      local out = services.in_task(function() return assert(p:logout()) end)
      assert.equal(2, #out.revoked)
      assert.equal(2, #fake:requests(REVOKE_PATH))
      assert.is_nil(p:stored())
    end)
  end)
end)
