-- Benchmark 1, smartauth: sequential client_credentials grants.
--   lua5.4 bench/client_smartauth.lua URL CA_FILE|- [engine | request API_URL]
-- With "engine", the same request goes straight to the core's HTTP engine
-- (smartauth.core, no Lua layer): it splits smartauth's cost between the C
-- engine and the provider code. With "request", each operation is
-- `p:request{ url = API_URL }` (a GET) with the token cached after one grant.
-- A worker: reads a count per line on stdin, does that many grants, and
-- answers "<seconds> <count> <cpu seconds>" (wall time, and this process's
-- CPU time); "q" or end of input ends it. SPIN=seconds sets the engine's
-- busy poll of blocking waits (engine:spin; 0 turns it off).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local smartauth = require "smartauth"
local core = require "smartauth.core"

local url, ca, mode = arg[1], arg[2], arg[3]
local p = assert(smartauth.provider {
  token_endpoint = url, client_id = "bench-client", client_secret = "bench-secret",
  ca_file = ca ~= "-" and ca or nil, retry = false, timeout = 10,
})
local grant = function() return p:client_credentials() end
if mode == "engine" then
  local engine = require("smartauth.http").engine()
  local req = { method = "POST", url = url, ca_file = ca ~= "-" and ca or nil, timeout = 10, headers = {
    "Accept: application/json", "Content-Type: application/x-www-form-urlencoded",
    "Authorization: " .. core.basic_auth("bench-client", "bench-secret") },
    body = "grant_type=client_credentials" }
  grant = function()
    local res, _, msg = engine:request(req)
    if not res or res.status ~= 200 then return nil, msg or res.status end
    return res
  end
end
if mode == "request" then
  local api = assert(arg[4], "request needs API_URL")
  assert(p:token())
  grant = function()
    local res, err = p:request { url = api }
    if not res or res.status ~= 200 then return nil, err or res.status end
    return res
  end
end
if os.getenv("SPIN") then require("smartauth.http").engine():spin(tonumber(os.getenv("SPIN"))) end
io.stdout:setvbuf("line")
for line in io.lines() do
  local n = math.tointeger(tonumber(line))
  if not n then break end
  local t0, c0 = core.monotonic(), os.clock()
  for _ = 1, n do
    local tok, err = grant()
    if not tok then io.stderr:write("smartauth: ", tostring(err), "\n") os.exit(1) end
  end
  print(string.format("%.9f %d %.6f", core.monotonic() - t0, n, os.clock() - c0))
end
