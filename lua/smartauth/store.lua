--- Token stores. A store is any object with get, set, delete and lock:
--
--   store:get(key)             -> entry | nil (absent) | nil, err
--   store:set(key, entry, ttl) -> true | nil, err   (ttl: seconds, or nil for none)
--   store:delete(key)          -> true | nil, err
--   store:lock(key, ttl)       -> unlock function | nil, err  (waits up to ttl seconds)
--   store:lock(key, ttl, stop) -> ... | nil, nil, value  (optional: stop() while waiting)
--
-- An entry is a plain table (what `token:to_entry()` makes: refresh token,
-- scope, expiry, id_token and a format version `v`). Built in:
--
--   smartauth.store.memory()                   -- this process only
--   smartauth.store.file{ dir=, key= }         -- the default persistent store
--   smartauth.store.redis{ host=, port=, password=, db=, prefix= }   -- shared by hosts
--   smartauth.store.shdict{ dict=, prefix= }   -- inside nginx: shared by its workers
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
--
-- The built-in stores, one file each under store/: memory.lua, file.lua and
-- redis.lua (facades over the C file and Redis stores), envelope.lua (the
-- versioned JSON the byte stores keep around an entry) and lock.lua (the
-- in-process lock and the one place that waits for a lock).
-- @module smartauth.store
local errors = require "smartauth.errors"

local M = {}

M.KEY_ENV = "SMARTAUTH_STORE_KEY"
M.MIN_KEY = 16 -- bytes of an encryption key
-- Longest ttl a persistent store keeps an entry for: a server's huge (or
-- infinite) expires_in is clamped here, so it can neither overflow Redis's
-- PX nor keep a token for ever. A clamped entry expires early: the provider
-- then gets a new token, as it would after a restart.
M.MAX_TTL = 365 * 86400
M.DEFAULT_LOCK_TTL = 30 -- seconds, when lock is called without one

--- The store contract: what a provider calls on its `store`. The built-in
-- stores raise on a bad key or ttl type (a programming mistake) and return
-- `nil, err` (kind `storage`) on a failure.
-- @type Store

--- Read an entry.
-- @function Store:get
-- @tparam string key a non-empty key (`p:store_key()`)
-- @return the entry table, or nil (absent or expired), or nil, err

--- Write an entry.
-- @function Store:set
-- @tparam string key a non-empty key
-- @tparam table entry a plain table (what `token:to_entry()` makes)
-- @tparam[opt] number ttl seconds the entry lives (clamped to `MAX_TTL`), or nil for no expiry
-- @return true, or nil, err

--- Delete an entry (absent is not an error).
-- @function Store:delete
-- @tparam string key a non-empty key
-- @return true, or nil, err

--- Lock one key for up to `ttl` seconds against every caller that shares
-- the entries (other tasks, processes or hosts), waiting up to `ttl` for it.
-- @function Store:lock
-- @tparam string key a non-empty key
-- @tparam[opt=30] number ttl seconds (`DEFAULT_LOCK_TTL`)
-- @tparam[opt] function stop called while the lock is taken by someone
--   else: a value from it ends the wait, returned as `nil, nil, value`
--   (a provider passes one that reads a renewed token from the store, so a
--   fleet of waiters does not queue through the lock). A store may ignore
--   it and just wait.
-- @return the unlock function (returns true, or nil, err), or nil, err
--   (retryable when the lock could not be had in time)

--- Module functions.
-- @section functions

-- The built-in stores load on first use: a program with a memory store
-- never loads the file or Redis facade.

--- In-process store; entries expire after their ttl (smartauth.store.memory).
function M.memory() return require("smartauth.store.memory").new() end

--- The file store (smartauth.store.file): see `store/file.lua`.
function M.file(opts) return require("smartauth.store.file").new(opts) end

--- The Redis store (smartauth.store.redis): see `store/redis.lua`.
function M.redis(opts) return require("smartauth.store.redis").new(opts) end

--- The nginx shared-dictionary store (smartauth.store.shdict): see `store/shdict.lua`.
function M.shdict(opts) return require("smartauth.store.shdict").new(opts) end

--- Where the file store keeps tokens by default:
-- $XDG_STATE_HOME/smartauth, else ~/.local/state/smartauth.
-- @return path or nil, err (config) when neither is set
function M.default_dir() return require("smartauth.store.file").default_dir() end

--- true, or nil, err (config) when an encryption key (a string) is shorter
-- than MIN_KEY; where names the store. The key itself never shows.
function M.check_secret(where, key)
  if #key >= M.MIN_KEY then return true end
  return nil, errors.new("config", where .. ": the encryption key must be at least " .. M.MIN_KEY ..
    " bytes (a random value, e.g. `openssl rand -base64 32`)", { option = "key" })
end

--- Check that v can serve as a store; returns v or nil, message.
function M.check(v)
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil, "store must be an object" end
  for _, m in ipairs { "get", "set", "delete", "lock" } do
    if type(v[m]) ~= "function" then return nil, "store has no '" .. m .. "' method" end
  end
  return v
end

-- The argument rules every built-in store applies (a store may use them
-- too). A bad key or ttl type is a programming mistake, raised at the
-- caller of the store's method.

--- Raise unless key is a non-empty string; fn names the method.
function M.check_key(key, fn)
  if type(key) ~= "string" or key == "" then
    errors.argerror(1, fn, "non-empty string key expected", key, 3)
  end
end

--- Raise unless entry is a table (set's second argument).
function M.check_entry(entry)
  if type(entry) ~= "table" then errors.argerror(2, "set", "table expected", entry, 3) end
end

--- The ttl to store with: nil, or seconds clamped to MAX_TTL; nil, err for
-- NaN (it can only come from outside data, which never makes us raise).
function M.check_ttl(ttl, fn)
  if ttl == nil then return nil end
  if type(ttl) ~= "number" or ttl <= 0 then
    errors.argerror(3, fn, "positive number of seconds or nil expected", errors.NOGOT, 3)
  end
  if ttl ~= ttl then
    return nil, errors.new("storage", fn .. ": the ttl is not a number (NaN): entry not stored")
  end
  return math.min(ttl, M.MAX_TTL)
end

return M
