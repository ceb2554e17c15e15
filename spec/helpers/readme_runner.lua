--- Runs one Lua block of README.md against the fake services (spec/helpers/services.js),
-- for spec/readme_spec.lua, in a child process whose HOME and XDG directories are
-- temporary (a snippet may open the default file store).
--
--   lua5.4 spec/helpers/readme_runner.lua BLOCK_FILE FAKE_URL
--
-- How a snippet meets the fakes:
-- * the documented hosts (HOSTS below) are mapped to the fake's loopback URL: in the
--   snippet's text (https://HOST/... becomes FAKE_URL/PREFIX/...), and in the endpoints a
--   preset builds by itself (domain, region, defaults): `require "smartauth"` in the
--   snippet returns the library with each preset constructor wrapped to add endpoint
--   overrides for the mapped hosts;
-- * every network request is checked: one to any other host than 127.0.0.1 stops the
--   snippet with an error naming the host (add it to HOSTS);
-- * the user: `io.read` returns what a person would paste after opening the last
--   authorization URL the snippet made (the code the page shows, or the address the
--   browser was sent to);
-- * the scaffolding names a fragment may use without defining them: `smartauth` (the
--   library, as the first block's `local smartauth = require "smartauth"`), `callback_url` (the
--   address the browser comes back to after the last authorization URL), `p` (a provider
--   of the generic OpenID provider, idp.example.com, with client credentials),
--   `game_running` (true while spawned tasks are alive, for at most 10 s), `ui.popup`
--   (a game's own dialog: records what it was asked to show);
-- * a block that returns a table with `profiles` is a config file: every profile must
--   build a provider (no network).
-- The block fails (exit 1, the reason on stderr) when it raises, when a provider method
-- it calls directly returns nil, err or an HTTP status >= 400 (unless a comment on that
-- line says "may fail": an example of error handling), or when a spawned task fails or
-- does not finish.
local compat = require "smartauth.compat"
local oidc = require "helpers.oidc"
local smartauth = require "smartauth"
local config = require "smartauth.config"
local engine = require "smartauth.engine"
local provider = require "smartauth.provider"

local block_file, fake_url = arg[1], arg[2]
assert(block_file and fake_url, "usage: readme_runner.lua BLOCK_FILE FAKE_URL")

-- The documented hosts and the fake service each one is.
local HOSTS = {
  ["api.smartsense.co"] = "/ss",
  ["acme.smartfile.com"] = "/sf",
  ["auth.smarttask.io"] = "/st",
  ["idp.example.com"] = "/idp",
  ["api.example.com"] = "/ex",
}
-- Any customer's SmartFile domain and any SmartConnect region host.
local HOST_SUFFIXES = { ["%.smartfile%.com$"] = "/sf", ["%.smartconnect%.com$"] = "/sc" }

local function prefix_of(host)
  if HOSTS[host] then return HOSTS[host] end
  for pattern, prefix in pairs(HOST_SUFFIXES) do
    if host:find(pattern) then return prefix end
  end
  return nil
end

local function map_url(u)
  local host, rest = u:match("^https://([%w.-]+)(.*)$")
  local prefix = host and prefix_of(host)
  if prefix then return fake_url .. prefix .. rest end
  return u
end

local function fail(msg)
  io.stderr:write(msg, "\n")
  os.exit(1)
end

----------------------------------------------------------------- the network guard

local real_request = engine.request
engine.request = function(req)
  local host = type(req) == "table" and type(req.url) == "string" and req.url:match("^%a+://([^/:?#]+)")
  if host ~= "127.0.0.1" then
    error("the snippet tried to reach " .. tostring(host) .. ": map it to a fake in spec/helpers/readme_runner.lua", 2)
  end
  return real_request(req)
end

------------------------------------------------------------------------- the user

local last_authorization_url
local P = provider.Provider
local real_authorization_url = P.authorization_url
P.authorization_url = function(self, ...)
  local u, s = real_authorization_url(self, ...)
  if u then last_authorization_url = u end
  return u, s
end

-- Opens the last authorization URL: the code the page shows, or where the browser is sent.
local function user_paste()
  if not last_authorization_url then error("the snippet asks the user before making an authorization URL", 3) end
  local status, headers, body = oidc.request { url = last_authorization_url }
  if status == 302 then return headers.location end
  return body:match('<code id="code">([^<]+)</code>')
    or error("the authorization page answered " .. status .. ": " .. body, 3)
end

-------------------------------------------- failures of the calls the snippet makes

local failures = {}
local CHUNK_NAME = "=README block"
local may_fail = {} -- lines of the block marked "may fail"
for name, fn in pairs(P) do
  if type(fn) == "function" and not name:find("^_") then
    P[name] = function(...)
      -- only calls written in the block count, not the library's calls to itself
      local info = debug.getinfo(2, "Sl")
      local direct = info and info.source == CHUNK_NAME and not may_fail[info.currentline]
      local r = compat.pack(fn(...))
      if direct then
        if r[1] == nil and r.n >= 2 then
          failures[#failures + 1] = ("line %d: p:%s() returned nil, %s"):format(info.currentline, name, tostring(r[2]))
        elseif name == "request" and type(r[1]) == "table" and (r[1].status or 0) >= 400 then
          failures[#failures + 1] = ("line %d: p:request() got HTTP %d: %s"):format(info.currentline, r[1].status,
            tostring(r[1].body))
        end
      end
      return compat.unpack(r, 1, r.n)
    end
  end
end

-------------------------------------------------- the library the snippet requires

local wrapped = setmetatable({}, { __index = smartauth })

local FIELDS = { "issuer", "discovery_url", "api_base" }
for _, f in ipairs(provider.ENDPOINTS) do FIELDS[#FIELDS + 1] = f end

local function option(p, k)
  local v = type(rawget(p, "options")) == "table" and p.options[k] or nil
  if v == nil then v = rawget(p, k) end
  return v
end

-- A preset built as documented, then again with its mapped endpoints as overrides.
for _, name in ipairs(require("smartauth.presets").NAMES) do
  wrapped[name] = function(opts)
    local p, err = smartauth[name](opts)
    if not p or type(opts) ~= "table" then return p, err end
    local o, changed = {}, false
    for k, v in pairs(opts) do o[k] = v end
    for _, k in ipairs(FIELDS) do
      local v = option(p, k)
      if type(v) == "string" and opts[k] == nil and map_url(v) ~= v then
        o[k], changed = map_url(v), true
      end
    end
    if not changed then return p end
    return smartauth[name](o)
  end
end

local spawned, finished, task_errors = 0, 0, {}
wrapped.spawn = function(...)
  local args = compat.pack(...)
  local opts = type(args[1]) == "table" and args[1] or nil -- spawn({ on_error = h }, fn, ...)
  local i = opts and 2 or 1
  local fn = args[i]
  if type(fn) ~= "function" then return smartauth.spawn(...) end
  spawned = spawned + 1
  -- the failure is taken through on_error, not a pcall inside the task,
  -- which 5.1 cannot yield across; the block's own handler still runs
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local own = o.on_error
  o.on_error = function(err, task)
    task_errors[#task_errors + 1] = tostring(err)
    if own then return own(err, task) end
  end
  local rest = { o, function(...)
    local r = compat.pack(fn(...))
    finished = finished + 1
    return compat.unpack(r, 1, r.n)
  end }
  for j = i + 1, args.n do rest[j - i + 2] = args[j] end
  return smartauth.spawn(compat.unpack(rest, 1, args.n - i + 2))
end

--------------------------------------------------------------------- scaffolding

local popups = {}
local scaffold_p
local started_at
local SCAFFOLD = {
  smartauth = function() return wrapped end,
  callback_url = function() return user_paste() end,
  p = function()
    if not scaffold_p then
      scaffold_p = assert(wrapped.provider { issuer = fake_url .. "/idp", client_id = "cli",
        client_secret = "readme-client-secret", scope = "openid email", grant = "client_credentials" })
    end
    return scaffold_p
  end,
  game_running = function()
    started_at = started_at or os.time()
    return engine.pending() > 0 and os.time() - started_at < 10
  end,
  ui = function()
    return { popup = function(uri, code)
      assert(type(uri) == "string" and type(code) == "string", "ui.popup(uri, code) expected")
      popups[#popups + 1] = { uri, code }
    end }
  end,
}

local env = setmetatable({}, { __index = function(_, k)
  if SCAFFOLD[k] then return SCAFFOLD[k]() end
  return _G[k]
end })
env.require = function(name)
  if name == "smartauth" then return wrapped end
  return require(name)
end
env.io = setmetatable({ read = function() return user_paste() end }, { __index = io })

------------------------------------------------------------------------- the run

local f = assert(io.open(block_file, "rb"))
local src = f:read("*a")
f:close()
src = src:gsub("https://([%w.-]+)", function(h)
  local prefix = prefix_of(h)
  return prefix and (fake_url .. prefix) or nil
end)
local n = 0
for line in (src .. "\n"):gmatch("([^\n]*)\n") do
  n = n + 1
  if line:find("%-%-.*may fail") then may_fail[n] = true end
end

local chunk, perr = compat.load(src, CHUNK_NAME, "t", env)
if not chunk then fail("not valid Lua: " .. perr) end
local r = compat.pack(xpcall(chunk, debug.traceback))
if not r[1] then fail("raised: " .. tostring(r[2])) end

if type(r[2]) == "table" and type(r[2].profiles) == "table" then
  -- a config file: write it as the user would, and build every profile
  local path = os.getenv("HOME") .. "/readme-config.lua"
  local out = assert(io.open(path, "w"))
  out:write(src)
  out:close()
  os.execute("chmod 600 '" .. path .. "'")
  local cfg, err = config.load(path)
  if not cfg then fail("config file: " .. tostring(err)) end
  for _, name in ipairs(config.names(cfg)) do
    local p, perr2 = config.provider(cfg, name)
    if not p then fail("config profile " .. name .. ": " .. tostring(perr2)) end
  end
end

engine.run()
if #task_errors > 0 then fail("a spawned task failed: " .. table.concat(task_errors, "\n")) end
if finished ~= spawned then fail(("%d of %d spawned tasks did not finish"):format(spawned - finished, spawned)) end
if #failures > 0 then fail(table.concat(failures, "\n")) end
io.stdout:write("readme_runner: ok, ", #popups, " popup(s)\n")
