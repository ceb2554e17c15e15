-- HTTP/2: concurrent HTTPS requests to one server share a few connections
-- (multiplexed streams) instead of one connection each; HTTP/1.1 over TLS
-- still gets its parallel connections. Against a real nginx speaking h2
-- (ALPN) with the echo module answering after 50 ms. The timing target
-- (1,000 requests within 2x one request) is in `make bench`, not here.
local smartauth = require "smartauth"
local engine = require "smartauth.engine"
local certs = require "helpers.certs"
local nginx_h2 = require "helpers.nginx_h2"
local proc = require "helpers.proc"

-- nginx's access log is written after the answer is sent: wait for it.
local function log_with(n, requests)
  local deadline = proc.now() + 5
  local l = n:log()
  while l.requests < requests and proc.now() < deadline do
    proc.sleep(0.02)
    l = n:log()
  end
  return l
end

-- count requests at once as tasks; returns how many got a 200 with the body
local function run_concurrently(url, ca_file, count)
  local ok, errs = 0, {}
  for _ = 1, count do
    smartauth.spawn(function()
      local res, err = engine.request { url = url, ca_file = ca_file, timeout = 30 }
      if res and res.status == 200 and res.body == '{"ok":true}\n' then
        ok = ok + 1
      else
        errs[#errs + 1] = tostring(err or (res and res.status))
      end
    end)
  end
  smartauth.run()
  return ok, errs
end

describe("HTTP/2", function()
  local c, n

  setup(function()
    c = certs.make()
    -- 1,000 streams per connection: libcurl 7.88 gives a transfer beyond a
    -- full connection a new connection of its own rather than waiting for
    -- the next one's handshake, so with nginx's default of 128 the last
    -- 872 requests would each open one (measured).
    n = nginx_h2.start { cert = c.cert, key = c.key, streams = 1000 }
  end)
  teardown(function()
    if n then n:stop() end
    if c then certs.cleanup(c) end
  end)
  after_each(function() smartauth.run() end)

  it("sends 1,000 concurrent requests over at most 10 connections, every answer arriving", function()
    local ok, errs = run_concurrently(n.url .. "/slow", c.ca_file, 1000)
    assert.same({}, errs)
    assert.equal(1000, ok)
    local l = log_with(n, 1000)
    assert.equal(1000, l.requests)
    assert.equal(1000, l.h2, "every request over HTTP/2")
    assert.equal(1000, l.ok)
    assert.is_true(l.connections <= 10, ("%d connections"):format(l.connections))
  end)

  it("still opens parallel connections to an HTTPS server that speaks only HTTP/1.1", function()
    n:clear_log()
    local t0 = proc.now()
    local ok, errs = run_concurrently(n.url1 .. "/slow", c.ca_file, 20)
    local elapsed = proc.now() - t0
    assert.same({}, errs)
    assert.equal(20, ok)
    local l = log_with(n, 20)
    assert.equal(20, l.requests)
    assert.equal(0, l.h2)
    -- one connection each (an idle one from before may be reused), all at
    -- once: one after another they would take 20 x 50 ms (natively this
    -- takes ~0.06 s, under valgrind ~0.7)
    assert.is_true(l.connections >= 19, ("%d connections"):format(l.connections))
    assert.is_true(elapsed < 0.95, ("took %.3f s"):format(elapsed))
  end)
end)
