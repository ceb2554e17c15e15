--- A real HTTPS server that requires a client certificate, for the mutual
-- TLS specs: Debian's nginx (nginx-light) on 127.0.0.1, one process, its
-- configuration, logs and temporary files in a temporary directory.
--
--   local nginx = require "helpers.nginx"
--   local n = nginx.start{ cert = c.cert, key = c.key, client_ca = c.ca_file }
--   n.port, n.url ("https://127.0.0.1:PORT")
--   POST n.url .. "/token"  -> 200 {"access_token":"at-<client cert serial>","token_type":"Bearer",...}
--   GET  n.url .. "/api"    -> 200 {"client":"<client cert subject>"}
--   without a client certificate the CA signed: 400 (nginx's "No required SSL certificate")
--   n:stop()                -- also on __gc
--
-- Written in the subset of Lua that 5.1 to 5.4 share.
local daemon = require "helpers.daemon"
local proc = require "helpers.proc"

local M = {}

local CONF = [[
master_process off;
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 64; }
http {
  access_log %s/access.log;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_client_certificate %s;
    ssl_verify_client on;
    default_type application/json;
    location = /token {
      return 200 '{"access_token":"at-$ssl_client_serial","token_type":"Bearer","expires_in":3600}';
    }
    location = /api {
      return 200 '{"client":"$ssl_client_s_dn"}';
    }
  }
}
]]

local Nginx = { __name = "helpers.nginx" }
Nginx.__index = Nginx

--- Starts nginx. opts: cert, key (its server certificate), client_ca (the
-- CA whose client certificates it accepts).
function M.start(opts)
  assert(opts and opts.cert and opts.key and opts.client_ca, "nginx.start: cert, key and client_ca")
  local dir = proc.tmpdir("smartauth-nginx.XXXXXX")
  assert(proc.run("mkdir " .. proc.shell_quote(dir .. "/tmp")))
  local self = setmetatable({ dir = dir }, Nginx)
  local why
  for _ = 1, 3 do -- the port can be taken between choosing and binding it
    self.port = daemon.free_port()
    local f = assert(io.open(dir .. "/nginx.conf", "wb"))
    f:write(CONF:format(dir, dir, dir, dir, dir, dir, dir, dir, self.port, opts.cert, opts.key,
      opts.client_ca))
    f:close()
    -- -e: the error log from the start (not /var/log/nginx before the config is read)
    self.d, why = daemon.start({ "nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-e",
      dir .. "/error.log" }, self.port, dir .. "/stderr")
    if self.d then
      self.url = "https://127.0.0.1:" .. self.port
      return self
    end
  end
  proc.rmtree(dir)
  error(why, 2)
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
