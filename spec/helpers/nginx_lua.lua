--- nginx with lua-nginx-module (Debian: libnginx-mod-http-lua, lua-resty-core)
-- on 127.0.0.1, for the specs of smartauth's transport inside nginx. The
-- specs run under Lua 5.4 and drive nginx over HTTP from outside; inside,
-- smartauth comes from this tree's lua/ and its C core from build/luajit/
-- (`make LUA=luajit`).
--
--   local nginx_lua = require "helpers.nginx_lua"
--   if not nginx_lua.available() then pending(...) end
--   local n = nginx_lua.start{ http = [[ server { listen 127.0.0.1:$PORT; ... } ]],
--                              workers = 2, env = { NAME = "value" }, path = "dir/?.lua" }
--   n.port, n.url ("http://127.0.0.1:PORT"), n.dir, n:error_log()
--   n = nginx_lua.start{ conf = "examples/nginx/gateway/nginx.conf", port_line = ..., ... }
--   n:stop()    -- also on __gc
--
-- `$PORT` and `$DIR` in the text are replaced by the port and the
-- temporary directory. Written in the subset of Lua that 5.1 to 5.4 share.
local daemon = require "helpers.daemon"
local proc = require "helpers.proc"

local M = {}

M.MODULES = { "/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so" }

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

local function root()
  local _, _, cwd = proc.run("pwd")
  return (cwd:gsub("%s+$", ""))
end

--- true when nginx, its Lua module and the LuaJIT build of the core are
-- here; else false, why.
function M.available()
  for _, m in ipairs(M.MODULES) do
    if not exists(m) then return false, m .. " is missing (apt-get install libnginx-mod-http-lua)" end
  end
  if not exists("/usr/share/lua/5.1/resty/core.lua") then return false, "lua-resty-core is missing" end
  if not exists("build/luajit/smartauth/core.so") then return false, "build/luajit is missing (make LUA=luajit)" end
  return true
end

local PREAMBLE = [[
load_module %s;
load_module %s;
master_process on;
daemon off;
worker_processes %d;
pid $DIR/nginx.pid;
error_log $DIR/error.log %s;
%s
events { worker_connections 256; }
]]

local HTTP_PREAMBLE = [[
  access_log off;
  client_body_temp_path $DIR/tmp;
  proxy_temp_path $DIR/tmp;
  fastcgi_temp_path $DIR/tmp;
  uwsgi_temp_path $DIR/tmp;
  scgi_temp_path $DIR/tmp;
  lua_package_path "%s";
  lua_package_cpath "%s";
]]

local Nginx = { __name = "helpers.nginx_lua" }
Nginx.__index = Nginx

local function paths(extra)
  local r = root()
  local lpath = r .. "/lua/?.lua;" .. r .. "/lua/?/init.lua;" .. (extra or "") .. ";;"
  local cpath = r .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;"
  return lpath, cpath
end

-- An example's nginx.conf, made to run here: its load_module, pid,
-- error_log and package path lines replaced, `listen` on the port.
local function from_example(file, extra_path)
  local text = assert(proc.read_file(file), "cannot read " .. file)
  local lpath, cpath = paths(extra_path)
  local function sub(pat, repl)
    local n
    text, n = text:gsub(pat, function() return repl end)
    assert(n > 0, "nginx_lua: " .. file .. " has no line matching " .. pat)
  end
  sub("\npid [^\n]*;", "\npid $DIR/nginx.pid;\ndaemon off;")
  sub("\nerror_log [^\n]*;", "\nerror_log $DIR/error.log info;")
  sub("lua_package_path \"[^\"]*\";", 'lua_package_path "' .. lpath .. '";')
  sub("lua_package_cpath \"[^\"]*\";", 'lua_package_cpath "' .. cpath .. '";')
  sub("listen 127%.0%.0%.1:%d+", "listen 127.0.0.1:$PORT")
  sub("access_log off;", "access_log off;\n  client_body_temp_path $DIR/tmp;\n  proxy_temp_path $DIR/tmp;")
  return text
