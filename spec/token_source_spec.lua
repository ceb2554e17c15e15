-- The token lifecycle (lua/smartauth/token_source.lua), point by point as
-- issue 11 found it broken: which grant runs, dead refresh tokens, tokens
-- the server ends, logout, claims across refresh, empty fields, unsaved
-- tokens, the cross-process lock, cancelled tasks, task errors, API keys.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local cjson = require "cjson"
local store = require "smartauth.store"
local server = require "helpers.server"
local proc = require "helpers.proc"
local J = require "helpers.jwt"

local function entry(at, rt, ttl, extra)
  local now = clock.now()
  local e = { v = 2, access_token = at, token_type = "Bearer", refresh_token = rt,
    expires_at = ttl and now + ttl, issued_at = now - 3600 }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

describe("token lifecycle", function()
  local s

  setup(function() s = server.start() end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function() s:reset() end)
  after_each(function() clock.offset = 0 end)

  local function provider(extra)
    local o = { name = "svc", token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret",
      retry = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  describe("which grant token() runs (points 1 and 2)", function()
    it("is authorization_code for SmartFile OAuth: token() says log in first and sends nothing", function()
      local sf = assert(smartauth.smartfile { domain = "acme.smartfile.com", client_id = "id", client_secret = "s",
        token_endpoint = s.url .. "/token" })
      assert.equal("authorization_code", sf:default_grant())
      local t, err = sf:token()
      assert.is_nil(t)
      assert.equal("config", err.kind)
      assert.is_true(err.reauth)
      assert.matches("log in", err.description)
      assert.equal(0, #s:requests())
    end)

    it("is none for SmartFile's API key, and token() names the API key", function()
      local sk = assert(smartauth.smartfile { domain = "acme.smartfile.com", api_key = "key-123456",
        api_password = "pw-abcdef" })
      assert.equal("none", sk:default_grant())
      local t, err = sk:token()
      assert.is_nil(t)
      assert.equal("config", err.kind)
      assert.matches("API key", err.description)
      assert.is_nil(tostring(err):find("key-123456", 1, true))
    end)

    it("does not depend on discovery", function()
      local doc = { issuer = s.url, token_endpoint = s.url .. "/token",
        authorization_endpoint = s.url .. "/authorize" }
      s:script("/.well-known/openid-configuration", { json = doc }, 0)
      local function make()
        return assert(smartauth.provider { issuer = s.url, client_id = "cid", client_secret = "csecret",
          retry = false })
      end
      local p = make()
      assert.equal("client_credentials", p:default_grant())
      assert(p:discover())
      assert.equal("client_credentials", p:default_grant())
      -- and before discovery token() already gets it (discovering the endpoint)
      local p2 = make()
      s:script("/token", { json = { access_token = "at-cc", expires_in = 60 } })
      assert.equal("at-cc", assert(p2:token()).access_token)
    end)

    it("follows the documented order", function()
      assert.equal("password", provider { username = "u", password = "pw" }:default_grant())
      assert.equal("client_credentials", provider():default_grant())
      assert.equal("device", provider { grant = "device", username = "u", password = "pw" }:default_grant())
      assert.equal("authorization_code", assert(smartauth.provider { token_endpoint = s.url .. "/token",
        client_id = "public" }):default_grant())
      assert.equal("authorization_code", provider { redirect_uri = "http://127.0.0.1:8765/cb" }:default_grant())
      assert.equal("authorization_code", provider { response_type = "code id_token" }:default_grant())
      assert.equal("client_credentials", assert(smartauth.smartsense { client_id = "a", client_secret = "b" })
        :default_grant())
      assert.equal("password", assert(smartauth.smartconnect { region = "EU", client_id = "a", client_secret = "b",
        username = "u", password = "p" }):default_grant())
    end)

    it("never falls back to an app-only token for a provider made for people", function()
      local p = provider { redirect_uri = "http://127.0.0.1:8765/cb" }
      s:script("/token", { json = { access_token = "at-person", expires_in = 3600, refresh_token = "rt-p" } })
      assert(p:refresh("rt-p0"))
      assert(p:forget())
      s:reset()
      local t, err = p:token()
      assert.is_nil(t)
      assert.is_true(err.reauth)
      assert.equal(0, #s:requests())
    end)
  end)

  describe("a dead refresh token (point 3)", function()
    for _, status in ipairs { 400, 401, 403 } do
      it("is dropped on an empty-bodied " .. status .. " and the grant runs again", function()
        local m = store.memory()
        local p = provider { store = m }
        assert(m:set(p:store_key(), entry("at-old", "rt-dead", 5)))
        s:script("/token", { status = status, body = "" })
        s:script("/token", { json = { access_token = "at-new", expires_in = 3600 } })
        local t = assert(p:token())
        assert.equal("at-new", t.access_token)
        local reqs = s:requests()
        assert.equal("refresh_token", reqs[1].form.grant_type)
        assert.equal("client_credentials", reqs[2].form.grant_type)
      end)

      it("on an empty-bodied " .. status .. " asks a person to log in again", function()
        local m = store.memory()
        local p = provider { store = m, redirect_uri = "http://127.0.0.1:8765/cb" }
        assert(m:set(p:store_key(), entry("at-old", "rt-dead", 5)))
        s:script("/token", { status = status, body = "" })
        local t, err = p:token()
        assert.is_nil(t)
        assert.is_true(err.reauth)
        assert.equal("http", err.kind)
        assert.equal(status, err.status)
        assert.is_nil(m:get(p:store_key()))
        -- the next call does not send the dead token again
        local _, err2 = p:token()
        assert.is_true(err2.reauth)
        assert.equal("config", err2.kind)
        assert.equal(1, #s:requests())
      end)
    end

    it("is kept on invalid_client (a wrong client secret), with the error", function()
      local m = store.memory()
      local p = provider { store = m, redirect_uri = "http://127.0.0.1:8765/cb" }
      assert(m:set(p:store_key(), entry("at-old", "rt-good", -5)))
      s:script("/token", { status = 401, json = { error = "invalid_client" } })
      local t, err = p:token()
      assert.is_nil(t)
      assert.equal("invalid_client", err.code)
      assert.is_nil(err.reauth)
      assert.equal("rt-good", m:get(p:store_key()).refresh_token)
    end)

    it("is deleted only if the entry still holds it; a renewed entry is used (point 9)", function()
      local renewed = entry("at-other", "rt-other", 3600)
      local data, reads = {}, 0
      local kv = {}
      function kv.get(_, key)
        reads = reads + 1
        if reads > 1 then return renewed end -- another process saved while we refreshed
        return data[key]
      end
      function kv.set(_, key, e) data[key] = e return true end
      local deleted = false
      function kv.delete() deleted = true return true end
      local ttls = {}
      function kv.lock(_, _, ttl) ttls[#ttls + 1] = ttl return function() end end
      local p = provider { store = kv, redirect_uri = "http://127.0.0.1:8765/cb" }
      data[p:store_key()] = entry("at-old", "rt-shared", -5)
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local t = assert(p:token())
      assert.equal("at-other", t.access_token)
      assert.is_false(deleted)
      -- the lock outlives every retry the policy allows: budget + attempts x timeout + 5 s
      assert.equal(0 + 1 * 30 + 5, ttls[1])
      local p2 = provider { store = kv, retry = { attempts = 3, budget = 60 }, timeout = 10 }
      reads = 0
      p2:token { force = true }
      assert.equal(60 + 3 * 10 + 5, ttls[#ttls])
      local p3 = provider { store = kv, lock_ttl = 300 }
      p3:token { force = true }
      assert.equal(300, ttls[#ttls])
    end)
  end)

  describe("a token the server ends (point 4)", function()
    it("is retired everywhere by a 401: the entry keeps its refresh token, others renew", function()
      local m = store.memory()
      local p = provider { store = m, redirect_uri = "http://127.0.0.1:8765/cb" }
      -- no expires_in: SmartConnect's tokens never expire by time
      assert(m:set(p:store_key(), entry("at-dead", "rt-1", nil)))
      s:script("/api/x", { status = 401, body = "" })
      s:script("/token", { status = 503, body = "" }) -- the renewal fails: the entry stays retired
      local res, err = p:request { url = s.url .. "/api/x" }
      assert.is_nil(res)
      assert.equal(503, err.status)
      local e = m:get(p:store_key())
      assert.equal("at-dead", e.access_token)
      assert.equal("rt-1", e.refresh_token)
      assert.is_true(e.expires_at < clock.now())
      -- another process (a new provider on the same store) refreshes, never serves it
      local p2 = provider { store = m, redirect_uri = "http://127.0.0.1:8765/cb" }
      s:script("/token", { json = { access_token = "at-fresh", expires_in = 600 } })
      assert.equal("at-fresh", assert(p2:token()).access_token)
      assert.equal("rt-1", m:get(p:store_key()).refresh_token)
    end)

    it("gets an expiry from default_expires_in when the server sends none", function()
      local p = provider { default_expires_in = 600 }
      s:script("/token", { json = { access_token = "at-1", token_type = "bearer" } })
      local t = assert(p:token())
      assert.equal(600, t.expires_at - t.issued_at)
      assert.equal("at-1", assert(p:token()).access_token)
      clock.offset = 600
      s:script("/token", { json = { access_token = "at-2" } })
      assert.equal("at-2", assert(p:token()).access_token)
    end)

    it("returns a token that expires at once (expires_in 0) but never caches or stores it", function()
      local m = store.memory()
      local p = provider { store = m }
      s:script("/token", { json = { access_token = "at-0", token_type = "Bearer", expires_in = 0 } })
      assert.equal("at-0", assert(p:token()).access_token)
      assert.is_nil(m:get(p:store_key()))
      s:script("/token", { json = { access_token = "at-1", token_type = "Bearer", expires_in = 0 } })
      assert.equal("at-1", assert(p:token()).access_token) -- asked again: nothing was kept
      assert.equal(2, #s:requests())
    end)

    it("renews on force and on min_ttl", function()
      local p = provider()
      s:script("/token", { json = { access_token = "at-1", expires_in = 3600 } })
      s:script("/token", { json = { access_token = "at-2", expires_in = 3600 } })
      s:script("/token", { json = { access_token = "at-3", expires_in = 3600 } })
      assert.equal("at-1", assert(p:token()).access_token)
      assert.equal("at-1", assert(p:token { min_ttl = 600 }).access_token)
      assert.equal("at-2", assert(p:token { force = true }).access_token)
      assert.equal("at-2", assert(p:token { min_ttl = 3599 }).access_token)
      assert.equal("at-3", assert(p:token { min_ttl = 3601 }).access_token)
      assert.has_error(function() p:token { min_ttl = 0 / 0 } end)
      assert.has_error(function() p:token { forse = true } end)
    end)
  end)

  describe("logout (point 5)", function()
    it("revokes the access token and the refresh token, then forgets", function()
      local m = store.memory()
      local p = provider { store = m, revocation_endpoint = s.url .. "/revoke" }
      s:script("/token", { json = { access_token = "at-1", expires_in = 3600, refresh_token = "rt-1" } })
      assert(p:token())
      s:script("/revoke", { status = 200, body = "" }, 0)
      local out = assert(p:logout())
      assert.same({ "access_token", "refresh_token" }, out.revoked)
      assert.same({}, out.failed)
      local revs = {}
      for _, r in ipairs(s:requests()) do
        if r.path == "/revoke" then revs[#revs + 1] = r.form.token_type_hint .. "=" .. r.form.token end
      end
      assert.same({ "access_token=at-1", "refresh_token=rt-1" }, revs)
      assert.is_nil(m:get(p:store_key()))
      assert.is_nil(p:stored())
    end)

    it("says what could not be revoked", function()
      local p = provider { revocation_endpoint = s.url .. "/revoke" }
      s:script("/token", { json = { access_token = "at-1", expires_in = 3600, refresh_token = "rt-1" } })
      assert(p:token())
      s:script("/revoke", { status = 200, body = "" })
      s:script("/revoke", { status = 400, json = { error = "unsupported_token_type" } })
      local out = assert(p:logout())
      assert.same({ "access_token" }, out.revoked)
      assert.equal("unsupported_token_type", out.failed.refresh_token.code)
      assert.is_nil(p:stored())
      local q = provider()
      s:script("/token", { json = { access_token = "at-2", expires_in = 3600 } })
      assert(q:token())
      out = assert(q:logout())
      assert.same({}, out.revoked)
      assert.equal("config", out.failed.access_token.kind)
    end)
  end)

  describe("claims across refresh (point 6)", function()
    local KID = "rsa-1"
    local function idp(extra)
      local keys = J.jwks(J.public_jwk(J.key("RSA"), { kid = KID, use = "sig" }))
      local o = { issuer = s.url, jwks = keys }
      for k, v in pairs(extra or {}) do o[k] = v end
      return provider(o)
    end
    local function id_token(sub, alg)
      local now = clock.now()
      local c = { iss = s.url, sub = sub, aud = "cid", iat = now, exp = now + 300 }
      if alg == "none" then return J.compact({ alg = "none" }, c) end
      return J.sign({ alg = "RS256", kid = KID }, c, J.key("RSA"), "RS256")
    end
    local function plain(opts)
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      return o
    end

    it("keeps the claims when the refresh brings no ID token, checks a new one", function()
      local m = store.memory()
      local p = idp(plain { store = m, username = "u", password = "pw" })
      s:script("/token", { json = { access_token = "at-1", expires_in = 3600, refresh_token = "rt-1",
        id_token = id_token("alice") } })
      local t = assert(p:token())
      assert.equal("alice", t.claims.sub) -- the password grant verifies and keeps them
      assert.equal("alice", m:get(p:store_key()).claims.sub)
      s:script("/token", { json = { access_token = "at-2", expires_in = 3600 } })
      local t2 = assert(p:refresh(t))
      assert.equal("alice", t2.claims.sub)
      assert.equal(t.id_token, t2.id_token)
      -- a forged ID token for someone else is refused, and nothing is stored
      s:script("/token", { json = { access_token = "at-3", expires_in = 3600,
        id_token = id_token("mallory", "none") } })
      local t3, err = p:refresh(t2)
      assert.is_nil(t3)
      assert.equal("validation", err.kind)
      assert.equal("at-2", m:get(p:store_key()).access_token)
      -- a properly signed one for another user is refused too (OIDC Core §12.2)
      s:script("/token", { json = { access_token = "at-4", expires_in = 3600, id_token = id_token("mallory") } })
      local t4, err4 = p:refresh(t2)
      assert.is_nil(t4)
      assert.equal("sub", err4.check)
      s:script("/token", { json = { access_token = "at-5", expires_in = 3600, id_token = id_token("alice") } })
      assert.equal("alice", assert(p:refresh(t2)).claims.sub)
    end)
  end)

  describe("empty and null fields (point 7)", function()
    for _, v in ipairs { "", cjson.null } do
      it("mean absent in a refresh answer (" .. (v == "" and "empty" or "null") .. ")", function()
        local p = provider { redirect_uri = "http://127.0.0.1:8765/cb" }
        local old = assert(smartauth.token.from_response({ access_token = "at-0", refresh_token = "rt-keep",
          scope = "read", expires_in = 10 }, clock.now()))
        s:script("/token", { json = { access_token = "at-1", expires_in = 3600, refresh_token = v, scope = v,
          id_token = v, token_type = v } })
        local t = assert(p:refresh(old))
        assert.equal("rt-keep", t.refresh_token)
        assert.equal("read", t.scope)
        assert.equal("Bearer", t.token_type)
        assert.is_nil(t.id_token)
      end)
    end
  end)

  describe("single flight and tasks (points 10 and 11)", function()
    it("survives a task cancelled inside p:token()", function()
      local p = provider()
      s:script("/token", { hang = true })
      local task = smartauth.spawn(function() return p:token() end)
      smartauth.step(0.05)
      assert.is_true(task:cancel())
      s:script("/token", { json = { access_token = "at-after", expires_in = 600 } })
      local got
      local t2 = smartauth.spawn(function() got = assert(p:token()).access_token end)
      local deadline = os.time() + 5
      while t2.status == "running" and os.time() < deadline do smartauth.step(0.05) end
      if t2.status == "running" then t2:cancel() end
      assert.equal("at-after", got)
      -- and the store lock was released: a blocking call gets through too
      assert.equal("at-after", assert(p:token()).access_token)
    end)

    -- A fleet on one store (issue 14, point 7): while another process holds
    -- the lock and renews, a waiter takes the renewed entry as soon as it is
    -- stored, without queueing for the lock (64 processes queued one by one
    -- through it took 3x one renewal).
    it("gives a waiter the entry another holder of the lock stored, without the lock", function()
      local st = store.memory()
      local p = provider { store = st }
      local key = p:store_key()
      assert(st:set(key, entry("at-due", nil, -10)))
      local unlock = assert(st:lock(key, 30)) -- held elsewhere: here, the main coroutine
      local got
      local task = smartauth.spawn(function() got = assert(p:token()).access_token end)
      smartauth.step(0.01)
      assert.equal("running", task.status)
      assert(st:set(key, entry("at-renewed", nil, 3600)))
      local deadline = os.time() + 2
      while task.status == "running" and os.time() < deadline do smartauth.step(0.01) end
      local status = task.status
      if status == "running" then task:cancel() end
      unlock()
      assert.equal("done", status)
      assert.equal("at-renewed", got)
      assert.equal(0, #s:requests())
      -- a forced call still waits for the lock: it wants a new token
      s:script("/token", { json = { access_token = "at-forced", expires_in = 600 } })
      assert.equal("at-forced", assert(p:token { force = true }).access_token)
    end)

    -- obtain runs without a pcall inside a task (5.1 cannot yield across
    -- one): when it raises after yielding, the task's failure releases the
    -- store lock and the single flight.
    it("releases the lock and the flight when p:token() raises inside a task after a request", function()
      local st = store.memory()
      local broken = true
      local set = st.set
      st.set = function(self, ...)
        if broken then error("store exploded", 0) end
        return set(self, ...)
      end
      local p = provider { store = st }
      s:script("/token", { delay_ms = 20, json = { access_token = "at-1", expires_in = 600 } })
      local err
      local waiter_got
      local task = smartauth.spawn({ on_error = function(e) err = e end }, function() return p:token() end)
      local waiter = smartauth.spawn({ on_error = function() end }, function()
        waiter_got = { p:token() }
      end)
      local deadline = os.time() + 5
      while (task.status == "running" or waiter.status == "running") and os.time() < deadline do
        smartauth.step(0.01)
      end
      assert.equal("failed", task.status)
      assert.matches("store exploded", tostring(err))
      -- the caller waiting on the flight got the failure, not a hang
      assert.equal("done", waiter.status)
      assert.is_nil(waiter_got[1])
      assert.matches("token%(%) failed: store exploded", tostring(waiter_got[2]))
      -- and the lock is free: a blocking call gets through
      broken = false
      s:script("/token", { json = { access_token = "at-2", expires_in = 600 } })
      assert.equal("at-2", assert(p:token()).access_token)
    end)

    it("gives every failure to on_error, a synchronous one too", function()
      local seen = {}
      local task = smartauth.spawn({ on_error = function(err, t) seen[#seen + 1] = { err, t } end }, function()
        error("boom at once", 0)
      end)
      assert.equal(1, #seen)
      assert.matches("^boom at once", seen[1][1])
      assert.equal(task, seen[1][2])
      s:script("/slow", { delay_ms = 20, body = "x" })
      local t2 = smartauth.spawn({ on_error = function(err) seen[#seen + 1] = { err } end }, function()
        smartauth.sleep(0.01)
        error("boom later", 0)
      end)
      smartauth.run()
      assert.equal("failed", t2.status)
      assert.matches("^boom later", seen[2][1])
    end)

    local function lua_child(code)
      local dir = proc.tmpdir("smartauth-task.XXXXXX")
      local f = assert(io.open(dir .. "/t.lua", "w"))
      f:write(code)
      f:close()
      local cmd = proc.LUA_ENV .. " " .. proc.LUA .. " " .. dir .. "/t.lua 2>" .. dir .. "/err >/dev/null"
      os.execute(cmd)
      local err = proc.read_file(dir .. "/err") or ""
      proc.rmtree(dir)
      return err
    end

    it("reports a failed task with no handler on stderr, unless its error was taken", function()
      local err = lua_child([[
        local smartauth = require "smartauth"
        local p = assert(smartauth.provider { token_endpoint = "http://127.0.0.1:1/token", client_id = "c",
          client_secret = "s", retry = false, connect_timeout = 1 })
        -- not assert(p:token()): 5.1's assert takes only a string message
        smartauth.spawn(function() local _, e = p:token() error(e, 0) end)
        for _ = 1, 300 do smartauth.step(0.005) end
      ]])
      assert.matches("smartauth: task failed: .*network", err)
      assert.is_nil(err:find("client_secret", 1, true))
      local quiet = lua_child([[
        local smartauth = require "smartauth"
        local t = smartauth.spawn(function() smartauth.sleep(0.01) error("taken") end)
        while t.status == "running" do smartauth.step(0.005) end
        local ok, e = t:result()
        assert(not ok and e:find("taken"))
        smartauth.step(0)
      ]])
      assert.equal("", quiet)
      local at_exit = lua_child([[
        local smartauth = require "smartauth"
        smartauth.spawn(function() error("never stepped") end)
      ]])
      assert.matches("smartauth: task failed: .*never stepped", at_exit)
    end)
  end)

  describe("secrets of a dumped provider (issue 12, point 7)", function()
    it("shows no token, API key or token header after p:token()", function()
      local p = provider { token_headers = { ["X-Api-Key"] = "hdr-secret-123" } }
      s:script("/token", { json = { access_token = "at-secret-1", expires_in = 3600, refresh_token = "rt-secret-1" } })
      assert(p:token())
      local seen, found = {}, {}
      local function walk(v)
        if type(v) == "string" then
          for _, sec in ipairs { "at-secret-1", "rt-secret-1", "csecret", "hdr-secret-123" } do
            if v:find(sec, 1, true) then found[#found + 1] = sec end
          end
        elseif type(v) == "table" and not seen[v] then
          seen[v] = true
          for k, x in pairs(v) do walk(k) walk(x) end
        end
      end
      walk(p)
      assert.same({}, found)
      local sk = assert(smartauth.smartfile { domain = "acme.smartfile.com", api_key = "apikey-secret",
        api_password = "x" })
      seen, found = {}, {}
      walk(sk)
      for _, f in ipairs(found) do assert.is_nil(f:find("apikey", 1, true)) end
      local dump = {}
      for k, v in pairs(sk) do dump[#dump + 1] = tostring(k) .. "=" .. tostring(v) end
      assert.is_nil(table.concat(dump, " "):find("apikey-secret", 1, true))
    end)
  end)
end)

-- token() of the plain provider (moved from provider_spec): one grant then the cache,
-- refresh within the leeway, a dead refresh token, a shared store.
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

  describe("token()", function()
    after_each(function() clock.offset = 0 end)
    it("runs the grant once and then answers from the cache", function()
      local p = provider()
      local t1 = assert(p:token())
      for _ = 1, 10 do assert.equal(t1, p:token()) end
      assert.equal(1, #s:requests())
    end)

    it("refreshes within leeway of expiry", function()
      local p = provider { leeway = 100 }
      s:script("/token", { json = { access_token = "short", token_type = "bearer", expires_in = 1000,
        refresh_token = "rt-1" } })
      assert.equal("short", p:token().access_token)
      clock.offset = 950 -- 50 s left: within the leeway
      local t2 = assert(p:token())
      assert.not_equal("short", t2.access_token)
      assert.equal("refresh_token", s:last_request().form.grant_type)
      assert.equal("rt-1", s:last_request().form.refresh_token)
    end)

    it("runs the grant again when the refresh token is dead", function()
      local p = provider()
      s:script("/token", { json = { access_token = "a1", expires_in = 1000, refresh_token = "dead" } })
      assert(p:token())
      clock.offset = 1000
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local t = assert(p:token())
      local reqs = s:requests()
      assert.equal("refresh_token", reqs[2].form.grant_type)
      assert.equal("client_credentials", reqs[3].form.grant_type)
      assert.matches("^at%-", t.access_token)
    end)

    it("keeps a still-valid token when a refresh fails for a passing reason", function()
      local p = provider { leeway = 100, retry = false }
      s:script("/token", { json = { access_token = "keep", expires_in = 1000, refresh_token = "rt" } })
      assert(p:token())
      clock.offset = 950
      s:script("/token", { status = 503, body = "busy" })
      assert.equal("keep", assert(p:token()).access_token)
    end)

    it("shares a store between providers of the same client", function()
      local shared = smartauth.store.memory()
      local p1, p2 = provider { store = shared }, provider { store = shared }
      local t = assert(p1:token())
      assert.equal(t.access_token, p2:token().access_token)
      assert.equal(1, #s:requests())
    end)

    it("is a config error when only a person can log in", function()
      local p = assert(smartauth.provider { authorization_endpoint = "https://idp.example/a",
        token_endpoint = s.url .. "/token", client_id = "pub" })
      local _, err = p:token()
      assert.equal("config", err.kind)
      assert.matches("log in first", err.description)
    end)
  end)
end)
