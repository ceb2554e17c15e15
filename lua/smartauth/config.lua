--- Config files: named profiles, each the options of a preset or of a
-- generic provider, plus `grant` and `store`.
--
-- The file is `$XDG_CONFIG_HOME/smartauth/config.lua` (or `.json`), the path
-- in `SMARTAUTH_CONFIG`, or a path given by the caller. A Lua file runs in a
-- Lua state of its own (smartauth.core's config_load) with the string, table
-- and math functions and a few base ones (no os, io, require, load, pcall or
-- setmetatable), at most `MAX_MEMORY` bytes of memory and `TIMEOUT` seconds,
-- pattern matching included; it returns plain data (tables, strings, finite
-- numbers, booleans), for instance:
--
--     return { profiles = { sense = { preset = "smartsense", client_id = "abc",
--                                     client_secret = "${SMARTSENSE_SECRET}" } } }
--
-- Any string may refer to environment variables as `${NAME}`; a secret may
-- also come from a file: `client_secret = { file = "~/.secrets/sense" }`.
-- A file that holds a secret itself while others can read it gets a warning,
-- as ssh gives. Unknown keys and wrong types are errors that name the file,
-- the profile and the key.
--
-- `smartauth help config` prints every key a profile may have, generated
-- from the same tables the checks use.
-- @module smartauth.config
local cjson = require "cjson.safe"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local options = require "smartauth.options"
local presets = require "smartauth.presets"
local provider = require "smartauth.provider"
local store_mod = require "smartauth.store"

local M = {}

--- Options that hold secrets: their literal values make a readable file a
-- risk, and they are never shown by `list`.
M.SECRET_KEYS = { client_secret = true, password = true, api_password = true, client_assertion_key = true }

--- A profile: one entry of the config file's `profiles` table. It needs
-- `preset`, `issuer` or an endpoint (`token_endpoint`,
-- `authorization_endpoint`, `discovery_url`).
-- @table profile
-- @tfield[opt] string preset `"smartfile"`, `"smartconnect"`, `"smartsense"` or
--   `"smarttask"`; then the preset's own options (`domain`, `region`) too
-- @tfield[opt] table store `{ kind = "memory" }`, `{ kind = "file", dir =, key = }`
--   or `{ kind = "redis", host =, port =, username =, password =, db =,
--   prefix =, tls =, key =, timeout =, connect_timeout = }` (the options of
--   `smartauth.store.file.new` and `smartauth.store.redis.new`); default:
--   the file store in its default directory
-- @field ... any option of `smartauth.schema.options` but `on_http` and
--   `store`; strings may hold `${NAME}` (an environment variable), and a
--   string option or a secret (`client_assertion_key`, `store.key`,
--   `store.password` too) may be `{ file = "~/path" }`: the file's text, a
--   final newline dropped (a relative path is the config file's
--   directory's); a file others can read gets a warning

-- Each kind's options as its store module declares them (options.check
-- specs: a type name or { type = ... }); the store checks ranges itself.
-- A kind's module loads when a profile names it: a file-store profile
-- never maps hiredis.
local STORE_KIND_NAMES = { "file", "memory", "redis" } -- sorted, for messages
local STORE_KINDS = setmetatable({ memory = {} }, { __index = function(t, kind)
  if kind ~= "file" and kind ~= "redis" then return nil end
  local schema = require("smartauth.store." .. kind).SCHEMA
  rawset(t, kind, schema)
  return schema
end })
local STORE_SECRETS = { key = true, password = true }

M.MAX_SIZE = 1024 * 1024        -- bytes of config file
M.MAX_MEMORY = 16 * 1024 * 1024 -- bytes a Lua config may allocate while it runs
M.TIMEOUT = 1                   -- seconds a Lua config may run
local MAX_DEPTH = 16            -- nesting of a config's tables (as config_load checks)

local function fail(msg, fields)
  return nil, errors.new("config", msg, fields)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- ---------------------------------------------------------------- paths

--- The config file to use: `SMARTAUTH_CONFIG`, else
-- `$XDG_CONFIG_HOME/smartauth/config.lua`, else the `.json` twin when only
-- it exists.
function M.default_path(getenv)
  getenv = getenv or os.getenv
  local explicit = getenv("SMARTAUTH_CONFIG")
  if explicit and explicit ~= "" then return explicit end
  local base = getenv("XDG_CONFIG_HOME")
  if not base or base == "" or base:sub(1, 1) ~= "/" then
    local home = getenv("HOME") or "."
    base = home .. "/.config"
  end
  local lua_path = base .. "/smartauth/config.lua"
  local json_path = base .. "/smartauth/config.json"
  local f = io.open(lua_path, "r")
  if f then
    f:close()
    return lua_path
  end
  f = io.open(json_path, "r")
  if f then
    f:close()
    return json_path
  end
  return lua_path
end

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

local function expand_home(p)
  if p:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. p:sub(2) end
  return p
end

--- Permission bits of a file (e.g. 420 for 0644), or nil when unknown.
function M.file_mode(path)
  return (core.file_mode(path)) -- one lstat, not stat(1) run through a shell
end

-- --------------------------------------------------------------- reading

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

-- Run a Lua config in a state of its own: memory, time and what comes back
-- are bounded in C (csrc/lconfig.c says how).
local function load_lua(path, text)
  local res, kind, msg = core.config_load(text, "@" .. path, M.MAX_MEMORY, M.TIMEOUT)
  if res == nil and kind then return fail(path .. ": " .. tostring(msg)) end
  return res
end

-- The plain-data rule of config_load, for JSON: no null, no NaN or infinity.
local function check_plain(path, v, where, depth)
  local t = type(v)
  local function bad(what)
    return fail(path .. ": " .. what .. " at " .. (where ~= "" and where or "the top level") ..
      " (a config holds only tables, strings, finite numbers and booleans)")
  end
  if t == "number" then
    if v ~= v or v - v ~= 0 then return bad("a number that is not finite") end
  elseif t == "table" then
    if depth >= MAX_DEPTH then
      return fail(path .. ": tables nested deeper than " .. MAX_DEPTH .. " at " .. where)
    end
    for k, x in pairs(v) do
      local sub = type(k) == "string" and (where == "" and k or where .. "." .. k) or where .. "[" .. tostring(k) .. "]"
      local ok, err = check_plain(path, x, sub, depth + 1)
      if not ok then return nil, err end
    end
  elseif t ~= "string" and t ~= "boolean" then
    return bad(v == cjson.null and "a null" or "a " .. t)
  end
  return true
end

local function load_json(path, text)
  local t, err = cjson.decode(text)
  if t == nil then return fail(path .. ": not valid JSON: " .. tostring(err)) end
  local ok, perr = check_plain(path, t, "", 0)
  if not ok then return nil, perr end
  return t
end

-- --------------------------------------------------------------- checks

-- { file = "path" }: a value read from a file (a secret kept out of the config)
local function is_file_ref(v)
  if type(v) ~= "table" or type(v.file) ~= "string" then return false end
  local k = next(v)
  return next(v, k) == nil
end

-- Does a raw value hold a secret literally (not only ${NAME} references)?
local function literal_secret(v)
  if type(v) == "table" then return not is_file_ref(v) end
  if type(v) ~= "string" then return false end
  return (v:gsub("%${[%a_][%w_]*}", "")) ~= ""
end

-- The load-time schema: URLs are checked once ${...} is expanded (when the
-- provider is built), so here they only have to be strings.
local LOAD_SCHEMA = {}
for k, spec in pairs(provider.SCHEMA) do
  if spec == "url" then spec = "string" end
  LOAD_SCHEMA[k] = spec
end
LOAD_SCHEMA.store = nil
LOAD_SCHEMA.name = "string"

-- A preset's module loads when a profile names it.
local PRESET_NAMES = {}
for _, name in ipairs(presets.NAMES) do PRESET_NAMES[name] = true end
local PRESET_EXTRA = setmetatable({}, { __index = function(t, name)
  if not PRESET_NAMES[name] then return nil end
  local ok, preset = pcall(require, "smartauth.providers." .. name)
  local extra = ok and preset.extra_options or {}
  rawset(t, name, extra)
  return extra
end })

local function check_store(where, v)
  if type(v) ~= "table" then
    return fail(where .. ": option 'store' must be a table such as { kind = \"file\" } (got " .. type(v) .. ")",
      { option = "store" })
  end
  local schema = STORE_KINDS[v.kind] -- nil for none: __index answers nil
  if not schema then
    return fail(where .. ": option 'store' needs kind = " .. table.concat(STORE_KIND_NAMES, ", ") ..
      " (got " .. (v.kind == nil and "none" or "'" .. tostring(v.kind) .. "'") .. ")", { option = "store" })
  end
  for _, k in ipairs(sorted_keys(v)) do
    local val = v[k]
    if k ~= "kind" then
      local t = schema[k]
      if type(t) == "table" then t = t.type end
      if not t then
        return fail(where .. ": option 'store." .. tostring(k) .. "' is not known for kind '" .. v.kind .. "'",
          { option = "store." .. tostring(k) })
      end
      if not (STORE_SECRETS[k] and is_file_ref(val)) and type(val) ~= t then
        return fail(where .. ": option 'store." .. k .. "' must be a " .. t .. " (got " .. type(val) .. ")",
          { option = "store." .. k })
      end
    end
  end
  return true
end

-- Structure and types of one profile; values are not expanded yet.
local function check_profile(where, prof)
  if type(prof) ~= "table" then
    return fail(where .. " must be a table (got " .. type(prof) .. ")")
  end
  local preset = prof.preset
  if preset ~= nil and not PRESET_EXTRA[preset] then
    return fail(where .. ": option 'preset' must be one of " .. table.concat(presets.NAMES, ", ") ..
      " (got '" .. tostring(preset) .. "')", { option = "preset" })
  end
  local extra = preset and PRESET_EXTRA[preset] or {}
  local plain = {}
  for k, v in pairs(prof) do
    if type(k) ~= "string" then
      return fail(where .. ": keys must be strings (got " .. type(k) .. ")")
    end
    if k == "store" then
      local ok, err = check_store(where, v)
      if not ok then return nil, err end
    elseif k == "preset" then
      if type(v) ~= "string" then return fail(where .. ": option 'preset' must be a string", { option = k }) end
    elseif extra[k] then
      if type(v) ~= extra[k] and not is_file_ref(v) then
        return fail(where .. ": option '" .. k .. "' must be a " .. extra[k] .. " (got " .. type(v) .. ")",
          { option = k })
      end
    elseif is_file_ref(v) then
      local spec = LOAD_SCHEMA[k]
      if spec ~= "string" and not M.SECRET_KEYS[k] then
        return fail(where .. ": option '" .. k .. "' cannot come from a file", { option = k })
      end
    else
      plain[k] = v
    end
  end
  if not preset and not (plain.issuer or plain.token_endpoint or plain.discovery_url
      or plain.authorization_endpoint) then
    return fail(where .. " needs 'preset', 'issuer' or endpoints")
  end
  local _, err = options.check(where, plain, LOAD_SCHEMA, true)
  if err then return nil, err end
  return true
end

-- ---------------------------------------------------------------- load

--- Load and check a config file.
-- @param path file path (default: `default_path()`); `.json` files are JSON,
--   anything else Lua
-- @param opts { warn = function(message) | false } (default: print on stderr)
-- @return config { path=, profiles = {name = raw options}, warnings = {...} }
--   or nil, err (kind "config")
function M.load(path, opts)
  if path ~= nil and type(path) ~= "string" then
    error("bad argument #1 to 'config.load' (string expected, got " .. type(path) .. ")", 2)
  end
  opts = opts or {}
  path = path or M.default_path()
  local text, rerr = read_all(path)
  if not text then
    if tostring(rerr):find("No such file", 1, true) then
      return fail("no config file at " .. path .. " (create it, or name one with SMARTAUTH_CONFIG or --config)",
        { path = path })
    end
    return fail("cannot read config file " .. tostring(rerr), { path = path })
  end
  if #text > M.MAX_SIZE then
    return fail(path .. ": the config file is larger than " .. math.floor(M.MAX_SIZE / 1048576) .. " MiB",
      { path = path })
  end
  local data, err
  if path:match("%.json$") then
    data, err = load_json(path, text)
  else
    data, err = load_lua(path, text)
  end
  if data == nil and err then return nil, err end
  if type(data) ~= "table" then
    return fail(path .. ": the config must be a table with 'profiles' (got " .. type(data) .. ")")
  end
  for k in pairs(data) do
    if k ~= "profiles" then
      return fail(path .. ": key '" .. tostring(k) .. "' is not known (only 'profiles')")
    end
  end
  local profiles = data.profiles or {}
  if type(profiles) ~= "table" then return fail(path .. ": 'profiles' must be a table") end
  local cfg = { path = path, profiles = {}, warnings = {} }
  local literal = {}
  for _, name in ipairs(sorted_keys(profiles)) do
    local prof = profiles[name]
    if type(name) ~= "string" or not name:match("^[%w_][%w_.-]*$") then
      return fail(path .. ": profile name '" .. tostring(name) ..
        "' must be letters, digits, '_', '.' or '-'")
    end
    local where = path .. ": profile '" .. name .. "'"
    local ok, perr = check_profile(where, prof)
    if not ok then return nil, perr end
    cfg.profiles[name] = prof
    for k, v in pairs(prof) do
      if M.SECRET_KEYS[k] and literal_secret(v) then literal[#literal + 1] = name .. "." .. k end
      if k == "store" then
        for sk, sv in pairs(v) do
          if STORE_SECRETS[sk] and literal_secret(sv) then literal[#literal + 1] = name .. ".store." .. sk end
        end
      end
    end
  end
  local warn = opts.warn
  if warn == nil then
    warn = function(msg) io.stderr:write("smartauth: warning: ", msg, "\n") end
  end
  cfg.warn = warn or function() end
  if #literal > 0 then
    table.sort(literal)
    local mode = M.file_mode(path)
    if mode and mode % 64 ~= 0 then
      local msg = string.format("%s holds secrets (%s) and can be read by group or others (mode %03o): " ..
        "run chmod 600 %s, or move the secrets to the environment (${NAME}) or a private file",
        path, table.concat(literal, ", "), mode, path)
      cfg.warnings[#cfg.warnings + 1] = msg
      cfg.warn(msg)
    end
  end
  return cfg
end

--- Profile names of a loaded config, sorted.
function M.names(cfg)
  return sorted_keys(cfg.profiles)
end

-- ------------------------------------------------------------- expansion

-- Every variable a ${NAME} reference read, in this process: the login flow
-- keeps them (secrets, mostly) out of the browser it starts.
local expanded_names = {}

--- Names of the environment variables ${NAME} references have read so far, sorted.
function M.secret_env_names()
  return sorted_keys(expanded_names)
end

local function expand_env(where, key, s, getenv)
  local missing
  local out = s:gsub("%$(%$?){([%a_][%w_]*)}", function(escape, name)
    if escape == "$" then return "${" .. name .. "}" end
    expanded_names[name] = true
    local v = getenv(name)
    if v == nil then missing = missing or name return "" end
    return v
  end)
  if missing then
    return fail(where .. ": option '" .. key .. "' refers to ${" .. missing .. "}, which is not set",
      { option = key, variable = missing })
  end
  return out
end

local function read_secret_file(cfg, where, key, ref, getenv)
  local p, err = expand_env(where, key, ref.file, getenv)
  if not p then return nil, err end
  p = expand_home(p)
  if p:sub(1, 1) ~= "/" then p = dirname(cfg.path) .. "/" .. p end
  local text, rerr = read_all(p)
  if not text then
    return fail(where .. ": option '" .. key .. "': cannot read " .. p .. ": " .. tostring(rerr), { option = key })
  end
  local mode = M.file_mode(p)
  if mode and mode % 64 ~= 0 then
    local msg = string.format("%s (%s of profile %s) can be read by group or others (mode %03o): run chmod 600 %s",
      p, key, where:match("profile '(.-)'$") or "?", mode, p)
    cfg.warnings[#cfg.warnings + 1] = msg
    cfg.warn(msg)
  end
  return (text:gsub("\r?\n$", ""))
end

local function expand_value(cfg, where, key, v, getenv)
  if type(v) == "string" then return expand_env(where, key, v, getenv) end
  if is_file_ref(v) then return read_secret_file(cfg, where, key, v, getenv) end
  if type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do
      local e, err = expand_value(cfg, where, key .. "." .. tostring(k), x, getenv)
      if e == nil and err then return nil, err end
      out[k] = e
    end
    return out
  end
  return v
end

local function build_store(where, spec)
  local kind = spec.kind
  if kind == "memory" then return store_mod.memory() end
  local ctor = store_mod[kind]
  if type(ctor) ~= "function" then
    return fail(where .. ": store kind '" .. kind .. "' is not available in this smartauth", { option = "store" })
  end
  local args = {}
  for k, v in pairs(spec) do if k ~= "kind" then args[k] = v end end
  local ok, st, err = pcall(ctor, args)
  if not ok then return fail(where .. ": option 'store': " .. tostring(st), { option = "store" }) end
  if not st then
    if errors.is(err) then
      err.description = where .. ": store: " .. tostring(err.description)
      return nil, err
    end
    return fail(where .. ": cannot open the " .. kind .. " store")
  end
  return st
end

--- The default store of a profile without `store`: the persistent file
-- store when this build has one (tokens outlive the process, as the
-- command needs), else memory.
function M.default_store()
  if type(store_mod.file) == "function" then
    local ok, st = pcall(store_mod.file, {})
    if ok and st then return st end
  end
  return store_mod.memory()
end

--- The options of a profile with ${NAME} and file references resolved and
-- the store built: ready for a preset or `smartauth.provider`.
-- @return options, preset name (or nil) | nil, err
function M.options(cfg, name, getenv)
  getenv = getenv or os.getenv
  local prof = cfg.profiles[name]
  if not prof then
    local names = M.names(cfg)
    return fail(cfg.path .. ": no profile '" .. tostring(name) .. "' (profiles: " ..
      (#names > 0 and table.concat(names, ", ") or "none") .. ")", { profile = name })
  end
  local where = cfg.path .. ": profile '" .. name .. "'"
  local o = {}
  for k, v in pairs(prof) do
    if k ~= "preset" and k ~= "store" then
      local e, err = expand_value(cfg, where, k, v, getenv)
      if e == nil and err then return nil, err end
      o[k] = e
    end
  end
  if prof.store then
    local spec, err = expand_value(cfg, where, "store", prof.store, getenv)
    if not spec then return nil, err end
    local st, serr = build_store(where, spec)
    if not st then return nil, serr end
    o.store = st
  else
    o.store = M.default_store()
  end
  o.name = o.name or name
  return o, prof.preset
end

--- Build the provider of a profile. Nothing goes over the network: an
-- issuer's discovery happens on first use.
-- @return provider or nil, err
function M.provider(cfg, name, getenv)
  local o, preset = M.options(cfg, name, getenv)
  if not o then return nil, preset end
  local where = cfg.path .. ": profile '" .. name .. "'"
  local p, err
  if preset then
    p, err = presets.build(preset, o)
  else
    p, err = provider.new(o, where)
  end
  if not p then
    if errors.is(err) and err.description and not err.description:find(cfg.path, 1, true) then
      err.description = where .. ": " .. err.description
    end
    return nil, err
  end
  p.profile = name
  return p
end

--- Load a config file and build one profile's provider.
-- @param name profile name
-- @param path config file (default: default_path())
-- @param opts as for load
function M.from_config(name, path, opts)
  if type(name) ~= "string" then
    error("bad argument #1 to 'from_config' (profile name expected, got " .. type(name) .. ")", 2)
  end
  local cfg, err = M.load(path, opts)
  if not cfg then return nil, err end
  return M.provider(cfg, name)
end

return M
