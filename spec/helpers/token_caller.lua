--- Child process of the multi-process single-flight specs: opens the shared
-- store, says it is ready, waits for the go signal, calls p:token() once and
-- prints "<access_token> <refresh_token>".
--
--   lua5.4 spec/helpers/token_caller.lua file|redis DIR|PORT TOKEN_URL SYNC_DIR INDEX
local compat = require "smartauth.compat"
local socket = require "socket"
local smartauth = require "smartauth"

local kind, where, token_url, sync, index = arg[1], arg[2], arg[3], arg[4], arg[5]

local store, err
if kind == "file" then
  store, err = smartauth.store.file { dir = where }
else
  store, err = smartauth.store.redis { port = compat.tointeger(tonumber(where)) }
end
if not store then
  io.stderr:write("store: ", tostring(err), "\n")
  os.exit(2)
end
local p = assert(smartauth.provider {
  name = "multi", token_endpoint = token_url, client_id = "cid", client_secret = "csecret", store = store,
})

local f = assert(io.open(sync .. "/ready." .. index, "w"))
f:close()
local deadline = socket.gettime() + 20
while not io.open(sync .. "/go") do
  if socket.gettime() > deadline then
    io.stderr:write("no go signal\n")
    os.exit(3)
  end
  socket.sleep(0.001)
end

local t
t, err = p:token()
if not t then
  io.stderr:write("token: ", tostring(err), "\n")
  os.exit(1)
end
io.write(t.access_token, " ", tostring(t.refresh_token), "\n")
