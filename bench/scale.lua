-- Benchmark 13 of bench/run.lua: how cost grows with the number of
-- requests in flight. N concurrent client_credentials grants (N = 1, 10,
-- 100, 1,000, 10,000) against a server that answers after 50 ms, each N in
-- a fresh process: smartauth (bench/scale_worker.lua: N tasks under
-- smartauth.spawn) against the C floor (bench/scale_floor.c: the same POSTs
-- on one libcurl multi handle, epoll, no Lua), interleaved rounds.
-- Wall time, CPU time, peak RSS above the RSS before the batch, and that
-- divided by N (RSS per request in flight).
--
-- The server is nginx with the echo module (`echo_sleep 0.05`), one worker
-- with a descriptor limit above 10,000 and a listen backlog of 65535 (the
-- kernel caps it at net.core.somaxconn). Whether it keeps up is checked on
-- every run: its own CPU time over the batch, and the kernel's
-- ListenOverflows/ListenDrops counters (a full accept queue drops a
-- handshake and costs the client a 1 s retransmit).
--
-- BENCH_QUICK=1 stops at 1,000 in flight and runs 3 rounds (CI-sized).
local M = {}

local SIZES = { 1, 10, 100, 1000, 10000 }
local TOKEN_JSON = '{"access_token":"2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789",'
  .. '"token_type":"Bearer","expires_in":3600,"scope":"api"}'

