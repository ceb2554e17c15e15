--- Drives spec/helpers/server.js, the real HTTP(S) test server, from busted specs.
--
--   local server = require "helpers.server"
--   local s = server.start()                         -- or server.start{ tls = { cert=, key= } }
--   server.start{ fake = PATH }                      -- PATH: a Node module (see server.js --fake);
--   s:fake{ op = ... }                               -- its admin call
--   s.port, s.admin_port, s.pid, s.url               -- url: "http://127.0.0.1:PORT" / "https://..."
--   s:script("/token", { status = 400, json = { error = "invalid_grant" } })
--   ... exercise smartauth against s.url ...
--   local req = s:last_request()                     -- req.form.grant_type, req.basic.user, ...
--   s:stop()                                         -- also on __close and __gc
--
-- A response spec (s:script) has these fields, all optional:
--   status (200), reason (status text), headers ({name = value or {values...}}),
--   body (string; bytes that are not UTF-8 are sent as body_b64 for you), json (any value,
--   sent as application/json when no body), delay_ms (wait first), hang (never answer),
--   close (drop the connection without answering), body_size (N bytes of "x" with
--   Content-Length), chunked_size (the same, chunked), truncate (true or N: Content-Length
--   announces N (default 10) more bytes than are sent, then the socket closes),
--   raw (bytes written verbatim to the socket, which is then closed: malformed answers).
--
-- A recorded request has: seq, conn, method, path, query (raw), url, http_version,
-- headers (lower-cased names; repeats joined with ", "), raw_headers ({{name, value}...}
-- as received), body, body_b64, body_raw (the exact bytes, decoded here), args (decoded
-- query), form and form_pairs (for form bodies), basic = {user, pass, raw}.
--
-- Admin calls use a raw LuaSocket connection, never the library under test.
local compat = require "smartauth.compat"
local socket = require "socket"
local mime = require "mime"
local cjson = require "cjson.safe"
local proc = require "helpers.proc"

local M = {}

local START_TIMEOUT = 5   -- seconds for node to print its port line
local STOP_TIMEOUT = 3    -- seconds to wait after SIGTERM before SIGKILL
local ADMIN_TIMEOUT = 10  -- seconds for one admin call

-- Absolute path of server.js, found next to this file whatever the current directory.
local SERVER_JS = (function()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local _, _, cwd = proc.run("pwd")
    dir = cwd:gsub("%s+$", "") .. "/" .. dir:gsub("^%./", "")
  end
  return dir .. "/server.js"
end)()

local Server = { __name = "helpers.server" }
Server.__index = Server

-- cjson decodes every number as a float; give integral ones back as integers so that
-- ports and counters print as "8080", not "8080.0".
local function integers(v)
  if type(v) == "number" then
    return compat.tointeger(v) or v
  elseif type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  end
  return v
end

-- Replaces a string field that is not valid UTF-8 by its base64 twin (JSON carries text).
local function binary_safe(t, field)
  local v = t[field]
  if type(v) == "string" and not compat.utf8_len(v) then
    t[field] = nil
    t[field .. "_b64"] = mime.b64(v) or ""
  end
end

