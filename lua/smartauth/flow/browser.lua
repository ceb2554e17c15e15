--- Internal: Opening the person's browser: xdg-open, open or start, started in the
-- background without the loopback listener's descriptors and without the
-- secrets in this process's environment. Plain Lua (os.execute), so no
-- LuaSocket here.
-- @module smartauth.flow.browser
local compat = require "smartauth.compat"
local store = require "smartauth.store"

local M = {}

local function windows()
  return package.config:sub(1, 1) == "\\"
end

local function uname()
  local h = io.popen("uname -s 2>/dev/null")
  local sys = h and h:read("*l") or ""
  if h then h:close() end
  return sys
end

local function have(cmd)
  return compat.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

--- Is there a browser this process can open (a desktop session)?
function M.can_open()
  if windows() then return true end
  if uname() == "Darwin" then return true end
  if (os.getenv("DISPLAY") or "") == "" and (os.getenv("WAYLAND_DISPLAY") or "") == "" then
    return false
  end
  return have("xdg-open")
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Variables a browser must not inherit: the store's key and every ${NAME} a
-- loaded config expanded (where secrets come from). A browser may live for
-- days and hands its environment to its helpers and extensions. A config
-- that was never loaded expanded nothing, so it is not required here.
local function secret_env_names()
  local names = { store.KEY_ENV }
  local config = package.loaded["smartauth.config"]
  if type(config) == "table" and config.secret_env_names then
    for _, n in ipairs(config.secret_env_names()) do names[#names + 1] = n end
  end
  local ok = {}
  for _, n in ipairs(names) do
    if type(n) == "string" and n:match("^[%a_][%w_]*$") then ok[#ok + 1] = n end
  end
  return ok
end

-- A command run in the background with the given descriptors closed and
-- the secret variables unset: a browser started by xdg-open may live for
-- hours, and must not keep the loopback listener's socket (LuaSocket does
-- not set close-on-exec) nor the secrets this process was given.
local function spawn_detached(cmd, fds)
  local closes = {}
  local unset = secret_env_names()
  if #unset > 0 then closes[1] = "unset " .. table.concat(unset, " ") .. " ;" end
  local big = false
  for _, fd in ipairs(fds or {}) do
    fd = compat.tointeger(fd)
    if fd and fd > 2 then
      closes[#closes + 1] = "exec " .. fd .. ">&- ;"
      if fd > 9 then big = true end
    end
  end
  local inner = table.concat(closes, " ") .. " exec " .. cmd .. " </dev/null >/dev/null 2>&1"
  -- POSIX sh only promises descriptors 0-9 in redirections; bash takes any
  local shell = "sh"
  if big and have("bash") then shell = "bash" end
  return compat.execute(shell .. " -c " .. sh_quote(inner) .. " </dev/null >/dev/null 2>&1 &") == true
end

--- Open a URL in the person's browser. Returns true when a command was
-- started (it may still fail to show anything, which is why the flows
-- print the URL too).
-- @param u the URL
-- @param ctx optional { fds = {descriptors the browser must not inherit} }
function M.open(u, ctx)
  if type(u) ~= "string" or u:find("[%c\"]") then return false end
  if windows() then
    return compat.execute('start "" "' .. u .. '"') == true
  end
  local cmd = uname() == "Darwin" and "open" or "xdg-open"
  if not have(cmd) then return false end
  return spawn_detached(cmd .. " " .. sh_quote(u), ctx and ctx.fds)
end

return M
