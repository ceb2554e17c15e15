-- Config files: profiles in Lua (a sandbox) or JSON, ${NAME} and file
-- secrets, the permission warning, and errors that name file, profile and key.
local compat = require "smartauth.compat"
local smartauth = require "smartauth"
local config = require "smartauth.config"
local proc = require "helpers.proc"

local q = proc.shell_quote

describe("config", function()
  local dir, n = nil, 0

  setup(function() dir = proc.tmpdir("smartauth-config.XXXXXX") end)
  teardown(function() proc.rmtree(dir) end)

  -- Writes a config file with the given mode and returns its path.
  local function write(text, ext, mode)
    n = n + 1
    local path = dir .. "/config" .. n .. "." .. (ext or "lua")
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    os.execute("chmod " .. (mode or "600") .. " " .. q(path))
    return path
  end

  local function env(t)
    return function(name) return t[name] end
  end

  local function load_quiet(path)
    local warnings = {}
    local cfg, err = config.load(path, { warn = function(m) warnings[#warnings + 1] = m end })
    return cfg, err, warnings
  end

  describe("loading", function()
    it("reads the profiles of a Lua file", function()
      local path = write [[
        return {
          profiles = {
            sense = { preset = "smartsense", client_id = "abc", client_secret = "${SENSE_SECRET}" },
            idp = { issuer = "https://idp.example.com", client_id = "cli", scope = "openid email",
                    grant = "loopback", store = { kind = "memory" } },
          },
        }
      ]]
      local cfg = assert(load_quiet(path))
      assert.equal(path, cfg.path)
      assert.same({ "idp", "sense" }, config.names(cfg))
      assert.equal("smartsense", cfg.profiles.sense.preset)
    end)

    it("reads JSON files", function()
      local path = write([[{"profiles": {"idp": {"issuer": "https://idp.example.com", "client_id": "cli",
        "timeout": 5}}}]], "json")
      local cfg = assert(load_quiet(path))
      assert.equal(5, cfg.profiles.idp.timeout)
      local bad = write([[{"profiles": {]], "json")
      local _, err = load_quiet(bad)
      assert.equal("config", err.kind)
      assert.matches(bad .. ": not valid JSON", err.description, 1, true)
    end)

    it("runs Lua files in a sandbox: no os, no io, no require", function()
      for _, name in ipairs { "os", "io", "require", "load", "dofile", "debug", "package" } do
        local path = write("local x = " .. name .. ".x return { profiles = {} }")
        local cfg, err = load_quiet(path)
        assert.is_nil(cfg)
        assert.equal("config", err.kind)
        -- 5.4: "attempt to index a nil value (global 'os')"; 5.1: "attempt to index global 'os' (a nil value)"
        assert.matches("attempt to index .*nil value", err.description)
        assert.matches("'" .. name .. "'", err.description, 1, true)
        assert.matches(path, err.description, 1, true)
      end
      -- string methods still work for building values
      local path = write [[return { profiles = { a = { issuer = ("https://%s"):format("idp.example"),
        client_id = "x" } } }]]
      assert.equal("https://idp.example", assert(load_quiet(path)).profiles.a.issuer)
    end)

    it("stops a config that never ends", function()
      local path = write "while true do end"
      local cfg, err = load_quiet(path)
      assert.is_nil(cfg)
      assert.matches("runs too long", err.description)
    end)

    it("refuses bytecode", function()
      local path = write(string.dump(function() return { profiles = {} } end))
      local cfg, err = load_quiet(path)
      assert.is_nil(cfg)
      assert.matches("binary", err.description)
    end)

    it("says which file is missing", function()
      local cfg, err = config.load(dir .. "/nope.lua")
      assert.is_nil(cfg)
      assert.equal("config", err.kind)
      assert.matches("no config file at " .. dir .. "/nope.lua", err.description, 1, true)
    end)
  end)

  -- Hostile configs: every one ends within the time limit with a config
  -- error, in a Lua state of its own with capped memory (smartauth.core's
  -- config_load), and only plain data comes back.
  describe("sandbox limits", function()
    -- Runs `smartauth --config PATH list` in a child under timeout(1), so a
    -- regression fails the test instead of hanging the suite. `vmem` (KiB)
    -- caps the child's address space with ulimit -v.
    local function list(path, vmem)
      local cmd = "timeout -s KILL 10 env " .. proc.LUA_ENV ..
        proc.LUA .. " bin/smartauth --config " .. q(path) .. " list 2>&1"
      if vmem then cmd = "ulimit -v " .. vmem .. " && " .. cmd end
      local t0 = proc.now()
      local _, code, out = proc.run("sh -c " .. q(cmd))
      return code, out, proc.now() - t0
    end

    local HANGS = {
      backtracking = [[local s = ("a"):rep(40)
        local _ = s:find(("a*"):rep(20) .. "b")
        return { profiles = {} }]],
      ["backtracking in gsub"] = [[local _ = ("a"):rep(30):gsub(("a-"):rep(12) .. "b", "x")
        return { profiles = {} }]],
      ["backtracking in gmatch"] = [[for _ in ("a"):rep(30):gmatch(("a?"):rep(28) .. "b") do end
        return { profiles = {} }]],
      ["plain find"] = [[local s = ("a"):rep(4000000)
        local _ = s:find(("a"):rep(2000000) .. "b", 1, true)
        return { profiles = {} }]],
      ["an empty string repeated"] = [[local s = (""):rep(2^53) return { profiles = { [s] = {} } }]],
      ["a long move"] = [[table.move({}, 1, 2^50, 1) return { profiles = {} }]],
      ["a sort of one long string"] = [[local s, t = ("x"):rep(2^21), {}
        for i = 1, 200000 do t[i] = s end
        table.sort(t)
        return { profiles = {} }]],
      ["a sort with a C comparison"] = [[local t = {} for i = 1, 2000 do t[i] = 2^20 end
        table.sort(t, string.rep) return { profiles = {} }]],
      ["a loop in a gsub callback"] = [[local _ = ("abc"):gsub(".", function() while true do end end)
        return { profiles = {} }]],
    }
    for name, text in pairs(HANGS) do
      it("stops " .. name .. " within the time limit", function()
        local path = write(text)
        local code, out, took = list(path)
        assert.not_equal(0, code)
        assert.not_equal(137, code, "killed by timeout: the config hung")
        assert.is_true(took < 8, "took " .. took .. " s")
        assert.matches("smartauth: ", out, 1, true)
        assert.matches(path, out, 1, true)
      end)
    end

    it("says a pattern that runs too long runs too long", function()
      local code, out = list(write(HANGS.backtracking))
      assert.not_equal(0, code)
      assert.matches("runs too long", out, 1, true)
    end)

    it("refuses ('x'):rep(2^30) with a memory error, without growing past the cap", function()
      -- 400 MiB of address space: the library loads, 1 GiB cannot be had.
      local code, out, took = list(write [[local s = ("x"):rep(2^30) return { profiles = { [s] = {} } }]], 400000)
      assert.not_equal(0, code)
      assert.matches("more than 16 MiB of memory", out, 1, true)
      assert.is_true(took < 8)
    end)

    it("caps the memory a config can use", function()
      -- time enough under valgrind: memory is the limit these meet
      local old = config.TIMEOUT
      finally(function() config.TIMEOUT = old end)
      config.TIMEOUT = 30
      for _, text in ipairs {
        [[local s = ("x"):rep(2^25) return { profiles = {} }]],
        [[local t = {} for i = 1, 2^22 do t[i] = i end return { profiles = {} }]],
        [[local s = "x" for _ = 1, 30 do s = s .. s end return { profiles = {} }]],
      } do
        local path = write(text)
        local cfg, err = load_quiet(path)
        assert.is_nil(cfg)
        assert.equal("config", err.kind)
        assert.equal(path .. ": the config needs more than 16 MiB of memory", err.description)
      end
    end)

    it("offers no way to catch its own limits or to leave the sandbox", function()
      for _, name in ipairs { "pcall", "xpcall", "setmetatable", "getmetatable", "rawset", "collectgarbage",
          "coroutine", "print", "string.dump", "string.pack", "load", "loadstring", "require", "module",
          "dofile", "loadfile", "newproxy", "rawequal", "setfenv", "getfenv", "utf8", "_G", "io", "os", "debug" } do
        local expr = name:gsub("^string%.", "(string or {}).")
        local path = write("if " .. expr .. " ~= nil then return 1 end return { profiles = {} }")
        assert.is_table(load_quiet(path), name .. " is reachable")
      end
    end)

    it("keeps the usual string, table and math functions", function()
      local path = write [[
        local parts = {}
        for w in ("a,b,c"):gmatch("[^,]+") do parts[#parts + 1] = w:upper() end
        table.sort(parts, function(x, y) return x > y end)
        local host = ("https://idp.example/path"):match("^https://([^/]+)")
        local s, e = ("abc"):find("b", 1, true)
        return { profiles = { p = { issuer = "https://" .. host, client_id = table.concat(parts, "") ..
          ("x"):rep(3, "-") .. s .. e .. ("%d"):format(math.floor(2.5)),
          scope = ("openid  email"):gsub("%s+", " ") } } }
      ]]
      local cfg = assert(load_quiet(path))
      assert.equal("https://idp.example", cfg.profiles.p.issuer)
      assert.equal("CBAx-x-x222", cfg.profiles.p.client_id)
      assert.equal("openid email", cfg.profiles.p.scope)
    end)

    it("gives back only plain data: no functions, cycles, NaN or huge nesting", function()
      local cases = {
        { [[return { profiles = { a = { issuer = "https://i.example", client_id = function() end } } }]],
          "a function at profiles.a.client_id" },
        { [[local t = { issuer = "https://i.example" } t.self = t return { profiles = { a = t } }]],
          "a cycle at profiles.a.self" },
        { [[return { profiles = { a = { issuer = "https://i.example", timeout = 0/0 } } }]],
          "a number that is not finite at profiles.a.timeout" },
        { [[return { profiles = { a = { issuer = "https://i.example", timeout = math.huge } } }]],
          "a number that is not finite at profiles.a.timeout" },
        { [[local t = {} for _ = 1, 100 do t = { t } end return { profiles = { a = t } }]],
          "tables nested deeper than 16 at profiles.a" .. ("[1]"):rep(14) },
        { [[local t = {} for i = 1, 70000 do t[i] = true end return { profiles = { a = t } }]],
          "more than 65536 values" },
        { [[return { profiles = { a = { [true] = 1 } } }]], "a key that is a boolean at profiles.a" },
        { [[return { profiles = { a = { issuer = "https://i.example", x = setmetatable({}, {}) } } }]],
          "'setmetatable'" }, -- "attempt to call" words it differently on 5.1
        { [[error({})]], "(error object is a table value)" },
      }
      for _, c in ipairs(cases) do
        local path = write(c[1])
        local cfg, err = load_quiet(path)
        assert.is_nil(cfg, c[2])
        assert.equal("config", err.kind)
        assert.matches(c[2], err.description, 1, true)
        assert.matches(path, err.description, 1, true)
      end
      -- JSON configs follow the same rule
      for _, c in ipairs {
        { [[{"profiles": {"a": {"issuer": "https://i.example", "timeout": NaN}}}]],
          "a number that is not finite at profiles.a.timeout" },
        { [[{"profiles": {"a": {"issuer": "https://i.example", "leeway": -Infinity}}}]],
          "a number that is not finite at profiles.a.leeway" },
        { [[{"profiles": {"a": {"issuer": "https://i.example", "scope": null}}}]], "a null at profiles.a.scope" },
        { ("{\"profiles\": {\"a\": "):rep(20) .. "{}" .. ("}"):rep(40), "tables nested deeper than 16" },
      } do
        local path = write(c[1], "json")
        local cfg, err = load_quiet(path)
        assert.is_nil(cfg, c[2])
        assert.equal("config", err.kind)
        assert.matches(path .. ": " .. c[2], err.description, 1, true)
      end
      -- shared (not cyclic) tables are plain data
      local cfg = assert(load_quiet(write [[local s = { kind = "memory" }
        return { profiles = { a = { issuer = "https://a.example", store = s },
                              b = { issuer = "https://b.example", store = s } } }]]))
      assert.equal("memory", cfg.profiles.b.store.kind)
      assert.not_equal(cfg.profiles.a.store, cfg.profiles.b.store)
      -- integers stay integers
      cfg = assert(load_quiet(write [[return { profiles = { a = { issuer = "https://a.example", timeout = 5 } } }]]))
      assert.equal(compat.math_type(5), compat.math_type(cfg.profiles.a.timeout))
    end)

    -- #lua54: this process's string library is the oracle, and only 5.4's
    -- is the matcher config_load follows (gmatch's init, for one, is 5.4's).
    it("matches patterns as Lua 5.4 does #lua54", function()
      local core = require "smartauth.core"
      local ITEMS = { "a", "b", "%a", ".", "[ab]", "[^a]", "(", ")", "()", "%b()", "%f[a]", "%1", "^", "$", "%",
        "*", "+", "-", "?", "[", "]", "%d" }
      local SUBJECT = { "a", "b", "(", ")", "1" }
      local rnd = math.random
      math.randomseed(7)
      -- gsub with a string, a table and a function, gmatch with an init: all
      -- of the matcher's entry points; results or the error message
      local code = [[local s, p = %q, %q
        local r = { s:find(p) }
        r[#r + 1] = "|"
        for _, v in ipairs { s:match(p) } do r[#r + 1] = v end
        r[#r + 1] = "|"
        for a, b in s:gmatch(p) do r[#r + 1] = tostring(a) .. "," .. tostring(b) end
        r[#r + 1] = "|"
        for a in s:gmatch(p, 2) do r[#r + 1] = a end
        r[#r + 1] = "|" .. table.concat({ s:gsub(p, "<%%0>") }, ",")
        r[#r + 1] = table.concat({ s:gsub(p, { a = "A", ["("] = false }) }, ",")
        r[#r + 1] = table.concat({ s:gsub(p, function(x) return x == "b" and "B" or nil end, 2) }, ",")
        r[#r + 1] = tostring(s:find(p, -3, true))
        return r]]
      for _ = 1, 300 do
        local p, sub = {}, {}
        for i = 1, rnd(1, 6) do p[i] = ITEMS[rnd(#ITEMS)] end
        for i = 1, rnd(0, 8) do sub[i] = SUBJECT[rnd(#SUBJECT)] end
        local text = code:format(table.concat(sub), table.concat(p))
        local ok, want = pcall(assert(load(text, "=t", "t", { ipairs = ipairs, tostring = tostring, table = table })))
        local got, kind, msg = core.config_load(text, "=t")
        if ok then
          assert.same(want, got, text)
        else
          assert.equal("config", kind, text)
          assert.equal(want, msg, text)
        end
      end
    end)

    it("stops a pattern at the deadline in this process too", function()
      local core = require "smartauth.core"
      for _, text in ipairs {
        [[return ("a"):rep(40):find(("a*"):rep(6) .. "b")]],
        [[return ("a"):rep(40):gsub(("a-"):rep(6) .. "b", "")]],
        [[return ("("):rep(100000):find("%b()")]],
        [[return ("a"):rep(5000):find("(a*)%1x")]],
        [[return ("a"):rep(100000):find("[" .. ("b"):rep(100000) .. "]")]],
        [[local s = ("a"):rep(4000000) return s:find(("a"):rep(2000000) .. "b", 1, true)]],
      } do
        local t0 = proc.now()
        local res, kind, msg = core.config_load(text, "=t", nil, 0.05)
        assert.is_nil(res, text)
        assert.equal("config", kind)
        assert.equal("the config runs too long (stopped after 0.05 s)", msg)
        assert.is_true(proc.now() - t0 < 2, text)
      end
    end)

    it("refuses a config file larger than 1 MiB", function()
      local path = write("return { profiles = {} } --" .. ("x"):rep(1024 * 1024))
      local cfg, err = load_quiet(path)
      assert.is_nil(cfg)
      assert.equal(path .. ": the config file is larger than 1 MiB", err.description)
    end)

    it("never crashes on 200 random or truncated config texts", function()
      local seeds = {
        [[return { profiles = { s = { preset = "smartsense", client_id = "id", client_secret = "${S}" } } }]],
        [[local t = {} t.t = t return { profiles = { a = t } }]],
        [[return { profiles = { a = { issuer = ("https://%s"):format("x"), scope = ("a b"):gsub(" ", "+") } } }]],
        [[local s = ("x"):rep(1000) return { profiles = { [s:sub(1, 5)] = { issuer = "https://i" } } }]],
        [[for w in ("a,b"):gmatch("([^,]*)") do end return { profiles = { x = { 1, 2.5, true, { {} } } } }]],
      }
      local rnd = math.random
      math.randomseed(12)
      local old = config.TIMEOUT
      finally(function() config.TIMEOUT = old end)
      config.TIMEOUT = 0.2
      for i = 1, 200 do
        local text = seeds[i % #seeds + 1]
        local how = rnd(3)
        if how == 1 then
          text = text:sub(1, rnd(0, #text))
        elseif how == 2 then
          local b = {}
          for j = 1, #text do
            b[j] = rnd(8) == 1 and string.char(rnd(0, 255)) or text:sub(j, j)
          end
          text = table.concat(b)
        else
          local pos = rnd(1, #text)
          text = text:sub(1, pos) .. seeds[rnd(#seeds)]:sub(rnd(1, 40)) .. text:sub(pos + 1)
        end
        local ok, cfg, err = pcall(config.load, write(text), { warn = false })
        assert.is_true(ok, tostring(cfg))
        if not cfg then assert.equal("config", err.kind) end
      end
      -- and the C function itself with tiny memory caps: every allocation
      -- failure on the way in (state, libraries, chunk, copy) is an error
      local core = require "smartauth.core"
      for i = 1, 200 do
        local text = seeds[i % #seeds + 1]
        local res, kind, msg = core.config_load(text, "=fuzz", 64 * 1024 + i * 512, 0.2)
        if res == nil and kind then
          assert.equal("config", kind)
          assert.is_string(msg)
        end
      end
    end)
  end)

  describe("errors name the file, the profile and the key", function()
    local function fails(text, pattern)
      local path = write(text)
      local cfg, err = load_quiet(path)
      assert.is_nil(cfg)
      assert.equal("config", err.kind)
      assert.equal(path .. pattern, err.description)
    end

    it("for unknown keys", function()
      fails([[return { profiles = { work = { issuer = "https://i.example", clientid = "x" } } }]],
        ": profile 'work': option 'clientid' is not known (did you mean 'client_id'?)")
    end)

    it("for wrong types", function()
      fails([[return { profiles = { work = { issuer = "https://i.example", timeout = "5" } } }]],
        ": profile 'work': option 'timeout' must be a number (got string)")
      fails([[return { profiles = { work = { issuer = "https://i.example", grant = "magic" } } }]],
        ": profile 'work': option 'grant' must be one of client_credentials, password, authorization_code, " ..
        "loopback, device, oob, none (got 'magic')")
    end)

    it("for presets and their own options", function()
      fails([[return { profiles = { x = { preset = "smartbox", client_id = "c" } } }]],
        ": profile 'x': option 'preset' must be one of smartfile, smartconnect, smartsense, smarttask (got 'smartbox')")
      fails([[return { profiles = { x = { preset = "smartsense", region = "EU" } } }]],
        ": profile 'x': option 'region' is not known")
      fails([[return { profiles = { x = { preset = "smartconnect", region = 7 } } }]],
        ": profile 'x': option 'region' must be a string (got number)")
    end)

    it("for stores", function()
      fails([[return { profiles = { x = { issuer = "https://i.example", store = { kind = "disk" } } } }]],
        ": profile 'x': option 'store' needs kind = file, memory, redis (got 'disk')")
      fails([[return { profiles = { x = { issuer = "https://i.example", store = { kind = "file", path = "/t" } } } }]],
        ": profile 'x': option 'store.path' is not known for kind 'file'")
      fails([[return { profiles = { x = { issuer = "https://i.example",
        store = { kind = "redis", port = "6379" } } } }]],
        ": profile 'x': option 'store.port' must be a number (got string)")
    end)

    it("for the file's own shape", function()
      fails([[return { profile = {} }]], ": key 'profile' is not known (only 'profiles')")
      fails([[return { profiles = { ["a b"] = {} } }]], ": profile name 'a b' must be letters, digits, '_', '.' or '-'")
      fails([[return { profiles = { x = { client_id = "c" } } }]],
        ": profile 'x' needs 'preset', 'issuer' or endpoints")
      fails([[return { profiles = { x = "https://i.example" } }]], ": profile 'x' must be a table (got string)")
      fails([[return 42]], ": the config must be a table with 'profiles' (got number)")
    end)
  end)

  describe("secrets", function()
    it("come from the environment as ${NAME}", function()
      local path = write [[return { profiles = { s = { preset = "smartsense", client_id = "id-${WHO}",
        client_secret = "${SENSE_SECRET}", store = { kind = "memory" } } } }]]
      local cfg = assert(load_quiet(path))
      local o = assert(config.options(cfg, "s", env { SENSE_SECRET = "env-secret-value", WHO = "me" }))
      assert.equal("env-secret-value", o.client_secret)
      assert.equal("id-me", o.client_id)
      assert.equal("s", o.name)
      local p = assert(config.provider(cfg, "s", env { SENSE_SECRET = "env-secret-value", WHO = "me" }))
      assert.equal("https://api.smartsense.co/auth/oauth", p:endpoint("token_endpoint"))
      assert.equal("s", p.profile)
      assert.not_matches("env%-secret%-value", tostring(p))
    end)

    it("name a missing variable, not a value", function()
      local path = write [[return { profiles = { s = { preset = "smartsense", client_id = "id",
        client_secret = "${NOT_SET_ANYWHERE}" } } }]]
      local cfg = assert(load_quiet(path))
      local o, err = config.options(cfg, "s", env {})
      assert.is_nil(o)
      assert.equal(path .. ": profile 's': option 'client_secret' refers to ${NOT_SET_ANYWHERE}, which is not set",
        err.description)
    end)

    it("keep $${NAME} literal", function()
      local path = write [[return { profiles = { s = { preset = "smartsense", client_id = "a$${B}c",
        store = { kind = "memory" } } } }]]
      local o = assert(config.options(assert(load_quiet(path)), "s", env { B = "no" }))
      assert.equal("a${B}c", o.client_id)
    end)

    it("come from a file, relative to the config", function()
      local f = assert(io.open(dir .. "/sense.secret", "w"))
      f:write("file-secret-value\n")
      f:close()
      os.execute("chmod 600 " .. q(dir .. "/sense.secret"))
      local path = write [[return { profiles = { s = { preset = "smartsense", client_id = "id",
        client_secret = { file = "sense.secret" }, store = { kind = "memory" } } } }]]
      local cfg, _, warnings = load_quiet(path)
      local o = assert(config.options(assert(cfg), "s"))
      assert.equal("file-secret-value", o.client_secret)
      assert.same({}, warnings)
      assert.same({}, cfg.warnings)
    end)

    it("say when a secret file can be read by others", function()
      local f = assert(io.open(dir .. "/open.secret", "w"))
      f:write("open-secret-value")
      f:close()
      os.execute("chmod 644 " .. q(dir .. "/open.secret"))
      local path = write [[return { profiles = { s = { preset = "smartsense", client_id = "id",
        client_secret = { file = "open.secret" }, store = { kind = "memory" } } } }]]
      local cfg, _, warnings = load_quiet(path)
      assert(config.options(cfg, "s"))
      assert.equal(1, #warnings)
      assert.matches("open.secret (client_secret of profile s) can be read by group or others (mode 644)",
        warnings[1], 1, true)
      assert.not_matches("open%-secret%-value", warnings[1])
    end)

    it("read a file's mode with one lstat in the core, not a stat(1) process", function()
      local core = require "smartauth.core"
      assert.equal(tonumber("640", 8), core.file_mode(write("return {}", "lua", "640")))
      assert.equal(tonumber("600", 8), config.file_mode(write("return {}", "lua", "600")))
      local none, kind, msg = core.file_mode(dir .. "/no-such-file")
      assert.is_nil(none)
      assert.equal("storage", kind)
      assert.matches("no%-such%-file", msg)
      assert.is_nil(config.file_mode(dir .. "/no-such-file"))
    end)

    it("make a config readable by others a warning, as ssh does", function()
      local text = [[return { profiles = { s = { preset = "smartsense", client_id = "id",
        client_secret = "literal-secret-value" } } }]]
      local _, _, warnings = load_quiet(write(text, "lua", "644"))
      assert.equal(1, #warnings)
      assert.matches("holds secrets %(s.client_secret%) and can be read by group or others %(mode 644%)", warnings[1])
      assert.matches("chmod 600", warnings[1])
      assert.not_matches("literal%-secret%-value", warnings[1])
      -- private: no warning
      _, _, warnings = load_quiet(write(text, "lua", "600"))
      assert.same({}, warnings)
      -- only references to secrets: no warning
      _, _, warnings = load_quiet(write([[return { profiles = { s = { preset = "smartsense", client_id = "id",
        client_secret = "${S}", password = { file = "/nonexistent" } } } }]], "lua", "644"))
      assert.same({}, warnings)
      -- a store key counts too
      _, _, warnings = load_quiet(write([[return { profiles = { s = { issuer = "https://i.example",
        store = { kind = "redis", password = "redis-pass" } } } }]], "lua", "640"))
      assert.equal(1, #warnings)
      assert.matches("s.store.password", warnings[1], 1, true)
    end)

    it("never show up in config errors", function()
      local path = write [[return { profiles = { s = { preset = "smartconnect", region = "MARS", client_id = "id",
        client_secret = "hidden-secret-value", username = "me", password = "hidden-password-value",
        store = { kind = "memory" } } } }]]
      local cfg = assert(load_quiet(path))
      local p, err = config.provider(cfg, "s")
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.matches("profile 's'", err.description)
      assert.matches("unknown region 'MARS'", err.description)
      assert.not_matches("hidden", tostring(err))
    end)
  end)

  describe("building providers", function()
    it("builds an issuer profile without going to the network", function()
      local path = write [[return { profiles = { idp = { issuer = "https://idp.example.com", client_id = "cli",
        grant = "device", redirect_uri = "http://127.0.0.1:8765/cb", store = { kind = "memory" } } } }]]
      local p = assert(smartauth.from_config("idp", path))
      assert.equal("https://idp.example.com", p:endpoint("issuer"))
      assert.equal("device", p.options.grant)
      assert.is_nil(p:metadata())
      assert.equal("idp", p.profile)
      assert.truthy(p:store_key():match("^idp%."))
      assert.is_function(p.options.store.get)
    end)

    it("checks URLs once ${NAME} is expanded", function()
      local path = write [[return { profiles = { idp = { issuer = "${ISSUER}", client_id = "cli",
        store = { kind = "memory" } } } }]]
      local cfg = assert(load_quiet(path))
      local p, err = config.provider(cfg, "idp", env { ISSUER = "http://idp.example.com" })
      assert.is_nil(p)
      assert.matches("profile 'idp'", err.description)
      assert.matches("plain http is only allowed for loopback", err.description)
    end)

    it("lists the profiles when the one asked for is missing", function()
      local path = write [[return { profiles = { a = { issuer = "https://a.example" },
        b = { issuer = "https://b.example" } } }]]
      local p, err = smartauth.from_config("c", path)
      assert.is_nil(p)
      assert.equal(path .. ": no profile 'c' (profiles: a, b)", err.description)
    end)

    it("maps store kinds to the built-in stores", function()
      local path = write [[return { profiles = { m = { issuer = "https://a.example", store = { kind = "memory" } } } }]]
      local p = assert(smartauth.from_config("m", path))
      assert.equal("smartauth.store.memory", getmetatable(p.options.store).__name)
      if type(smartauth.store.file) == "function" then
        local fpath = write(([[return { profiles = { f = { issuer = "https://a.example",
          store = { kind = "file", dir = %q } } } }]]):format(dir .. "/tokens"))
        local pf = assert(smartauth.from_config("f", fpath))
        assert.truthy(pf.options.store)
        assert.not_equal("smartauth.store.memory", getmetatable(pf.options.store).__name)
      end
    end)
  end)

  describe("default path", function()
    it("is SMARTAUTH_CONFIG, else $XDG_CONFIG_HOME/smartauth/config.lua, else the .json twin", function()
      assert.equal("/x/y.lua", config.default_path(env { SMARTAUTH_CONFIG = "/x/y.lua", XDG_CONFIG_HOME = dir }))
      assert.equal(dir .. "/smartauth/config.lua", config.default_path(env { XDG_CONFIG_HOME = dir }))
      assert.equal("/home/u/.config/smartauth/config.lua", config.default_path(env { HOME = "/home/u" }))
      os.execute("mkdir -p " .. q(dir .. "/smartauth"))
      local f = assert(io.open(dir .. "/smartauth/config.json", "w"))
      f:write("{}")
      f:close()
      assert.equal(dir .. "/smartauth/config.json", config.default_path(env { XDG_CONFIG_HOME = dir }))
      f = assert(io.open(dir .. "/smartauth/config.lua", "w"))
      f:write("return {}")
      f:close()
      assert.equal(dir .. "/smartauth/config.lua", config.default_path(env { XDG_CONFIG_HOME = dir }))
    end)
  end)
end)
