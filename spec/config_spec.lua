-- Config files: profiles in Lua (an empty sandbox) or JSON, ${NAME} and file
-- secrets, the permission warning, and errors that name file, profile and key.
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

    it("runs Lua files in an empty sandbox: no os, no io, no require", function()
      for _, name in ipairs { "os", "io", "require", "load", "dofile", "debug", "package" } do
        local path = write("local x = " .. name .. ".x return { profiles = {} }")
        local cfg, err = load_quiet(path)
        assert.is_nil(cfg)
        assert.equal("config", err.kind)
        assert.matches("attempt to index a nil value", err.description)
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
