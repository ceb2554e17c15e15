-- Benchmark 13's smartauth side (bench/scale.lua drives it): N
-- `p:client_credentials()` tasks spawned at once (`smartauth.spawn`) and
-- driven with `smartauth.step` until all are done, in a fresh process.
--
--   lua5.4 bench/scale_worker.lua URL N
--
-- One warm-up grant first (libcurl loaded, modules compiled), then the
-- peak RSS is reset (/proc/self/clear_refs) and the N grants run. Prints
-- one JSON line like bench/scale_floor.c: {"n":,"wall":,"cpu":,"rss0":,"hwm":,"ok":}.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local smartauth = require "smartauth"
local core = require "smartauth.core"

local url, n = arg[1], math.tointeger(tonumber(arg[2] or ""))
assert(url and n and n > 0, "usage: scale_worker.lua URL N")

local function status_kib(key)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return math.tointeger(tonumber(text:match(key .. ":%s*(%d+)")))
end

local p = assert(smartauth.provider {
  token_endpoint = url, client_id = "bench-client", client_secret = "bench-secret",
  retry = false, timeout = 60,
})

local ok, failures = 0, 0
local function batch(count)
  for _ = 1, count do
    smartauth.spawn(function()
      local tok, err = p:client_credentials()
      if tok then ok = ok + 1 else
        failures = failures + 1
        if failures <= 5 then io.stderr:write(tostring(err), "\n") end
      end
    end)
  end
  local limit = core.monotonic() + 120
  while smartauth.step(0.05) > 0 do
    if core.monotonic() > limit then error("batch did not finish in 120 s") end
  end
end

batch(1)
if ok ~= 1 then error("warm-up grant failed") end
ok = 0
-- 0.3 s idle, as the floor does: the engine reads the system CA bundle on
-- a thread of its own when it is made (csrc/http_ca.c, 30-40 ms of CPU),
-- which is start-up cost, not the batch's
smartauth.step(0.3)
collectgarbage()
local rss0 = status_kib("VmRSS")
local f = io.open("/proc/self/clear_refs", "w") -- resets VmHWM (Linux 4.0+)
if f then f:write("5") f:close() end
local t0, c0 = core.monotonic(), os.clock()
batch(n)
local wall, cpu = core.monotonic() - t0, os.clock() - c0
io.write(string.format('{"n":%d,"wall":%.6f,"cpu":%.6f,"rss0":%d,"hwm":%d,"ok":%d}\n',
  n, wall, cpu, rss0, status_kib("VmHWM"), ok))
os.exit(ok == n and 0 or 1)
