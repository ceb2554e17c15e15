-- The HTTP engine against a real server on loopback: reuse, limits,
-- timeouts, TLS, failure classification, and the non-blocking API.
local core_http = require "smartauth.core_http"
local http = require "smartauth.http"
local server = require "helpers.server"
local certs = require "helpers.certs"

describe("http engine", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  it("reuses one TCP connection for 50 sequential requests", function()
    local engine = core_http.engine()
    local before = s:connections()
    for i = 1, 50 do
      local res = assert(engine:request { method = "POST", url = s.url .. "/token",
        headers = { "Content-Type: application/x-www-form-urlencoded" },
        body = "grant_type=client_credentials" })
      assert.equal(200, res.status)
      assert.equal(i == 1 and 1 or 0, res.connects)
    end
    assert.equal(1, s:connections() - before)
    engine:close()
  end)

  it("shares the Lua state's engine between callers", function()
    local before = s:connections()
    for _ = 1, 5 do assert(http.request { url = s.url .. "/nothing" }) end
    assert.equal(1, s:connections() - before)
  end)

  it("sends the method, headers and body it was given, byte for byte", function()
    local res = assert(http.request { method = "PUT", url = s.url .. "/echo?x=1",
      headers = { "X-Test: a b", "Accept: application/json" }, body = "k=v&\0raw" })
    assert.equal(404, res.status)
    local r = s:last_request()
    assert.equal("PUT", r.method)
    assert.equal("/echo", r.path)
    assert.equal("x=1", r.query)
    assert.equal("a b", r.headers["x-test"])
    assert.equal("k=v&\0raw", r.body_raw)
    assert.is_nil(r.headers.expect)
  end)

  -- Idle handles stay set up for their last request and are reused as is
  -- for the very same request: any difference must reach the wire.
  it("never sends a kept handle's old setup for a different request", function()
    local engine = core_http.engine()
    local base = { method = "POST", url = s.url .. "/echo", headers = { "X-A: 1" }, body = "a=1" }
    local function send(changes)
      local req = {}
      for k, v in pairs(base) do req[k] = v end
      for k, v in pairs(changes or {}) do req[k] = v end
      if changes and changes.body == false then req.body = nil end
      local res = assert(engine:request(req))
      return s:last_request(), res
    end
    for _ = 1, 3 do
      local r = send()
      assert.equal("POST", r.method)
      assert.equal("a=1", r.body_raw)
      assert.equal("1", r.headers["x-a"])
    end
    local r = send { body = "a=2" }
    assert.equal("a=2", r.body_raw)
    r = send { headers = { "X-A: 2" } }
    assert.equal("2", r.headers["x-a"])
    r = send { headers = { "X-A: 1", "X-B: 1" } }
    assert.equal("1", r.headers["x-b"])
    r = send()
    assert.is_nil(r.headers["x-b"])
    r = send { method = "GET", body = false }
    assert.equal("GET", r.method)
    assert.equal("", r.body_raw)
    assert.is_nil(r.headers["content-length"])
    r = send { method = "PUT" }
    assert.equal("PUT", r.method)
    assert.equal("a=1", r.body_raw)
    r = send { url = s.url .. "/echo?q=2" }
    assert.equal("q=2", r.query)
    r = send()
    assert.equal("POST", r.method)
    assert.equal("", r.query)
    assert.equal("a=1", r.body_raw)
    -- a limit is part of the setup too, and a failed transfer's handle is
    -- set up afresh
    s:script("/small", { body = ("x"):rep(100) }, 3)
    local small = { url = s.url .. "/small", max_body = 100 }
    assert.equal(100, #assert(engine:request(small)).body)
    assert.is_nil((engine:request { url = s.url .. "/small", max_body = 99 }))
    assert.equal(100, #assert(engine:request(small)).body)
    r = send()
    assert.equal("a=1", r.body_raw)
    engine:close()
  end)

  it("lets a host turn the busy poll of blocking requests off", function()
    local engine = core_http.engine()
    assert.equal(100e-6, engine:spin())
    assert.equal(0, engine:spin(0))
    assert.equal(404, assert(engine:request { url = s.url .. "/nothing" }).status)
    assert.equal(0.001, engine:spin(0.001))
    assert.equal(404, assert(engine:request { url = s.url .. "/nothing" }).status)
    assert.has_error(function() engine:spin(-1) end)
    assert.has_error(function() engine:spin(1) end)
    assert.has_error(function() engine:spin("x") end)
    engine:close()
  end)

  it("returns response headers with lower-case names and joins repeats", function()
    s:script("/h", { status = 201, headers = { ["X-One"] = "1", ["Set-Thing"] = { "a", "b" } }, body = "ok" })
    local res = assert(http.request { url = s.url .. "/h" })
    assert.equal(201, res.status)
    assert.equal("1", res.headers["x-one"])
    assert.equal("a, b", res.headers["set-thing"])
    assert.equal("ok", res.body)
  end)

  -- fuzz_http found the header table cut values at a NUL byte (lengths came
  -- from strlen); they now carry their length, and such a reply is refused.
  it("refuses a response header holding a NUL byte, and keeps header bytes exact", function()
    s:script("/nul", { raw = "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 2\r\n\r\nok" })
    local res, err = http.request { url = s.url .. "/nul" }
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.is_false(err.retryable)
    s:script("/bytes", { raw = "HTTP/1.1 200 OK\r\nX-Bytes: \t a\1\127\255 b \t\r\nContent-Length: 2\r\n\r\nok" })
    res = assert(http.request { url = s.url .. "/bytes" })
    assert.equal("a\1\127\255 b", res.headers["x-bytes"])
  end)

  it("does not follow redirects", function()
    local res = assert(http.request { url = s.url .. "/redirect" })
    assert.equal(302, res.status)
    assert.equal(1, #s:requests())
  end)

  it("refuses a 10 MiB body with a size error (content-length and chunked)", function()
    s:script("/big", { body_size = 10 * 1024 * 1024 })
    local res, err = http.request { url = s.url .. "/big" }
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.matches("exceeds the limit of 1048576 bytes", err.description)
    s:script("/chunked", { chunked_size = 3 * 1024 * 1024 })
    res, err = http.request { url = s.url .. "/chunked" }
    assert.is_nil(res)
    assert.matches("exceeds the limit", err.description)
  end)

  it("honours a custom size limit", function()
    s:script("/small", { body = ("x"):rep(100) })
    assert.is_nil((http.request { url = s.url .. "/small", max_body = 99 }))
    s:script("/small", { body = ("x"):rep(100) })
    assert.equal(100, #assert(http.request { url = s.url .. "/small", max_body = 100 }).body)
  end)

  it("times out on a server that never answers", function()
    s:script("/hang", { hang = true })
    local t0 = os.clock()
    local res, err = http.request { url = s.url .. "/hang", timeout = 0.3 }
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_true(err.retryable)
    assert.is_true(os.clock() - t0 < 2)
  end)

  it("classifies a closed port as a network error", function()
    local res, err = http.request { url = "http://127.0.0.1:1/x" }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_true(err.retryable)
  end)

  it("classifies a connection closed mid-answer as a network error", function()
    s:script("/close", { close = true })
    local _, err = http.request { url = s.url .. "/close" }
    assert.equal("network", err.kind)
    s:script("/trunc", { body = "{\"a\":1}", truncate = true })
    _, err = http.request { url = s.url .. "/trunc" }
    assert.equal("network", err.kind)
  end)

  -- libcurl says "unsupported protocol" or "weird server reply" for these:
  -- they were reported as config errors (the CLI then said "run login") or
  -- as retryable network errors.
  it("reports a malformed status line or header as an http error about the answer", function()
    local answers = {
      garbage = "garbage\r\n\r\n",
      ["status 199"] = "HTTP/1.1 199 Odd\r\nContent-Length: 2\r\n\r\nok",
      ["status 99"] = "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
      ["status 1000"] = "HTTP/1.1 1000 Odd\r\nContent-Length: 2\r\n\r\nok",
      ["no status"] = "HTTP/1.1 abc\r\nContent-Length: 2\r\n\r\nok",
      ["version 9.9"] = "HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\nok",
      ["no colon"] = "HTTP/1.1 200 OK\r\nfoo\r\nContent-Length: 2\r\n\r\nok",
      ["bad length"] = "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nok",
    }
    for name, raw in pairs(answers) do
      s:script("/bad", { raw = raw })
      local res, err = http.request { url = s.url .. "/bad" }
      assert.is_nil(res, name)
      assert.equal("http", err.kind, name .. ": " .. tostring(err))
      assert.is_false(err.retryable, name)
    end
    -- a scheme libcurl is not allowed to speak is still the caller's mistake
    local _, err = http.request { url = "ftp://127.0.0.1:1/x" }
    assert.equal("config", err.kind)
  end)

  it("refuses a 300 KB header line, and 300 KB of headers, as http errors", function()
    local line = "HTTP/1.1 200 OK\r\nX-Big: " .. ("a"):rep(300 * 1024) .. "\r\nContent-Length: 2\r\n\r\nok"
    local many = "HTTP/1.1 200 OK\r\n" .. ("X-Many: " .. ("a"):rep(75 * 1024) .. "\r\n"):rep(4)
      .. "Content-Length: 2\r\n\r\nok"
    local status = "HTTP/1.1 200 " .. ("a"):rep(300 * 1024) .. "\r\nContent-Length: 2\r\n\r\nok"
    for name, raw in pairs { line = line, many = many, status = status } do
      s:script("/big", { raw = raw })
      local res, err = http.request { url = s.url .. "/big" }
      assert.is_nil(res, name)
      assert.equal("http", err.kind, name .. ": " .. tostring(err))
      assert.is_false(err.retryable, name)
      assert.matches("header", err.description, 1, true)
    end
    -- 150 KiB of headers is still an answer
    s:script("/ok", { raw = "HTTP/1.1 200 OK\r\n" .. ("X-Many: " .. ("a"):rep(50 * 1024) .. "\r\n"):rep(3)
      .. "Content-Length: 2\r\n\r\nok" })
    local res = assert(http.request { url = s.url .. "/ok" })
    assert.equal("ok", res.body)
  end)

  -- os.exit without closing the state while the CA reader thread runs: the
  -- exit status must be the script's, not a crash in OpenSSL's cleanup
  it("lets a script exit right after its first request while the CA bundle is read", function()
    local proc = require "helpers.proc"
    for _ = 1, 5 do
      local ok, code = proc.run(proc.LUA_ENV .. proc.LUA .. " -e " .. proc.shell_quote(
        'local e = require("smartauth.http").engine(); e:start { url = "https://127.0.0.1:1/" }; os.exit(3)')
        .. " >/dev/null 2>&1")
      assert.is_false(ok)
      assert.equal(3, code)
    end
  end)

  -- A child (a browser the CLI opens, a hook's shell) must not hold the
  -- connection to the token server.
  it("keeps its sockets out of child processes", function()
    local proc = require "helpers.proc"
    local pid = assert(proc.read_file("/proc/self/stat")):match("^%d+")
    local function sockets(dir)
      local set = {}
      -- ls may exit 1 on entries it cannot stat (valgrind's own descriptors
      -- under `make valgrind`): what it listed is what counts
      local _, _, out = proc.run("ls -l " .. dir .. " 2>/dev/null")
      assert.is_truthy(out and out:find("%d"), "cannot list " .. dir)
      for inode in out:gmatch("socket:%[(%d+)%]") do set[inode] = true end
      return set
    end
    -- sockets this process opened since `before` that a child started now holds
    local function leaked(before)
      local mine, n, out = sockets("/proc/" .. pid .. "/fd"), 0, {}
      for inode in pairs(mine) do if not before[inode] then n = n + 1 end end
      for inode in pairs(sockets("/proc/self/fd")) do
        if mine[inode] and not before[inode] then out[#out + 1] = inode end
      end
      return out, n
    end
    local before = sockets("/proc/" .. pid .. "/fd")
    local engine = core_http.engine()
    s:script("/slow", { delay_ms = 100, body = "x" })
    local req = assert(engine:start { url = s.url .. "/slow" })
    local seen = 0
    while not req:done() do
      engine:step(0.01)
      local out, n = leaked(before) -- a child started while the transfer runs
      assert.same({}, out)
      seen = math.max(seen, n)
    end
    assert.equal("x", req:result().body)
    req:close()
    assert.is_true(seen >= 1)
    local out, n = leaked(before)   -- and while the connection is kept alive
    assert.is_true(n >= 1)
    assert.same({}, out)
    engine:close()
  end)

  it("refuses other schemes", function()
    local _, err = http.request { url = "file:///etc/passwd" }
    assert.equal("config", err.kind)
  end)

  it("refuses header lines with CR or LF", function()
    assert.has_error(function()
      http.request { url = s.url .. "/x", headers = { "X-A: 1\r\nX-Injected: 2" } }
    end)
  end)

  describe("non-blocking API", function()
    it("runs transfers concurrently and hands each result out once", function()
      local engine = core_http.engine()
      for i = 1, 5 do s:script("/slow" .. i, { delay_ms = 200, body = "r" .. i }) end
      local reqs = {}
      local t0 = require("socket").gettime()
      for i = 1, 5 do reqs[i] = assert(engine:start { url = s.url .. "/slow" .. i }) end
      assert.equal(5, engine:running())
      local done = {}
      while #done < 5 do
        engine:step(0.05)
        local r = engine:next_done()
        while r do done[#done + 1] = r; r = engine:next_done() end
      end
      local elapsed = require("socket").gettime() - t0
      assert.is_true(elapsed < 0.9, "took " .. elapsed)
      for i = 1, 5 do
        assert.is_true(reqs[i]:done())
        assert.equal("r" .. i, reqs[i]:result().body)
      end
      assert.is_nil(engine:next_done())
      engine:close()
    end)

    it("step(0) returns at once while a transfer waits", function()
      local engine = core_http.engine()
      s:script("/wait", { delay_ms = 300 })
      local r = engine:start { url = s.url .. "/wait" }
      local socket = require "socket"
      local t0 = socket.gettime()
      for _ = 1, 20 do engine:step(0) end
      assert.is_true(socket.gettime() - t0 < 0.25)
      assert.is_false(r:done())
      assert.has_error(function() r:result() end, "request is still running")
      r:close()
      assert.equal(0, engine:running())
      engine:close()
    end)

    it("closing the engine with transfers pending releases them", function()
      local engine = core_http.engine()
      s:script("/hang", { hang = true })
      local r = engine:start { url = s.url .. "/hang" }
      engine:close()
      assert.has_error(function() r:done() end, "attempt to use a closed request")
      r:close()
    end)

    it("collects dropped requests and engines", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local engine = core_http.engine()
        weak.e = engine
        weak.r = engine:start { url = s.url .. "/x" }
      end
      collectgarbage(); collectgarbage()
      assert.is_nil(weak.r)
      assert.is_nil(weak.e)
    end)
  end)
end)

describe("https", function()
  local c, s
  setup(function()
    c = certs.make()
    s = server.start { tls = { cert = c.cert, key = c.key } }
  end)
  teardown(function()
    s:stop()
    certs.cleanup(c)
  end)

  it("refuses a certificate from an unknown CA", function()
    local res, err = http.request { url = s.url .. "/api" }
    assert.is_nil(res)
    assert.equal("tls", err.kind)
    assert.is_false(err.retryable)
    res, err = http.request { url = s.url .. "/api", ca_file = c.other_ca_file }
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("accepts it with the right ca_file and reuses the TLS connection", function()
    local engine = core_http.engine()
    local before = s:connections()
    for _ = 1, 10 do
      local res = assert(engine:request { url = s.url .. "/nothing", ca_file = c.ca_file })
      assert.equal(404, res.status)
    end
    assert.equal(1, s:connections() - before)
    engine:close()
  end)

  -- The bundle is read on a thread of its own: a step never parses it.
  -- A FIFO stands for a slow bundle; it becomes readable 1.5 s later.
  it("reads a CA bundle off the step: step(0) returns while it is being read", function()
    local socket = require "socket"
    local fifo = c.dir .. "/slow-ca.pem"
    -- compat.execute: os.execute's 5.2 shape on every runtime (LuaJIT gives a number)
    local execute = require("smartauth.compat").execute
    assert.is_true(execute("mkfifo " .. fifo) == true)
    assert.is_true(execute("(sleep 1.5; cat " .. c.ca_file .. " > " .. fifo .. ") >/dev/null 2>&1 &") == true)
    local engine = core_http.engine()
    local r = assert(engine:start { url = s.url .. "/nothing", ca_file = fifo })
    local t0, longest, steps = socket.gettime(), 0, 0
    while not r:done() and socket.gettime() - t0 < 10 do
      local t = socket.gettime()
      engine:step(0)
      longest = math.max(longest, socket.gettime() - t)
      steps = steps + 1
      socket.sleep(0.01)
    end
    assert.is_true(r:done())
    assert.equal(404, r:result().status)
    assert.is_true(longest < 0.5, "a step took " .. longest .. " s")
    assert.is_true(steps > 20)
    r:close()
    -- read once per process: the next engine needs the FIFO no more
    local e2 = core_http.engine()
    assert.equal(404, assert(e2:request { url = s.url .. "/nothing", ca_file = fifo }).status)
    e2:close()
    engine:close()
  end)

  it("reports a CA file that cannot be read as before", function()
    local engine = core_http.engine()
    local res, err = engine:request { url = s.url .. "/nothing", ca_file = c.dir .. "/missing.pem" }
    assert.is_nil(res)
    assert.equal("tls", err)
    engine:close()
  end)

  it("does not carry a CA file over to a request without it", function()
    local engine = core_http.engine()
    assert.equal(404, assert(engine:request { url = s.url .. "/nothing", ca_file = c.ca_file }).status)
    local res, err = engine:request { url = s.url .. "/nothing" }
    assert.is_nil(res)
    assert.equal("tls", err)
    res, err = engine:request { url = s.url .. "/nothing", ca_file = c.other_ca_file }
    assert.is_nil(res)
    assert.equal("tls", err)
    assert.equal(404, assert(engine:request { url = s.url .. "/nothing", ca_file = c.ca_file }).status)
    engine:close()
  end)

  it("refuses a certificate for another host name", function()
    local s2 = server.start { tls = { cert = c.wrong_host_cert, key = c.wrong_host_key } }
    local res, err = http.request { url = s2.url .. "/api", ca_file = c.ca_file }
    s2:stop()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("refuses an expired certificate", function()
    local s2 = server.start { tls = { cert = c.expired_cert, key = c.expired_key } }
    local res, err = http.request { url = s2.url .. "/api", ca_file = c.ca_file }
    s2:stop()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)
end)
