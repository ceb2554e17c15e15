--- Runs a real redis-server (Debian's) for the specs: 127.0.0.1, a free port,
-- no persistence, its own temporary directory.
--
--   local redis = require "helpers.redis"
--   local r = redis.start()              -- or redis.start{ password = "pw" }
--   r.port, r.pid, r.password
--   r:command("PTTL", "smartauth:t:key") -- one raw command, its reply (errors raise)
--   r:commands{ { "SELECT", "1" }, { "GET", "k" } }   -- several on one connection
--   r:kill()                             -- SIGKILL, as a crash would
--   r:restart()                          -- kill (if alive) and start again, same port: empty
--   r:stop()                             -- kill, reap, remove the directory; also __close/__gc
--
-- Raw commands use a LuaSocket connection, never the library under test.
local compat = require "smartauth.compat"
local socket = require "socket"
local proc = require "helpers.proc"

local M = {}

local START_TIMEOUT = 5 -- seconds for redis-server to answer PING

local Redis = { __name = "helpers.redis" }
Redis.__index = Redis

--- A port nobody listens on right now (the OS picks it).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return compat.tointeger(tonumber(port))
end

---------------------------------------------------------------- RESP

local function encode(args)
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end

local function read_reply(c)
  local line, err = c:receive("*l")
  if not line then error("redis helper: " .. tostring(err), 0) end
  local t, rest = line:sub(1, 1), line:sub(2)
  if t == "+" then return rest end
  if t == "-" then return { err = rest } end
  if t == ":" then return compat.tointeger(tonumber(rest)) end
  if t == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local data = assert(c:receive(n + 2))
    return data:sub(1, n)
  end
  if t == "*" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local list = {}
    for i = 1, n do list[i] = read_reply(c) end
    return list
  end
  error("redis helper: bad reply line " .. line, 0)
end

-- Connects, authenticates when there is a password; nil, err when down.
function Redis:_connect()
  local c = socket.tcp()
  c:settimeout(2)
  local ok, err = c:connect("127.0.0.1", self.port)
  if not ok then c:close() return nil, err end
  if self.password then
    c:send(encode { "AUTH", self.password })
    local r = read_reply(c)
    if type(r) == "table" and r.err then c:close() return nil, r.err end
  end
  return c
end

--- Runs several commands on one connection; returns their replies in a list
-- (an error reply is { err = "..." }). Raises when the server is down.
function Redis:commands(list)
  local c = assert(self:_connect())
  local out = {}
  for i, args in ipairs(list) do
    c:send(encode(args))
    out[i] = read_reply(c)
  end
  c:close()
  return out
end

--- One command; its reply. An error reply raises.
function Redis:command(...)
  local r = self:commands { { ... } }[1]
  if type(r) == "table" and r.err then error("redis: " .. r.err, 2) end
  return r
end

-------------------------------------------------------------- process

function Redis:_launch()
  local q = proc.shell_quote
  local args = {
    "redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
    "--save", q(""), "--appendonly", "no", "--dir", q(self.dir),
    "--daemonize", "no", "--loglevel", "warning",
  }
  if self.password then args[#args + 1] = "--requirepass " .. q(self.password) end
  -- As in helpers.server: bash closes inherited descriptors above 2, so the
  -- server holds no copy of this process's sockets, then execs (same pid).
  local close_fds = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
    .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]
  local cmd = "echo $$; exec bash -c " .. q(close_fds) .. " bash " .. table.concat(args, " ")
    .. " </dev/null >>" .. q(self.dir .. "/log") .. " 2>&1"
  local pipe = assert(io.popen(cmd, "r"))
  local pid = compat.tointeger(tonumber(pipe:read("*l")))
  local deadline = socket.gettime() + START_TIMEOUT
  while pid and proc.alive(pid) and socket.gettime() < deadline do
    local c = self:_connect()
    if c then
      c:send(encode { "PING" })
      local ok, r = pcall(read_reply, c)
      c:close()
      if ok and r == "PONG" then
        self.pid, self._pipe = pid, pipe
        return true
      end
    end
    socket.sleep(0.01)
  end
  if pid and proc.alive(pid) then os.execute("kill -KILL " .. pid) end
  pipe:close()
  return false
end

--- Starts a server. opts: password = requirepass.
function M.start(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "password" then error("redis.start: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local self = setmetatable({ password = opts.password, dir = proc.tmpdir("smartauth-redis.XXXXXX") }, Redis)
  for _ = 1, 3 do -- a port can be taken between choosing and binding it
    self.port = M.free_port()
    if self:_launch() then return self end
  end
  local log = proc.read_file(self.dir .. "/log") or ""
  proc.rmtree(self.dir)
  error("redis-server did not start within " .. START_TIMEOUT .. " s:\n" .. log, 2)
end

--- SIGKILL the server (a crash: nothing is saved) and reap it.
function Redis:kill()
  local pipe = self._pipe
  if not pipe then return end
  self._pipe = nil
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  proc.wait_gone(self.pid, 5)
  pcall(pipe.close, pipe)
end

--- Kill and start again on the same port (with no persistence: empty).
function Redis:restart()
  if not self.dir then error("redis helper: already stopped", 2) end
  self:kill()
  if not self:_launch() then
    error("redis-server did not restart:\n" .. (proc.read_file(self.dir .. "/log") or ""), 2)
  end
end

--- Kill, reap, remove the directory. Safe to call more than once.
function Redis:stop()
  self:kill()
  if self.dir then
    proc.rmtree(self.dir)
    self.dir = nil
  end
end

Redis.__close = Redis.stop
Redis.__gc = Redis.stop

return M