--- Starts a server.
-- @param opts optional table: tls = { cert = PATH, key = PATH } for HTTPS
-- @return server object; raises with node's stderr when it does not start in 5 s
function M.start(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "tls" and k ~= "fake" then error("server.start: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local q = proc.shell_quote
  local args = { "node", q(SERVER_JS) }
  if opts.tls then
    assert(opts.tls.cert and opts.tls.key, "server.start: tls needs cert and key")
    args[#args + 1] = "--tls " .. q(opts.tls.cert) .. " " .. q(opts.tls.key)
  end
  if opts.fake then args[#args + 1] = "--fake " .. q(opts.fake) end

  local dir = proc.tmpdir("smartauth-server.XXXXXX")
  local out, err = dir .. "/stdout", dir .. "/stderr"
  -- The shell prints its pid (which exec keeps for node, so node's parent is this Lua
  -- process), then bash closes every inherited descriptor above 2: otherwise node
  -- would hold copies of this process's sockets and a socket closed by a spec would
  -- never reach its peer. Node's stdout goes to a file so that the start can time out.
  local close_fds = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
    .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]
  local cmd = "echo $$; exec bash -c " .. q(close_fds) .. " bash " .. table.concat(args, " ")
    .. " </dev/null >" .. q(out) .. " 2>" .. q(err)
  local pipe = assert(io.popen(cmd, "r"))
  local pid = compat.tointeger(tonumber(pipe:read("*l")))

  local line
  local deadline = socket.gettime() + START_TIMEOUT
  while pid do
    local s = proc.read_file(out)
    line = s and s:match("^([^\n]*)\n")
    if line then break end
    if not proc.alive(pid) or socket.gettime() > deadline then break end
    socket.sleep(0.01)
  end
  local info = line and cjson.decode(line)
  if type(info) ~= "table" or not info.port then
    if pid and proc.alive(pid) then os.execute("kill -KILL " .. pid) end
    pipe:close()
    local stderr = proc.read_file(err) or ""
    proc.rmtree(dir)
    error(("test server did not start within %d s (%s)\nstdout: %s\nstderr: %s"):format(
      START_TIMEOUT, SERVER_JS, line or "", stderr), 2)
  end
  integers(info)

  return setmetatable({
    port = info.port,
    admin_port = info.admin_port,
    pid = info.pid,
    url = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. info.port,
    dir = dir,
    stderr_file = err,
    _pipe = pipe,
  }, Server)
end

-- One admin call: JSON body in, decoded JSON out; raises on any failure.
function Server:_admin(method, path, body)
  if not self._pipe then error("test server already stopped", 3) end
  local payload = body ~= nil and assert(cjson.encode(body)) or ""
  local c = assert(socket.tcp())
  c:settimeout(ADMIN_TIMEOUT)
  local ok, err = c:connect("127.0.0.1", self.admin_port)
  if not ok then c:close(); error("admin connect: " .. tostring(err), 3) end
  c:send(table.concat({
    method .. " " .. path .. " HTTP/1.1",
    "Host: 127.0.0.1:" .. self.admin_port,
    "Connection: close",
    "Content-Type: application/json",
    "Content-Length: " .. #payload,
    "", payload,
  }, "\r\n"))
  local resp, rerr = c:receive("*a")
  c:close()
  if not resp then error("admin " .. path .. ": " .. tostring(rerr), 3) end
  local status = tonumber(resp:match("^HTTP/1%.%d (%d%d%d)"))
  local rbody = resp:match("\r\n\r\n(.*)$") or ""
  local value = cjson.decode(rbody)
  if status ~= 200 or value == nil then
    error(("admin %s %s: %s %s"):format(method, path, tostring(status), rbody), 3)
  end
  return integers(value)
end

--- Queues a scripted response for `path` (exact path, no query).
-- @param path string such as "/token"
-- @param response response spec (see the top of this file)
-- @param times number of one-shot uses (default 1); 0 or "default" makes it the
--   path's default, used whenever the queue is empty
function Server:script(path, response, times)
  local r = {}
  for k, v in pairs(response or {}) do r[k] = v end
  binary_safe(r, "body")
  binary_safe(r, "raw")
  self:_admin("POST", "/script", { path = path, response = r, times = times })
  return self
end

--- An admin call to the --fake module (POST /fake); returns its decoded answer.
function Server:fake(input)
  return self:_admin("POST", "/fake", input)
end

--- Recorded requests to the main listener, oldest first.
function Server:requests()
  local list = self:_admin("GET", "/requests")
  for _, r in ipairs(list) do
    r.body_raw = r.body_b64 ~= "" and mime.unb64(r.body_b64) or ""
  end
  return list
end

--- The most recent recorded request, or nil.
function Server:last_request()
  local list = self:requests()
  return list[#list]
end

--- TCP connections accepted by the main listener since start or reset.
function Server:connections()
  return self:_admin("GET", "/connections").count
end

--- Forgets recorded requests, scripts and the connection count (open sockets stay open,
-- issued tokens stay valid).
function Server:reset()
  self:_admin("POST", "/reset", {})
end

--- Forgets every issued access token: /api answers 401 to all of them.
function Server:revoke_all()
  self:_admin("POST", "/revoke_all", {})
end

--- Issues a token as POST /token would (with a refresh_token) and returns the response.
-- @param scope optional scope string to echo
function Server:issue(scope)
  return self:_admin("POST", "/issue", { scope = scope })
end

--- node's stderr so far (for debugging a failing spec).
function Server:log()
  return proc.read_file(self.stderr_file) or ""
end

--- Stops the server (SIGTERM, SIGKILL if it lingers), reaps it and removes its temporary
-- directory. Safe to call more than once.
function Server:stop()
  local pipe = self._pipe
  if not pipe then return end
  self._pipe = nil
  if proc.alive(self.pid) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not proc.wait_gone(self.pid, STOP_TIMEOUT) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    end
  end
  pcall(pipe.close, pipe) -- waits for (reaps) the process
  proc.rmtree(self.dir)
end

Server.__close = Server.stop
Server.__gc = Server.stop

M.SERVER_JS = SERVER_JS

return M
