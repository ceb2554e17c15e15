--- Internal: The bytes a byte store (file, Redis) keeps for an entry: a versioned
-- JSON envelope that names its key, its format and its expiry, so a value
-- copied under another name, written by a future version, cut short or
-- planted by someone else is refused rather than used. Encryption, when the
-- store has a key, wraps these bytes in C (AES-256-GCM, the entry's key as
-- associated data); this module never sees it.
--
--   { "smartauth_store": 1, "key": "<entry key>", "entry": {...}, "expires_at": <epoch s> }
--
-- It also turns a C store's answers (bytes | nil | nil, kind, msg) into the
-- store contract's (entry | nil | nil, err).
-- @module smartauth.store.envelope
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local json = require "smartauth.json"

local M = {}

--- Version of the envelope written around an entry.
M.FORMAT = 1

--- Largest envelope read back, as the C stores write at most
-- (SA_FSTORE_MAX_ENTRY, SA_REDIS_MAX_VALUE): a bigger value was not written
-- by smartauth, and decoding it would only cost memory.
M.MAX_BYTES = 1048576

local function storage_err(msg, fields)
  return errors.new("storage", msg, fields)
end

--- A C store's failure (kind, msg, code) as a storage error. Lock timeouts
-- and lost connections may pass; permissions, corruption and wrong keys
-- will not.
function M.failure(kind, msg, code)
  return errors.from_core(kind, msg or "store failure", code, { as = "storage" })
end

-- cjson gives every number back as a float and JSON null as a sentinel:
-- integral numbers become integers again, nulls go.
local function normalize(v)
  if type(v) == "number" then return compat.tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if x == json.null then v[k] = nil else v[k] = normalize(x) end
    end
  end
  return v
end

--- The bytes to store for an entry (a table) under key, expiring after ttl
-- seconds (nil: never); nil, err when the entry cannot be JSON.
function M.encode(key, entry, ttl)
  local s, err = json.encode({
    smartauth_store = M.FORMAT, key = key, entry = entry,
    expires_at = ttl and clock.now() + ttl or nil,
  })
  if not s then return nil, storage_err("entry '" .. key .. "' cannot be stored as JSON: " .. tostring(err)) end
  return s
end

--- The entry in stored bytes; nil when it has expired; nil, err when the
-- bytes are not an envelope of ours for this key. where names the store in
-- messages ("stored", "redis").
function M.decode(key, s, where)
  local function corrupt(why)
    return nil, storage_err(where .. " entry '" .. key .. "' is corrupt (" .. why .. ")")
  end
  if #s > M.MAX_BYTES then return corrupt("larger than " .. M.MAX_BYTES .. " bytes") end
  local env = json.decode(s)
  if type(env) ~= "table" then return corrupt("not a JSON object") end
  if env.smartauth_store ~= M.FORMAT then
    if type(env.smartauth_store) == "number" then
      local v = env.smartauth_store
      return nil, storage_err(where .. " entry '" .. key .. "' has format " .. tostring(compat.tointeger(v) or v)
        .. "; this smartauth reads format " .. M.FORMAT)
    end
    return corrupt("no format version")
  end
  if env.key ~= key then return corrupt("it belongs to another key") end
  if type(env.entry) ~= "table" then return corrupt("no entry") end
  local exp = env.expires_at
  if exp ~= nil and exp ~= json.null then
    if type(exp) ~= "number" then return corrupt("bad expiry") end
    if clock.now() >= exp then return nil end
  end
  return normalize(env.entry)
end

--- A C store's answer to get (bytes; nil for none; nil, kind, msg for a
-- failure) as an entry, nil, or nil, err.
function M.got(key, where, s, kind, msg)
  if s == nil then
    if kind then return nil, M.failure(kind, msg) end
    return nil
  end
  local entry, err = M.decode(key, s, where)
  if entry == nil then return nil, err end
  return entry
end

--- A C store's answer to set or delete (true, or nil, kind, msg).
function M.stored(ok, kind, msg)
  if not ok then return nil, M.failure(kind, msg) end
  return true
end

--- What every backend's `set` does first: the key, the entry and the ttl
-- checked (a wrong type raises: a programming mistake), then the entry
-- encoded. Returns the bytes and the ttl (nil: none), or nil, err.
function M.for_set(key, entry, ttl)
  local store = require "smartauth.store"
  store.check_key(key, "set")
  store.check_entry(entry)
  local t, terr = store.check_ttl(ttl, "set")
  if terr then return nil, terr end
  local s, err = M.encode(key, entry, t)
  if not s then return nil, err end
  return s, t
end

return M
