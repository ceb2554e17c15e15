-- Benchmark 1, baseline (c): what a careful Lua user writes today.
--   lua5.4 bench/client_luasocket.lua URL CA_FILE|-
-- LuaSocket's socket.http.request() always sends "Connection: close" (one new
-- TCP, and for https one new TLS, connection per request), so this client uses
-- the documented lower layer of the same module, socket.http.open(), and sends
-- every request on one kept-alive connection: request line, headers and body
-- written and the response read (Content-Length body) by socket.http's own
-- code. For https the connection is wrapped by LuaSec (ssl.wrap, verify peer
-- against the bench CA, SNI), as ssl.https does. The body is decoded with
-- lua-cjson, as smartauth does. TCP_NODELAY is set (see tcp_create).
-- A worker like bench/client_smartauth.lua: a count per line on stdin,
-- "<seconds> <count> <cpu seconds>" back.
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local mime = require "mime"
local cjson = require "cjson"

local url, ca = arg[1], arg[2]
local scheme, host, port, path = url:match("^(https?)://([^:/]+):(%d+)(/.*)$")
port = tonumber(port)

-- Nagle's algorithm would hold the body back until the headers are
-- acknowledged (socket.http writes them separately): +40 ms per request
-- from delayed ACKs. A careful user turns it off.
local function tcp_create()
  local c = assert(socket.tcp4())
  assert(c:setoption("tcp-nodelay", true))
  return c
end

-- the connection factory ssl.https uses internally, written out
local function tls_create()
  local ssl = require "ssl"
  local params = { mode = "client", protocol = "any", verify = "peer", cafile = ca,
    options = { "all", "no_sslv3" } }
  local conn = { sock = tcp_create() }
  function conn:settimeout(t) return self.sock:settimeout(t) end
  function conn:connect(h, p)
    assert(self.sock:connect(h, p))
    self.sock = assert(ssl.wrap(self.sock, params))
    self.sock:sni(h)
    self.sock:settimeout(10)
    assert(self.sock:dohandshake())
    setmetatable(self, { __index = function(t, k)
      local f = t.sock[k]
      if type(f) == "function" then
        local m = function(_, ...) return f(t.sock, ...) end
        rawset(t, k, m)
        return m
      end
      return f
    end })
    return 1
  end
  return conn
end

local conn = http.open(host, port, scheme == "https" and tls_create or tcp_create)
local body = "grant_type=client_credentials"
local send_headers = {
  ["host"] = host .. ":" .. port,
  ["connection"] = "keep-alive",
  ["accept"] = "application/json",
  ["content-type"] = "application/x-www-form-urlencoded",
  ["content-length"] = tostring(#body),
  ["authorization"] = "Basic " .. mime.b64("bench-client:bench-secret"),
  ["user-agent"] = "LuaSocket",
}

local function one()
  conn:sendrequestline("POST", path)
  conn:sendheaders(send_headers)
  conn:sendbody(send_headers, ltn12.source.string(body))
  local code = conn:receivestatusline()
  local headers = conn:receiveheaders()
  local chunks = {}
  conn:receivebody(headers, (ltn12.sink.table(chunks)))
  local t = cjson.decode(table.concat(chunks))
  if code ~= 200 or type(t.access_token) ~= "string" then
    io.stderr:write("luasocket: HTTP ", tostring(code), "\n")
    os.exit(1)
  end
end
io.stdout:setvbuf("line")
for line in io.lines() do
  local n = math.tointeger(tonumber(line))
  if not n then break end
  local t0, c0 = socket.gettime(), os.clock()
  for _ = 1, n do one() end
  print(string.format("%.9f %d %.6f", socket.gettime() - t0, n, os.clock() - c0))
end
conn:close()
