--- The Redis store (smartauth.store.redis), for fleets: a facade over the
-- C Redis store. Entries expire with their ttl (PX); the refresh lock is
-- SET NX PX with a random owner value, released only by its owner (a
-- server-side script). A lost connection is an error for the call in
-- flight and the connection is remade on the next call.
-- @module smartauth.store.redis
local compat = require "smartauth.compat"
local core = require "smartauth.core_redis" -- hiredis, mapped only with a Redis store
local envelope = require "smartauth.store.envelope"
local errors = require "smartauth.errors"
local lock = require "smartauth.store.lock"
local options = require "smartauth.options"
local store = require "smartauth.store"

local M = {}

--- Options of `store.redis` (options.check specs; config.lua checks config
-- files against them too).
M.SCHEMA = {
  host = "string", port = { type = "number", min = 1, max = 65535 },
  username = "string", password = "string",
  db = { type = "number", min = 0, max = 1048576 },
  prefix = "string", tls = "boolean", key = "string",
  timeout = { type = "number", min = 0.001, max = 86400 },
  connect_timeout = { type = "number", min = 0.001, max = 86400 },
}

local Redis = { __name = "smartauth.store.redis" }
Redis.__index = Redis

local failure, got, stored = envelope.failure, envelope.got, envelope.stored

--- Connect to the Redis store (`smartauth.store.redis{}`).
-- @tparam[opt] table opts
-- @tparam[opt="127.0.0.1"] string opts.host the server
-- @tparam[opt=6379] int opts.port its port
-- @tparam[opt] string opts.username ACL user name (Redis 6)
-- @tparam[opt] string opts.password the password (AUTH)
-- @tparam[opt=0] int opts.db the database number (SELECT)
-- @tparam[opt="smartauth:"] string opts.prefix prefix of every Redis key (an
--   entry is `PREFIX .. "t:" .. key`, its lock `PREFIX .. "l:" .. key`)
-- @tparam[opt=5] number opts.timeout seconds per command
-- @tparam[opt=2] number opts.connect_timeout seconds to connect
-- @tparam[opt] string opts.key a secret of at least 16 bytes: entries are
--   encrypted as the file store does
-- @tparam[opt] boolean opts.tls refused: this build's hiredis has no TLS
--   (use a TLS tunnel)
-- @return store or nil, err (config, storage)
function M.new(opts)
  local where = "smartauth.store.redis"
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    errors.argerror(1, "store.redis", "table expected", opts)
  end
  local o, err = options.check(where, opts, M.SCHEMA)
  if not o then return nil, err end
  for _, k in ipairs { "port", "db" } do
    if o[k] ~= nil and compat.math_type(o[k]) ~= "integer" and o[k] ~= math.floor(o[k]) then
      return nil, errors.new("config", where .. ": option '" .. k .. "' must be an integer", { option = k })
    end
    o[k] = o[k] and compat.tointeger(o[k])
  end
  if o.tls then
    -- Debian 12's hiredis is 0.14, which has no TLS; a tunnel (stunnel,
    -- spiped) or Redis on loopback does the job meanwhile.
    return nil, errors.new("config", where .. ": option 'tls' needs hiredis >= 1.0 with TLS; this build's " ..
      "hiredis has none (use a TLS tunnel to the server)", { option = "tls" })
  end
  if o.key then
    local ok, kerr = store.check_secret(where, o.key)
    if not ok then return nil, kerr end
  end
  local r, kind, msg = core.redis_open {
    host = o.host, port = o.port, username = o.username, password = o.password, db = o.db,
    timeout = o.timeout, connect_timeout = o.connect_timeout, key = o.key,
  }
  if not r then return nil, failure(kind, msg) end
  return setmetatable({
    host = o.host or "127.0.0.1", port = o.port or 6379, db = o.db or 0,
    prefix = o.prefix or "smartauth:", encrypted = o.key ~= nil, _r = r,
  }, Redis)
end

-- Entries and locks live in separate namespaces under the prefix, so no
-- entry key can name a lock.
function Redis:_entry_key(key) return self.prefix .. "t:" .. key end
function Redis:_lock_key(key) return self.prefix .. "l:" .. key end

function Redis:get(key)
  store.check_key(key, "get")
  return got(key, "redis", self._r:get(self:_entry_key(key)))
end

function Redis:set(key, entry, ttl)
  local s, t = envelope.for_set(key, entry, ttl)
  if not s then return nil, t end
  ttl = t
  local px = ttl and math.max(1, math.ceil(ttl * 1000)) or nil
  return stored(self._r:set(self:_entry_key(key), s, px))
end

function Redis:delete(key)
  store.check_key(key, "delete")
  return stored(self._r:delete(self:_entry_key(key)))
end

--- Lock one key across every client of the server for up to ttl seconds
-- (it expires then, should the holder die). The unlock function returns
-- true, or nil, err when the lock had expired and was no longer ours.
function Redis:lock(key, ttl, stop)
  store.check_key(key, "lock")
  local r, lkey = self._r, self:_lock_key(key)
  local unlock, err, stopped = lock.take(self, key, ttl or store.DEFAULT_LOCK_TTL, function(_, t)
    local owner, kind, msg = r:try_lock(lkey, math.max(1, math.ceil(t * 1000)))
    if owner then
      return function()
        local released, k2, m2 = r:unlock(lkey, owner)
        if released then return true end
        if released == false then
          return nil, errors.new("storage", "the lock on '" .. key .. "' had expired before it was released")
        end
        return nil, failure(k2, m2)
      end
    end
    if owner == false then return false end
    return nil, failure(kind, msg)
  end, stop)
  return unlock, err, stopped
end

--- Close the connection (also on `<close>`). Further calls raise.
function Redis:close()
  self._r:close()
end
Redis.__close = Redis.close

function Redis:__tostring()
  return ("smartauth.store.redis (%s:%d db %d, prefix '%s')"):format(self.host, self.port, self.db, self.prefix)
end

return M
