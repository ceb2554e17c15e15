--- The store contract (smartauth.store's header), written once and run
-- against each built-in backend, after lua-resty-openidc's one spec per
-- feature run over shared support code:
--
--   local contract = require "helpers.store_contract"
--   describe("store.file", function()
--     before_each(...)   -- the backend's own fixtures (a directory, a server)
--     contract.run("file", {
--       open = function() return assert(store.file { dir = tmp, key = false }) end,
--       second = function() ... end,      -- optional: another store on the same entries
--       plant = function(key, bytes) ... end,  -- optional: bytes where key's value lives
--       caller = function() return "file", tmp end,  -- optional: for proc.token_callers
--       after_flight = function(p) ... end,          -- optional: backend checks after it
--     })
--   end)
--
-- Without `second`, the lock's rivals are other tasks of this process only;
-- without `plant`, the hostile-entry cases are left out (a memory store
-- keeps Lua tables, not bytes); without `caller`, the multi-process single
-- flight is.
-- Busted's API and luassert, as a spec file sees them (a helper module
-- does not share the spec's environment).
local compat = require "smartauth.compat"
local busted = require "busted"
local assert = require "luassert"
local describe, it = busted.describe, busted.it
local setup, teardown, before_each, after_each = busted.setup, busted.teardown, busted.before_each, busted.after_each
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local engine = require "smartauth.engine"
local proc = require "helpers.proc"
local server = require "helpers.server"

local M = {}

local MIB = 1048576

--- An entry as token:to_entry() makes them, with a nested table besides.
function M.entry(at, extra)
  local now = clock.now()
  local e = { v = 1, access_token = at, token_type = "Bearer", refresh_token = "rt-" .. at,
    expires_at = now + 3600, issued_at = now, scope = "read", id_token = "id." .. at }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- What the lock gives to a rival task of this process: unlock or nil, err.
local function from_task(s, key, ttl)
  return smartauth.spawn(function() return s:lock(key, ttl) end):wait()
end

local function envelope(key, entry, extra)
  local t = { '{"smartauth_store":1,"key":"' .. key .. '","entry":' .. entry }
  if extra then t[#t + 1] = "," .. extra end
  return table.concat(t) .. "}"
end

-- Values no store of ours writes: each must read as a storage error that
-- names the entry (the C stores name the file, or say "entry" for Redis),
-- never as an entry.
local HOSTILE = {
  { "truncated JSON", '{"smartauth_store":1,"key":"svc.h","ent' },
  { "binary garbage", "\0\1\2\255garbage" },
  { "a JSON array", "[1,2,3]" },
  { "a JSON string", '"svc.h"' },
  { "an envelope without a version", '{"key":"svc.h","entry":{"v":1}}' },
  { "a version that is not a number", '{"smartauth_store":"1","key":"svc.h","entry":{"v":1}}' },
  { "another key's envelope", envelope("other", '{"v":1}') },
  { "an envelope without an entry", '{"smartauth_store":1,"key":"svc.h"}' },
  { "an entry that is not a table", envelope("svc.h", '"at-1"') },
  { "an expiry that is not a number", envelope("svc.h", '{"v":1}', '"expires_at":"soon"') },
  -- a well-formed envelope, but more than any store of ours writes
  { "an oversized envelope", envelope("svc.h", '{"v":1,"pad":"' .. ("x"):rep(2 * MIB) .. '"}') },
}

--- The contract suite for one backend (see the header).
function M.run(name, b)
  describe("contract (" .. name .. ")", function()
    local s, opened
    -- every store a test opens is closed after it: its descriptors and
    -- connections do not wait for the collector (the backends' own specs
    -- count descriptors)
    local function second()
      local o = b.second()
      opened[#opened + 1] = o
      return o
    end
    before_each(function()
      s = b.open()
      opened = { s }
    end)
    after_each(function()
      clock.offset = 0
      for _, o in ipairs(opened) do
        if o.close then o:close() end
      end
    end)

    describe("entries", function()
      it("gets, sets and deletes; an absent entry is nil without an error", function()
        assert.is_nil(s:get("svc.k"))
        assert.is_nil(select(2, s:get("svc.k")))
        local e = M.entry("at-1", { extra = { nested = true, list = { 1, 2 } } })
        assert.is_true(s:set("svc.k", e))
        local got = assert(s:get("svc.k"))
        assert.same(e, got)
        assert.equal(1, got.v)
        assert.equal("integer", compat.math_type(got.expires_at))
        assert.is_true(s:set("svc.k", M.entry("at-2")))
        assert.equal("at-2", s:get("svc.k").access_token)
        assert.is_true(s:delete("svc.k"))
        assert.is_true(s:delete("svc.k")) -- deleting nothing is no error
        assert.is_nil(s:get("svc.k"))
        assert.is_nil(select(2, s:get("svc.k")))
      end)

      it("keeps keys apart", function()
        assert(s:set("svc.a", M.entry("a")))
        assert(s:set("svc.b", M.entry("b")))
        assert(s:delete("svc.a"))
        assert.is_nil(s:get("svc.a"))
        assert.equal("b", s:get("svc.b").access_token)
      end)

      it("expires an entry written with a ttl, and only that one", function()
        assert(s:set("svc.t", M.entry("x"), 60))
        assert(s:set("svc.forever", M.entry("y")))
        assert.truthy(s:get("svc.t"))
        clock.offset = 61
        assert.is_nil(s:get("svc.t"))
        assert.is_nil(select(2, s:get("svc.t")))
        assert.equal("y", s:get("svc.forever").access_token)
      end)

      it("clamps a huge or infinite ttl and refuses NaN, never raising", function()
        for _, ttl in ipairs { math.huge, 1e300, 2 ^ 62 } do
          local ok, res, err = pcall(s.set, s, "svc.k", M.entry("big"), ttl)
          assert.is_true(ok, tostring(res))
          assert.is_true(res, tostring(err))
          assert.equal("big", assert(s:get("svc.k")).access_token)
        end
        local ok, res, err = pcall(s.set, s, "svc.k", M.entry("nan"), 0 / 0)
        assert.is_true(ok, tostring(res))
        assert.is_nil(res)
        assert.equal("storage", err.kind)
        assert.matches("ttl", err.description)
        assert.equal("big", assert(s:get("svc.k")).access_token)
      end)

      it("raises on programming mistakes, naming the argument", function()
        local function raises(pattern, fn) assert.error_matches(fn, pattern) end
        raises("bad argument #1 to 'get' %(non%-empty string key expected, got string%)", function() s:get("") end)
        raises("bad argument #1 to 'get' .*got nil", function() s:get(nil) end)
        raises("bad argument #1 to 'set' .*got number", function() s:set(1, M.entry("x")) end)
        raises("bad argument #2 to 'set' %(table expected, got string%)", function() s:set("k", "x") end)
        raises("bad argument #3 to 'set'", function() s:set("k", M.entry("x"), -1) end)
        raises("bad argument #3 to 'set'", function() s:set("k", M.entry("x"), "60") end)
        raises("bad argument #1 to 'delete'", function() s:delete({}) end)
        raises("bad argument #1 to 'lock'", function() s:lock("", 1) end)
        raises("bad argument #2 to 'lock'", function() s:lock("k", 0) end)
        raises("bad argument #2 to 'lock'", function() s:lock("k", 86401) end)
        raises("bad argument #2 to 'lock'", function() s:lock("k", 0 / 0) end)
        assert.is_nil(s:get("k")) -- nothing was written on the way
      end)
    end)

    describe("lock", function()
      it("excludes other tasks until released, and yields while they wait", function()
        local order, ticks = {}, 0
        local unlock = assert(s:lock("svc.l", 5))
        local waiter = smartauth.spawn(function()
          local u = assert(s:lock("svc.l", 2))
          order[#order + 1] = "task"
          return u()
        end)
        local ticker = smartauth.spawn(function()
          for _ = 1, 5 do ticks = ticks + 1; engine.sleep(0.01) end
        end)
        local t0 = core.monotonic()
        ticker:wait()
        assert.equal(5, ticks) -- the waiter did not stop the program
        assert.equal("running", waiter.status)
        order[#order + 1] = "main"
        assert.is_true(unlock())
        assert.is_true(waiter:wait())
        assert.same({ "main", "task" }, order)
        assert.is_true(core.monotonic() - t0 < 1)
      end)

      it("locks each key on its own", function()
        local unlock = assert(s:lock("svc.l", 5))
        local u = assert(from_task(s, "svc.other", 1))
        assert.is_true(u())
        assert.is_true(unlock())
      end)

      it("may be taken again by its holder (nested); only the last unlock frees it", function()
        local u1 = assert(s:lock("svc.l", 5))
        local u2 = assert(s:lock("svc.l", 5))
        assert.is_true(u2())
        assert.is_true(u2()) -- a second call does nothing
        assert.is_nil((from_task(s, "svc.l", 0.05)))
        assert.is_true(u1())
        local u = assert(from_task(s, "svc.l", 0.5))
        assert.is_true(u())
      end)

      it("times out with a retryable storage error", function()
        local unlock = assert(s:lock("svc.l", 5))
        local t0 = core.monotonic()
        local u, err = from_task(s, "svc.l", 0.15)
        local waited = core.monotonic() - t0
        assert.is_nil(u)
        assert.equal("storage", err.kind)
        assert.is_true(err.retryable)
        assert.matches("timed out after 0.15 s waiting for the lock on 'svc.l'", err.description, 1, true)
        assert.is_true(waited >= 0.15 and waited < 1, "waited " .. waited)
        assert.is_true(unlock())
      end)

      it("takes over a holder that kept it past its ttl", function()
        assert(from_task(s, "svc.l", 0.1)) -- a task that never unlocks
        local t0 = core.monotonic()
        local u = assert(s:lock("svc.l", 2))
        assert.is_true(core.monotonic() - t0 < 1.5)
        assert.is_true(u())
      end)
    end)

    if b.second then
      describe("with a second store on the same entries", function()
        it("sees the first store's entries", function()
          local other = second()
          assert(s:set("svc.k", M.entry("shared")))
          assert.equal("shared", assert(other:get("svc.k")).access_token)
          assert(other:delete("svc.k"))
          assert.is_nil(s:get("svc.k"))
        end)

        it("is excluded by the lock, nested or not, and times out retryably", function()
          local other = second()
          local u1 = assert(s:lock("svc.l", 5))
          local u2 = assert(s:lock("svc.l", 5))
          assert.is_true(u2())
          local t0 = core.monotonic()
          local u, err = other:lock("svc.l", 0.15)
          local waited = core.monotonic() - t0
          assert.is_nil(u)
          assert.equal("storage", err.kind)
          assert.is_true(err.retryable)
          assert.is_true(waited >= 0.15 and waited < 1, "waited " .. waited)
          assert.is_true(u1())
          u = assert(other:lock("svc.l", 0.5))
          assert.is_true(u())
        end)
      end)
    end

    if b.plant then
      describe("hostile values", function()
        for _, c in ipairs(HOSTILE) do
          it("reads " .. c[1] .. " as a storage error, not an entry", function()
            b.plant("svc.h", c[2])
            local e, err = s:get("svc.h")
            assert.is_nil(e)
            assert.equal("storage", err.kind)
            assert.is_false(err.retryable)
            assert.matches("svc.h", err.description, 1, true)
          end)
        end

        it("reads an empty value as a storage error", function()
          b.plant("svc.h", "")
          local e, err = s:get("svc.h")
          assert.is_nil(e)
          assert.equal("storage", err.kind)
        end)

        it("names a future format rather than calling it corrupt", function()
          b.plant("svc.h", '{"smartauth_store":2,"key":"svc.h","entry":{}}')
          local e, err = s:get("svc.h")
          assert.is_nil(e)
          assert.matches("format 2; this smartauth reads format 1", err.description, 1, true)
        end)

        it("reads an envelope past its expiry as absent", function()
          b.plant("svc.h", envelope("svc.h", '{"v":1}', '"expires_at":' .. (clock.now() - 1)))
          assert.is_nil(s:get("svc.h"))
          assert.is_nil(select(2, s:get("svc.h")))
        end)

        it("makes p:token() fail cleanly instead of using garbage", function()
          local p = assert(smartauth.provider { name = "c", token_endpoint = "http://127.0.0.1:9/token",
            client_id = "id", client_secret = "sec", store = s })
          b.plant(p:store_key(), '{"smartauth_store":1,"key":')
          local t, err = p:token()
          assert.is_nil(t)
          assert.equal("storage", err.kind)
        end)
      end)
    end

    if b.caller then
      describe("single flight across processes", function()
        local ts, sync
        setup(function() ts = server.start() end)
        teardown(function() ts:stop() end)
        before_each(function() sync = proc.tmpdir("smartauth-sync.XXXXXX") end)
        after_each(function() proc.rmtree(sync) end)

        it("8 processes on an almost-expired token: one refresh, one new token for all", function()
          ts:reset()
          local p = assert(smartauth.provider { name = "multi", token_endpoint = ts.url .. "/token",
            client_id = "cid", client_secret = "csecret", store = s })
          local now = clock.now()
          assert(s:set(p:store_key(), { v = 1, access_token = "at-old", token_type = "Bearer",
            refresh_token = "rt-old", expires_at = now + 5, issued_at = now - 3595 }))
          ts:script("/token", { delay_ms = 300, json = { access_token = "at-new", token_type = "Bearer",
            expires_in = 3600, refresh_token = "rt-new" } }, 0)
          local kind, where = b.caller()
          local elapsed, results = proc.token_callers(kind, where, ts.url .. "/token", sync, 8)
          for i = 1, 8 do
            assert.equal("at-new rt-new\n", results[i].out, "process " .. i .. ": " .. tostring(results[i].err))
          end
          local reqs = ts:requests()
          assert.equal(1, #reqs)
          assert.equal("refresh_token", reqs[1].form.grant_type)
          assert.equal("rt-old", reqs[1].form.refresh_token)
          local stored = assert(s:get(p:store_key()))
          assert.equal("at-new", stored.access_token)
          assert.equal("rt-new", stored.refresh_token)
          if b.after_flight then b.after_flight(p) end
          io.stderr:write(("\n[single flight, %s] 8 processes served in %.0f ms after the go signal\n")
            :format(name, elapsed * 1000))
        end)
      end)
    end
  end)
end

return M
