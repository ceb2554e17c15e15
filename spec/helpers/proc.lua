--- Small process helpers for the specs: run a command, temporary directories,
-- sleeping, shell quoting, and checking whether a process is still alive.
-- POSIX shell and Linux /proc are assumed (the specs run on Debian).
local compat = require "smartauth.compat"
local socket = require "socket"

local M = {}

--- Quotes a string for /bin/sh: the result is one word whose value is exactly `s`.
-- @param s string (numbers are converted)
-- @return string
function M.shell_quote(s)
  s = tostring(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

--- Runs a shell command and captures its standard output (stderr is not touched).
-- @param cmd string, passed to /bin/sh
-- @return ok (true when the exit status is 0), exit code (number; 128+N for a signal),
--   stdout (string)
function M.run(cmd)
  -- the shell reports the status itself, after the output: closing a pipe
  -- tells nothing on 5.1 and LuaJIT
  local f = assert(io.popen("(\n" .. cmd .. "\n)\nprintf '\\n%d' $?", "r"))
  local out = f:read("*a")
  f:close()
  local code = tonumber(out:match("\n(%d+)$"))
  out = out:gsub("\n%d+$", "", 1)
  return code == 0, code, out
end

--- io.popen whose close tells how the command ended on every runtime (on
-- 5.1 and LuaJIT closing a pipe says nothing): the shell writes the status
-- to a file. The handle has write, flush, read and close; close returns
-- true or nil, "exit", code (128+N for signal N).
function M.popen(cmd, mode)
  local status = os.tmpname()
  local f = assert(io.popen("(\n" .. cmd .. "\n)\necho $? >" .. M.shell_quote(status), mode))
  local h = {}
  function h.write(_, ...) return f:write(...) end
  function h.flush() return f:flush() end
  function h.read(_, ...) return f:read(...) end
  function h.close()
    f:close()
    local code = tonumber(M.read_file(status) or "")
    os.remove(status)
    return code == 0 or nil, "exit", code
  end
  return h
end

--- Creates a fresh private temporary directory (mktemp -d) and returns its path.
-- @param template optional mktemp template name, e.g. "smartauth-certs.XXXXXX"
-- @return string
function M.tmpdir(template)
  local cmd = "mktemp -d"
  if template then cmd = cmd .. " -t " .. M.shell_quote(template) end
  local ok, code, out = M.run(cmd)
  if not ok then error("mktemp -d failed (exit " .. tostring(code) .. ")", 2) end
  return (out:gsub("%s+$", ""))
end

--- Removes a directory tree made by `tmpdir`. Refuses anything outside the temporary
-- directory, so a bad argument cannot delete something else.
-- @param dir string
function M.rmtree(dir)
  local tmp = os.getenv("TMPDIR") or "/tmp"
  tmp = tmp:gsub("/+$", "")
  if type(dir) ~= "string" or dir:sub(1, #tmp + 1) ~= tmp .. "/" or dir:find("/%.%.") then
    error("proc.rmtree: refusing to remove " .. tostring(dir), 2)
  end
  M.run("rm -rf -- " .. M.shell_quote(dir))
end

--- Sleeps for `seconds` (fractions allowed).
function M.sleep(seconds)
  socket.sleep(seconds)
end

--- Monotonic-enough wall clock in seconds with sub-millisecond resolution.
function M.now()
  return socket.gettime()
end

--- Reads a whole file, or returns nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- True when process `pid` exists and is not a zombie. (kill -0 succeeds on zombies,
-- which is what an exited child of ours is until it is reaped, so /proc is read.)
-- @param pid number
function M.alive(pid)
  local stat = M.read_file("/proc/" .. compat.tointeger(pid) .. "/stat")
  if not stat then return false end
  -- the state letter follows the command name in parentheses, which may contain spaces
  local state = stat:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Waits up to `timeout` seconds for `pid` to be gone; returns true when it is.
function M.wait_gone(pid, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while M.alive(pid) do
    if socket.gettime() > deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

--- The interpreter running the specs, for child processes (`busted
-- --lua=luajit` runs them under luajit), and where `make LUA=...` put its
-- C modules: build/ for 5.4, build/<interpreter>/ for the others.
M.LUA = compat.luajit and "luajit" or "lua" .. compat.version
M.BUILD = M.LUA == "lua5.4" and "build" or "build/" .. M.LUA

--- Environment prefix for a child M.LUA that loads this checkout's modules.
M.LUA_ENV = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;' LUA_CPATH='./" .. M.BUILD .. "/?.so;;' "

--- How many descriptors this process has open (its /proc/<pid>/fd, listed
-- by a shell).
function M.open_fds(what)
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*n")
  f:close()
  pid = compat.tointeger(pid)
  if what == nil then
    local _, _, out = M.run("ls /proc/" .. pid .. "/fd | wc -l")
    return tonumber(out)
  end
  -- only the descriptors under the path `what` (a directory and what is in
  -- it): other threads (libcurl's resolver) open and close descriptors of
  -- their own, so a count of all of them is not exact
  local _, _, out = M.run("for f in /proc/" .. pid .. "/fd/*; do readlink \"$f\"; done 2>/dev/null")
  local n = 0
  for target in (out or ""):gmatch("[^\n]+") do
    if target:sub(1, #what) == what then n = n + 1 end
  end
  return n
end

--- Multi-process single flight: n spec/helpers/token_caller.lua children
-- on one shared store (kind "file" with a directory, "redis" with a port),
-- all told to go at once once every one is ready. Returns the seconds from
-- the go signal to the last exit, and each child's {out=, err=}; raises when
-- they do not all get ready within 20 s.
function M.token_callers(kind, where, token_url, sync, n)
  local lines = {}
  for i = 1, n do
    lines[#lines + 1] = M.LUA_ENV .. M.LUA .. " spec/helpers/token_caller.lua " .. kind .. " " .. where .. " "
      .. token_url .. " " .. sync .. " " .. i
      .. " >" .. sync .. "/out." .. i .. " 2>" .. sync .. "/err." .. i .. " &"
  end
  lines[#lines + 1] = "wait"
  local go = assert(io.popen(table.concat(lines, "\n"), "w"))
  local deadline = M.now() + 20
  local ready = 0
  while ready < n and M.now() < deadline do
    ready = 0
    for i = 1, n do if M.read_file(sync .. "/ready." .. i) then ready = ready + 1 end end
    M.sleep(0.005)
  end
  if ready < n then
    go:close()
    error(("only %d of %d token callers got ready"):format(ready, n), 2)
  end
  local t0 = M.now()
  assert(io.open(sync .. "/go", "w")):close()
  go:close()
  local elapsed = M.now() - t0
  local results = {}
  for i = 1, n do
    results[i] = { out = M.read_file(sync .. "/out." .. i), err = M.read_file(sync .. "/err." .. i) }
  end
  return elapsed, results
end

-- A shell prologue that closes every inherited descriptor above 2, then
-- runs "$@" (LuaSocket's sockets are not close-on-exec).
M.CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]

--- Runs a command in the background with every inherited descriptor above
-- 2 closed: stdout comes back through the returned pipe (mode "r", the
-- default) or stdin goes to it ("w"); stderr goes to `errfile`.
-- @param args list of words (quoted here)
function M.spawn(args, errfile, mode)
  local words = {}
  for i, a in ipairs(args) do words[i] = M.shell_quote(a) end
  local cmd = "exec bash -c " .. M.shell_quote(M.CLOSE_FDS) .. " bash " .. table.concat(words, " ") ..
    " 2>" .. M.shell_quote(errfile or "/dev/null")
  return assert(io.popen(cmd, mode or "r"))
end

return M
