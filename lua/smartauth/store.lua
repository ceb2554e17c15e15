--- Token stores. A store is any object with get, set, delete and lock:
--
--   store:get(key)             -> entry | nil (absent) | nil, err
--   store:set(key, entry, ttl) -> true | nil, err   (ttl: seconds, or nil for none)
--   store:delete(key)          -> true | nil, err
--   store:lock(key, ttl)       -> unlock function | nil, err  (waits up to ttl seconds)
--
-- An entry is a plain table (what `token:to_entry()` makes: refresh token,
-- scope, expiry, id_token and a format version `v`). Built in:
--
--   smartauth.store.memory()                   -- this process only
--   smartauth.store.file{ dir=, key= }         -- the default persistent store
--   smartauth.store.redis{ host=, port=, password=, db=, prefix= }   -- shared by hosts
--
-- Any table with those four methods works as a store too. `lock` is what
-- makes refreshes single-flight: a provider takes it around "read the entry,
-- refresh if stale, write the new entry", so it must exclude every other
-- caller that shares the entries, for up to `ttl` seconds. For example, a
-- store on a host application's key-value service:
--
--     local kv_store = {}
--     function kv_store:get(key)
--       local s, err = host.kv_get("tokens/" .. key)
--       if err then return nil, smartauth.errors.new("storage", err) end
--       return s and cjson.decode(s)             -- nil when absent
--     end
--     function kv_store:set(key, entry, ttl)
--       host.kv_put("tokens/" .. key, cjson.encode(entry), ttl)
--       return true
--     end
--     function kv_store:delete(key) host.kv_del("tokens/" .. key) return true end
--     function kv_store:lock(key, ttl)
--       local handle = host.kv_lock("tokens/" .. key, ttl)   -- waits up to ttl
--       if not handle then return nil, smartauth.errors.new("storage", "lock timed out") end
--       return function() host.kv_unlock(handle) end
--     end
--     local p = smartauth.provider{ ..., store = kv_store }
--
-- Failures are returned as `nil, err` with err.kind == "storage"; a lock
-- that could not be had in time or a lost Redis connection is retryable.
-- @module smartauth.store
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local options = require "smartauth.options"
local cjson = require("cjson.safe").new() -- our own settings, nobody else's

local M = {}

--- Version of the envelope the file and Redis stores write around an entry.
M.FORMAT = 1

M.KEY_ENV = "SMARTAUTH_STORE_KEY"
M.MIN_KEY = 16 -- bytes of an encryption key
-- Longest ttl a persistent store keeps an entry for: a server's huge (or
-- infinite) expires_in is clamped here, so it can neither overflow Redis's
-- PX nor keep a token for ever. A clamped entry expires early: the provider
-- then gets a new token, as it would after a restart.
M.MAX_TTL = 365 * 86400

local now = core.monotonic

local function storage_err(msg, fields)
  return errors.new("storage", msg, fields)
end

-- nil, kind, msg, code from the core as a storage error. Lock timeouts and
-- lost connections may pass; permissions, corruption and wrong keys will not.
local function core_err(kind, msg, code)
  return errors.from_core(kind, msg or "store failure", code, { as = "storage" })
end

local function check_key(key, fn)
  if type(key) ~= "string" or key == "" then
    error("bad argument #1 to '" .. fn .. "' (non-empty string key expected, got " .. type(key) .. ")", 3)
  end
end

-- The ttl to store with: nil, or seconds clamped to MAX_TTL; nil, err for
-- NaN (it can only come from outside data, which never makes us raise).
local function check_ttl(ttl, fn)
  if ttl == nil then return nil end
  if type(ttl) ~= "number" or ttl <= 0 then
    error("bad argument #3 to '" .. fn .. "' (positive number of seconds or nil expected)", 3)
  end
  if ttl ~= ttl then return nil, storage_err(fn .. ": the ttl is not a number (NaN): entry not stored") end
  return math.min(ttl, M.MAX_TTL)
end

---------------------------------------------------------------- envelope

