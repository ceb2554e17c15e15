--- Runs a server program (tinyproxy, nginx) in the foreground as a child of
-- the spec, on a free 127.0.0.1 port, until it accepts connections.
--
--   local daemon = require "helpers.daemon"
--   local port = daemon.free_port()
--   local d = daemon.start({ "tinyproxy", "-d", "-c", conf }, port, logfile)  -- nil, log on failure
--   d.pid; daemon.stop(d)
--
-- Written in the subset of Lua that 5.1 to 5.4 share.
local socket = require "socket"
local proc = require "helpers.proc"

local M = {}

local START_TIMEOUT = 5 -- seconds for the program to accept a connection

--- A port nobody listens on right now (the OS picks it; programs that have
-- no "port 0" get it from here).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return math.floor(tonumber(port))
end

local function accepts(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

--- Starts args (a list of words) with stdout and stderr appended to
-- logfile, every inherited descriptor above 2 closed (so the child holds no
-- copy of the spec's sockets), and waits until it accepts on port.
-- @return handle { pid = } or nil, why (with the log)
function M.start(args, port, logfile)
  local q = proc.shell_quote
  local words = {}
  for i, a in ipairs(args) do words[i] = q(a) end
  local cmd = "echo $$; exec bash -c " .. q(proc.CLOSE_FDS) .. " bash " .. table.concat(words, " ")
    .. " </dev/null >>" .. q(logfile) .. " 2>&1"
  local pipe = assert(io.popen(cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  local deadline = socket.gettime() + START_TIMEOUT
  while pid and proc.alive(pid) and socket.gettime() < deadline do
    if accepts(port) then return { pid = math.floor(pid), pipe = pipe } end
    socket.sleep(0.02)
  end
  if pid and proc.alive(pid) then os.execute("kill -KILL " .. math.floor(pid)) end
  pipe:close()
  return nil, args[1] .. " did not start on port " .. port .. ":\n" .. (proc.read_file(logfile) or "")
end

--- Terminates and reaps it (SIGTERM, then SIGKILL). Safe to call twice.
function M.stop(d)
  if not d or not d.pipe then return end
  os.execute("kill -TERM " .. d.pid .. " 2>/dev/null")
  if not proc.wait_gone(d.pid, 3) then
    os.execute("kill -KILL " .. d.pid .. " 2>/dev/null")
    proc.wait_gone(d.pid, 3)
  end
  pcall(d.pipe.close, d.pipe)
  d.pipe = nil
end

return M
