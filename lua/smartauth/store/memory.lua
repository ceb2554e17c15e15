--- The in-process store (smartauth.store.memory): entries are Lua tables,
-- kept as given, and expire after their ttl. Only this process shares it,
-- so the in-process part is the whole lock.
-- @module smartauth.store.memory
local clock = require "smartauth.clock"
local lock = require "smartauth.store.lock"
local store = require "smartauth.store"

local M = {}

local Memory = { __name = "smartauth.store.memory" }
Memory.__index = Memory

-- The entries hold tokens: kept off the store object, so that dumping a
-- provider (and its store) shows none.
local mem = setmetatable({}, { __mode = "k" })

--- A new, empty memory store (`smartauth.store.memory()`).
-- @return the store
function M.new()
  local self = setmetatable({}, Memory)
  mem[self] = { entries = {}, expiry = {} }
  return self
end

function Memory:get(key)
  store.check_key(key, "get")
  local m = mem[self]
  local exp = m.expiry[key]
  if exp and clock.now() >= exp then
    m.entries[key], m.expiry[key] = nil, nil
  end
  return m.entries[key]
end

function Memory:set(key, entry, ttl)
  store.check_key(key, "set")
  store.check_entry(entry)
  local terr
  ttl, terr = store.check_ttl(ttl, "set")
  if terr then return nil, terr end
  local m = mem[self]
  m.entries[key] = entry
  m.expiry[key] = ttl and clock.now() + ttl or nil
  return true
end

function Memory:delete(key)
  store.check_key(key, "delete")
  local m = mem[self]
  m.entries[key], m.expiry[key] = nil, nil
  return true
end

local function no_release() return true end
local function try() return no_release end

function Memory:lock(key, ttl, stop)
  store.check_key(key, "lock")
  return lock.take(self, key, ttl or store.DEFAULT_LOCK_TTL, try, stop)
end

return M
