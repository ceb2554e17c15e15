-- #nginx The gateway example (examples/nginx/gateway) in a real nginx: a
-- client-credentials token from oidc-provider on every proxied request;
-- four workers racing on a due token send one token request; the
-- shared-dict store's contract inside nginx; a worker that keeps serving
-- while the token endpoint stalls (measured, against transport = "curl").
local socket = require "socket"
local nginx_lua = require "helpers.nginx_lua"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"
local server = require "helpers.server"
local smartauth = require "smartauth"

local available, why = nginx_lua.available()
local EXAMPLE = "examples/nginx/gateway/nginx.conf"
local EXAMPLE_PATH = (function()
  local _, _, cwd = proc.run("pwd")
  return cwd:gsub("%s+$", "") .. "/examples/nginx/gateway/?.lua"
end)()
local CC_SECRET = "s3cret: %+ x" -- basic-client's

local function get(url)
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local out = {}
  local _, code, headers = http.request { url = url, sink = ltn12.sink.table(out) }
  return table.concat(out), code, headers
end

-- n requests at once (curl's parallel mode); the X-Worker of each answer.
local function burst(url, n)
  local urls = {}
  for i = 1, n do urls[i] = proc.shell_quote(url .. "?i=" .. i) end
  local _, _, out = proc.run("curl -s -Z --parallel-max " .. n .. " -o /dev/null -D - " ..
    table.concat(urls, " ") .. " 2>/dev/null")
  local statuses, workers = {}, {}
  for st in out:gmatch("HTTP/1%.1 (%d+)") do statuses[#statuses + 1] = tonumber(st) end
  for w in out:gmatch("[Xx]%-[Ww]orker: (%d+)") do workers[w] = true end
  local nw = 0
  for _ in pairs(workers) do nw = nw + 1 end
  return statuses, nw
end

local function count(s, path)
  local k = 0
  for _, r in ipairs(s:requests()) do if r.path == path then k = k + 1 end end
  return k
end

-- The example, made to run here: workers, the upstream, an X-Worker header.
local function gateway(env, upstream_port, workers)
  return nginx_lua.start { conf = EXAMPLE, path = EXAMPLE_PATH, env = env, subs = {
    { "worker_processes %d+;", "worker_processes " .. (workers or 2) .. ";" },
    { "server 127%.0%.0%.1:9000;", "server 127.0.0.1:" .. upstream_port .. ";" },
    { "proxy_pass http://api;", "proxy_pass http://api;\n      add_header X-Worker $pid always;" },
  } }
end

describe("#nginx the gateway example", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end

  it("adds a client-credentials token from oidc-provider to every proxied request", function()
    local op = oidc.start()
    local up = server.start()
    local n
    local ok, err = pcall(function()
      up:script("/api/items", { body = "{\"items\":[]}", headers = { ["content-type"] = "application/json" } }, 3)
      n = gateway({ SMARTAUTH_TOKEN_ENDPOINT = op.issuer .. "/token", SMARTAUTH_CLIENT_ID = "basic-client",
        SMARTAUTH_CLIENT_SECRET = CC_SECRET, SMARTAUTH_SCOPE = "api:read" }, up.port)
      for _ = 1, 3 do
        local body, code = get(n.url .. "/api/items")
        assert.are.equal(200, code, body .. n:error_log())
        assert.are.equal('{"items":[]}', body)
      end
      local reqs = up:requests()
      assert.are.equal(3, #reqs)
      local at = reqs[1].headers.authorization:match("^Bearer (%S+)$")
      assert.truthy(at)
      for _, r in ipairs(reqs) do assert.are.equal("Bearer " .. at, r.headers.authorization) end
      -- the token is the provider's, for this client and scope
      local p = assert(smartauth.discover(op.issuer, { client_id = "basic-client", client_secret = CC_SECRET }))
      local info = assert(p:introspect(at))
      assert.is_true(info.active)
      assert.are.equal("basic-client", info.client_id)
      assert.are.equal("api:read", info.scope)
    end)
    if n then n:stop() end
    up:stop()
    op:stop()
    assert(ok, err)
  end)

  it("answers 503 when no token can be had, and logs why without the secret", function()
    local up = server.start()
    local n
    local ok, err = pcall(function()
      up:script("/token", { status = 401, json = { error = "invalid_client" } }, 5)
      n = gateway({ SMARTAUTH_TOKEN_ENDPOINT = up.url .. "/token", SMARTAUTH_CLIENT_ID = "gw",
        SMARTAUTH_CLIENT_SECRET = "gw-secret-value" }, up.port, 1)
      local _, code = get(n.url .. "/api")
      assert.are.equal(503, code)
      assert.are.equal(0, count(up, "/api"))
      local log = n:error_log()
      assert.matches("invalid_client", log)
      assert.is_nil(log:find("gw-secret-value", 1, true))
    end)
    if n then n:stop() end
    up:stop()
    assert(ok, err)
  end)

  it("sends one token request when 4 workers race on a missing, then a due token", function()
    local up = server.start()
    local n
    local ok, err = pcall(function()
      local answer = { delay_ms = 300, json = { access_token = "at-1", token_type = "Bearer", expires_in = 4 } }
      up:script("/token", answer, 1)
      up:script("/api", { json = { ok = true } }, 200)
      n = gateway({ SMARTAUTH_TOKEN_ENDPOINT = up.url .. "/token", SMARTAUTH_CLIENT_ID = "gw",
        SMARTAUTH_CLIENT_SECRET = "gw-secret" }, up.port, 4)
      local statuses, nworkers = burst(n.url .. "/api", 40)
      assert.are.equal(40, #statuses, n:error_log())
      for _, st in ipairs(statuses) do assert.are.equal(200, st) end
      assert.is_true(nworkers >= 2, "answers came from " .. nworkers .. " worker(s)")
      assert.are.equal(1, count(up, "/token"))
      -- renewed from half its lifetime on: every worker finds it due
      socket.sleep(2.3)
      up:script("/token", { delay_ms = 300, json = { access_token = "at-2", token_type = "Bearer",
        expires_in = 4 } }, 1)
      statuses, nworkers = burst(n.url .. "/api", 40)
      assert.are.equal(40, #statuses)
      for _, st in ipairs(statuses) do assert.are.equal(200, st) end
      assert.is_true(nworkers >= 2)
      assert.are.equal(2, count(up, "/token"))
      local last = up:requests()
      assert.are.equal("Bearer at-2", last[#last].headers.authorization)
    end)
    if n then n:stop() end
    up:stop()
    assert(ok, err)
  end)
end)

-- Checks of the shared-dict store, run inside nginx: "ok" or what failed.
local STORE_CHECK = [[
  lua_shared_dict smartauth 1m;
  server {
    listen 127.0.0.1:$PORT;
    location = /store {
      content_by_lua_block {
        local smartauth = require "smartauth"
        local a = assert(smartauth.store.shdict { dict = "smartauth" })
        local b = assert(smartauth.store.shdict { dict = "smartauth" }) -- another worker's view
        local function check(cond, what) if not cond then error(what, 2) end end
        local ok, err = pcall(function()
          local e = { v = 1, access_token = "at", refresh_token = "rt", expires_at = 2e9, scope = "read" }
          check(a:get("k") == nil, "absent")
          assert(a:set("k", e, 60))
          local got = b:get("k")
          check(got and got.access_token == "at" and got.expires_at == 2e9 and got.scope == "read", "round trip")
          assert(a:set("short", e, 0.2))
          ngx.sleep(0.3)
          check(b:get("short") == nil, "ttl")
          assert(b:delete("k"))
          check(a:get("k") == nil, "delete")
          -- corrupt and foreign values are storage errors
          ngx.shared.smartauth:set("smartauth:t:bad", "{not json")
          local v, gerr = a:get("bad")
          check(v == nil and gerr and gerr.kind == "storage", "corrupt")
          ngx.shared.smartauth:set("smartauth:t:moved", '{"smartauth_store":1,"key":"other","entry":{}}')
          v, gerr = a:get("moved")
          check(v == nil and gerr and gerr.kind == "storage", "another key's entry")
          -- the lock: exclusive across store objects, waits up to its ttl
          local unlock = assert(a:lock("k", 5))
          local t0 = ngx.now()
          local u2, lerr = b:lock("k", 0.3)
          ngx.update_time()
          check(u2 == nil and lerr.kind == "storage" and lerr.retryable, "held lock")
          check(ngx.now() - t0 >= 0.25, "waited")
          -- stop ends a waiter's wait with its value (the store contract)
          local u4, serr, v = b:lock("k", 5, function() return "renewed" end)
          check(u4 == nil and serr == nil and v == "renewed", "stop ends the wait")
          check(unlock() == true, "unlock")
          u2 = assert(b:lock("k", 5))
          check(u2() == true, "second holder")
          -- a lock held past its ttl expires; its late unlock says so
          local late = assert(a:lock("x", 0.2))
          ngx.sleep(0.4)
          local u3 = assert(b:lock("x", 1))
          local r, uerr = late()
          check(r == nil and uerr.kind == "storage", "expired lock")
          check(ngx.shared.smartauth:get("smartauth:l:x") ~= nil, "the new holder keeps it")
          u3()
          -- options
          local s, cerr = smartauth.store.shdict { dict = "nope" }
          check(s == nil and cerr.kind == "config", "no such dict")
          s, cerr = smartauth.store.shdict { dict = "smartauth", colour = "red" }
          check(s == nil and cerr.kind == "config", "unknown option")
        end)
        ngx.say(ok and "ok" or tostring(err))
      }
    }
  }
]]

describe("#nginx smartauth.store.shdict", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end
  it("keeps the store contract inside nginx", function()
    local n = nginx_lua.start { http = STORE_CHECK }
    local body = get(n.url .. "/store")
    local log = n:error_log()
    n:stop()
    assert.are.equal("ok\n", body, log)
  end)
  it("is a config error outside nginx", function()
    local s, err = smartauth.store.shdict { dict = "smartauth" }
    assert.is_nil(s)
    assert.are.equal("config", err.kind)
  end)
end)

-- One worker; /token-call gets a token from an endpoint that stalls.
local STALL = [[
  server {
    listen 127.0.0.1:$PORT;
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    location = /token-call {
      content_by_lua_block {
        local smartauth = require "smartauth"
        local p = assert(smartauth.provider { token_endpoint = os.getenv("FAKE_URL") .. "/token",
          client_id = "c", client_secret = "s", transport = ngx.var.arg_transport, retry = false })
        local t, err = p:token()
        ngx.say(t and t.access_token or tostring(err))
      }
    }
  }
]]

-- Seconds each of k pings takes while a token call stalls for stall_ms.
local function pings_during_stall(n, transport, k)
  local c = assert(socket.connect("127.0.0.1", n.port))
  c:send("GET /token-call" .. (transport and "?transport=" .. transport or "") ..
    " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  socket.sleep(0.15) -- the worker is now waiting for the token endpoint
  local times = {}
  for i = 1, k do
    local t0 = socket.gettime()
    local body = get(n.url .. "/ping")
    times[i] = socket.gettime() - t0
    assert.are.equal("pong\n", body)
  end
  c:settimeout(10)
  local answer = c:receive("*a")
  c:close()
  return times, answer
end

describe("#nginx a stalling token endpoint", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end
  local s, n
  setup(function()
    s = server.start()
    n = nginx_lua.start { workers = 1, env = { FAKE_URL = s.url }, http = STALL }
  end)
  teardown(function()
    if n then n:stop() end
    if s then s:stop() end
  end)

  it("does not stop the worker: it serves other requests meanwhile (transport ngx)", function()
    s:script("/token", { delay_ms = 1500, json = { access_token = "at-slow", token_type = "Bearer" } })
    local times, answer = pings_during_stall(n, nil, 5)
    local worst = 0
    for _, t in ipairs(times) do worst = math.max(worst, t) end
    print(("\n  pings while the token endpoint stalls 1.5 s, transport ngx: worst %.1f ms"):format(worst * 1000))
    assert.is_true(worst < 0.3, "a ping took " .. worst .. " s")
    assert.matches("at%-slow", answer)
  end)

  it("stops the worker under transport = \"curl\" (what the ngx transport avoids)", function()
    s:script("/token", { delay_ms = 1500, json = { access_token = "at-slow", token_type = "Bearer" } })
    local times, answer = pings_during_stall(n, "curl", 1)
    print(("  the same with transport curl: the first ping waits %.1f ms"):format(times[1] * 1000))
    assert.is_true(times[1] > 1.0, "a ping took " .. times[1] .. " s")
    assert.matches("at%-slow", answer)
  end)
end)
