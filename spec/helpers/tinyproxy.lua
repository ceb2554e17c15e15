--- A real forward proxy for the specs: Debian's tinyproxy on 127.0.0.1, with
-- its configuration and log in a temporary directory.
--
--   local tinyproxy = require "helpers.tinyproxy"
--   local px = tinyproxy.start{ connect_ports = { tls_server.port },   -- CONNECT only to these
--                               user = "u", password = "p" }           -- Basic auth, optional
--   px.port, px.url ("http://127.0.0.1:PORT")
--   px:requests()   -- the request lines it logged: { "GET http://...", "CONNECT 127.0.0.1:N", ... }
--   px:stop()       -- also on __gc
--
-- Every request it forwards carries "Via: 1.1 smartauth-test-proxy (tinyproxy/...)".
-- Written in the subset of Lua that 5.1 to 5.4 share.
local daemon = require "helpers.daemon"
local proc = require "helpers.proc"

local M = {}

M.VIA_NAME = "smartauth-test-proxy"

local Proxy = { __name = "helpers.tinyproxy" }
Proxy.__index = Proxy

--- Starts a proxy. opts: connect_ports (list; tinyproxy allows CONNECT to
-- every port when none is listed, so a spec that wants a refusal lists
-- another one), user and password (Basic proxy authentication).
function M.start(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "connect_ports" and k ~= "user" and k ~= "password" then
      error("tinyproxy.start: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local dir = proc.tmpdir("smartauth-tinyproxy.XXXXXX")
  local self = setmetatable({ dir = dir, log = dir .. "/tinyproxy.log" }, Proxy)
  local why
  for _ = 1, 3 do -- the port can be taken between choosing and binding it
    self.port = daemon.free_port()
    local conf = {
      "Port " .. self.port,
      "Listen 127.0.0.1",
      "Timeout 30",
      "MaxClients 32",
      'LogFile "' .. self.log .. '"',
      "LogLevel Info",
      "Allow 127.0.0.1",
      'ViaProxyName "' .. M.VIA_NAME .. '"',
    }
    for _, port in ipairs(opts.connect_ports or {}) do conf[#conf + 1] = "ConnectPort " .. port end
    if opts.user then conf[#conf + 1] = "BasicAuth " .. opts.user .. " " .. opts.password end
    local f = assert(io.open(dir .. "/tinyproxy.conf", "wb"))
    f:write(table.concat(conf, "\n"), "\n")
    f:close()
    self.d, why = daemon.start({ "tinyproxy", "-d", "-c", dir .. "/tinyproxy.conf" }, self.port,
      dir .. "/stderr")
    if self.d then
      self.url = "http://127.0.0.1:" .. self.port
      return self
    end
  end
  proc.rmtree(dir)
  error(why, 2)
end

--- The request lines the proxy logged so far ("GET http://...", "CONNECT host:port").
function Proxy:requests()
  local list = {}
  for line in (proc.read_file(self.log) or ""):gmatch("[^\n]+") do
    local req = line:match("%]: Request %(file descriptor %d+%): (.-) HTTP/1%.%d$")
    if req then list[#list + 1] = req end
  end
  return list
end

--- Stops the proxy and removes its directory. Safe to call twice.
function Proxy:stop()
  daemon.stop(self.d)
  self.d = nil
  if self.dir then
    proc.rmtree(self.dir)
    self.dir = nil
  end
end

Proxy.__gc = Proxy.stop

return M
