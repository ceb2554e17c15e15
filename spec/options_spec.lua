-- Numbers in options (security issue 12, item 5): NaN passes `v < min` and
-- `v > max`, infinities and fractions reach C. Every ranged option refuses
-- non-finite values, and options meant as integers refuse fractions, as
-- config errors that name the option.
local compat = require "smartauth.compat"
local smartauth = require "smartauth"
local options = require "smartauth.options"
local retry = require "smartauth.retry"
local config = require "smartauth.config"
local proc = require "helpers.proc"

local NAN, INF = 0 / 0, math.huge
local NON_FINITE = { ["NaN"] = NAN, ["-NaN"] = -NAN, ["inf"] = INF, ["-inf"] = -INF }

local function assert_config(opt, v, err)
  assert.is_nil(v)
  assert.is_table(err, "no error for option '" .. opt .. "'")
  assert.equal("config", err.kind)
  -- the option by name: as a provider option ('leeway'), or where a config
  -- file's plain-data check found it (profiles.p.leeway)
  assert.is_truthy(err.description:find("'" .. opt .. "'", 1, true) or err.description:find("." .. opt, 1, true),
    err.description)
end

describe("number options", function()
  local PROVIDER = { timeout = false, connect_timeout = false, leeway = false, max_body = true }
  local REDIS = { port = true, db = true, timeout = false, connect_timeout = false }

  for opt, integer in pairs(PROVIDER) do
    for shown, v in pairs(NON_FINITE) do
      it("provider refuses " .. opt .. " = " .. shown, function()
        local p, err = smartauth.provider { token_endpoint = "https://idp.example/token", [opt] = v }
        assert_config(opt, p, err)
      end)
    end
    if integer then
      it("provider refuses a fractional " .. opt, function()
        local p, err = smartauth.provider { token_endpoint = "https://idp.example/token", [opt] = 1.5 }
        assert_config(opt, p, err)
        assert.matches("integer", err.description)
      end)
      it("provider takes an integral float " .. opt .. " (JSON numbers are floats) as an integer", function()
        local p = assert(smartauth.provider { token_endpoint = "https://idp.example/token", [opt] = 4096.0 })
        assert.equal("integer", compat.math_type(p.options[opt]))
        assert.equal(4096, p.options[opt])
      end)
    end
  end

  it("provider refuses a max_body beyond what C takes", function()
    local p, err = smartauth.provider { token_endpoint = "https://idp.example/token", max_body = 1e300 }
    assert_config("max_body", p, err)
  end)

  it("provider still takes ordinary values", function()
    assert(smartauth.provider { token_endpoint = "https://idp.example/token", timeout = 2.5,
      connect_timeout = 0.5, leeway = 0, max_body = 1 })
  end)

  for opt, integer in pairs(REDIS) do
    local bad = {}
    for k, v in pairs(NON_FINITE) do bad[k] = v end
    if integer then bad["1.5"] = 1.5 end
    for shown, v in pairs(bad) do
      it("redis store refuses " .. opt .. " = " .. shown .. " before connecting", function()
        local st, err = smartauth.store.redis { host = "127.0.0.1", port = 1, [opt] = v }
        assert_config(opt, st, err)
      end)
    end
  end

  describe("retry.policy", function()
    for _, opt in ipairs { "attempts", "base", "max_delay", "budget" } do
      for shown, v in pairs(NON_FINITE) do
        it("refuses " .. opt .. " = " .. shown, function()
          local ok, msg = pcall(retry.policy, { [opt] = v })
          assert.is_false(ok)
          assert.matches("'" .. opt .. "'", msg, 1, true)
          local p, err = smartauth.provider { token_endpoint = "https://idp.example/token", retry = { [opt] = v } }
          assert_config("retry", p, err)
        end)
      end
    end
    it("refuses a fractional attempts", function()
      local ok, msg = pcall(retry.policy, { attempts = 1.5 })
      assert.is_false(ok)
      assert.matches("attempts", msg)
    end)
    it("takes integral floats and fractions where they mean seconds", function()
      local p = retry.policy { attempts = 2.0, base = 0.25, max_delay = 1.5, budget = 10 }
      assert.equal(2, p.attempts)
    end)
  end)

  describe("options.check", function()
    it("refuses non-finite numbers even without a range", function()
      for shown, v in pairs(NON_FINITE) do
        local out, err = options.check("t", { n = v }, { n = "number" })
        assert.is_nil(out, shown)
        assert.equal("config", err.kind)
      end
      assert.same({ n = 1.5 }, options.check("t", { n = 1.5 }, { n = "number" }))
    end)
    it("refuses fractions where integer = true", function()
      local schema = { n = { type = "number", integer = true, min = 0 } }
      local _, err = options.check("t", { n = 0.5 }, schema)
      assert.matches("'n' must be an integer", err.description, 1, true)
      assert.equal(3, options.check("t", { n = 3.0 }, schema).n)
    end)
  end)

  describe("config files", function()
    local dir
    setup(function() dir = proc.tmpdir("smartauth-options.XXXXXX") end)
    teardown(function() proc.rmtree(dir) end)

    local function write(name, text)
      local path = dir .. "/" .. name
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
      os.execute("chmod 600 " .. proc.shell_quote(path))
      return path
    end

    it("refuses leeway = 0/0 in a Lua config (it would switch off exp and iat checks)", function()
      local path = write("nan.lua", [[return { profiles = { p = {
        token_endpoint = "https://idp.example/token", leeway = 0/0 } } }]])
      local cfg, err = config.load(path, { warn = function() end })
      assert_config("leeway", cfg, err)
    end)

    it("refuses NaN, Infinity and fractional max_body in a JSON config", function()
      for field, v in pairs { leeway = "NaN", timeout = "Infinity", connect_timeout = "-Infinity",
          max_body = "1.5" } do
        local path = write(field .. ".json", '{"profiles":{"p":{"token_endpoint":"https://idp.example/token","'
          .. field .. '":' .. v .. '}}}')
        local cfg, err = config.load(path, { warn = function() end })
        assert_config(field, cfg, err)
      end
    end)
  end)
end)