-- TcpExt counters from /proc/net/netstat (name -> number)
local function tcpext()
  local f = io.open("/proc/net/netstat")
  if not f then return {} end
  local names, out = nil, {}
  for line in f:lines() do
    if line:match("^TcpExt:") then
      if not names then
        names = {}
        for w in line:gmatch("%S+") do names[#names + 1] = w end
      else
        local i = 0
        for w in line:gmatch("%S+") do
          i = i + 1
          out[names[i]] = tonumber(w)
        end
      end
    end
  end
  f:close()
  return out
end

-- user+system CPU seconds of a process (clock ticks of 1/100 s)
local function proc_cpu(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

local function start_server(ctx)
  local dir = ctx.tmp .. "/scale-nginx"
  ctx.must("mkdir -p " .. ctx.q(dir .. "/tmp"))
  local hard = math.tointeger(tonumber((select(2, ctx.sh("ulimit -Hn")) or ""):match("%d+") or "")) or 1024
  local port = ctx.free_port()
  local conf = ([[
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
master_process off;
daemon on;
worker_rlimit_nofile %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections %d; multi_accept on; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:%d backlog=65535;
    default_type application/json;
    location = /token {
      echo_read_request_body;
      echo_sleep 0.05;
      echo -n '%s';
    }
    # benchmark 9's token server: the same, every request logged (counted)
    location = /fleet {
      access_log %s/fleet.log;
      echo_read_request_body;
      echo_sleep 0.05;
      echo -n '%s';
    }
  }
}
]]):format(hard, dir, dir, hard - 64, dir, dir, dir, dir, dir, port, TOKEN_JSON, dir, TOKEN_JSON)
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  ctx.must("nginx -p " .. ctx.q(dir) .. " -c " .. ctx.q(dir .. "/nginx.conf") .. " -e "
    .. ctx.q(dir .. "/error.log") .. " 2>&1")
  local pid
  ctx.cleanup[#ctx.cleanup + 1] = function()
    if pid then
      os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
      if not ctx.proc.wait_gone(pid, 3) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    end
  end
  ctx.wait_port(port, 5)
  pid = math.tointeger(tonumber(ctx.proc.read_file(dir .. "/nginx.pid") or ""))
  return "http://127.0.0.1:" .. port .. "/token", pid, hard
end

--- The server of benchmarks 13 and 9 (started once per run): { url, pid,
-- fd_limit, fleet_url, fleet_log } (fleet_log: one line per request to
-- fleet_url).
function M.server(ctx)
  if not ctx.scale_server then
    local url, pid, hard = start_server(ctx)
    ctx.scale_server = { url = url, pid = pid, fd_limit = hard, fleet_url = url:gsub("/token$", "/fleet"),
      fleet_log = ctx.tmp .. "/scale-nginx/fleet.log" }
  end
  return ctx.scale_server
end

-- One batch of n in a fresh process with the descriptor limit raised to
-- the hard limit; returns the worker's figures plus the server's CPU
-- seconds and the listen-queue drops during the run.
local function run_one(ctx, cmd, n, server_pid)
  local before, scpu0 = tcpext(), proc_cpu(server_pid)
  local ok, out, code = ctx.sh("timeout 300 bash -c " .. ctx.q("ulimit -n $(ulimit -Hn) && exec " .. cmd)
    .. " 2>&1")
  local after, scpu1 = tcpext(), proc_cpu(server_pid)
  local line = out:match('({"n":[^\n]*})')
  if not ok or not line then
    error(("scale benchmark client failed (exit %s) at %d in flight: %s\n%s"):format(
      tostring(code), n, cmd, out), 0)
  end
  local r = ctx.cjson.decode(line)
  r.server_cpu = scpu0 and scpu1 and (scpu1 - scpu0) or nil
  r.listen_drops = ((after.ListenOverflows or 0) - (before.ListenOverflows or 0))
    + ((after.ListenDrops or 0) - (before.ListenDrops or 0))
  return r
end

function M.run(ctx)
  local quick = os.getenv("BENCH_QUICK") == "1"
  local sizes = {}
  for _, n in ipairs(SIZES) do
    if not quick or n <= 1000 then sizes[#sizes + 1] = n end
  end
  local rounds = quick and math.min(ctx.ROUNDS, 3) or ctx.ROUNDS
  local srv = M.server(ctx)
  local url, server_pid, hard = srv.url, srv.pid, srv.fd_limit
  ctx.header(("13. How cost grows: N concurrent client_credentials grants, server answers after 50 ms "
    .. "(nginx echo_sleep), each N in a fresh process; smartauth tasks vs the C floor (one libcurl "
    .. "multi handle, epoll, no Lua); median of %d interleaved rounds (%d at 10,000); fd limit %d")
    :format(rounds, math.min(rounds, 5), hard))
  if not io.open("build/bench/scale_floor") then ctx.must("make -s build/bench/scale_floor") end
  local floor_cmd = "build/bench/scale_floor " .. ctx.q(url) .. " "
  local sa_cmd = "lua5.4 bench/scale_worker.lua " .. ctx.q(url) .. " "
  local res = { url_delay_ms = 50, fd_limit = hard, sizes = {} }
  ctx.results.benchmarks.scale = res
  local one_wall
  print(string.format("  %7s | %-29s | %-29s | %-17s | %-15s | %s", "N", "wall ms: smartauth / floor",
    "CPU ms: smartauth / floor", "peak RSS MiB", "KiB per request", "server CPU, drops"))
  for _, n in ipairs(sizes) do
    local r_n = n >= 10000 and math.min(rounds, 5) or rounds
    local sa, fl = {}, {}
    for r = 1, r_n do
      if r % 2 == 1 then
        fl[r] = run_one(ctx, floor_cmd .. n, n, server_pid); sa[r] = run_one(ctx, sa_cmd .. n, n, server_pid)
      else
        sa[r] = run_one(ctx, sa_cmd .. n, n, server_pid); fl[r] = run_one(ctx, floor_cmd .. n, n, server_pid)
      end
    end
    local function col(list, f)
      local t = {}
      for i, x in ipairs(list) do t[i] = f(x) end
      return t
    end
    local wall_r, cpu_r = {}, {}
    for r = 1, r_n do
      wall_r[r] = sa[r].wall / fl[r].wall
      cpu_r[r] = sa[r].cpu / fl[r].cpu
    end
    local m = ctx.median
    local s = {
      n = n, rounds = r_n, smartauth = sa, floor = fl,
      wall_ms = m(col(sa, function(x) return x.wall * 1000 end)),
      floor_wall_ms = m(col(fl, function(x) return x.wall * 1000 end)),
      cpu_ms = m(col(sa, function(x) return x.cpu * 1000 end)),
      floor_cpu_ms = m(col(fl, function(x) return x.cpu * 1000 end)),
      peak_kib = m(col(sa, function(x) return x.hwm end)),
      floor_peak_kib = m(col(fl, function(x) return x.hwm end)),
      per_req_kib = m(col(sa, function(x) return (x.hwm - x.rss0) / n end)),
      floor_per_req_kib = m(col(fl, function(x) return (x.hwm - x.rss0) / n end)),
      wall_ratio = m(wall_r), cpu_ratio = m(cpu_r),
      server_cpu_ms = m(col(sa, function(x) return (x.server_cpu or 0) * 1000 end)),
      listen_drops = 0,
    }
    for r = 1, r_n do s.listen_drops = s.listen_drops + sa[r].listen_drops + fl[r].listen_drops end
    res.sizes[#res.sizes + 1] = s
    if n == 1 then one_wall = s.wall_ms end
    print(string.format("  %7d | %8.1f / %8.1f  (%5.2fx) | %8.1f / %8.1f  (%5.2fx) | %6.1f / %6.1f | "
      .. "%5.1f / %5.1f | %s ms, %d",
      n, s.wall_ms, s.floor_wall_ms, s.wall_ratio, s.cpu_ms, s.floor_cpu_ms, s.cpu_ratio,
      s.peak_kib / 1024, s.floor_peak_kib / 1024, s.per_req_kib, s.floor_per_req_kib,
      ctx.fmt(s.server_cpu_ms), s.listen_drops))
  end
  for _, s in ipairs(res.sizes) do
    ctx.compare { id = "13.wall." .. s.n, name = ("13 %d in flight, wall"):format(s.n), value = s.wall_ms,
      unit = "ms", baseline_name = "C floor, multi handle", baseline = s.floor_wall_ms,
      ratio = s.wall_ratio, op = "<=", limit = 1.2 }
    ctx.compare { id = "13.cpu." .. s.n, name = ("13 %d in flight, CPU"):format(s.n), value = s.cpu_ms,
      unit = "ms", baseline_name = "C floor, multi handle", baseline = s.floor_cpu_ms,
      ratio = s.cpu_ratio, op = "<=", limit = 1.2 }
  end
  for _, s in ipairs(res.sizes) do
    -- below 100 in flight the growth is within the allocator's page noise
    ctx.compare { id = "13.rss." .. s.n, name = ("13 %d in flight, RSS per request"):format(s.n),
      value = s.per_req_kib, unit = "KiB", baseline_name = "C floor", baseline = s.floor_per_req_kib,
      op = s.n >= 100 and "<=" or nil, limit = s.n >= 100 and 32 or nil }
  end
  for _, s in ipairs(res.sizes) do
    if s.n == 1000 then
      ctx.compare { id = "13.1000_vs_1", name = "13 1,000 in flight vs one request, wall",
        value = s.wall_ms, unit = "ms", baseline_name = "one request (smartauth)", baseline = one_wall,
        ratio = s.wall_ms / one_wall, op = "<=", limit = 4 }
    end
  end
end

return M