end

--- A server certificate for 127.0.0.1 that nginx's host check accepts:
-- nginx verifies a name against DNS names only (X509_check_host), so the
-- address is written as a DNS name too. Signed by the test CA c
-- (helpers.certs); returns cert, key paths.
function M.loopback_cert(c)
  local q = proc.shell_quote
  local key, csr, cert, ext = c.dir .. "/ngx.key", c.dir .. "/ngx.csr", c.dir .. "/ngx.pem", c.dir .. "/ngx.ext"
  local f = assert(io.open(ext, "wb"))
  f:write("subjectAltName = DNS:127.0.0.1, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
  f:close()
  for _, cmd in ipairs {
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(key),
    "openssl req -new -key " .. q(key) .. " -subj /CN=127.0.0.1 -out " .. q(csr),
    "openssl x509 -req -in " .. q(csr) .. " -CA " .. q(c.ca_file) .. " -CAkey " .. q(c.ca_key) ..
      " -set_serial 4242 -days 2 -sha256 -extfile " .. q(ext) .. " -out " .. q(cert),
  } do
    assert(proc.run(cmd .. " >/dev/null 2>&1"), cmd)
  end
  return cert, key
end

--- Starts nginx. opts: http (the http block's contents) and main (top-level
-- directives), or conf (an example's nginx.conf) with subs ({pattern,
-- replacement} applied to it); workers (default 1), env (variables for
-- nginx; `env NAME;` is added for each with http), path (more
-- lua_package_path entries), log_level (default "info").
function M.start(opts)
  local text
  if opts.conf then
    text = from_example(opts.conf, opts.path)
    for _, s in ipairs(opts.subs or {}) do
      local n
      text, n = text:gsub(s[1], function() return s[2] end)
      assert(n > 0, "nginx_lua: no match for " .. s[1])
    end
  else
    local envs = {}
    for k in pairs(opts.env or {}) do envs[#envs + 1] = "env " .. k .. ";" end
    local lpath, cpath = paths(opts.path)
    text = PREAMBLE:format(M.MODULES[1], M.MODULES[2], opts.workers or 1, opts.log_level or "info",
      table.concat(envs, "\n") .. "\n" .. (opts.main or "")) ..
      "http {\n" .. HTTP_PREAMBLE:format(lpath, cpath) .. opts.http .. "\n}\n"
  end
  local dir = proc.tmpdir("smartauth-nginx-lua.XXXXXX")
  assert(proc.run("mkdir " .. proc.shell_quote(dir .. "/tmp")))
  local self = setmetatable({ dir = dir }, Nginx)
  local args = { "env" }
  for k, v in pairs(opts.env or {}) do args[#args + 1] = k .. "=" .. v end
  local why
  for _ = 1, 3 do -- the port can be taken between choosing and binding it
    self.port = daemon.free_port()
    local conf = text:gsub("%$PORT", tostring(self.port)):gsub("%$DIR", dir)
    local f = assert(io.open(dir .. "/nginx.conf", "wb"))
    f:write(conf)
    f:close()
    local cmd = {}
    for i, a in ipairs(args) do cmd[i] = a end
    for _, a in ipairs { "nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-e", dir .. "/error.log" } do
      cmd[#cmd + 1] = a
    end
    self.d, why = daemon.start(cmd, self.port, dir .. "/stderr")
    if self.d then
      self.url = "http://127.0.0.1:" .. self.port
      return self
    end
  end
  local log = proc.read_file(dir .. "/error.log") or ""
  proc.rmtree(dir)
  error(tostring(why) .. "\n" .. log, 2)
end

--- The error log so far (what the workers wrote).
function Nginx:error_log()
  return self.dir and proc.read_file(self.dir .. "/error.log") or ""
end

--- Stops nginx (the master stops its workers) and removes its directory.
-- Safe to call twice.
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
