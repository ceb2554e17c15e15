--- The shared-dictionary store (smartauth.store.shdict), inside nginx: a
-- `lua_shared_dict` zone (`ngx.shared.DICT`) that every worker of one nginx
-- shares. Entries are the versioned JSON envelope the file and Redis stores
-- keep, with the zone's own expiry; the lock is an `add` of the lock key
-- with an expiry and a random owner, so that of N workers asking for a due
-- token one sends the request and the others wait (with `ngx.sleep`) and
-- then read what it stored.
--
--     lua_shared_dict smartauth 1m;    # in nginx.conf's http block
--     local s = smartauth.store.shdict{ dict = "smartauth" }
--
-- Entries (tokens, refresh tokens) sit unencrypted in the worker's shared
-- memory, as in the process's own memory.
-- @module smartauth.store.shdict
local core = require "smartauth.core"
local envelope = require "smartauth.store.envelope"
local errors = require "smartauth.errors"
local lock = require "smartauth.store.lock"
local options = require "smartauth.options"
local store = require "smartauth.store"

local M = {}

M.SCHEMA = {
  dict = "string",   -- the lua_shared_dict's name
  prefix = "string", -- put before every key (default "smartauth:")
}

local Shdict = { __name = "smartauth.store.shdict" }
Shdict.__index = Shdict

local function storage_err(msg, fields) return nil, errors.new("storage", msg, fields) end

--- A store on `ngx.shared[opts.dict]`.
-- @tparam table opts `dict` (the zone's name, required), `prefix` (default
--   `"smartauth:"`; an entry is `PREFIX .. "t:" .. key`, its lock `PREFIX ..
--   "l:" .. key`)
-- @return store or nil, err (config: outside nginx, no such zone)
function M.new(opts)
  local where = "smartauth.store.shdict"
  if type(opts) ~= "table" then errors.argerror(1, "store.shdict", "table expected", opts) end
  local o, err = options.check(where, opts, M.SCHEMA)
  if not o then return nil, err end
  if not o.dict then
    return nil, errors.new("config", where .. ": option 'dict' (a lua_shared_dict name) is required",
      { option = "dict" })
  end
  local ngx = rawget(_G, "ngx")
  local shared = type(ngx) == "table" and ngx.shared
  if not shared then
    return nil, errors.new("config", where .. ": needs nginx with lua-nginx-module (ngx.shared)",
      { option = "dict" })
  end
  local d = shared[o.dict]
  if not d then
    return nil, errors.new("config", where .. ": no lua_shared_dict named '" .. o.dict .. "' in nginx.conf",
      { option = "dict" })
  end
  return setmetatable({ dict = o.dict, prefix = o.prefix or "smartauth:", _d = d }, Shdict)
end

function Shdict:get(key)
  store.check_key(key, "get")
  local s, err = self._d:get(self.prefix .. "t:" .. key)
  if s == nil then
    if err then return storage_err("shdict '" .. self.dict .. "': " .. tostring(err)) end
    return nil
  end
  if type(s) ~= "string" then return storage_err("shdict entry '" .. key .. "' is corrupt (not a string)") end
  local entry, derr = envelope.decode(key, s, "shdict")
  if entry == nil then return nil, derr end
  return entry
end

function Shdict:set(key, entry, ttl)
  local s, t = envelope.for_set(key, entry, ttl)
  if not s then return nil, t end
  ttl = t
  -- safe_set: a full zone refuses the entry rather than evicting others
  local ok, serr = self._d:safe_set(self.prefix .. "t:" .. key, s, ttl or 0)
  if not ok then
    return storage_err("shdict '" .. self.dict .. "': cannot store '" .. key .. "': " .. tostring(serr))
  end
  return true
end

function Shdict:delete(key)
  store.check_key(key, "delete")
  self._d:delete(self.prefix .. "t:" .. key)
  return true
end

--- Lock one key across the workers for up to ttl seconds (the lock key
-- expires then, should its holder die). The unlock function returns true,
-- or nil, err when the lock had expired and someone else held it; `stop`
-- as the store contract has it (a waiter reads the renewed token instead).
function Shdict:lock(key, ttl, stop)
  store.check_key(key, "lock")
  local d, lkey = self._d, self.prefix .. "l:" .. key
  local unlock, err, stopped = lock.take(self, key, ttl or store.DEFAULT_LOCK_TTL, function(_, t)
    local owner = core.b64url_encode(core.random(12))
    local ok, aerr = d:add(lkey, owner, t)
    if ok then
      return function()
        -- shdict calls do not yield: nothing of this worker runs between
        -- the check and the delete
        if d:get(lkey) ~= owner then
          return storage_err("the lock on '" .. key .. "' had expired before it was released")
        end
        d:delete(lkey)
        return true
      end
    end
    if aerr == "exists" then return false end
    return storage_err("shdict '" .. self.dict .. "': cannot take the lock on '" .. key .. "': " .. tostring(aerr),
      { retryable = true })
  end, stop)
  return unlock, err, stopped
end

function Shdict:__tostring()
  return ("smartauth.store.shdict ('%s', prefix '%s')"):format(self.dict, self.prefix)
end

return M
