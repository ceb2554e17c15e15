-- What a program maps: the C core is three modules split by the libraries
-- they link, so a cached token from a file store never maps libcurl (about
-- 7 ms of loading, 30+ libraries) and no store but Redis maps hiredis.
local proc = require "helpers.proc"

-- Runs chunk in a fresh lua5.4 (a fresh address space) with this run's
-- module paths; returns its output. The child runs without the sanitizer
-- runtime (make sanitize removes it for children), so it loads the plain
-- build of the modules.
local function fresh(chunk, ...)
  local cpath = package.cpath:gsub("build/asan/", "build/")
  local args = { proc.LUA, "-e", proc.shell_quote(("package.path = %q; package.cpath = %q")
    :format(package.path, cpath)), "-" }
  for _, a in ipairs { ... } do args[#args + 1] = proc.shell_quote(a) end
  local cmd = table.concat(args, " ") .. " 2>&1 <<'EOF_CHUNK'\n" .. chunk .. "\nEOF_CHUNK\n"
  local ok, code, out = proc.run(cmd)
  assert(ok, "child failed (" .. tostring(code) .. "): " .. tostring(out))
  return out
end

local MAPS = [[
local maps = assert(io.open("/proc/self/maps")):read("*a")
local function has(lib) return maps:find(lib, 1, true) and lib or "no " .. lib end
io.write(has("libcurl"), ",", has("libhiredis"), ",", has("libcrypto"), ",",
  package.loaded["smartauth.core_http"] and "core_http" or "no core_http", ",",
  package.loaded["smartauth.core_redis"] and "core_redis" or "no core_redis")
]]

describe("loading", function()
  it("require 'smartauth' maps none of libcrypto, libcurl or hiredis", function()
    local out = fresh('require "smartauth"\n' .. MAPS)
    assert.equal("no libcurl,no libhiredis,no libcrypto,no core_http,no core_redis", out)
    -- smartauth.core (libcrypto) loads with the first call that needs it
    out = fresh('local smartauth = require "smartauth"\n'
      .. 'local p = assert(smartauth.provider { token_endpoint = "http://127.0.0.1:9/t", client_id = "c" })\n'
      .. 'assert(p:store_key())\n' .. MAPS)
    assert.equal("no libcurl,no libhiredis,libcrypto,no core_http,no core_redis", out)
  end)

  it("a cached token from a file store is served without libcurl", function()
    local dir = proc.tmpdir("smartauth-load.XXXXXX")
    local out = fresh([[
local smartauth = require "smartauth"
local store = require "smartauth.store"
local fs = assert(store.file { dir = arg[1], key = false })
-- port 9 (discard): a request would fail, so a token proves the cache served it
local p = assert(smartauth.provider { name = "svc", token_endpoint = "http://127.0.0.1:9/token",
  client_id = "cid", client_secret = "csecret", store = fs, retry = false })
local now = os.time()
assert(fs:set(p:store_key(), { v = 2, access_token = "at-cached", token_type = "Bearer",
  expires_at = now + 3600, issued_at = now }))
local t = assert(p:token())
assert(t.access_token == "at-cached", "not the cached token")
]] .. MAPS, dir)
    proc.rmtree(dir)
    assert.equal("no libcurl,no libhiredis,libcrypto,no core_http,no core_redis", out)
  end)

  it("loads the engine's module, and libcurl, on the first transfer", function()
    local out = fresh([[
local engine = require "smartauth.engine"
local res, err = engine.request { url = "http://127.0.0.1:9/", connect_timeout = 2, timeout = 2 }
assert(res or err)
]] .. MAPS)
    assert.equal("libcurl,no libhiredis,libcrypto,core_http,no core_redis", out)
  end)
end)
