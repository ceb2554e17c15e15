-- The store interface: the memory store, any Lua table with get/set/delete/
-- lock, and what p:token() does with a store: one refresh under the lock, a
-- rotated refresh token stored before the access token is handed out, dead
-- entries removed, still-valid tokens kept through passing failures.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local store = require "smartauth.store"
local contract = require "helpers.store_contract"
local server = require "helpers.server"

-- An almost-expired refreshable entry, as another process would have left it.
local function stale_entry(at, rt)
  local now = clock.now()
  return { v = 1, access_token = at, token_type = "Bearer", refresh_token = rt,
    expires_at = now + 5, issued_at = now - 3595, scope = "read" }
end

describe("store", function()
  -- get/set/delete, ttl, the lock across tasks, argument errors: the
  -- contract suite, here for the memory store (the other backends run it
  -- from their own specs).
  contract.run("memory", { open = store.memory })

  describe("interface", function()
    it("accepts any table with get, set, delete and lock", function()
      local t = { get = function() end, set = function() end, delete = function() end, lock = function() end }
      assert.equal(t, store.check(t))
      t.lock = nil
      local ok, msg = store.check(t)
      assert.is_nil(ok)
      assert.equal("store has no 'lock' method", msg)
      assert.is_nil((store.check("file")))
    end)

    it("loads a built-in store on first use only", function()
      local proc = require "helpers.proc"
      local code = "local s = require('smartauth'); assert(s.provider{ token_endpoint = 'https://idp.example/t' }); "
        .. "for _, m in ipairs { 'memory', 'file', 'redis' } do "
        .. "io.write(m, '=', tostring(package.loaded['smartauth.store.' .. m] ~= nil), ' ') end"
      local ok, _, out = proc.run(proc.LUA_ENV .. proc.LUA .. " -e " .. proc.shell_quote(code))
      assert.is_true(ok, out)
      assert.equal("memory=true file=false redis=false ", out)
    end)

    it("rejects a provider store without the methods, naming the option", function()
      local p, err = smartauth.provider { token_endpoint = "https://idp.example/token", store = { get = print } }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.matches("option 'store' store has no 'set' method", err.description)
    end)
  end)

  describe("with p:token()", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    local function provider(st, extra)
      local o = { name = "svc", token_endpoint = s.url .. "/token", client_id = "cid",
        client_secret = "csecret", store = st }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end

    it("works with a plain Lua table as the store (the documented example)", function()
      local data, log = {}, {}
      local kv = {}
      function kv.get(_, key) log[#log + 1] = "get" return data[key] end
      function kv.set(_, key, entry) log[#log + 1] = "set" data[key] = entry return true end
      function kv.delete(_, key) log[#log + 1] = "delete" data[key] = nil return true end
      function kv.lock()
        log[#log + 1] = "lock"
        return function() log[#log + 1] = "unlock" end
      end
      local p = provider(kv)
      local t = assert(p:token())
      assert.same({ "lock", "get", "set", "unlock" }, log)
      assert.equal(t.access_token, data[p:store_key()].access_token)
      assert.equal(2, data[p:store_key()].v)
      -- a second provider (another process, say) finds it there
      local p2 = provider(kv)
      assert.equal(t.access_token, assert(p2:token()).access_token)
      assert.equal(1, #s:requests())
    end)

    it("stores a rotated refresh token before handing out the access token", function()
      local m = store.memory()
      local p = provider(m)
      assert(m:set(p:store_key(), stale_entry("at-old", "rt-old")))
      local seen_at_set
      local real_set = m.set
      m.set = function(self, key, entry, ttl)
        seen_at_set = { at = entry.access_token, rt = entry.refresh_token }
        return real_set(self, key, entry, ttl)
      end
      s:script("/token", { json = { access_token = "at-new", expires_in = 3600, refresh_token = "rt-new" } })
      local t = assert(p:token())
      assert.equal("at-new", t.access_token)
      assert.same({ at = "at-new", rt = "rt-new" }, seen_at_set)
      assert.equal("rt-new", m:get(p:store_key()).refresh_token)
    end)

    it("keeps a rotated token the store would not take, and saves it on the next call (issue 11)", function()
      local m = store.memory()
      local p = provider(m)
      assert(m:set(p:store_key(), stale_entry("at-old", "rt-old")))
      local real_set = m.set
      m.set = function() return nil, smartauth.errors.new("storage", "OOM command not allowed") end
      s:script("/token", { json = { access_token = "at-new", expires_in = 3600, refresh_token = "rt-new" } })
      -- the server has retired rt-old: the new token is handed out, not lost
      local t = assert(p:token())
      assert.equal("at-new", t.access_token)
      assert.equal("storage", p:save_error().kind)
      assert.equal("rt-old", m:get(p:store_key()).refresh_token)
      -- still failing: served from memory, no second refresh
      assert.equal("at-new", assert(p:token()).access_token)
      assert.equal(1, #s:requests())
      m.set = real_set
      assert.equal("at-new", assert(p:token()).access_token)
      assert.is_nil(p:save_error())
      assert.equal("rt-new", m:get(p:store_key()).refresh_token)
      assert.equal(1, #s:requests())
    end)

    it("removes the entry when the refresh token is dead (invalid_grant)", function()
      local m = store.memory()
      local p = assert(smartauth.provider { name = "svc", token_endpoint = s.url .. "/token", client_id = "pub",
        authorization_endpoint = "https://idp.example/authorize", store = m })
      assert(m:set(p:store_key(), stale_entry("at-old", "rt-dead")))
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local t, err = p:token()
      assert.is_nil(t)
      -- nobody to log in without a person: the server's answer, marked reauth
      assert.equal("oauth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.is_true(err.reauth)
      assert.is_nil(m:get(p:store_key()))
    end)

    it("keeps a still-valid token and its entry through a passing failure", function()
      local m = store.memory()
      local p = provider(m, { retry = false })
      local e = stale_entry("at-old", "rt-old")
      assert(m:set(p:store_key(), e))
      s:script("/token", { status = 503, body = "busy" })
      local t = assert(p:token())
      assert.equal("at-old", t.access_token)
      assert.equal(e, m:get(p:store_key()))
    end)

    it("refreshes once for two providers sharing a store in one process", function()
      local m = store.memory()
      local p1, p2 = provider(m), provider(m)
      assert(m:set(p1:store_key(), stale_entry("at-old", "rt-old")))
      s:script("/token", { delay_ms = 150, json = { access_token = "at-new", expires_in = 3600,
        refresh_token = "rt-new" } }, 0)
      local t1 = smartauth.spawn(function() return p1:token() end)
      local t2 = smartauth.spawn(function() return p2:token() end)
      local a, b = t1:wait(), t2:wait()
      assert.equal("at-new", a.access_token)
      assert.equal("at-new", b.access_token)
      assert.equal(1, #s:requests())
    end)
  end)
end)
