-- One process of benchmark 9's fleet (bench/fleet.lua drives it): opens
-- the shared store, makes the provider and loads everything a renewal
-- needs (the engine and libcurl, the grant code, the store's connection),
-- says it is ready, then waits on a FIFO until the driver closes it (the
-- one signal that releases every process at once) and calls p:token() once.
--
--   lua5.4 bench/fleet_worker.lua redis|file PORT|DIR TOKEN_URL FIFO READY_FILE
--
-- Prints one JSON line: {"wake":t,"done":t,"cpu":s,"ok":true,"token":"new"}
-- (CLOCK_MONOTONIC seconds, comparable across processes; cpu: this
-- process's CPU seconds in p:token()).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local smartauth = require "smartauth"
local core = require "smartauth.core"

local kind, where, url, fifo, ready = arg[1], arg[2], arg[3], arg[4], arg[5]
assert(kind and where and url and fifo and ready, "usage: fleet_worker.lua redis|file PORT|DIR URL FIFO READY")

local store, err
if kind == "redis" then
  store, err = smartauth.store.redis { port = math.tointeger(tonumber(where)) }
else
  store, err = smartauth.store.file { dir = where }
end
if not store then error("store: " .. tostring(err)) end
local p = assert(smartauth.provider {
  name = "fleet", token_endpoint = url, client_id = "bench-client", client_secret = "bench-secret",
  store = store, retry = false,
})
-- loaded first: what the renewal will use, so the signal measures the
-- renewal and not module loading
require("smartauth.engine").http.engine()
require "smartauth.grant"
assert(store:get(p:store_key()) ~= nil, "no due token stored")

local r = assert(io.open(fifo, "r"))
local f = assert(io.open(ready, "a"))
f:setvbuf("no")
f:write("ready\n")
f:close()
r:read("a") -- end of file: the driver closed its end
r:close()
local wake, c0 = core.monotonic(), os.clock()
local tok, terr = p:token()
local done, cpu = core.monotonic(), os.clock() - c0
if not tok then
  io.stderr:write("token: ", tostring(terr), "\n")
  os.exit(1)
end
io.write(string.format('{"wake":%.6f,"done":%.6f,"cpu":%.6f,"ok":true,"token":"%s"}\n', wake, done, cpu,
  tok.access_token == "2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789" and "new" or "old"))