-- cjson gives every number back as a float and JSON null as a sentinel:
-- integral numbers become integers again, nulls go.
local function normalize(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if x == cjson.null then v[k] = nil else v[k] = normalize(x) end
    end
  end
  return v
end

-- The bytes stored for an entry: the envelope names its key and format, so
-- a file copied under another name or from a future version is refused.
local function encode(key, entry, ttl)
  if type(entry) ~= "table" then error("bad argument #2 to 'set' (table expected, got " .. type(entry) .. ")", 3) end
  local s, err = cjson.encode({
    smartauth_store = M.FORMAT, key = key, entry = entry,
    expires_at = ttl and clock.now() + ttl or nil,
  })
  if not s then return nil, storage_err("entry '" .. key .. "' cannot be stored as JSON: " .. tostring(err)) end
  return s
end

-- The entry in stored bytes; nil when it has expired; nil, err when the
-- bytes are not an envelope of ours for this key.
local function decode(key, s, where)
  local env = cjson.decode(s)
  local function corrupt(why)
    return nil, storage_err(where .. " entry '" .. key .. "' is corrupt (" .. why .. ")")
  end
  if type(env) ~= "table" then return corrupt("not a JSON object") end
  if env.smartauth_store ~= M.FORMAT then
    if type(env.smartauth_store) == "number" then
      local v = env.smartauth_store
      return nil, storage_err(where .. " entry '" .. key .. "' has format " .. tostring(math.tointeger(v) or v)
        .. "; this smartauth reads format " .. M.FORMAT)
    end
    return corrupt("no format version")
  end
  if env.key ~= key then return corrupt("it belongs to another key") end
  if type(env.entry) ~= "table" then return corrupt("no entry") end
  local exp = env.expires_at
  if exp ~= nil and exp ~= cjson.null then
    if type(exp) ~= "number" then return corrupt("bad expiry") end
    if clock.now() >= exp then return nil end
  end
  return normalize(env.entry)
end

-- A backend's answer to get (bytes; nil for none; nil, kind, msg for a
-- failure) as an entry, nil, or nil, err.
local function got(key, where, s, kind, msg)
  if s == nil then
    if kind then return nil, core_err(kind, msg) end
    return nil
  end
  local entry, err = decode(key, s, where)
  if entry == nil then return nil, err end
  return entry
end

-- A backend's answer to set or delete (true, or nil, kind, msg).
local function stored(ok, kind, msg)
  if not ok then return nil, core_err(kind, msg) end
  return true
end

------------------------------------------------------------------- locks

-- Wait a little without stopping the rest of the program: inside an engine
-- task this yields; a blocking caller drives the engine meanwhile, so a task
-- that holds the lock can finish.
local function pause(seconds)
  if engine.current() then engine.sleep(seconds) else engine.step(seconds) end
end

-- A lock has two parts. In this process, one holder (a coroutine) per key
-- and store, which may take it again (nested calls). Across processes, what
-- `try(key, ttl)` gives: a release function, false when someone else holds
-- it, or nil, err. A holder that kept it past ttl (a cancelled task that
-- never unlocked) is taken over, as Redis would expire it.
local function take_lock(self, key, ttl, try)
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl > 86400 then
    error("bad argument #2 to 'lock' (seconds 0..86400 expected)", 3)
  end
  local held = self._held
  local me = coroutine.running()
  local h = held[key]
  local function unlock_fn(hold)
    local done = false
    return function()
      if done then return true end
      done = true
      hold.n = hold.n - 1
      if hold.n > 0 or held[key] ~= hold then return true end
      held[key] = nil
      return hold.release()
    end
  end
  if h and h.owner == me then
    h.n = h.n + 1
    return unlock_fn(h)
  end
  local deadline = now() + ttl
  local wait = 0.002
  while true do
    h = held[key]
    if h and now() > h.expires then
      held[key] = nil
      h.release()
      h = nil
    end
    if not h then
      local release, err = try(key, ttl)
      if release then
        local hold = { owner = me, n = 1, release = release, expires = now() + ttl }
        held[key] = hold
        return unlock_fn(hold)
      elseif release == nil then
        return nil, err
      end
    end
    if now() >= deadline then
      return nil, storage_err(("timed out after %g s waiting for the lock on '%s'"):format(ttl, key),
        { retryable = true })
    end
    pause(math.min(wait, math.max(0, deadline - now())))
    wait = math.min(wait * 2, 0.025)
  end
end

------------------------------------------------------------------ memory

local Memory = { __name = "smartauth.store.memory" }
Memory.__index = Memory

-- The entries hold tokens: kept off the store object, so that dumping a
-- provider (and its store) shows none.
local mem = setmetatable({}, { __mode = "k" })

--- In-process store; entries expire after their ttl.
function M.memory()
  local self = setmetatable({ _held = {} }, Memory)
  mem[self] = { entries = {}, expiry = {} }
  return self
end

function Memory:get(key)
  local m = mem[self]
  local exp = m.expiry[key]
  if exp and clock.now() >= exp then
    m.entries[key], m.expiry[key] = nil, nil
  end
  return m.entries[key]
end

function Memory:set(key, entry, ttl)
  local m = mem[self]
  m.entries[key] = entry
  m.expiry[key] = ttl and clock.now() + ttl or nil
  return true
end

