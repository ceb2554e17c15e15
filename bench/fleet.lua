-- Benchmark 9 of bench/run.lua: a fleet on one store. N processes (1, 8,
-- 16, 32, 64) share one store (Redis, then the file store on this host)
-- holding a token that is due; each is started and loaded first
-- (bench/fleet_worker.lua), then all are released by one signal (the
-- driver closes the FIFO they read: end of file for every reader at once)
-- and call p:token(). The token server answers after 50 ms (nginx
-- echo_sleep, every request logged). Checked: exactly one request reaches
-- the token server, every process gets the new token. Measured: the time
-- from the signal to the last token, against the same for one process
-- (N = 1: one process's p:token() for a due token, with the same wake-up).
--
-- BENCH_QUICK=1 runs 8 and 16 only, 3 rounds.
local scale = require "scale"
local token_mod = require "smartauth.token"
local smartauth = require "smartauth"
local core = require "smartauth.core"

local M = {}

local now = core.monotonic

-- closes every descriptor above 2 a subshell inherited ($BASHPID: the subshell)
local CLOSE_FDS = [[for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; ]]

local function lines(path)
  local n = 0
  local f = io.open(path)
  if not f then return 0 end
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

-- Puts a token that expired an hour ago under the fleet provider's key.
local function store_due(store, url)
  local p = assert(smartauth.provider {
    name = "fleet", token_endpoint = url, client_id = "bench-client", client_secret = "bench-secret",
    store = store, retry = false,
  })
  local t = assert(token_mod.from_response({ access_token = "old-token-due-for-renewal",
    token_type = "Bearer", expires_in = 3600 }, os.time() - 7200))
  assert(store:set(p:store_key(), t:to_entry()))
end

-- One release of n processes; returns { last_ms, first_ms, requests, new }.
local function round(ctx, kind, where, store, srv, n, dir)
  store_due(store, srv.fleet_url)
  local fifo, ready = dir .. "/go", dir .. "/ready"
  os.remove(fifo)
  os.remove(ready)
  ctx.must("mkfifo " .. ctx.q(fifo))
  -- read+write: opening never blocks, and this is the FIFO's only writer
  local go = assert(io.open(fifo, "r+"))
  local f = assert(io.open(srv.fleet_log, "w")) -- nginx appends: truncating empties it
  f:close()
  local cmds = {}
  for i = 1, n do
    -- each worker drops inherited descriptors (the FIFO's write end above
    -- among them: a reader holding it would never see end of file)
    cmds[i] = "( " .. CLOSE_FDS .. "exec lua5.4 bench/fleet_worker.lua " .. kind .. " "
      .. ctx.q(where) .. " " .. ctx.q(srv.fleet_url) .. " " .. ctx.q(fifo) .. " " .. ctx.q(ready)
      .. " >" .. ctx.q(dir .. "/out." .. i) .. " 2>" .. ctx.q(dir .. "/err." .. i) .. " ) &"
  end
  -- the shell that waits for them drops the inherited descriptors too
  local procs = assert(io.popen("exec bash -c " .. ctx.q(CLOSE_FDS .. "\n" .. table.concat(cmds, "\n") .. "\nwait")
    .. " </dev/null", "r"))
  local deadline = now() + 60
  while lines(ready) < n do
    if now() > deadline then
      go:close()
      procs:close()
      error(("fleet: only %d of %d processes got ready"):format(lines(ready), n), 0)
    end
    ctx.proc.sleep(0.01)
  end
  ctx.proc.sleep(0.1) -- every reader blocked in read()
  local t_signal = now()
  go:close()
  procs:read("a")
  procs:close()
  local last, first, new, cpu, wake = 0, math.huge, 0, 0, 0
  for i = 1, n do
    local out = ctx.proc.read_file(dir .. "/out." .. i) or ""
    local done = tonumber(out:match('"done":([%d.]+)'))
    if not done then
      error(("fleet: process %d of %d failed: %s"):format(i, n, ctx.proc.read_file(dir .. "/err." .. i) or ""), 0)
    end
    if out:match('"token":"new"') then new = new + 1 end
    cpu = cpu + tonumber(out:match('"cpu":([%d.]+)'))
    wake = math.max(wake, tonumber(out:match('"wake":([%d.]+)')) - t_signal)
    last = math.max(last, done - t_signal)
    first = math.min(first, done - t_signal)
  end
  ctx.proc.sleep(0.06) -- nginx logs after answering
  return { last_ms = last * 1000, first_ms = first * 1000, requests = lines(srv.fleet_log), new = new,
    cpu_ms = cpu * 1000, last_wake_ms = wake * 1000 }
end

function M.run(ctx)
  local quick = os.getenv("BENCH_QUICK") == "1"
  local sizes = quick and { 8, 16 } or { 8, 16, 32, 64 }
  if os.getenv("BENCH_FLEET") then -- e.g. BENCH_FLEET=64 while profiling
    sizes = {}
    for n in os.getenv("BENCH_FLEET"):gmatch("%d+") do sizes[#sizes + 1] = tonumber(n) end
  end
  local rounds = quick and math.min(ctx.ROUNDS, 3) or math.min(ctx.ROUNDS, 5)
  local srv = scale.server(ctx)
  ctx.header(("9. Fleet: N processes on one store, a due token, released by one signal; the token server "
    .. "answers after 50 ms; signal to the last token (ms, median of %d rounds), against one process"):format(rounds))
  local redis = require("helpers.redis").start()
  ctx.cleanup[#ctx.cleanup + 1] = function() redis:stop() end
  local filedir = ctx.tmp .. "/fleet-store"
  ctx.must("mkdir -p " .. ctx.q(filedir) .. " && chmod 700 " .. ctx.q(filedir))
  local res = {}
  ctx.results.benchmarks.fleet = res
  for _, kind in ipairs { "redis", "file" } do
    local where = kind == "redis" and tostring(redis.port) or filedir
    local store = kind == "redis" and assert(smartauth.store.redis { port = redis.port })
      or assert(smartauth.store.file { dir = filedir })
    local dir = ctx.tmp .. "/fleet-" .. kind
    ctx.must("mkdir -p " .. ctx.q(dir))
    local per = { sizes = {} }
    res[kind] = per
    local all = { 1 }
    for _, n in ipairs(sizes) do all[#all + 1] = n end
    local runs = {}
    for _, n in ipairs(all) do runs[n] = {} end
    -- interleaved: each round runs every size once
    for r = 1, rounds do
      for _, n in ipairs(all) do runs[n][r] = round(ctx, kind, where, store, srv, n, dir) end
    end
    local one
    for _, n in ipairs(all) do
      local lasts, firsts, most, fewest_new, cpus, wakes = {}, {}, 0, n, {}, {}
      for r, x in ipairs(runs[n]) do
        lasts[r], firsts[r], cpus[r], wakes[r] = x.last_ms, x.first_ms, x.cpu_ms, x.last_wake_ms
        if x.requests > most then most = x.requests end
        if x.new < fewest_new then fewest_new = x.new end
      end
      local s = { n = n, rounds = runs[n], last_ms = ctx.median(lasts), first_ms = ctx.median(firsts),
        most_requests = most, fewest_new = fewest_new, cpu_ms = ctx.median(cpus),
        last_wake_ms = ctx.median(wakes) }
      per.sizes[#per.sizes + 1] = s
      if n == 1 then one = s.last_ms end
      print(string.format("  %-5s %3d processes: last token %7.1f ms after the signal (first %6.1f), "
        .. "%.2fx one process; token server requests per round: at most %d; new token in %d of %d; "
        .. "CPU in p:token() %.1f ms in all; the last process woke %.1f ms after the signal",
        kind, n, s.last_ms, s.first_ms, s.last_ms / one, most, fewest_new, n, s.cpu_ms, s.last_wake_ms))
    end
    for _, s in ipairs(per.sizes) do
      if s.n > 1 then
        ctx.compare { id = "9." .. kind .. ".time." .. s.n, name = ("9 %s, %d processes, signal to last token")
          :format(kind, s.n), value = s.last_ms, unit = "ms", baseline_name = "one process", baseline = one,
          ratio = s.last_ms / one, op = s.n == 64 and "<=" or nil, limit = s.n == 64 and 2 or nil }
      end
    end
    for _, s in ipairs(per.sizes) do
      ctx.compare { id = "9." .. kind .. ".requests." .. s.n, name = ("9 %s, %d processes, token requests")
        :format(kind, s.n), value = s.most_requests, unit = "req", op = "<=", limit = 1 }
      ctx.compare { id = "9." .. kind .. ".new." .. s.n, name = ("9 %s, %d processes, got the new token (fewest)")
        :format(kind, s.n), value = s.fewest_new, unit = "procs", op = ">=", limit = s.n }
    end
    store:close()
  end
end

return M
