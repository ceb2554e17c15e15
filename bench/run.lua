-- smartauth benchmark suite (make bench). Every figure is the median of
-- several runs, measured side by side with its baseline (interleaved rounds,
-- same machine, same minute) on 127.0.0.1 only; results also go to
-- bench/results/*.json. See bench/README.md.
--
--   lua5.4 bench/run.lua            -- everything (about 2.5 minutes on 2 cores)
--   BENCH_ONLY=1,4 lua5.4 bench/run.lua
--   BENCH_ROUNDS=3 lua5.4 bench/run.lua
--
-- Needs: nginx (nginx-light), lua-sec, lua-socket, curl, node with
-- node_modules/openid-client (npm ci), openssl, build/bench/c_floor (make).
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local socket = require "socket"
local cjson = require "cjson"
local core = require "smartauth.core"
local smartauth = require "smartauth"
local certs = require "helpers.certs"
local proc = require "helpers.proc"
local idtok = require "idtoken"

local q = proc.shell_quote
local now = core.monotonic

local ROUNDS = math.tointeger(tonumber(os.getenv("BENCH_ROUNDS") or "7")) or 7
local ONLY = {}
for id in (os.getenv("BENCH_ONLY") or "1,2,3,4,5,6,7,8,9,10,11,12,13"):gmatch("%d+") do ONLY[tonumber(id)] = true end

local TOKEN_JSON = '{"access_token":"2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789",'
  .. '"token_type":"Bearer","expires_in":3600,"scope":"api"}'

-- what /api answers (the p:request lines): a small JSON document
local API_JSON = '{"id":42,"name":"bench","items":[1,2,3]}'

local results = { benchmarks = {}, comparisons = {} }
local cleanup = {}           -- functions run at exit, last first
local started = now()

------------------------------------------------------------------ helpers

local function median(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function sh(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  local ok, how, code = f:close()
  return ok, out, how == "signal" and 128 + code or code
end

local function must(cmd)
  local ok, out, code = sh(cmd)
  if not ok then error("command failed (exit " .. tostring(code) .. "): " .. cmd .. "\n" .. out, 2) end
  return out
end

-- "<seconds> <count>" from a worker; bounded by `timeout`.
local function timed(cmd, limit)
  local out = must("timeout " .. (limit or 120) .. " " .. cmd)
  local secs, count = out:match("([%d.]+)%s+(%d+)%s*$")
  if not secs then error("unexpected output from " .. cmd .. ": " .. out) end
  return tonumber(secs), tonumber(count)
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return math.tointeger(tonumber(port))
end

local function wait_port(port, limit)
  local deadline = now() + limit
  repeat
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return true end
    socket.sleep(0.02)
  until now() > deadline
  error("nothing listens on 127.0.0.1:" .. port .. " after " .. limit .. " s")
end

local function fmt(v)
  if v == nil then return "-" end
  if v >= 100000 then return string.format("%.0f", v) end
  if v >= 100 then return string.format("%.1f", v) end
  if v >= 1 then return string.format("%.2f", v) end
  return string.format("%.3f", v)
end

-- One comparison line: what smartauth did, against the baseline, ratio,
-- target and verdict. `better` is "lower" or "higher" for the ratio.
local function compare(c)
  local pass
  local x = c.ratio or c.value
  if c.op then
    if c.op == "<=" then pass = x <= c.limit
    elseif c.op == "<" then pass = x < c.limit
    else pass = x >= c.limit end
  end
  c.pass = pass
  results.comparisons[#results.comparisons + 1] = c
  print(string.format("  %-44s %10s %-6s | %-22s %10s | ratio %7s | target %-4s %-5s | %s",
    c.name, fmt(c.value), c.unit, c.baseline_name or "-", fmt(c.baseline), fmt(c.ratio),
    c.op or "", c.limit and fmt(c.limit) or "", pass == nil and "INFO" or (pass and "PASS" or "MISS")))
  return c
end

local function header(title)
  print("")
  print(title)
end

------------------------------------------------------------ environment

local tmp = proc.tmpdir("smartauth-bench.XXXXXX")
cleanup[#cleanup + 1] = function() proc.rmtree(tmp) end

local function run_cleanup()
  for i = #cleanup, 1, -1 do pcall(cleanup[i]) end
  cleanup = {}
end

local function check_tools()
  local missing = {}
  if not sh("command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx") then
    missing[#missing + 1] = "nginx (apt-get install nginx-light)"
  end
  if ONLY[6] and not sh("test -f /usr/lib/nginx/modules/ngx_http_echo_module.so") then
    missing[#missing + 1] = "nginx's echo module (apt-get install libnginx-mod-http-echo)"
  end
  if not pcall(require, "ssl") then missing[#missing + 1] = "LuaSec (apt-get install lua-sec)" end
  if not sh("command -v curl >/dev/null") then missing[#missing + 1] = "curl" end
  if not sh("test -d node_modules/openid-client") then
    missing[#missing + 1] = "node_modules/openid-client (npm ci)"
  end
  if not sh("test -x build/bench/c_floor") then missing[#missing + 1] = "build/bench/c_floor (make bench)" end
  if #missing > 0 then
    error("benchmarks need: " .. table.concat(missing, ", ") .. " (bash bench/setup.sh installs them)", 0)
  end
end

local function machine_info()
  local function first(cmd) local _, out = sh(cmd) return (out:gsub("%s+$", "")) end
  return {
    date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    cpus = tonumber(first("nproc")),
    cpu = first("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"):gsub("^%s+", ""),
    load_at_start = first("cut -d' ' -f1-3 /proc/loadavg"),
    libcurl = first("curl --version | head -1"),
    openssl = first("openssl version"),
    node = first("node --version"),
    nginx = first("nginx -v 2>&1"),
    lua = _VERSION,
    smartauth = smartauth._VERSION,
    openid_client = first("node -p \"require('./node_modules/openid-client/package.json').version\""),
    git = first("git rev-parse --short HEAD 2>/dev/null"),
  }
end

-- Where processes run in benchmark 1. On two cores or more the server's
-- worker gets the last CPU and every client the first: left to the
-- scheduler, a client and the server sometimes share a core and sometimes
-- not, which moved slices of the same client by up to 40%.
local PIN = (function()
  local n = math.tointeger(tonumber((select(2, sh("nproc 2>/dev/null")) or ""):match("%d+") or "1")) or 1
  if n < 2 or os.getenv("BENCH_NO_PIN") or not sh("command -v taskset >/dev/null 2>&1") then return nil end
  return { client = "taskset -c 0 ", server_mask = "1" .. ("0"):rep(n - 1) }
end)()

-- nginx as the fixed, fast token server: one worker, keep-alive for the
-- whole run, HTTP and HTTPS (certificate from a CA made now).
local function start_nginx(c)
  local http_port, https_port = free_port(), free_port()
  while https_port == http_port do https_port = free_port() end
  local dir = tmp .. "/nginx"
  must("mkdir -p " .. q(dir .. "/logs"))
  local location = ([[
    location = /token {
      default_type application/json;
      return 200 '%s';
    }
    location = /api {
      default_type application/json;
      return 200 '%s';
    }
]]):format(TOKEN_JSON, API_JSON)
  local conf = ([[
worker_processes 1;
]] .. (PIN and ("worker_cpu_affinity " .. PIN.server_mask .. ";\n") or "") .. [[
daemon on;
pid %s/nginx.pid;
error_log %s/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:%d;
%s  }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
%s  }
}
]]):format(dir, dir, http_port, location, https_port, c.cert, c.key, location)
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  must("nginx -p " .. q(dir) .. " -c " .. q(dir .. "/nginx.conf") .. " -e " .. q(dir .. "/logs/error.log") .. " 2>&1")
  cleanup[#cleanup + 1] = function()
    local pf = io.open(dir .. "/nginx.pid")
    local pid = pf and math.tointeger(tonumber(pf:read("l")))
    if pf then pf:close() end
    if pid then
      os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
      if not proc.wait_gone(pid, 3) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    end
  end
  wait_port(http_port, 5)
  wait_port(https_port, 5)
  return {
    http = "http://127.0.0.1:" .. http_port .. "/token",
    https = "https://127.0.0.1:" .. https_port .. "/token",
    api = {
      http = "http://127.0.0.1:" .. http_port .. "/api",
      https = "https://127.0.0.1:" .. https_port .. "/api",
    },
  }
end

------------------------------------------------------ 1. round trips

-- A client under test runs as a worker process fed through two FIFOs: the
-- driver writes a count, the worker does that many requests and answers
-- "<seconds> <count>". Workers stay up for the whole benchmark (warm, one
-- kept-alive connection each), so slices of every client can be interleaved
-- finely: load from anything else on the machine hits all of them alike.
local Worker = {}
Worker.__index = Worker

local CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; ]]

local function start_worker(name, cmd)
  local base = tmp .. "/worker-" .. name
  must("mkfifo " .. q(base .. ".cmd") .. " " .. q(base .. ".res"))
  -- the worker's shell drops every descriptor it inherited (other workers'
  -- FIFOs among them), then execs the client with the FIFOs as stdin/stdout
  local script = CLOSE_FDS .. "exec " .. (PIN and PIN.client or "") .. cmd
    .. " <" .. q(base .. ".cmd") .. " >" .. q(base .. ".res") .. " 2>" .. q(base .. ".err")
  local pf = assert(io.popen("bash -c " .. q(script) .. " >/dev/null 2>&1 </dev/null & echo $!"))
  local pid = math.tointeger(tonumber(pf:read("l")))
  pf:close()
  local w = setmetatable({ name = name, pid = pid, base = base }, Worker)
  cleanup[#cleanup + 1] = function() w:stop() end
  -- opening order matches the worker's: its stdin first, then its stdout
  w.cmd = assert(io.open(base .. ".cmd", "w"))
  w.cmd:setvbuf("line")
  w.res = assert(io.open(base .. ".res", "r"))
  return w
end

-- n requests; returns wall seconds and the worker's CPU seconds (nil when
-- it does not say). A worker that dies ends the benchmark with its stderr
-- (reads cannot hang: a dead worker closes the FIFO).
function Worker:run(n)
  self.cmd:write(n, "\n")
  local line = self.res:read("l")
  local secs, count, cpu = (line or ""):match("^([%d.]+)%s+(%d+)%s*([%d.]*)")
  if not secs or tonumber(count) ~= n then
    error("benchmark client " .. self.name .. " failed: " .. tostring(line) .. "\n"
      .. (proc.read_file(self.base .. ".err") or ""), 0)
  end
  return tonumber(secs), tonumber(cpu)
end

function Worker:stop()
  if not self.pid then return end
  pcall(function() self.cmd:write("q\n") self.cmd:close() end)
  if not proc.wait_gone(self.pid, 3) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  pcall(function() self.res:close() end)
  self.pid = nil
end

local function bench_round_trips(urls, ca)
  local rounds = ROUNDS * 4
  -- requests per slice: each slice takes roughly 100-150 ms (shorter ones
  -- mostly measured how cold the caches were after the other clients ran)
  local clients = {
    { key = "smartauth", n = 2000,
      cmd = function(url) return "lua5.4 bench/client_smartauth.lua " .. q(url) .. " " .. q(ca) end },
    { key = "engine", n = 2000, info = true, name = "smartauth.core engine alone",
      cmd = function(url) return "lua5.4 bench/client_smartauth.lua " .. q(url) .. " " .. q(ca) .. " engine" end },
    -- the blocking wait's busy poll off (engine:spin(0)): what it buys, and costs
    { key = "nospin", n = 2000, info = true, name = "smartauth, spin off",
      cmd = function(url) return "env SPIN=0 lua5.4 bench/client_smartauth.lua " .. q(url) .. " " .. q(ca) end },
    { key = "c_floor", n = 2000, name = "(a) C, one reused libcurl handle",
      cmd = function(url) return "build/bench/c_floor " .. q(url) .. " " .. q(ca) end },
    { key = "curl_cli", n = 4, name = "(b) curl command per request",
      cmd = function(url) return "bash bench/curl_worker.sh " .. q(url) .. " " .. q(ca) end },
    { key = "luasocket", n = 2000, name = "(c) Lua: LuaSocket/LuaSec keep-alive",
      cmd = function(url) return "lua5.4 bench/client_luasocket.lua " .. q(url) .. " " .. q(ca) end },
    { key = "openid_client", n = 60, name = "(d) Node openid-client",
      cmd = function(url)
        return "env NODE_EXTRA_CA_CERTS=" .. q(ca) .. " node bench/client_openid.mjs " .. q(url)
      end },
    -- issue 14: the call apps make most, p:request GET with a cached token,
    -- against the same GET from C with a fixed Authorization header
    { key = "request", n = 2000, api = true, name = "p:request GET, cached token",
      cmd = function(url, proto)
        return "lua5.4 bench/client_smartauth.lua " .. q(url) .. " " .. q(ca) .. " request " .. q(urls.api[proto])
      end },
    { key = "request_nospin", n = 2000, api = true, name = "p:request GET, spin off",
      cmd = function(url, proto)
        return "env SPIN=0 lua5.4 bench/client_smartauth.lua " .. q(url) .. " " .. q(ca) .. " request "
          .. q(urls.api[proto])
      end },
    { key = "c_get", n = 2000, api = true, name = "C GET, fixed Authorization",
      cmd = function(_, proto) return "build/bench/c_floor " .. q(urls.api[proto]) .. " " .. q(ca) .. " get" end },
  }
  for _, proto in ipairs { "http", "https" } do
    header(("1. Token round trips, sequential, %s (µs per request: median of %d interleaved slices "
      .. "per client, each client one warm process with one kept-alive connection; ratio = median "
      .. "of the per-slice ratios)"):format(proto:upper(), rounds))
    local workers = {}
    for _, cl in ipairs(clients) do
      local w = start_worker(cl.key .. "-" .. proto, cl.cmd(urls[proto], proto))
      w:run(cl.n)           -- warm-up: connection, TLS handshake, JIT
      w:run(cl.n)
      workers[cl.key] = w
    end
    local per, cpu = {}, {}
    for _, cl in ipairs(clients) do per[cl.key] = {}; cpu[cl.key] = {} end
    local deadline = now() + 120
    for r = 1, rounds do
      -- rotate the order so no client always runs first or last
      for i = 0, #clients - 1 do
        local cl = clients[(i + r - 1) % #clients + 1]
        local wall, c = workers[cl.key]:run(cl.n)
        per[cl.key][r] = wall / cl.n * 1e6
        cpu[cl.key][r] = c and c / cl.n * 1e6 or nil
      end
      if now() > deadline then rounds = r; break end
    end
    for _, cl in ipairs(clients) do workers[cl.key]:stop() end
    local sa = median(per.smartauth)
    local b = { proto = proto, slices = rounds, runs_us = per, median_us = {}, cpu_us = cpu,
      median_cpu_us = {} }
    for k, v in pairs(per) do b.median_us[k] = median(v) end
    for k, v in pairs(cpu) do b.median_cpu_us[k] = median(v) end
    results.benchmarks["round_trips_" .. proto] = b
    print(string.format("  smartauth: %s µs per request (%s requests/s); the same request on the "
      .. "core's engine alone (no Lua layer): %s µs; smartauth with the busy poll off: %s µs",
      fmt(sa), fmt(1e6 / sa), fmt(median(per.engine)), fmt(median(per.nospin))))
    print(string.format("  client CPU per request (user+sys, less sensitive to other load): smartauth %s µs, "
      .. "spin off %s, engine alone %s, C floor %s, LuaSocket %s, openid-client %s",
      fmt(b.median_cpu_us.smartauth), fmt(b.median_cpu_us.nospin),
      fmt(b.median_cpu_us.engine), fmt(b.median_cpu_us.c_floor), fmt(b.median_cpu_us.luasocket),
      fmt(b.median_cpu_us.openid_client)))
    for _, cl in ipairs(clients) do
      if cl.key ~= "smartauth" and not cl.info and not cl.api then
        -- paired: each slice against the same round's baseline slice
        local ratios = {}
        for r = 1, rounds do ratios[r] = per.smartauth[r] / per[cl.key][r] end
        local floor = cl.key == "c_floor"
        compare {
          id = "1." .. proto .. "." .. cl.key, name = "1 " .. proto .. " smartauth vs " .. cl.key,
          value = sa, unit = "µs", baseline_name = cl.name, baseline = median(per[cl.key]),
          ratio = median(ratios), op = floor and "<=" or "<", limit = floor and 1.10 or 1.0,
        }
      end
    end
    -- CPU (issue 14): the process's own user+sys time per request, paired
    -- per slice like the wall lines; the busy poll's CPU counts
    local function cpu_line(id, name, mine, base, base_name, limit)
      local ratios = {}
      for r = 1, rounds do
        if cpu[mine][r] and cpu[base][r] then ratios[#ratios + 1] = cpu[mine][r] / cpu[base][r] end
      end
      compare {
        id = id, name = name, value = b.median_cpu_us[mine], unit = "µs CPU", baseline_name = base_name,
        baseline = b.median_cpu_us[base], ratio = median(ratios), op = "<=", limit = limit,
      }
    end
    cpu_line("1.cpu." .. proto, "1 " .. proto .. " CPU per grant vs C floor", "smartauth", "c_floor",
      "(a) C floor's CPU", 1.15)
    print(string.format("  p:request GET with a cached token: %s µs per request, C GET %s µs; CPU %s µs "
      .. "(spin off: %s µs, CPU %s µs), C %s µs", fmt(median(per.request)), fmt(median(per.c_get)),
      fmt(b.median_cpu_us.request), fmt(median(per.request_nospin)), fmt(b.median_cpu_us.request_nospin),
      fmt(b.median_cpu_us.c_get)))
    cpu_line("1.request." .. proto, "1 " .. proto .. " p:request GET CPU vs C GET", "request", "c_get",
      "C GET, one reused handle", 1.10)
  end
end

------------------------------------------------ 2. concurrent round trips

local function bench_concurrent()
  local concurrency = 200
  header(("2. Concurrent round trips through the engine: %d requests to a server that answers "
    .. "after 50 ms (ms wall time, median of %d rounds)"):format(concurrency, ROUNDS))
  -- bench/delay_server.js: answers after 50 ms and does nothing else
  local out = tmp .. "/delay_server.out"
  local self_pid = (proc.read_file("/proc/self/stat") or ""):match("^(%d+)")
  local pf = assert(io.popen("node bench/delay_server.js 50 " .. self_pid .. " >" .. q(out) .. " 2>&1 & echo $!"))
  local pid = math.tointeger(tonumber(pf:read("l")))
  pf:close()
  cleanup[#cleanup + 1] = function()
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not proc.wait_gone(pid, 3) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  local port
  local deadline = now() + 10
  repeat
    local text = proc.read_file(out) or ""
    port = text:match('"port":(%d+)')
    if not port then socket.sleep(0.02) end
  until port or now() > deadline
  if not port then error("bench/delay_server.js did not start: " .. (proc.read_file(out) or "")) end
  local p = assert(smartauth.provider {
    token_endpoint = "http://127.0.0.1:" .. port .. "/token", client_id = "bench-client",
    client_secret = "bench-secret", retry = false,
  })
  local failures = 0
  local function batch(count)
    local t0 = now()
    for _ = 1, count do
      smartauth.spawn(function()
        local tok, err = p:client_credentials()
        if not tok then failures = failures + 1; io.stderr:write(tostring(err), "\n") end
      end)
    end
    local limit = t0 + 30
    while smartauth.step(0.05) > 0 do
      if now() > limit then error("concurrent batch did not finish in 30 s") end
    end
    return (now() - t0) * 1000
  end
  batch(1); batch(concurrency) -- connections and the server's JIT warmed up
  local single, many = {}, {}
  for r = 1, ROUNDS do
    single[r] = batch(1)
    many[r] = batch(concurrency)
  end
  if failures > 0 then error(failures .. " concurrent requests failed") end
  local ratios = {}
  for r = 1, ROUNDS do ratios[r] = many[r] / single[r] end
  results.benchmarks.concurrent = { concurrency = concurrency, delay_ms = 50,
    single_ms = single, concurrent_ms = many }
  compare {
    id = "2", name = "2 " .. concurrency .. " concurrent requests, wall time",
    value = median(many), unit = "ms", baseline_name = "one request", baseline = median(single),
    ratio = median(ratios), op = "<", limit = 3,
  }
end

-------------------------------------------------------- 3. cached token()

local function bench_cached(urls)
  local calls = 2000000
  header(("3. p:token() with a valid cached token (ns of CPU per call, median of %d rounds of %d calls)")
    :format(ROUNDS, calls))
  local p = assert(smartauth.provider {
    token_endpoint = urls.http, client_id = "bench-client", client_secret = "bench-secret", retry = false,
  })
  assert(p:token())
  local box = { tok = p:token() }
  local function plain(o) return o.tok end -- the floor: a call returning a table field
  -- CPU time (os.clock): a pure CPU loop, so time stolen by other
  -- processes does not count against either side
  local clock = os.clock
  local function loop_token()
    local t0 = clock()
    for _ = 1, calls do p:token() end
    return (clock() - t0) / calls * 1e9
  end
  local function loop_plain()
    local t0 = clock()
    for _ = 1, calls do plain(box) end
    return (clock() - t0) / calls * 1e9
  end
  assert(p:token() == plain(box))
  loop_token(); loop_plain()
  local tk, pl, ratios = {}, {}, {}
  for r = 1, ROUNDS do
    if r % 2 == 1 then tk[r] = loop_token(); pl[r] = loop_plain()
    else pl[r] = loop_plain(); tk[r] = loop_token() end
    ratios[r] = tk[r] / pl[r]
  end
  results.benchmarks.cached_token = { token_ns = tk, plain_ns = pl }
  print(string.format("  p:token(): %s ns per call (%s million calls/s)", fmt(median(tk)), fmt(1e3 / median(tk))))
  compare {
    id = "3", name = "3 p:token() cached", value = median(tk), unit = "ns",
    baseline_name = "Lua call returning a field", baseline = median(pl),
    ratio = median(ratios), op = "<=", limit = 5,
  }
end

------------------------------------------------- 4. ID token verification

local SPEED = { RS256 = "rsa2048", ES256 = "ecdsap256", EdDSA = "ed25519" }

-- verify operations per second from `openssl speed -mr` (last field of +F lines)
local function openssl_speed(alg)
  local out = must("timeout 30 openssl speed -seconds 1 -mr " .. SPEED[alg] .. " 2>/dev/null")
  local line = ("\n" .. out):match("\n(%+F%d*:[^\n]+)")
  local v = line and tonumber(line:match(":([%d.]+)%s*$"))
  if not v then error("cannot read openssl speed output for " .. alg .. ":\n" .. out) end
  return v
end

local function bench_verify(keydir)
  local rounds = ROUNDS
  header(("4. ID token verification: decode, signature, claims (verifications per CPU second, median "
    .. "of %d rounds of 1 s interleaved with openssl speed -seconds 1, which also divides by user CPU "
    .. "time)"):format(rounds))
  results.benchmarks.verify = {}
  for _, alg in ipairs { "RS256", "ES256", "EdDSA" } do
    local c = idtok.case(alg, keydir)
    local function check()
      local claims, err = c.provider:verify_id_token(c.token, { nonce = c.nonce })
      if not claims then error(alg .. " verification failed: " .. tostring(err)) end
    end
    check()
    local function ours()
      local count, c0, w0 = 0, os.clock(), now()
      repeat
        for _ = 1, 50 do
          c.provider:verify_id_token(c.token, { nonce = c.nonce })
        end
        count = count + 50
      until os.clock() - c0 >= 1 or now() - w0 >= 5 or count >= 10000000
      return count / (os.clock() - c0)
    end
    local mine, theirs, ratios = {}, {}, {}
    for r = 1, rounds do
      if r % 2 == 1 then mine[r] = ours(); theirs[r] = openssl_speed(alg)
      else theirs[r] = openssl_speed(alg); mine[r] = ours() end
      ratios[r] = mine[r] / theirs[r]
    end
    check()
    results.benchmarks.verify[alg] = { smartauth_per_s = mine, openssl_speed_per_s = theirs,
      token_bytes = #c.token }
    compare {
      id = "4." .. alg, name = "4 verify_id_token " .. alg, value = median(mine), unit = "/s",
      baseline_name = "openssl speed " .. SPEED[alg], baseline = median(theirs),
      ratio = median(ratios), op = ">=", limit = 0.80,
    }
  end
end

------------------------------------------------------ 5. memory and load

local function bench_memory(urls, keydir)
  local n = 100000
  header(("5. Memory: RSS growth over %d token requests and %d verifications (KiB, after warm-up "
    .. "and a full collection); load time of require \"smartauth\""):format(n, n))
  local out = must("timeout 240 lua5.4 bench/memory.lua " .. q(urls.http) .. " " .. n .. " " .. q(keydir))
  local m = assert(cjson.decode(out:match("[^\n]+%s*$")))
  results.benchmarks.memory = m
  local g = m.after_grants.rss - m.start.rss
  local v = m.after_verify.rss - m.after_grants.rss
  print(string.format("  RSS: %d KiB after warm-up, %d after the grants, %d after the verifications "
    .. "(Lua heap %d / %d / %d KiB)", m.start.rss, m.after_grants.rss, m.after_verify.rss,
    m.start.heap, m.after_grants.heap, m.after_verify.heap))
  compare { id = "5.grants", name = "5 RSS growth, " .. n .. " token requests", value = g, unit = "KiB",
    op = "<=", limit = 256 }
  compare { id = "5.verify", name = "5 RSS growth, " .. n .. " verifications", value = v, unit = "KiB",
    op = "<=", limit = 256 }

  -- load time, in fresh processes, against the stack a hand-written client loads
  local function load_ms(mods)
    local code = "package.path='./lua/?.lua;./lua/?/init.lua;'..package.path; "
      .. "package.cpath='./build/?.so;'..package.cpath; local s=require'socket.core'; "
      .. "local t=s.gettime(); " .. mods .. "; io.write(string.format('%.6f 1', s.gettime()-t))"
    return timed("lua5.4 -e " .. q(code), 30) * 1000
  end
  local mine, theirs, ratios = {}, {}, {}
  local loads = 10
  for r = 1, loads do
    mine[r] = load_ms("require'smartauth'")
    theirs[r] = load_ms("require'socket.http'; require'ssl.https'; require'cjson'")
    ratios[r] = mine[r] / theirs[r]
  end
  results.benchmarks.load = { smartauth_ms = mine, luasocket_luasec_cjson_ms = theirs }
  compare { id = "5.load", name = "5 require \"smartauth\" (fresh process)", value = median(mine),
    unit = "ms", baseline_name = "socket.http+ssl.https+cjson", baseline = median(theirs),
    ratio = median(ratios), op = "<=", limit = 1 } -- issue 13: no more than a hand-written client

  -- issue 14: `smartauth token PROFILE` with a cached token (a file store,
  -- the secret in a private config file), CPU (user+sys of the processes,
  -- from bash's `times`) against a bare `lua5.4 -e ""`
  local cdir = tmp .. "/cli"
  must("mkdir -p " .. q(cdir))
  local cf = assert(io.open(cdir .. "/config.lua", "w"))
  cf:write(([[return { profiles = { svc = { token_endpoint = %q, client_id = "bench-client",
  client_secret = "bench-secret", store = { kind = "file", dir = %q } } } }
]]):format(urls.http, cdir .. "/store"))
  cf:close()
  must("chmod 600 " .. q(cdir .. "/config.lua"))
  local env = "SMARTAUTH_CONFIG=" .. q(cdir .. "/config.lua") .. " "
  local tok = must(env .. "lua5.4 bin/smartauth token svc")
  assert(tok:match("^[!-~]+\n$"), "smartauth token printed: " .. tok)
  local function cpu_ms(cmd, count)
    local text = must("bash -c " .. q("for i in $(seq " .. count .. "); do " .. cmd
      .. " >/dev/null || exit 1; done; times"))
    -- times: the shell's own user and sys, then its children's
    local m1, us, m2, ss = text:match("\n(%d+)m([%d.]+)s (%d+)m([%d.]+)s%s*$")
    assert(m1, "unexpected output of times: " .. text)
    return (tonumber(m1) * 60 + tonumber(us) + tonumber(m2) * 60 + tonumber(ss)) / count * 1000
  end
  local cli, bare, cratios = {}, {}, {}
  local count = 20
  for r = 1, ROUNDS do
    if r % 2 == 1 then
      cli[r] = cpu_ms(env .. "lua5.4 bin/smartauth token svc", count); bare[r] = cpu_ms("lua5.4 -e ''", count)
    else
      bare[r] = cpu_ms("lua5.4 -e ''", count); cli[r] = cpu_ms(env .. "lua5.4 bin/smartauth token svc", count)
    end
    cratios[r] = cli[r] / bare[r]
  end
  results.benchmarks.cli_token = { smartauth_token_cpu_ms = cli, lua_bare_cpu_ms = bare, runs_per_round = count }
  compare { id = "5.cli", name = "5 smartauth token PROFILE, cached (CPU)", value = median(cli),
    unit = "ms CPU", baseline_name = "lua5.4 -e \"\"", baseline = median(bare),
    ratio = median(cratios), op = "<=", limit = 5 }
end

-------------------------------------------------- 6. HTTP/2 multiplexing

-- 1,000 concurrent HTTPS requests as tasks to one HTTP/2 nginx that answers
-- after 50 ms (echo_sleep), against one request, in interleaved rounds; the
-- connections they used come from nginx's access log ($connection).
local function bench_http2(c)
  local nginx_h2 = require "helpers.nginx_h2"
  local engine = require "smartauth.engine"
  local count = 1000
  header(("6. HTTP/2: %d concurrent HTTPS requests to one h2 server answering after 50 ms "
    .. "(nginx, 1000 streams per connection; median of %d rounds)"):format(count, ROUNDS))
  local n = nginx_h2.start { cert = c.cert, key = c.key, streams = 1000 }
  cleanup[#cleanup + 1] = function() n:stop() end
  local url = n.url .. "/slow"
  local failures = 0
  local function batch(k)
    local t0 = now()
    for _ = 1, k do
      smartauth.spawn(function()
        local res, err = engine.request { url = url, ca_file = c.ca_file }
        if not res or res.status ~= 200 then
          failures = failures + 1
          io.stderr:write(tostring(err or res.status), "\n")
        end
      end)
    end
    local limit = t0 + 30
    while smartauth.step(0.05) > 0 do
      if now() > limit then error("HTTP/2 batch did not finish in 30 s") end
    end
    return (now() - t0) * 1000
  end
  batch(1); batch(count) -- the connection, handles and nginx warmed up
  local single, many, ratios, conns = {}, {}, {}, {}
  for r = 1, ROUNDS do
    single[r] = batch(1)
    socket.sleep(0.05) -- nginx logs after answering: the single request's line first
    n:clear_log()
    many[r] = batch(count)
    socket.sleep(0.05)
    conns[r] = n:log().connections
    ratios[r] = many[r] / single[r]
  end
  if failures > 0 then error(failures .. " HTTP/2 requests failed") end
  results.benchmarks.http2 = { concurrency = count, delay_ms = 50, single_ms = single,
    concurrent_ms = many, connections = conns }
  compare {
    id = "6", name = "6 " .. count .. " concurrent HTTP/2 requests, wall",
    value = median(many), unit = "ms", baseline_name = "one request", baseline = median(single),
    ratio = median(ratios), op = "<=", limit = 2,
  }
  local most = 0
  for _, k in ipairs(conns) do if k > most then most = k end end
  compare {
    id = "6", name = "6 connections they used (most in a round)", value = most, unit = "conns",
    op = "<=", limit = 10,
  }
end

------------------------------------------------------ 8. DPoP requests

-- p:request with a DPoP-bound token (a fresh ES256 proof with ath per
-- request) against the same call with a Bearer token, over HTTP to nginx's
-- /api (HTTP, so the TLS work a real API adds does not hide the proof's
-- cost). CPU time of this process (os.clock: the Lua layer, the proof and
-- libcurl's side of the exchange), slices interleaved, alternating which
-- runs first; the ratio is the median of the per-round ratios.
local function bench_dpop(urls)
  local n = 2000
  header(("8. p:request with DPoP against plain Bearer (µs of CPU per request, median of %d rounds of %d)")
    :format(ROUNDS, n))
  local api = urls.http:gsub("/token$", "/api")
  local bearer = assert(smartauth.provider { token_endpoint = urls.http, client_id = "bench-client",
    client_secret = "bench-secret", retry = false })
  local bound = assert(smartauth.provider { token_endpoint = urls.http, client_id = "bench-client",
    client_secret = "bench-secret", retry = false, dpop = true })
  local at = "2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789"
  local btok = { access_token = at, token_type = "Bearer" }
  local dtok = { access_token = at, token_type = "DPoP" }
  local clock = os.clock
  local function slice(p, tok)
    local req = { url = api, token = tok }
    local t0 = clock()
    for _ = 1, n do
      local res = p:request(req)
      if not res or res.status ~= 200 then error("bench 8: request failed") end
    end
    return (clock() - t0) / n * 1e6
  end
  slice(bearer, btok); slice(bound, dtok) -- warm: connection, JIT
  local b, d, ratios = {}, {}, {}
  for r = 1, ROUNDS do
    if r % 2 == 1 then d[r] = slice(bound, dtok); b[r] = slice(bearer, btok)
    else b[r] = slice(bearer, btok); d[r] = slice(bound, dtok) end
    ratios[r] = d[r] / b[r]
  end
  results.benchmarks.dpop_request = { dpop_cpu_us = d, bearer_cpu_us = b }
  print(string.format("  DPoP %s µs, Bearer %s µs of CPU per request", fmt(median(d)), fmt(median(b))))
  compare {
    id = "8", name = "8 p:request with DPoP (CPU)", value = median(d), unit = "µs",
    baseline_name = "p:request with Bearer", baseline = median(b),
    ratio = median(ratios), op = "<=", limit = 1.5,
  }
end

------------------------------------------------------------------- main

------------------------------------------------------ 7. frame budget

-- The embedding example (examples/embed/game.c) over HTTPS with a bundle
-- the size of the system's (the system bundle plus the test CA) and a file
-- store, 1,000 frames of smartauth.step(0) each: a game's first login (one
-- request: the bundle is read and the token saved) and 100 logins at once
-- (100 TLS handshakes begin in the same frames). The worst step and the
-- 99th percentile are the frame budget a game sees; target 2 ms.
local function bench_frame(urls, ca_file)
  header("7. smartauth.step(0) in a 60 fps host, HTTPS with the system CA bundle, file store (ms)")
  if not io.open("build/embed_game") then must("make -s build/embed_game") end
  local bundle = tmp .. "/system-plus-test-ca.pem"
  must("cat /etc/ssl/certs/ca-certificates.crt " .. q(ca_file) .. " > " .. q(bundle))
  results.benchmarks.frame = {}
  for _, n in ipairs { 1, 100 } do
    local worst, p99 = {}, {}
    for r = 1, 3 do
      local dir = tmp .. "/frame-store-" .. n .. "-" .. r
      local ok, out = sh("build/embed_game " .. q(assert(os.getenv("PWD"))) .. " " .. q(urls.https)
        .. " " .. n .. " " .. q(bundle) .. " " .. q(dir) .. " 1000")
      local w, p = (out or ""):match('"worst_step_ms":([%d.]+),"p99_step_ms":([%d.]+)')
      assert(ok and w, "embed_game failed: " .. tostring(out))
      worst[r], p99[r] = tonumber(w), tonumber(p)
    end
    results.benchmarks.frame["logins_" .. n] = { worst_step_ms = worst, p99_step_ms = p99 }
    print(string.format("  %d request(s): worst step %s ms, 99th percentile %s ms (medians of 3 runs)",
      n, fmt(median(worst)), fmt(median(p99))))
    compare {
      id = "7", name = ("7 worst step(0), %d login(s), 1,000 frames"):format(n), value = median(worst),
      unit = "ms", baseline_name = "frame budget", baseline = 2,
      ratio = median(worst) / 2, op = "<=", limit = 1,
    }
  end
end

------------------------------------------- 10. the gateway inside nginx

-- examples/nginx/gateway on 2 workers (a client-credentials token from
-- the bench's token server, cached in the workers, set as Authorization)
-- against the same nginx proxying the same upstream with a fixed header;
-- wrk drives both, interleaved. Needs libnginx-mod-http-lua, lua-resty-core,
-- wrk and build/luajit (make LUA=luajit).
local function wrk_rps(url, seconds, hdr)
  local out = must(("wrk -t2 -c32 -d%ds %s%s 2>&1"):format(seconds, hdr and "-H " .. q(hdr) .. " " or "",
    q(url)))
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  local non2xx = out:match("Non%-2xx or 3xx responses:%s*(%d+)")
  assert(rps and not non2xx, "wrk: " .. out)
  return rps
end

local function bench_gateway(urls)
  local nginx_lua = require "helpers.nginx_lua"
  local seconds = math.tointeger(tonumber(os.getenv("BENCH_WRK_SECONDS") or "3"))
  header(("10. gateway inside nginx (requests/s with wrk -t2 -c32, %d s, 2 workers, median of %d rounds)")
    :format(seconds, ROUNDS))
  local ok, why = nginx_lua.available()
  if not ok or not sh("command -v wrk >/dev/null 2>&1") then
    print("  skipped: " .. (why or "wrk is missing (apt-get install wrk)"))
    return
  end
  local upstream = nginx_lua.start { workers = 1, http = [[
    keepalive_requests 10000000;
    server { listen 127.0.0.1:$PORT; location / { return 200 "ok"; } }
  ]] }
  cleanup[#cleanup + 1] = function() upstream:stop() end
  local _, _, cwd = proc.run("pwd")
  local fixed = ("Bearer %s"):format(cjson.decode(TOKEN_JSON).access_token)
  local base_port = free_port()
  local gw = nginx_lua.start { conf = "examples/nginx/gateway/nginx.conf",
    path = cwd:gsub("%s+$", "") .. "/examples/nginx/gateway/?.lua",
    env = { SMARTAUTH_TOKEN_ENDPOINT = urls.http, SMARTAUTH_CLIENT_ID = "bench-client",
      SMARTAUTH_CLIENT_SECRET = "bench-secret" },
    subs = {
      { "server 127%.0%.0%.1:9000;", "server 127.0.0.1:" .. upstream.port .. ";" },
      -- the baseline: the same proxy with the header written in the config
      { "\n}%s*$", ([[

  server {
    listen 127.0.0.1:%d;
    location / {
      proxy_set_header Authorization "%s";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://api;
    }
  }
}
]]):format(base_port, fixed) },
    } }
  cleanup[#cleanup + 1] = function() gw:stop() end
  local base_url = "http://127.0.0.1:" .. base_port .. "/"
  wait_port(base_port, 5)
  local gw_url = gw.url .. "/"
  wrk_rps(gw_url, 1); wrk_rps(base_url, 1) -- warm: the token fetched, connections up
  local g, b, ratios = {}, {}, {}
  for r = 1, ROUNDS do
    if r % 2 == 1 then g[r] = wrk_rps(gw_url, seconds); b[r] = wrk_rps(base_url, seconds)
    else b[r] = wrk_rps(base_url, seconds); g[r] = wrk_rps(gw_url, seconds) end
    ratios[r] = g[r] / b[r]
  end
  results.benchmarks.gateway = { gateway_rps = g, fixed_header_rps = b, workers = 2 }
  compare {
    id = "10", name = "10 gateway example, requests/s", value = median(g), unit = "req/s",
    baseline_name = "proxy, fixed header", baseline = median(b),
    ratio = median(ratios), op = ">=", limit = 0.9,
  }
end

------------------------------------- 12. a JWT access token check per request

-- examples/nginx/resource's /api/ on 2 workers: an RS256 JWT access token
-- (RFC 9068) checked in the access phase of every request (the example's
-- verified_cache: after the first request a check is a SHA-256 lookup and
-- the claim checks; the key set was fetched over cosockets on the first)
-- against a server block of the same nginx proxying the same upstream with
-- no check; wrk sends the same Authorization header to both.
-- the status of a GET with a bearer token
local function oidc_get(url, token)
  local http = require "socket.http"
  local _, status = http.request { url = url, headers = { authorization = "Bearer " .. token },
    sink = function() return 1 end }
  return status
end

local function bench_resource(keydir)
  local nginx_lua = require "helpers.nginx_lua"
  local jwt = require "smartauth.jwt"
  local seconds = math.tointeger(tonumber(os.getenv("BENCH_WRK_SECONDS") or "3"))
  header(("12. JWT access token check inside nginx (requests/s with wrk -t2 -c32, %d s, 2 workers, "
    .. "median of %d rounds)"):format(seconds, ROUNDS))
  local ok, why = nginx_lua.available()
  if not ok or not sh("command -v wrk >/dev/null 2>&1") then
    print("  skipped: " .. (why or "wrk is missing (apt-get install wrk)"))
    return
  end
  local key = assert(core.key_pem(assert(proc.read_file(keydir .. "/" .. idtok.FILES.RS256))))
  local raw = assert(key:public())
  local jwks = cjson.encode { keys = { { kty = "RSA", kid = "bench-at", alg = "RS256", use = "sig",
    n = core.b64url_encode(raw.n), e = core.b64url_encode(raw.e) } } }
  -- the upstream is also the issuer: its discovery document and key set
  local upstream = nginx_lua.start { workers = 1, http = ([[
    keepalive_requests 10000000;
    server {
      listen 127.0.0.1:$PORT;
      default_type application/json;
      location = /.well-known/openid-configuration {
        return 200 '{"issuer":"http://127.0.0.1:$PORT","jwks_uri":"http://127.0.0.1:$PORT/jwks",
          "authorization_endpoint":"http://127.0.0.1:$PORT/auth","token_endpoint":"http://127.0.0.1:$PORT/token"}';
      }
      location = /jwks { return 200 '%s'; }
      location / { return 200 "ok"; }
    }
  ]]):format(jwks) }
  cleanup[#cleanup + 1] = function() upstream:stop() end
  local audience, t = "https://rs.bench.example/", os.time()
  local token = assert(jwt.encode({ alg = "RS256", kid = "bench-at", typ = "at+jwt" }, {
    iss = upstream.url, sub = "248289761001", aud = audience, client_id = "bench-client",
    jti = "at-0123456789", scope = "api:read api:write", iat = t, exp = t + 3600,
  }, key))
  local _, _, cwd = proc.run("pwd")
  local base_port = free_port()
  local rs = nginx_lua.start { conf = "examples/nginx/resource/nginx.conf",
    path = cwd:gsub("%s+$", "") .. "/examples/nginx/resource/?.lua",
    env = { SMARTAUTH_ISSUER = upstream.url, SMARTAUTH_AUDIENCE = audience, SMARTAUTH_SCOPE = "api:read",
      SMARTAUTH_CLIENT_ID = "bench-rs", SMARTAUTH_CLIENT_SECRET = "bench-rs-secret" },
    subs = {
      { "server 127%.0%.0%.1:9000;", "server 127.0.0.1:" .. upstream.port .. ";" },
      -- the baseline: the same proxy without the check
      { "\n}%s*$", ([[

  server {
    listen 127.0.0.1:%d;
    location /api/ {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }
  }
}
]]):format(base_port) },
    } }
  cleanup[#cleanup + 1] = function() rs:stop() end
  wait_port(base_port, 5)
  local rs_url, base_url = rs.url .. "/api/items", "http://127.0.0.1:" .. base_port .. "/api/items"
  local auth = "Authorization: Bearer " .. token
  local st = oidc_get(rs_url, token)
  assert(st == 200, "the resource server refused the bench token: " .. tostring(st) .. "\n" .. rs:error_log())
  assert(oidc_get(rs_url, token .. "x") == 401, "the resource server accepted a forged token")
  wrk_rps(rs_url, 1, auth); wrk_rps(base_url, 1, auth) -- warm: keys fetched, connections up
  local g, b, ratios = {}, {}, {}
  for r = 1, ROUNDS do
    if r % 2 == 1 then g[r] = wrk_rps(rs_url, seconds, auth); b[r] = wrk_rps(base_url, seconds, auth)
    else b[r] = wrk_rps(base_url, seconds, auth); g[r] = wrk_rps(rs_url, seconds, auth) end
    ratios[r] = g[r] / b[r]
  end
  results.benchmarks.resource = { checked_rps = g, unchecked_rps = b, workers = 2, alg = "RS256" }
  compare {
    id = "12", name = "12 RS256 JWT check per request, req/s", value = median(g), unit = "req/s",
    baseline_name = "proxy, no check", baseline = median(b),
    ratio = median(ratios), op = ">=", limit = 0.8,
  }
end

local function main()
  check_tools()
  results.machine = machine_info()
  print(string.format("smartauth %s benchmarks on %s (%d CPUs, load %s)", smartauth._VERSION,
    results.machine.cpu, results.machine.cpus, results.machine.load_at_start))
  print("  " .. results.machine.libcurl .. "; " .. results.machine.openssl .. "; node "
    .. results.machine.node .. ", openid-client " .. results.machine.openid_client .. "; "
    .. results.machine.nginx)
  local c = certs.make(tmp .. "/certs")
  local urls = start_nginx(c)
  local keydir = tmp .. "/keys"
  must("mkdir -p " .. q(keydir))
  idtok.make_keys(keydir)
  if ONLY[1] then bench_round_trips(urls, c.ca_file) end
  if ONLY[2] then bench_concurrent() end
  if ONLY[3] then bench_cached(urls) end
  if ONLY[4] then bench_verify(keydir) end
  if ONLY[5] then bench_memory(urls, keydir) end
  if ONLY[6] then bench_http2(c) end
  if ONLY[7] then bench_frame(urls, c.ca_file) end
  if ONLY[10] then bench_gateway(urls) end
  if ONLY[8] then bench_dpop(urls) end
  if ONLY[12] then bench_resource(keydir) end
  -- 13 (how cost grows) and 9 (a fleet on one store) live in their own files
  local ctx = { compare = compare, header = header, median = median, fmt = fmt, results = results,
    cleanup = cleanup, tmp = tmp, sh = sh, must = must, q = q, cjson = cjson, proc = proc,
    free_port = free_port, wait_port = wait_port, ROUNDS = ROUNDS, certs = c }
  if ONLY[13] then require("scale").run(ctx) end
  if ONLY[9] then require("fleet").run(ctx) end
  if ONLY[11] then
    results.benchmarks.jwe = require("jwe").run { must = must, median = median, compare = compare,
      header = header, rounds = ROUNDS, keydir = keydir, now = now }
  end
end

local ok, err = xpcall(main, debug.traceback)
run_cleanup()
results.machine = results.machine or {}
results.machine.load_at_end = (function()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or ""
  if f then f:close() end
  return s:match("^(%S+ %S+ %S+)")
end)()
results.seconds = now() - started
results.ok = ok

if ok then
  local misses = 0
  for _, cmp in ipairs(results.comparisons) do if cmp.pass == false then misses = misses + 1 end end
  results.misses = misses
  os.execute("mkdir -p bench/results")
  local stamp = os.date("!%Y%m%dT%H%M%SZ")
  local text = cjson.encode(results)
  for _, path in ipairs { "bench/results/bench-" .. stamp .. ".json", "bench/results/latest.json" } do
    local f = assert(io.open(path, "w"))
    f:write(text, "\n")
    f:close()
  end
  print("")
  print(string.format("%d comparisons, %d missed; %.0f s; load average %s at start, %s at end; "
    .. "results in bench/results/bench-%s.json", #results.comparisons, misses, results.seconds,
    results.machine.load_at_start or "?", results.machine.load_at_end or "?", stamp))
else
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
