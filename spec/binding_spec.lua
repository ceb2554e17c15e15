-- The C binding's boundary with hostile Lua values: option tables that answer
-- through __index (proxies whose strings exist only while on the stack) and
-- numbers C must not convert blindly (NaN, infinities, huge, fractional).
-- `make sanitize` runs this file against the ASan build of the core.
local core = require "smartauth.core"
local core_http = require "smartauth.core_http"
local core_redis = require "smartauth.core_redis"
local http = require "smartauth.http"
local server = require "helpers.server"
local redis = require "helpers.redis"
local proc = require "helpers.proc"

-- A fresh, non-interned copy of s each time (long strings are never interned;
-- rep + concat build a new object on every call), so the only reference to
-- it is the one the binding gets from the metamethod.
local function fresh(s)
  return (table.concat { s:sub(1, 1), s:sub(2) }):rep(1)
end

-- A table whose every field is computed on access and dropped right after,
-- with a full collection before each answer to collect whatever the binding
-- popped a moment ago.
local function proxy(fields)
  return setmetatable({}, {
    __index = function(_, k)
      collectgarbage("collect")
      local v = fields[k]
      if type(v) == "string" then return fresh(v) end
      return v
    end,
    __len = function() return 0 end,
  })
end

-- Header lines long enough that a reuse of their freed memory shows.
local function header_lines(n)
  local lines = {}
  for i = 1, n do
    lines[i] = ("X-Proxy-%d: %s"):format(i, ("v%d-"):format(i):rep(20))
  end
  return lines
end

local function header_proxy(lines)
  return setmetatable({}, {
    __index = function(_, i)
      collectgarbage("collect")
      -- build garbage of the same size so freed blocks get reused
      for _ = 1, 8 do local _ = ("#"):rep(#(lines[i] or "")) .. i end
      return lines[i] and fresh(lines[i]) or nil
    end,
    __len = function() return #lines end,
  })
end

describe("binding with proxy option tables", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function check_recorded(lines, body, path)
    local r = s:last_request()
    assert.equal("PUT", r.method)
    assert.equal(path, r.path)
    assert.equal(body, r.body)
    for _, line in ipairs(lines) do
      local name, value = line:match("^([^:]+): (.*)$")
      assert.equal(value, r.headers[name:lower()], name)
    end
  end

  for _, via in ipairs { "smartauth.http.request", "engine:request", "engine:start" } do
    it("sends url, method, headers and body intact through " .. via, function()
      local lines = header_lines(40)
      local body = ("b=%s"):format(("0123456789"):rep(50))
      local path = "/proxied/" .. ("p"):rep(100)
      -- no kept-alive socket left behind in the shared engine for later specs
      s:script(path, { status = 200, headers = { Connection = "close" } })
      local opts = proxy {
        url = s.url .. path, method = "PUT", body = body, headers = header_proxy(lines),
      }
      local engine = core_http.engine()
      local res
      if via == "smartauth.http.request" then
        -- this file's copy of smartauth.http (busted reloads modules per
        -- file) is done with its engine: close it now rather than at some
        -- later collection, so no socket of it reaches later specs' children
        finally(function() http.engine():close() end)
        res = assert(http.request(opts))
      elseif via == "engine:request" then
        res = assert(engine:request(opts))
      else
        local req = assert(engine:start(opts))
        collectgarbage("collect")
        while not req:done() do engine:step(0.05) end
        res = assert(req:result())
        req:close()
      end
      engine:close()
      assert.equal(200, res.status)
      check_recorded(lines, body, path)
    end)
  end

  it("sends a header given as a number as its text", function()
    -- lua_tolstring turns the popped copy into a string: the bytes must still
    -- be alive when the request goes out
    local engine = core_http.engine()
    local res = assert(engine:request { url = s.url .. "/n", headers = { "X-A: 1", 2 ^ 53 } })
    engine:close()
    assert.equal(404, res.status)
    assert.equal("1", s:last_request().headers["x-a"])
  end)
end)

