-- The non-blocking engine: many transfers at once, single flight, retries
-- on the engine's timers, cancellation, and errors inside tasks.
local smartauth = require "smartauth"
local engine = require "smartauth.engine"
local socket = require "socket"
local server = require "helpers.server"

describe("engine", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)
  after_each(function()
    -- no test may leave work behind for the next
    smartauth.run()
  end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "sec", retry = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  it("runs 100 requests from 100 coroutines at once, each getting its own answer", function()
    for i = 1, 100 do s:script("/api/slow" .. i, { delay_ms = 200, json = { n = i } }, 0) end
    local p = provider()
    assert(p:token())
    local results = {}
    local t0 = socket.gettime()
    for i = 1, 100 do
      smartauth.spawn(function()
        local res = assert(p:request { url = s.url .. "/api/slow" .. i })
        results[i] = res.body
      end)
    end
    smartauth.run()
    local elapsed = socket.gettime() - t0
    for i = 1, 100 do assert.equal('{"n":' .. i .. '}', results[i]) end
    -- sequentially this is 20 s; concurrently a little over 0.2 s
    assert.is_true(elapsed < 5, ("took %.2f s"):format(elapsed))
  end)

  it("step(0) returns at once while transfers wait on the server", function()
    s:script("/api/wait", { delay_ms = 300, body = "x" }, 0)
    local p = provider()
    assert(p:token())
    local done = 0
    for _ = 1, 10 do
      smartauth.spawn(function()
        assert(p:request { url = s.url .. "/api/wait" })
        done = done + 1
      end)
    end
    local longest = 0
    while done < 10 do
      local t0 = socket.gettime()
      smartauth.step(0)
      longest = math.max(longest, socket.gettime() - t0)
      socket.sleep(0.005)
    end
    assert.is_true(longest < 0.1, ("longest step took %.3f s"):format(longest))
  end)

  it("shares one grant request among 100 coroutines calling token()", function()
    s:script("/token", { delay_ms = 100, json = { access_token = "shared", token_type = "Bearer", expires_in = 600 } })
    local p = provider()
    local got = {}
    for i = 1, 100 do
      smartauth.spawn(function() got[i] = assert(p:token()).access_token end)
    end
    smartauth.run()
    for i = 1, 100 do assert.equal("shared", got[i]) end
    assert.equal(1, #s:requests())
  end)

  it("surfaces an error inside a task to the caller of spawn", function()
    local task = smartauth.spawn(function() error("boom") end)
    local ok, err = task:result()
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.equal("failed", task.status)
    assert.has_error(function() task:wait() end)
    local t2 = smartauth.spawn(function(a, b) return a + b, "x" end, 2, 3)
    assert.same({ 5, "x" }, { t2:wait() })
  end)

  it("calls a task's on_error handler", function()
    local seen
    local task = smartauth.spawn(function()
      engine.sleep(0.01)
      error("later")
    end)
    task.on_error = function(e) seen = e end
    smartauth.run()
    assert.matches("later", seen)
  end)

  it("cancels a pending call: the task never resumes and nothing stays in flight", function()
    s:script("/api/hang", { hang = true })
    local p = provider()
    assert(p:token())
    local resumed = false
    local task = smartauth.spawn(function()
      p:request { url = s.url .. "/api/hang" }
      resumed = true
    end)
    smartauth.step(0.05)
    assert.equal("running", task.status)
    assert.is_true(task:cancel())
    assert.equal(0, (smartauth.pending()))
    smartauth.step(0.05)
    assert.is_false(resumed)
    assert.equal(0, require("smartauth.http").engine():running())
  end)

  it("runs on_cancel functions with the error when the task fails, and not once released", function()
    local got, released_ran = {}, false
    local task = smartauth.spawn({ on_error = function() end }, function()
      engine.on_cancel(function(...) got = { n = select("#", ...), ... } end)
      local release = engine.on_cancel(function() released_ran = true end)
      release()
      smartauth.sleep(0.01)
      error("boom", 0)
    end)
    while task.status == "running" do smartauth.step(0.005) end
    assert.equal("failed", task.status)
    assert.same({ n = 1, "boom" }, got)
    assert.is_false(released_ran)
    -- a cancelled task runs them with no argument
    local t2 = smartauth.spawn(function()
      engine.on_cancel(function(...) got = { n = select("#", ...), ... } end)
      smartauth.sleep(10)
    end)
    assert.is_true(t2:cancel())
    assert.equal(1, got.n)
    assert.is_nil(got[1])
  end)

  it("times out a pending call inside a task", function()
    s:script("/api/hang", { hang = true })
    local p = provider { timeout = 0.3 }
    assert(p:token())
    local err
    smartauth.spawn(function()
      local res
      res, err = p:request { url = s.url .. "/api/hang" }
      assert.is_nil(res)
    end)
    smartauth.run()
    assert.equal("timeout", err.kind)
  end)

  it("sleeps on timers without blocking other tasks", function()
    local order = {}
    smartauth.spawn(function() engine.sleep(0.2); order[#order + 1] = "slow" end)
    smartauth.spawn(function() engine.sleep(0.05); order[#order + 1] = "fast" end)
    local t0 = socket.gettime()
    smartauth.run()
    assert.same({ "fast", "slow" }, order)
    assert.is_true(socket.gettime() - t0 < 0.6)
  end)

  it("lets a task wait for another", function()
    local a = smartauth.spawn(function() engine.sleep(0.05); return 42 end)
    local b = smartauth.spawn(function() return a:wait() + 1 end)
    smartauth.run()
    assert.same({ true, 43 }, { b:result() })
  end)

  it("tells a host how many tasks are alive and when to step next", function()
    smartauth.spawn(function() engine.sleep(0.5) end)
    local n, t = smartauth.pending()
    assert.equal(1, n)
    assert.is_true(t > 0.3 and t <= 0.5)
    smartauth.run()
    assert.equal(0, (smartauth.pending()))
  end)

  it("still blocks outside spawned coroutines", function()
    local p = provider()
    local tok = assert(p:client_credentials())
    assert.matches("^at%-", tok.access_token)
  end)
end)

describe("engine for hosts with their own loop", function()
  local s
  setup(function() s = server.start() end)
  teardown(function() s:stop() end)

  it("exposes the sockets a transfer waits on", function()
    s:script("/api/slow", { delay_ms = 300, body = "x" })
    local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
      client_secret = "s", retry = false })
    assert(p:token())
    local task = smartauth.spawn(function() return p:request { url = s.url .. "/api/slow" } end)
    local seen
    for _ = 1, 50 do
      smartauth.step(0)
      local fds = smartauth.fds()
      if #fds > 0 then seen = fds[1]; break end
      socket.sleep(0.01)
    end
    assert.is_table(seen)
    assert.is_true(seen.fd > 2)
    assert.is_true(seen.read or seen.write)
    smartauth.run()
    assert.equal(200, (select(2, task:result())).status)
  end)

  -- curl_multi_fdset cannot name a socket >= FD_SETSIZE (1024): a host
  -- loop with that many descriptors open polled nothing and was never woken.
  it("names sockets above 1023 to a host's poll loop, which wakes on them", function()
    local proc = require "helpers.proc"
    local cjson = require "cjson"
    local root = assert(os.getenv("PWD"))
    local ok, code, out = proc.run("mkdir -p build/spec && cc -std=c11 -O1 -Wall -Werror "
      .. "$(pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4) "
      .. "-o build/spec/poll_host spec/helpers/poll_host.c -llua5.4 -lm 2>&1")
    assert.is_true(ok, "cc exit " .. tostring(code) .. ": " .. out)
    s:reset()
    s:script("/quick", { body = "q" })
    s:script("/slow", { delay_ms = 300, body = "x" })
    ok, code, out = proc.run("build/spec/poll_host " .. proc.shell_quote(root) .. " " .. s.url .. " 1100")
    assert.is_true(ok, "exit " .. tostring(code) .. ": " .. out)
    local r = cjson.decode(out:match("{.*}"))
    assert.is_true(r.high_file >= 1100, out)
    assert.equal("200", r.blocking)          -- the engine's own wait
    assert.is_true(r.done, out)
    assert.equal(200, r.status, out)
    assert.is_true(r.max_fd > 1100, out)     -- the transfer's socket was named
    assert.is_true(r.fd_wakeups >= 1, out)   -- and its answer woke the loop
    assert.is_true(r.wall_ms < 2000, out)
  end)

  it("resolves names off the caller's thread, so step(0) never waits on DNS", function()
    local info = require("smartauth.core_http").info()
    assert.is_true(info.async_dns, "libcurl " .. info.curl .. " lacks the threaded resolver")
    assert.matches("OpenSSL", info.ssl)
  end)

  it("sleeps without tasks by waiting in the engine", function()
    local t0 = socket.gettime()
    engine.sleep(0.1)
    assert.is_true(socket.gettime() - t0 >= 0.09)
  end)
end)
