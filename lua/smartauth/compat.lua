--- What differs between the Lua runtimes smartauth runs on (5.1, 5.2,
-- 5.3, 5.4 and LuaJIT 2.1), in one place: every other file is written in
-- the common subset (no `//`, bit operators, `goto`, `<close>` or
-- `<const>`) and calls these where a library function differs. Where the
-- runtime has the function, it is that function itself, so 5.3 and 5.4
-- pay nothing.
--
-- Not here because the common subset already covers it: `math.floor(a / b)`
-- for `a // b` (an integer on 5.3+ when it fits), `x % 64` for `x & 63`,
-- and the read formats "*a", "*l", "*n" (5.3 and 5.4 skip the `*`).
-- @module smartauth.compat
local M = {}

local floor, huge, type, select = math.floor, math.huge, type, select

--- The runtime: "5.1", "5.2", "5.3", "5.4", with `M.luajit` true on LuaJIT.
M.version = _VERSION:match("%d+%.%d+")
M.luajit = type(rawget(_G, "jit")) == "table"

--- table.pack: the values and their count `n`.
M.pack = table.pack or function(...)
  return { n = select("#", ...), ... }
end

--- table.unpack (unpack on 5.1 and LuaJIT).
M.unpack = table.unpack or rawget(_G, "unpack")

-- A number with no fractional part that a 64-bit integer holds: what 5.3+
-- calls an integer when it is one (5.1 and 5.2 have doubles only).
local function integral(x)
  return x == floor(x) and x >= -2 ^ 63 and x < 2 ^ 63
end

--- math.type: "integer", "float", or nil for anything but a number. On
-- 5.1 and 5.2 a number without a fractional part counts as an integer.
M.math_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if integral(x) then return "integer" end
  return "float"
end

--- A finite number (not NaN, not ±inf): what a JSON claim like `exp` must be.
function M.is_finite(v)
  return M.math_type(v) ~= nil and v == v and v ~= math.huge and v ~= -math.huge
end

--- math.tointeger: the integer x holds (a number or a numeric string, as
-- 5.4 takes it), or nil.
M.tointeger = math.tointeger or function(x)
  if type(x) == "string" then x = tonumber(x) end
  if type(x) ~= "number" or x ~= x or x == huge or x == -huge or not integral(x) then return nil end
  return x
end

-- utf8.len for runtimes without the utf8 library, as strict as 5.4's: no
-- overlong forms, no surrogates, nothing above U+10FFFF.
local function utf8_len(s)
  local n, i, len = 0, 1, #s
  local byte = string.byte
  while i <= len do
    local c = byte(s, i)
    local size, min, cp
    if c < 0x80 then size, cp, min = 1, c, 0
    elseif c >= 0xC2 and c < 0xE0 then size, cp, min = 2, c - 0xC0, 0x80
    elseif c >= 0xE0 and c < 0xF0 then size, cp, min = 3, c - 0xE0, 0x800
    elseif c >= 0xF0 and c < 0xF5 then size, cp, min = 4, c - 0xF0, 0x10000
    else return nil, i end
    for j = i + 1, i + size - 1 do
      local b = byte(s, j)
      if not b or b < 0x80 or b > 0xBF then return nil, i end
      cp = cp * 64 + (b - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil, i end
    n = n + 1
    i = i + size
  end
  return n
end

--- utf8.len(s): the number of characters, or nil and the position of the
-- first byte that is not valid UTF-8.
M.utf8_len = rawget(_G, "utf8") and utf8.len or utf8_len

--- utf8.char(code): the UTF-8 encoding of one code point.
M.utf8_char = rawget(_G, "utf8") and utf8.char or function(cp)
  local char = string.char
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- Does this runtime's load take a string, a mode and an environment (5.2+
-- and LuaJIT 2.1)?
local load52 = pcall(load, "return 1", "=compat", "t", {})

--- load(chunk, name, mode, env) as 5.2+ has it, on 5.1 too: mode "t"
-- refuses a binary chunk, env becomes the chunk's environment.
M.load = load52 and load or function(chunk, name, mode, env)
  if type(chunk) == "string" then
    if mode == "t" and chunk:byte(1) == 27 then
      return nil, "attempt to load a binary chunk (mode is '" .. mode .. "')"
    end
    local f, err = loadstring(chunk, name) -- luacheck: ignore 113 (5.1 only)
    if f and env then setfenv(f, env) end -- luacheck: ignore 113
    return f, err
  end
  local f, err = load(chunk, name)
  if f and env then setfenv(f, env) end -- luacheck: ignore 113
  return f, err
end

-- Does os.execute say how the command ended (5.2+), or give the raw wait
-- status (5.1 and LuaJIT)? Known only by running a command: asked on first
-- use, not at load (a process spawned by every require costs ~0.3 ms).
local execute52

--- os.execute(cmd) as 5.2+ has it: true or nil, then "exit" and the exit
-- code, or "signal" and the signal number.
function M.execute(cmd)
  local a, b, c = os.execute(cmd)
  if execute52 == nil then execute52 = type(a) ~= "number" end
  if execute52 then return a, b, c end
  local how, code = "exit", floor(a / 256)
  if a % 256 ~= 0 then how, code = "signal", a % 128 end
  return (how == "exit" and code == 0) or nil, how, code
end

-- newproxy: 5.1 and LuaJIT, where a table's __gc never runs.
local newproxy = rawget(_G, "newproxy")

--- Make the __gc of t's metatable run when t is collected, as 5.2+ does
-- for a table whose metatable had __gc when it was set; on 5.1 and LuaJIT
-- a userdata kept in t runs it. Returns t.
M.table_gc = not newproxy and function(t) return t end or function(t)
  local proxy = newproxy(true)
  getmetatable(proxy).__gc = function()
    local mt = getmetatable(t)
    if mt and mt.__gc then mt.__gc(t) end
  end
  rawset(t, proxy, true)
  return t
end

return M