function Memory:delete(key)
  local m = mem[self]
  m.entries[key], m.expiry[key] = nil, nil
  return true
end

local function no_release() return true end

-- Only this process shares a memory store: the in-process part is the lock.
function Memory:lock(key, ttl)
  return take_lock(self, key, ttl or 30, function() return no_release end)
end

-------------------------------------------------------------------- file

local File = { __name = "smartauth.store.file" }
File.__index = File

--- Where the file store keeps tokens by default:
-- $XDG_STATE_HOME/smartauth, else ~/.local/state/smartauth.
-- @return path or nil, err (config) when neither is set
function M.default_dir()
  local xdg = os.getenv("XDG_STATE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return (xdg:gsub("/+$", "")) .. "/smartauth" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return (home:gsub("/+$", "")) .. "/.local/state/smartauth" end
  return nil, errors.new("config", "smartauth.store.file: no 'dir' given and neither XDG_STATE_HOME nor HOME is set",
    { option = "dir" })
end

-- An encryption key from the option, else the environment; false turns the
-- environment off.
local function resolve_key(where, key)
  if key == nil then
    key = os.getenv(M.KEY_ENV)
    if key == "" then key = nil end
  elseif key == false then
    key = nil
  elseif type(key) ~= "string" then
    return nil, errors.new("config", where .. ": option 'key' must be a string or false (got " .. type(key) .. ")",
      { option = "key" })
  end
  if key and #key < M.MIN_KEY then
    return nil, errors.new("config", where .. ": the encryption key must be at least " .. M.MIN_KEY ..
      " bytes (a random value, e.g. `openssl rand -base64 32`)", { option = "key" })
  end
  return key or false
end

--- The file store: one private directory (0700), one file per entry (0600),
-- every write atomic (temporary file, fsync, rename, fsync of the
-- directory), a lock file per entry for refresh coordination. A directory or
-- file open to others, or owned by another user, is refused.
-- @param opts { dir = path (default `default_dir()`), key = secret string
--   (default SMARTAUTH_STORE_KEY; false: none) encrypting each entry with
--   AES-256-GCM, the entry's key as associated data }
-- @return store or nil, err (config, storage)
function M.file(opts)
  local where = "smartauth.store.file"
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'store.file' (table expected, got " .. type(opts) .. ")", 2)
  end
  local o, err = options.check(where, opts, { dir = "string", key = "any" })
  if not o then return nil, err end
  local dir = o.dir
  if dir == nil then
    dir, err = M.default_dir()
    if not dir then return nil, err end
  elseif dir == "" then
    return nil, errors.new("config", where .. ": option 'dir' is empty", { option = "dir" })
  end
  local key
  key, err = resolve_key(where, o.key)
  if key == nil then return nil, err end
  local fs, kind, msg = core.fstore_open(dir, key or nil)
  if not fs then return nil, core_err(kind, msg) end
  return setmetatable({ dir = dir, encrypted = key ~= false, _fs = fs, _held = {} }, File)
end

function File:get(key)
  check_key(key, "get")
  return got(key, "stored", self._fs:get(key))
end

function File:set(key, entry, ttl)
  check_key(key, "set")
  local terr
  ttl, terr = check_ttl(ttl, "set")
  if terr then return nil, terr end
  local s, err = encode(key, entry, ttl)
  if not s then return nil, err end
  return stored(self._fs:set(key, s))
end

function File:delete(key)
  check_key(key, "delete")
  return stored(self._fs:delete(key))
end

--- Exclusive lock on one key across processes (flock on `<key>.lock`); it
-- is released by the returned function or when the process dies.
function File:lock(key, ttl)
  check_key(key, "lock")
  local fs = self._fs
  return take_lock(self, key, ttl or 30, function(k)
    local lk, kind, msg = fs:lock(k, 0)
    if lk then
      return function() lk:unlock() return true end
    end
    if kind == "timeout" then return false end
    return nil, core_err(kind, msg)
  end)
end

--- Close the directory (also on `<close>`). Further calls raise.
function File:close()
  self._fs:close()
end
File.__close = File.close

function File:__tostring()
  return "smartauth.store.file (" .. self.dir .. (self.encrypted and ", encrypted)" or ")")
end

------------------------------------------------------------------- redis

local Redis = { __name = "smartauth.store.redis" }
Redis.__index = Redis

local REDIS_SCHEMA = {
  host = "string", port = { type = "number", min = 1, max = 65535 },
  username = "string", password = "string",
  db = { type = "number", min = 0, max = 1048576 },
  prefix = "string", tls = "boolean", key = "string",
  timeout = { type = "number", min = 0.001, max = 86400 },
  connect_timeout = { type = "number", min = 0.001, max = 86400 },
}

--- The Redis store, for fleets: entries expire with their ttl (PX); the
-- refresh lock is SET NX PX with a random owner value, released only by its
-- owner (a server-side script). A lost connection is an error for the call
-- in flight and the connection is remade on the next call.
-- @param opts { host = "127.0.0.1", port = 6379, username=, password=, db = 0,
--   prefix = "smartauth:", timeout = 5 (seconds per command), connect_timeout = 2,
--   key = optional secret: encrypt values as the file store does }
-- @return store or nil, err (config, storage)
function M.redis(opts)
  local where = "smartauth.store.redis"
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'store.redis' (table expected, got " .. type(opts) .. ")", 2)
  end
  local o, err = options.check(where, opts, REDIS_SCHEMA)
  if not o then return nil, err end
  for _, k in ipairs { "port", "db" } do
    if o[k] ~= nil and math.type(o[k]) ~= "integer" and o[k] ~= math.floor(o[k]) then
      return nil, errors.new("config", where .. ": option '" .. k .. "' must be an integer", { option = k })
    end
    o[k] = o[k] and math.tointeger(o[k])
  end
  if o.tls then
    -- Debian 12's hiredis is 0.14, which has no TLS; a tunnel (stunnel,
    -- spiped) or Redis on loopback does the job meanwhile.
    return nil, errors.new("config", where .. ": option 'tls' needs hiredis >= 1.0 with TLS; this build's " ..
      "hiredis has none (use a TLS tunnel to the server)", { option = "tls" })
  end
  if o.key and #o.key < M.MIN_KEY then
    return nil, errors.new("config", where .. ": the encryption key must be at least " .. M.MIN_KEY .. " bytes",
      { option = "key" })
  end
  -- its own C module: only a program with a Redis store maps hiredis
  local r, kind, msg = require("smartauth.core_redis").redis_open {
    host = o.host, port = o.port, username = o.username, password = o.password, db = o.db,
    timeout = o.timeout, connect_timeout = o.connect_timeout, key = o.key,
  }
  if not r then return nil, core_err(kind, msg) end
  return setmetatable({
    host = o.host or "127.0.0.1", port = o.port or 6379, db = o.db or 0,
    prefix = o.prefix or "smartauth:", encrypted = o.key ~= nil, _r = r, _held = {},
  }, Redis)
end

-- Entries and locks live in separate namespaces under the prefix, so no
-- entry key can name a lock.
function Redis:_entry_key(key) return self.prefix .. "t:" .. key end
function Redis:_lock_key(key) return self.prefix .. "l:" .. key end

function Redis:get(key)
  check_key(key, "get")
  return got(key, "redis", self._r:get(self:_entry_key(key)))
end

function Redis:set(key, entry, ttl)
  check_key(key, "set")
  local terr
  ttl, terr = check_ttl(ttl, "set")
  if terr then return nil, terr end
  local s, err = encode(key, entry, ttl)
  if not s then return nil, err end
  local px = ttl and math.max(1, math.ceil(ttl * 1000)) or nil
  return stored(self._r:set(self:_entry_key(key), s, px))
end

function Redis:delete(key)
  check_key(key, "delete")
  return stored(self._r:delete(self:_entry_key(key)))
end

--- Lock one key across every client of the server for up to ttl seconds
-- (it expires then, should the holder die). The unlock function returns
-- true, or nil, err when the lock had expired and was no longer ours.
function Redis:lock(key, ttl)
  check_key(key, "lock")
  local r, lkey = self._r, self:_lock_key(key)
  return take_lock(self, key, ttl or 30, function(_, t)
    local owner, kind, msg = r:lock(lkey, math.max(1, math.ceil(t * 1000)), 0)
    if owner then
      return function()
        local released, k2, m2 = r:unlock(lkey, owner)
        if released then return true end
        if released == false then
          return nil, storage_err("the lock on '" .. key .. "' had expired before it was released")
        end
        return nil, core_err(k2, m2)
      end
    end
    if kind == "timeout" then return false end
    return nil, core_err(kind, msg)
  end)
end

--- Close the connection (also on `<close>`). Further calls raise.
function Redis:close()
  self._r:close()
end
Redis.__close = Redis.close

function Redis:__tostring()
  return ("smartauth.store.redis (%s:%d db %d, prefix '%s')"):format(self.host, self.port, self.db, self.prefix)
end

----------------------------------------------------------------- checker

--- Check that v can serve as a store; returns v or nil, message.
function M.check(v)
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil, "store must be an object" end
  for _, m in ipairs { "get", "set", "delete", "lock" } do
    if type(v[m]) ~= "function" then return nil, "store has no '" .. m .. "' method" end
  end
  return v
end

return M