describe("binding redis_open with a proxy option table", function()
  local r
  -- longer than 40 bytes: a long string is never interned, so the proxy's
  -- copy is the only reference to its bytes (the host, a short string, is
  -- interned and kept alive by constants elsewhere)
  local password = ("s3cret-pass-"):rep(4)

  setup(function() r = redis.start { password = password } end)
  teardown(function() if r then r:stop() end end)

  it("authenticates with the password and reaches the host it was given", function()
    local st = assert(core_redis.redis_open(proxy {
      host = "127.0.0.1", port = r.port, password = password,
      key = ("k"):rep(48), timeout = 2, connect_timeout = 2,
    }))
    assert(st:set("binding:proxy", "v"))
    assert.equal("v", st:get("binding:proxy"))
    -- ttls that are not finite integers in range never reach C
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, 1e300, 1.5, -1 } do
      assert.has_error(function() st:set("binding:proxy", "v", v) end)
      assert.has_error(function() st:try_lock("binding:lock", v) end)
    end
    -- one try: a held lock is false, not an error (store/lock.lua waits)
    local owner = assert(st:try_lock("binding:lock", 5000))
    assert.is_false(st:try_lock("binding:lock", 5000))
    assert.is_true(st:unlock("binding:lock", owner))
    assert.equal("v", st:get("binding:proxy"))
    st:close()
  end)
end)

describe("binding file store lock", function()
  it("tries once: false while another open holds it, then the lock", function()
    local dir = proc.tmpdir("smartauth-binding.XXXXXX")
    local fs = assert(core.fstore_open(dir))
    local held = assert(fs:try_lock("x"))
    local t0 = core.monotonic()
    assert.is_false(fs:try_lock("x"))
    assert.is_true(core.monotonic() - t0 < 0.5)
    held:unlock()
    assert(fs:try_lock("x")):unlock()
    fs:close()
    proc.rmtree(dir)
  end)
end)

describe("binding numbers", function()
  local bad = { 0 / 0, math.huge, -math.huge, 1e300, -1 }

  it("refuses a timeout or connect_timeout that is not a finite 0..86400", function()
    local engine = core_http.engine()
    for _, field in ipairs { "timeout", "connect_timeout" } do
      for _, v in ipairs(bad) do
        local ok, err = pcall(engine.request, engine,
          { url = "http://127.0.0.1:9/", [field] = v })
        assert.is_false(ok, field .. " = " .. tostring(v))
        assert.matches("option '" .. field .. "' must be 0..86400 seconds", err, 1, true)
      end
    end
    engine:close()
  end)

  it("refuses a max_body that is not a positive integer", function()
    local engine = core_http.engine()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, 1e300, 1.5, 0, -3, "x" } do
      local ok, err = pcall(engine.request, engine,
        { url = "http://127.0.0.1:9/", max_body = v })
      assert.is_false(ok, tostring(v))
      assert.matches("option 'max_body' must be a positive integer", err, 1, true)
    end
    engine:close()
  end)

  it("refuses step and spin values that are not finite and in range", function()
    local engine = core_http.engine()
    for _, v in ipairs(bad) do
      assert.has_error(function() engine:step(v) end)
      assert.has_error(function() engine:spin(v) end)
    end
    engine:close()
  end)

  it("refuses redis ports, db numbers and timeouts that are not finite integers", function()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, 1e300, 1.5 } do
      for _, field in ipairs { "port", "db" } do
        local ok, err = pcall(core_redis.redis_open, { host = "127.0.0.1", [field] = v })
        assert.is_false(ok, field .. " = " .. tostring(v))
        assert.matches("option '" .. field .. "' must be an integer", err, 1, true)
      end
    end
    for _, v in ipairs(bad) do
      for _, field in ipairs { "timeout", "connect_timeout" } do
        local ok, err = pcall(core_redis.redis_open, { host = "127.0.0.1", [field] = v })
        assert.is_false(ok, field .. " = " .. tostring(v))
        assert.matches("option '" .. field .. "' must be 0..86400 seconds", err, 1, true)
      end
    end
  end)

  it("refuses random lengths and bits that are not integers", function()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, 1e300, 1.5 } do
      assert.has_error(function() core.random(v) end)
      assert.has_error(function() core.sha2(v, "x") end)
    end
  end)
end)
