--- A real HTTP/2 server for the multiplexing spec and `make bench`: Debian's
-- nginx on 127.0.0.1 (`listen ... ssl http2`) with the echo module
-- (libnginx-mod-http-echo), one process, everything in a temporary directory.
--
--   local nginx_h2 = require "helpers.nginx_h2"
--   local n = nginx_h2.start{ cert = c.cert, key = c.key, streams = 1000 }
--   GET n.url .. "/slow"  -> 200 {"ok":true} after 50 ms (echo_sleep), HTTP/2 (ALPN h2)
--   GET n.url1 .. "/slow" -> the same over HTTP/1.1 only (TLS, no h2 offered)
--   n:log()               -- { connections, requests, h2, ok } from the access log
--   n:clear_log()
--   n:stop()              -- also on __gc
--
-- Written in the subset of Lua that 5.1 to 5.4 share.
local daemon = require "helpers.daemon"
local proc = require "helpers.proc"

local M = {}

M.ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

-- $connection: nginx's serial number of the client connection, the same
-- for every stream multiplexed on it; $http2 is "h2" for HTTP/2 over TLS.
local CONF = [[
load_module %s;
master_process off;
daemon off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  log_format conns '$connection $http2 $status';
  access_log %s/access.log conns;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  server {
    listen 127.0.0.1:%d ssl http2;
    http2_max_concurrent_streams %d;
    ssl_certificate %s;
    ssl_certificate_key %s;
    default_type application/json;
    location = /slow {
      echo_sleep 0.05;
      echo '{"ok":true}';
    }
  }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    default_type application/json;
    location = /slow {
      echo_sleep 0.05;
      echo '{"ok":true}';
    }
  }
}
]]

local Nginx = { __name = "helpers.nginx_h2" }
Nginx.__index = Nginx

--- Starts nginx. opts: cert, key (its server certificate), streams (HTTP/2
-- streams per connection, http2_max_concurrent_streams; nginx's default 128).
function M.start(opts)
  assert(opts and opts.cert and opts.key, "nginx_h2.start: cert and key")
  local dir = proc.tmpdir("smartauth-nginx-h2.XXXXXX")
  assert(proc.run("mkdir " .. proc.shell_quote(dir .. "/tmp")))
  local self = setmetatable({ dir = dir }, Nginx)
  local why
  for _ = 1, 3 do -- the port can be taken between choosing and binding it
    self.port = daemon.free_port()
    self.port1 = daemon.free_port()
    local f = assert(io.open(dir .. "/nginx.conf", "wb"))
    f:write(CONF:format(M.ECHO_MODULE, dir, dir, dir, dir, dir, dir, dir, dir, self.port,
      opts.streams or 128, opts.cert, opts.key, self.port1, opts.cert, opts.key))
    f:close()
    self.d, why = daemon.start({ "nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-e",
      dir .. "/error.log" }, self.port, dir .. "/stderr")
    if self.d then
      self.url = "https://127.0.0.1:" .. self.port
      self.url1 = "https://127.0.0.1:" .. self.port1
      return self
    end
  end
  proc.rmtree(dir)
  error(why, 2)
end

--- The access log so far: distinct connections, requests, and how many
-- of them came over HTTP/2 and were answered 200. The daemon helper's
-- port probe opens a connection that sends no request, so it is not logged.
function Nginx:log()
  local conns, n, h2, ok = {}, 0, 0, 0
  local count = 0
  for line in io.lines(self.dir .. "/access.log") do
    local conn, proto, status = line:match("^(%d+) (%S*) (%d+)$")
    if conn then
      n = n + 1
      if not conns[conn] then conns[conn] = true; count = count + 1 end
      if proto == "h2" then h2 = h2 + 1 end
      if status == "200" then ok = ok + 1 end
    end
  end
  return { connections = count, requests = n, h2 = h2, ok = ok }
end

--- Empties the access log (nginx appends to the same open file).
function Nginx:clear_log()
  local f = assert(io.open(self.dir .. "/access.log", "wb"))
  f:close()
end

--- Stops nginx and removes its directory. Safe to call twice.
function Nginx:stop()
  daemon.stop(self.d)
  self.d = nil
  if self.dir then
    proc.rmtree(self.dir)
    self.dir = nil
  end
end

Nginx.__gc = Nginx.stop

return M
