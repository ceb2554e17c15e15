-- SmartConnect end to end (resource-owner password grant, token_type "bearer" in lower
-- case, no expires_in) against a fake that speaks its documented wire format: the
-- preset in a script, the `smartauth` command with a config profile, and the preset
-- inside smartauth.spawn. Each: first token, cached token, expiry, the server revoking
-- everything, logout.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local services = require "helpers.services"
local oidc = require "helpers.oidc"

local C = services.CREDS.sc
local TOKEN_PATH = "/sc/token"
-- the token endpoint refusing for a while (not retryable, so the test does not wait)
local REFUSED = { status = 400, json = { error = "invalid_request", error_description = "maintenance" } }

describe("SmartConnect end to end", function()
  local fake

  setup(function() fake = services.start() end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function() fake:reset() end)
  after_each(function() clock.offset = 0 end)

  -- The documented token request: a form POST with exactly these five fields.
  local function assert_wire(r)
    assert.equal("POST", r.method)
    assert.equal(TOKEN_PATH, r.path)
    assert.matches("^application/x%-www%-form%-urlencoded", r.headers["content-type"])
    assert.same({ "client_id", "client_secret", "grant_type", "password", "username" }, services.form_names(r))
    assert.same({ grant_type = "password", username = C.username, password = C.password,
      client_id = C.client_id, client_secret = C.client_secret }, r.form)
    assert.is_nil(r.basic)
  end

  local function api_ok(tok)
    return (oidc.request { url = fake:base("sc") .. "/api/me", headers = { authorization = "Bearer " .. tok } }) == 200
  end

  local function new(extra)
    return assert(smartauth.smartconnect(fake:options("smartconnect", extra)))
  end

  describe("the preset in a script", function()
    it("gets a first token by the password grant and uses the lower-case bearer token", function()
      local p = new()
      assert.equal("password", p:default_grant())
      local tok = assert(p:token())
      assert.is_nil(tok.expires_at)
      assert.is_nil(tok.refresh_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_wire(reqs[1])
      local res = assert(p:request { url = "me" })
      assert.equal(200, res.status)
      assert.matches("^[Bb]earer " .. tok.access_token:gsub("%-", "%%-") .. "$",
        fake:requests("/sc/api/")[1].headers.authorization)
    end)

    it("serves the cached token without a second request", function()
      local store = smartauth.store.memory()
      local p = new { store = store }
      local t1 = assert(p:token())
      assert.equal(t1.access_token, assert(p:token()).access_token)
      assert.equal(t1.access_token, assert(new({ store = store }):token()).access_token)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)

    it("re-grants when the lifetime given by default_expires_in is over", function()
      local p = new { default_expires_in = 600, leeway = 0 }
      local t1 = assert(p:token())
      assert.is_number(t1.expires_at)
      clock.offset = 300
      assert.equal(t1.access_token, assert(p:token()).access_token)
      clock.offset = 601
      local t2 = assert(p:token())
      assert.are_not.equal(t1.access_token, t2.access_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(2, #reqs)
      assert_wire(reqs[2])
    end)

    it("recovers by itself when the server revokes every token", function()
      local p = new()
      local t1 = assert(p:token())
      fake:revoke_all("sc")
      local res = assert(p:request { url = "me" })
      assert.equal(200, res.status)
      local t2 = assert(p:stored())
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.is_true(api_ok(t2.access_token))
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("retires a token the API refused even when the re-grant fails, so the next call gets a new one", function()
      local store = smartauth.store.memory()
      local p = new { store = store }
      local t1 = assert(p:token())
      fake:revoke_all("sc")
      fake.server:script(TOKEN_PATH, REFUSED, 5)
      local res, err = p:request { url = "me", }
      assert.is_true(res == nil or res.status == 401, tostring(err))
      fake.server:reset()
      -- another provider on the same store (another process) does not get the dead token
      local t2 = assert(new({ store = store }):token())
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.is_true(api_ok(t2.access_token))
    end)

    it("logs out: forgets the token (SmartConnect documents no revocation), the next call re-grants", function()
      local p = new()
      assert(p:token())
      fake:reset()
      local out = assert(p:logout())
      assert.same({}, out.revoked)
      assert.is_nil(p:stored())
      assert.equal(0, #fake:requests())
      assert(p:token())
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)
  end)

  describe("the smartauth command with a profile", function()
    local cli
    before_each(function()
      cli = services.cli(fake)
      cli:config { connect = fake:options("smartconnect", { preset = "smartconnect" }) }
    end)
    after_each(function() cli:cleanup() end)

    it("prints a first token, and --json gives its type and no expiry", function()
      local r = cli:run { "token", "connect" }
      assert.equal(0, r.code, r.err)
      local tok = r.out:match("^([%w-]+)\n$")
      assert.truthy(tok, r.out)
      assert.is_true(api_ok(tok))
      assert_wire(fake:requests(TOKEN_PATH)[1])
      local j = cli:run { "token", "connect", "--json" }
      assert.equal(0, j.code, j.err)
      local obj = services.json(j.out)
      assert.equal(tok, obj.access_token)
      assert.equal("bearer", obj.token_type:lower())
      assert.is_true(obj.expires_at == nil or obj.expires_at == services.null, "no expiry expected")
    end)

    it("prints the cached token on the next run without a request", function()
      local r1 = cli:run { "token", "connect" }
      local r2 = cli:run { "token", "connect" }
      assert.equal(0, r2.code, r2.err)
      assert.equal(r1.out, r2.out)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)

    it("re-grants after the default_expires_in of the profile", function()
      cli:config { connect = fake:options("smartconnect",
        { preset = "smartconnect", default_expires_in = 1, leeway = 0 }) }
      local r1 = cli:run { "token", "connect" }
      assert.equal(0, r1.code, r1.err)
      local deadline = os.time() + 2
      while os.time() < deadline do services.sleep(0.05) end
      local r2 = cli:run { "token", "connect" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("stops printing a token the server ended once a script has seen the 401", function()
      local r1 = cli:run { "token", "connect" }
      assert.equal(0, r1.code, r1.err)
      fake:revoke_all("sc")
      -- the script's re-grant fails (the service refuses it for a while): the dead token must still be retired
      fake.server:script(TOKEN_PATH, REFUSED, 5)
      local p = assert(smartauth.from_config("connect", cli.config_path))
      p:request { url = "me" }
      fake.server:reset()
      local r2 = cli:run { "token", "connect" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      assert.is_true(api_ok((r2.out:gsub("\n$", ""))))
      -- the CLI alone gets a new one on --force
      fake:revoke_all("sc")
      local r3 = cli:run { "token", "connect", "--force" }
      assert.equal(0, r3.code, r3.err)
      assert.is_true(api_ok((r3.out:gsub("\n$", ""))))
    end)

    it("logs out truthfully and the next token run re-grants", function()
      assert.equal(0, cli:run({ "token", "connect" }).code)
      fake:reset()
      local r = cli:run { "logout", "connect" }
      assert.equal(0, r.code, r.err)
      assert.matches("connect", r.out, 1, true)
      assert.is_nil(r.out:lower():find("token revoked", 1, true))
      assert.equal(0, #fake:requests())
      assert.is_nil(assert(smartauth.from_config("connect", cli.config_path)):stored())
      assert.equal(0, cli:run({ "token", "connect" }).code)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)
  end)

  describe("inside smartauth.spawn", function()
    it("gets a first token and calls the API without blocking", function()
      local p = new()
      local tok, res = services.in_task(function()
        local t = assert(p:token())
        return t, assert(p:request { url = "me" })
      end)
      assert.is_true(services.yielded)
      assert.equal(200, res.status)
      assert_wire(fake:requests(TOKEN_PATH)[1])
      assert.is_true(api_ok(tok.access_token))
    end)

    it("serves the cached token without a request", function()
      local p = new()
      local t1 = services.in_task(function() return assert(p:token()) end)
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.is_false(services.yielded)
      assert.equal(t1.access_token, t2.access_token)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)

    it("re-grants after default_expires_in", function()
      local p = new { default_expires_in = 600, leeway = 0 }
      local t1 = services.in_task(function() return assert(p:token()) end)
      clock.offset = 601
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("recovers when the server revokes every token", function()
      local p = new()
      services.in_task(function() return assert(p:token()) end)
      fake:revoke_all("sc")
      local res = services.in_task(function() return assert(p:request { url = "me" }) end)
      assert.equal(200, res.status)
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("logs out", function()
      local p = new()
      services.in_task(function() return assert(p:token()) end)
      local out = services.in_task(function() return assert(p:logout()) end)
      assert.same({}, out.revoked)
      assert.is_nil(p:stored())
    end)
  end)
end)
