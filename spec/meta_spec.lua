-- The package itself: one version, every module listed in the rockspec,
-- and a LuaRocks build that installs and loads offline.
local proc = require "helpers.proc"

local function read(path) return assert(proc.read_file(path), "cannot read " .. path) end

local function rockspec()
  local env = {}
  local chunk = assert(require("smartauth.compat").load(read("smartauth-scm-1.rockspec"), "rockspec", "t", env))
  chunk()
  return env
end

describe("package", function()
  it("has one version, matching the rockspec", function()
    local smartauth = require "smartauth"
    local spec = rockspec()
    assert.equal("scm-1", spec.version)
    assert.matches("^%d+%.%d+%.%d+$", smartauth._VERSION)
    assert.equal(smartauth._VERSION, require("smartauth.core")._VERSION)
  end)

  it("lists every Lua module file and every C source in the rockspec", function()
    local modules = rockspec().build.modules
    local ok, _, out = proc.run("cd lua && find smartauth -name '*.lua' | sort")
    assert.is_true(ok)
    for file in out:gmatch("[^\n]+") do
      local name = file:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal("lua/" .. file, modules[name], "module " .. name .. " missing from the rockspec")
    end
    local listed = {}
    for _, m in ipairs { "smartauth.core", "smartauth.core_http", "smartauth.core_redis" } do
      for _, src in ipairs(modules[m].sources) do listed[src] = true end
    end
    _, _, out = proc.run("ls csrc/*.c")
    for file in out:gmatch("[^\n]+") do
      assert.is_true(listed[file] == true, file .. " missing from the rockspec")
    end
  end)

  it("builds each C module from its own binding files, libcurl and hiredis apart", function()
    local modules = rockspec().build.modules
    local function has(m, src)
      for _, s in ipairs(modules[m].sources) do if s == src then return true end end
      return false
    end
    local function links(m, lib)
      for _, l in ipairs(modules[m].libraries) do if l == lib then return true end end
      return false
    end
    assert.is_false(links("smartauth.core", "curl"))
    assert.is_false(links("smartauth.core", "hiredis"))
    assert.is_false(has("smartauth.core", "csrc/http.c"))
    assert.is_false(has("smartauth.core", "csrc/store_redis.c"))
    assert.is_true(has("smartauth.core_http", "csrc/lhttp.c"))
    assert.is_true(has("smartauth.core_redis", "csrc/lredis.c"))
    -- each binding file belongs to one module (the helpers to all)
    local owner = {}
    for name, m in pairs(modules) do
      for _, src in ipairs(type(m) == "table" and m.sources or {}) do
        if src:match("^csrc/l[^/]*%.c$") and src ~= "csrc/lutil.c" then
          assert.is_nil(owner[src], src .. " in two modules")
          owner[src] = name
        end
      end
    end
  end)

  it("keeps the Lua stack in the binding files: only csrc/l*.c include lua.h", function()
    local ok, _, out = proc.run("grep -l -E '#include <(lua|lauxlib|lualib)\\.h>' csrc/*.c csrc/*.h")
    assert.is_true(ok, out)
    for file in out:gmatch("[^\n]+") do
      assert.matches("^csrc/l[^/]*%.[ch]$", file)
    end
    -- and the assembly only assembles: no function of its own but luaopen
    local src = assert(proc.read_file("csrc/lsmartauth.c"))
    local n = 0
    for name in src:gmatch("\n[%w_ *]-([%w_]+)%(lua_State %*L%)\n{") do
      n = n + 1
      assert.equal("luaopen_smartauth_core", name)
    end
    assert.equal(1, n)
  end)

  -- for the runtime running the specs: --lua-version=5.1 with LuaJIT's
  -- headers under luajit
  it("builds and installs with luarocks offline, and loads from the tree", function()
    local compat = require "smartauth.compat"
    local v = compat.version
    local tree = proc.tmpdir("smartauth-tree.XXXXXX")
    local incdir = compat.luajit and " LUA_INCDIR=/usr/include/luajit-2.1" or ""
    local ok, code, out = proc.run("luarocks --lua-version=" .. v .. " make --deps-mode=none --tree "
      .. proc.shell_quote(tree) .. " smartauth-scm-1.rockspec" .. incdir .. " 2>&1")
    assert.is_true(ok, "luarocks make failed (" .. tostring(code) .. "):\n" .. out)
    local env = ("LUA_PATH=%s/share/lua/%s/?.lua\\;%s/share/lua/%s/?/init.lua\\;\\; "
      .. "LUA_CPATH=%s/lib/lua/%s/?.so\\;\\;"):format(tree, v, tree, v, tree, v)
    local _
    ok, _, out = proc.run("cd / && env " .. env .. " " .. proc.LUA .. " -e "
      .. proc.shell_quote('local s = require "smartauth"; require "smartauth.core_http"; '
      .. 'require "smartauth.core_redis"; io.write(s._VERSION, " ") '
      .. 'for t in package.cpath:gmatch("[^;]+") do local f = t:gsub("?", "smartauth/core") '
      .. 'if io.open(f) then io.write(f) break end end'))
    proc.rmtree(tree)
    assert.is_true(ok, out)
    assert.matches("^%d+%.%d+%.%d+ .*/lib/lua/" .. v:gsub("%.", "%%.") .. "/smartauth/core%.so$", out)
    assert.matches(tree, out, 1, true)
  end)
end)
