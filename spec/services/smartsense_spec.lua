-- SmartSense end to end (client credentials, id and secret in HTTP Basic, Accept JSON)
-- against a fake that speaks its documented wire format: the preset in a script, the
-- `smartauth` command with a config profile, and the preset inside smartauth.spawn.
-- Each: first token, cached token, expiry, the server revoking everything, logout.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local services = require "helpers.services"
local oidc = require "helpers.oidc"

local C = services.CREDS.ss
local TOKEN_PATH = "/ss/auth/oauth"

describe("SmartSense end to end", function()
  local fake

  setup(function() fake = services.start() end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function() fake:reset() end)
  after_each(function() clock.offset = 0 end)

  -- The documented token request: POST, Basic id:secret, Accept JSON, a form with
  -- grant_type=client_credentials and no credentials in it.
  local function assert_wire(r)
    assert.equal("POST", r.method)
    assert.equal(TOKEN_PATH, r.path)
    assert.same({ user = C.client_id, pass = C.client_secret }, { user = r.basic.user, pass = r.basic.pass })
    assert.matches("application/json", r.headers.accept, 1, true)
    assert.matches("^application/x%-www%-form%-urlencoded", r.headers["content-type"])
    assert.equal("client_credentials", r.form.grant_type)
    assert.is_nil(r.form.client_secret)
    assert.is_nil(r.form.client_id)
  end

  local function api_ok(tok)
    local status = oidc.request { url = fake:base("ss") .. "/v1/devices",
      headers = { authorization = "Bearer " .. tok } }
    return status == 200
  end

  local function new(extra)
    return assert(smartauth.smartsense(fake:options("smartsense", extra)))
  end

  describe("the preset in a script", function()
    it("gets a first token with the documented request and calls the API with it", function()
      local p = new()
      assert.equal("client_credentials", p:default_grant())
      local tok = assert(p:token())
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_wire(reqs[1])
      assert.equal("Bearer", tok.token_type)
      local res = assert(p:request { url = "devices" })
      assert.equal(200, res.status)
      local api = fake:requests("/ss/v1/")
      assert.equal("Bearer " .. tok.access_token, api[1].headers.authorization)
    end)

    it("serves the cached token without a second request, also to a new provider on the same store", function()
      local store = smartauth.store.memory()
      local p = new { store = store }
      local t1 = assert(p:token())
      local t2 = assert(p:token())
      assert.equal(t1.access_token, t2.access_token)
      local p2 = new { store = store }
      assert.equal(t1.access_token, assert(p2:stored()).access_token)
      assert.equal(t1.access_token, assert(p2:token()).access_token)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)

    it("gets a new token by client credentials once the token expires", function()
      local p = new()
      local t1 = assert(p:token())
      clock.offset = 3600
      local t2 = assert(p:token())
      assert.are_not.equal(t1.access_token, t2.access_token)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(2, #reqs)
      assert_wire(reqs[2])
    end)

    it("recovers by itself when the server revokes every token", function()
      local p = new()
      local t1 = assert(p:token())
      fake:revoke_all("ss")
      local res = assert(p:request { url = "devices" })
      assert.equal(200, res.status)
      local t2 = assert(p:stored())
      assert.are_not.equal(t1.access_token, t2.access_token)
      local seen = {}
      for _, r in ipairs(fake:requests("/ss/")) do seen[#seen + 1] = r.method .. " " .. r.path end
      assert.same({ "POST " .. TOKEN_PATH, "GET /ss/v1/devices", "POST " .. TOKEN_PATH, "GET /ss/v1/devices" }, seen)
      assert.is_true(api_ok(t2.access_token))
    end)

    it("logs out: forgets the token and revokes nothing (SmartSense documents no revocation)", function()
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
      cli:config { sense = fake:options("smartsense", { preset = "smartsense" }) }
    end)
    after_each(function() cli:cleanup() end)

    it("prints a first token and only it on stdout, and --json prints the token object", function()
      local r = cli:run { "token", "sense" }
      assert.equal(0, r.code, r.err)
      local tok = r.out:match("^([%w-]+)\n$")
      assert.truthy(tok, r.out)
      assert.is_true(api_ok(tok))
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_wire(reqs[1])
      local j = cli:run { "token", "sense", "--json" }
      assert.equal(0, j.code, j.err)
      local obj = services.json(j.out)
      assert.equal(tok, obj.access_token)
      assert.equal("Bearer", obj.token_type)
      assert.is_number(obj.expires_at)
      assert.is_true(obj.expires_at > os.time() + 3000)
    end)

    it("asks for another scope with --scope", function()
      local r = cli:run { "token", "sense", "--scope", "devices:read", "--json" }
      assert.equal(0, r.code, r.err)
      local reqs = fake:requests(TOKEN_PATH)
      assert.equal(1, #reqs)
      assert_wire(reqs[1])
      assert.equal("devices:read", reqs[1].form.scope)
      assert.equal("devices:read", services.json(r.out).scope)
    end)

    it("prints the cached token on the next run without a request", function()
      local r1 = cli:run { "token", "sense" }
      local r2 = cli:run { "token", "sense" }
      assert.equal(0, r2.code, r2.err)
      assert.equal(r1.out, r2.out)
      assert.equal(1, #fake:requests(TOKEN_PATH))
    end)

    it("gets a new token after a short real expiry, and on --force and --min-ttl", function()
      fake:setup("ss", { expires_in = 1 })
      finally(function() fake:setup("ss", { expires_in = 3600 }) end)
      cli:config { sense = fake:options("smartsense", { preset = "smartsense", leeway = 0 }) }
      local r1 = cli:run { "token", "sense" }
      assert.equal(0, r1.code, r1.err)
      local deadline = os.time() + 2
      while os.time() < deadline do services.sleep(0.05) end
      local r2 = cli:run { "token", "sense" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      fake:setup("ss", { expires_in = 3600 })
      local r3 = cli:run { "token", "sense", "--force" }
      assert.are_not.equal(r2.out, r3.out)
      local r4 = cli:run { "token", "sense", "--min-ttl", "7200" }
      assert.equal(0, r4.code, r4.err)
      assert.are_not.equal(r3.out, r4.out)
      local r5 = cli:run { "token", "sense", "--min-ttl", "60" }
      assert.equal(r4.out, r5.out)
      assert.equal(4, #fake:requests(TOKEN_PATH))
    end)

    it("recovers after the server revokes every token: a 401 seen by a script retires the token for the CLI", function()
      local r1 = cli:run { "token", "sense" }
      fake:revoke_all("ss")
      -- a script on the same profile and store sees the 401 and gets a new token
      local p = assert(smartauth.from_config("sense", cli.config_path))
      local res = assert(p:request { url = "devices" })
      assert.equal(200, res.status)
      local r2 = cli:run { "token", "sense" }
      assert.equal(0, r2.code, r2.err)
      assert.are_not.equal(r1.out, r2.out)
      assert.is_true(api_ok((r2.out:gsub("\n$", ""))))
      -- and the CLI alone, with --force
      fake:revoke_all("ss")
      local r3 = cli:run { "token", "sense", "--force" }
      assert.equal(0, r3.code, r3.err)
      assert.is_true(api_ok((r3.out:gsub("\n$", ""))))
    end)

    it("logs out truthfully: the token is forgotten, nothing claimed revoked", function()
      assert.equal(0, cli:run({ "token", "sense" }).code)
      fake:reset()
      local r = cli:run { "logout", "sense" }
      assert.equal(0, r.code, r.err)
      assert.matches("sense", r.out, 1, true)
      assert.is_nil(r.out:lower():find("token revoked", 1, true))
      assert.is_nil(r.out:lower():find("access token revoked", 1, true))
      assert.equal(0, #fake:requests())
      local p = assert(smartauth.from_config("sense", cli.config_path))
      assert.is_nil(p:stored())
    end)
  end)

  describe("inside smartauth.spawn", function()
    it("gets a first token and calls the API without blocking", function()
      local p = new()
      local tok, res = services.in_task(function()
        local t = assert(p:token())
        return t, assert(p:request { url = "devices" })
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

    it("gets a new token once the token expires", function()
      local p = new()
      local t1 = services.in_task(function() return assert(p:token()) end)
      clock.offset = 3600
      local t2 = services.in_task(function() return assert(p:token()) end)
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("recovers when the server revokes every token", function()
      local p = new()
      services.in_task(function() return assert(p:token()) end)
      fake:revoke_all("ss")
      local res = services.in_task(function() return assert(p:request { url = "devices" }) end)
      assert.equal(200, res.status)
      assert.equal(2, #fake:requests(TOKEN_PATH))
    end)

    it("hands a failing task's error to the on_error handler given to spawn", function()
      local p = new { client_secret = "not-the-secret" }
      local got = {}
      local task = smartauth.spawn({ on_error = function(err, t) got[#got + 1] = { err = err, task = t } end },
        function() return assert(p:token()) end)
      smartauth.run()
      assert.equal(1, #got)
      assert.equal(task, got[1].task)
      assert.matches("invalid_client", tostring(got[1].err), 1, true)
      assert.is_nil(tostring(got[1].err):find("not-the-secret", 1, true))
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
