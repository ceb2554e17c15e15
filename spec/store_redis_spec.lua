-- The Redis store against a real redis-server (Debian's) started here on a
-- free loopback port: the store contract (helpers/store_contract.lua:
-- entries, ttl, locks, hostile values, single flight across 8 processes),
-- then what only Redis has: keys under the prefix, expiry with the token
-- (PX), the owner-only lock, authentication, databases, encryption, and a
-- server restart mid-run.
local compat = require "smartauth.compat"
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local store = require "smartauth.store"
local proc = require "helpers.proc"
local redis = require "helpers.redis"
local server = require "helpers.server"
local contract = require "helpers.store_contract"


local function entry(at)
  return { v = 1, access_token = at, token_type = "Bearer", refresh_token = "rt-" .. at,
    expires_at = clock.now() + 3600, issued_at = clock.now(), scope = "read" }
end

describe("store.redis", function()
  local r
  setup(function() r = redis.start() end)
  teardown(function() r:stop() end)
  before_each(function() r:command("FLUSHALL") end)

  local function open(extra)
    local o = { port = r.port }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(store.redis(o))
  end

  -- get/set/delete, ttl, argument errors, the lock across tasks and
  -- connections, hostile values, single flight across processes: the contract.
  contract.run("redis", {
    open = open,
    second = open,
    plant = function(key, bytes) r:command("SET", "smartauth:t:" .. key, bytes) end,
    caller = function() return "redis", r.port end,
    after_flight = function(p) -- the lock released by its owner
      assert.equal(0, r:command("EXISTS", "smartauth:l:" .. p:store_key()))
    end,
  })

  it("gets, sets and deletes entries under the prefix", function()
    local s = open()
    assert.is_nil(s:get("svc.k"))
    -- one entry, built once: two calls may straddle a second under valgrind
    local written = entry("at-1")
    assert.is_true(s:set("svc.k", written))
    local e = assert(s:get("svc.k"))
    assert.equal("at-1", e.access_token)
    assert.equal("integer", compat.math_type(e.expires_at))
    assert.same(written, e)
    local raw = r:command("GET", "smartauth:t:svc.k")
    assert.matches('"smartauth_store":1', raw, 1, true)
    assert.is_true(s:delete("svc.k"))
    assert.is_nil(s:get("svc.k"))
    assert.equal(0, r:command("EXISTS", "smartauth:t:svc.k"))
  end)

  it("expires entries with the token (PX)", function()
    local s = open { prefix = "app:" }
    assert(s:set("k", entry("x"), 120))
    local pttl = r:command("PTTL", "app:t:k")
    assert.is_true(pttl > 119000 and pttl <= 120000, "PTTL " .. pttl)
    assert(s:set("k", entry("x"), 0.05))
    proc.sleep(0.1)
    assert.is_nil(s:get("k"))
    assert(s:set("k", entry("x")))
    assert.equal(-1, r:command("PTTL", "app:t:k"))
  end)

  it("clamps a huge or infinite ttl and refuses NaN, never raising", function()
    local s = open()
    for _, ttl in ipairs { 1e300, math.huge, 2 ^ 62 } do
      local ok, res, err = pcall(s.set, s, "k", entry("big"), ttl)
      assert.is_true(ok, tostring(res))
      assert.is_true(res, tostring(err))
      local pttl = r:command("PTTL", "smartauth:t:k")
      assert.is_true(pttl > 0 and pttl <= store.MAX_TTL * 1000, "PTTL " .. tostring(pttl))
      assert.equal("big", assert(s:get("k")).access_token)
    end
    local ok, res, err = pcall(s.set, s, "k", entry("nan"), 0 / 0)
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.equal("storage", err.kind)
    assert.matches("ttl", err.description)
    assert.equal("big", assert(s:get("k")).access_token)
  end)

  it("keeps a token whose server said expires_in = 1e300 (p:token() neither raises nor fails)", function()
    local ts = server.start()
    local ok, err = pcall(function()
      ts:script("/token", { body = '{"access_token":"at-huge","token_type":"Bearer","expires_in":1e300}',
        headers = { ["content-type"] = "application/json" } })
      local p = assert(smartauth.provider { name = "huge", token_endpoint = ts.url .. "/token",
        client_id = "cid", client_secret = "csecret", store = open() })
      local tok = assert(p:token())
      assert.equal("at-huge", tok.access_token)
      assert.equal("at-huge", assert(p.options.store:get(p:store_key())).access_token)
      local pttl = r:command("PTTL", "smartauth:t:" .. p:store_key())
      assert.is_true(pttl > 0 and pttl <= store.MAX_TTL * 1000, "PTTL " .. tostring(pttl))
    end)
    ts:stop()
    assert(ok, err)
  end)

  it("ends a command at its timeout, however slowly the server trickles its answer", function()
    -- a fake Redis that answers PING at once and GET one byte every 0.3 s
    local port = redis.free_port()
    local fake = [[
      local socket = require "socket"
      local srv = assert(socket.bind("127.0.0.1", tonumber(os.getenv("FAKE_REDIS_PORT"))))
      io.stdout:write("ready\n") io.stdout:flush()
      local c = assert(srv:accept())
      c:settimeout(10)
      while true do
        local line = c:receive("*l")
        if not line then break end
        if line:match("^%*") then
          local n = tonumber(line:sub(2))
          local cmd = {}
          for i = 1, n do
            c:receive("*l")
            cmd[i] = c:receive("*l")
          end
          if cmd[1] == "PING" then
            c:send("+PONG\r\n")
          else
            local value = string.rep("x", 40)
            local reply = "$" .. #value .. "\r\n" .. value .. "\r\n"
            for i = 1, #reply do
              if not c:send(reply:sub(i, i)) then break end
              socket.sleep(0.3)
            end
          end
        end
      end
    ]]
    local child = io.popen("FAKE_REDIS_PORT=" .. port .. " exec " .. proc.LUA .. " -e " .. proc.shell_quote(fake) ..
      " 2>/dev/null", "r")
    assert.equal("ready", child:read("*l"))
    local s = open { port = port, timeout = 1 }
    local t0 = core.monotonic()
    local e, err = s:get("k")
    local took = core.monotonic() - t0
    s:close()
    child:close()
    assert.is_nil(e)
    assert.equal("storage", err.kind)
    assert.is_true(err.retryable)
    assert.matches("timed out", err.description)
    assert.is_true(took >= 0.9 and took < 1.8, "took " .. took .. " s")
  end)

  it("encrypts values when given a key", function()
    local key = "redis-key-0123456789abcdef"
    local s = open { key = key }
    assert(s:set("k", entry("at-secret")))
    local raw = r:command("GET", "smartauth:t:k")
    assert.equal("SAE\1", raw:sub(1, 4))
    assert.is_nil(raw:find("at-secret", 1, true))
    assert.equal("at-secret", s:get("k").access_token)
    local _, err = open { key = "another-key-0123456789abc" }:get("k")
    assert.matches("different key", err.description)
    _, err = open():get("k")
    assert.matches("encrypted", err.description)
  end)

  it("selects the database", function()
    local s = open { db = 3 }
    assert(s:set("k", entry("x")))
    local replies = r:commands { { "SELECT", "3" }, { "EXISTS", "smartauth:t:k" } }
    assert.equal(1, replies[2])
    assert.equal(0, r:command("EXISTS", "smartauth:t:k"))
  end)

  it("closes the connection of a store nobody holds any more (collected)", function()
    local weak = setmetatable({}, { __mode = "v" })
    collectgarbage()
    collectgarbage()
    -- counted by the server: this process's other descriptors come and go
    local function clients()
      local list = r:command("CLIENT", "LIST")
      local n = 0
      for _ in tostring(list):gmatch("[^\n]+") do n = n + 1 end
      return n
    end
    local before = clients()
    for i = 1, 10 do weak[i] = open() end
    assert.equal(before + 10, clients())
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
    assert.equal(before, clients())
  end)

  it("checks its options", function()
    local s, err = store.redis { port = r.port, hots = "x" }
    assert.is_nil(s)
    assert.equal("config", err.kind)
    assert.matches("'hots' is not known", err.description)
    s, err = store.redis { port = r.port, tls = true }
    assert.is_nil(s)
    assert.matches("'tls' needs hiredis", err.description)
    s, err = store.redis { port = r.port, key = "short-key" }
    assert.is_nil(s)
    assert.equal("config", err.kind)
    assert.matches("at least 16 bytes", err.description)
    assert.is_nil(err.description:find("short-key", 1, true))
    s, err = store.redis { port = 70000 }
    assert.is_nil(s)
    assert.matches("'port' must be at most", err.description)
    s, err = store.redis { port = redis.free_port(), connect_timeout = 1 }
    assert.is_nil(s)
    assert.equal("storage", err.kind)
    assert.is_true(err.retryable)
    assert.matches("127.0.0.1:%d+", err.description)
  end)

  describe("lock", function()
    it("excludes other clients and is released by its owner", function()
      local a, b = open(), open()
      local unlock = assert(a:lock("k", 5))
      local owner = r:command("GET", "smartauth:l:k")
      assert.equal(24, #owner)
      local pttl = r:command("PTTL", "smartauth:l:k")
      assert.is_true(pttl > 4000 and pttl <= 5000)
      local t0 = core.monotonic()
      local u, err = b:lock("k", 0.1)
      assert.is_nil(u)
      assert.equal("storage", err.kind)
      assert.is_true(err.retryable)
      assert.is_true(core.monotonic() - t0 >= 0.1)
      assert.is_true(unlock())
      assert.equal(0, r:command("EXISTS", "smartauth:l:k"))
      u = assert(b:lock("k", 1))
      u()
    end)

    it("is never released by anyone but its owner", function()
      local a = open()
      local unlock = assert(a:lock("k", 5))
      -- the lock expired and someone else took it meanwhile
      r:command("SET", "smartauth:l:k", "someone-else", "PX", "5000")
      local ok, err = unlock()
      assert.is_nil(ok)
      assert.matches("had expired", err.description)
      assert.equal("someone-else", r:command("GET", "smartauth:l:k"))
    end)

    it("expires, so a dead holder does not block others for long", function()
      local a, b = open(), open()
      assert(a:lock("k", 0.2)) -- never unlocked
      local t0 = core.monotonic()
      local u = assert(b:lock("k", 2))
      local waited = core.monotonic() - t0
      assert.is_true(waited > 0.1 and waited < 1, "waited " .. waited)
      u()
    end)
  end)

  describe("with a password", function()
    local rp
    setup(function() rp = redis.start { password = "s3cret-pw" } end)
    teardown(function() rp:stop() end)

    it("authenticates, and a wrong password is an error that does not show it", function()
      local s = assert(store.redis { port = rp.port, password = "s3cret-pw" })
      assert(s:set("k", entry("x")))
      assert.equal("x", s:get("k").access_token)
      local bad, err = store.redis { port = rp.port, password = "wrong-pw-value" }
      assert.is_nil(bad)
      assert.equal("storage", err.kind)
      assert.is_nil(err.description:find("wrong-pw-value", 1, true))
      bad, err = store.redis { port = rp.port }
      assert.is_nil(bad)
      assert.equal("storage", err.kind)
      s, err = open():get("k") -- the other server: no such entry, no error
      assert.is_nil(s)
      assert.is_nil(err)
    end)
  end)

  describe("server restart", function()
    it("is a storage error while down, never a broken entry, and recovers by itself", function()
      local s = open()
      local results = { ok = 0, err = 0 }
      local t0 = core.monotonic()
      for i = 1, 200 do
        if i == 60 then r:kill() end
        if i == 120 then r:restart() end
        -- one entry: two calls to entry() may straddle a second of the clock
        local want = entry("at-" .. i)
        local ok, err = s:set("k", want)
        if ok then
          local e, gerr = s:get("k")
          if e then
            assert.equal("at-" .. i, e.access_token)
            assert.same(want, e)
            results.ok = results.ok + 1
          else
            assert.equal("storage", gerr.kind)
            results.err = results.err + 1
          end
        else
          assert.equal("storage", err.kind)
          assert.is_true(err.retryable)
          assert.matches("redis at 127.0.0.1:" .. r.port, err.description, 1, true)
          results.err = results.err + 1
        end
      end
      assert.equal(59 + 81, results.ok)
      assert.equal(60, results.err)
      assert.is_true(core.monotonic() - t0 < 10)
      -- locks work again too
      local u = assert(s:lock("k", 1))
      assert.is_true(u())
    end)

    it("costs no failed call when the server restarted while idle", function()
      local s = open()
      assert(s:set("k", entry("x")))
      r:restart()
      assert.is_nil(s:get("k")) -- no persistence: empty, but a clean answer
      assert.is_nil(select(2, s:get("k")))
      assert(s:set("k", entry("y")))
      assert.equal("y", s:get("k").access_token)
    end)

    it("lets p:token() keep its cached token and get a new one after the restart", function()
      local ts = server.start()
      local ok, err = pcall(function()
        local p = assert(smartauth.provider { name = "rs", token_endpoint = ts.url .. "/token",
          client_id = "cid", client_secret = "csecret", store = open() })
        local t1 = assert(p:token())
        r:kill()
        assert.equal(t1, p:token()) -- cached in the process, store not needed
        local t, terr = p:token { scope = "other" } -- needs the lock: store down
        assert.is_nil(t)
        assert.equal("storage", terr.kind)
        r:restart()
        assert.truthy(p:token { scope = "other" })
      end)
      ts:stop()
      assert(ok, err)
    end)
  end)
end)
