--- Token stores. A store is any object with get, set, delete and lock:
--   store:get(key)             -> entry | nil (absent) | nil, err
--   store:set(key, entry, ttl) -> true | nil, err
--   store:delete(key)          -> true | nil, err
--   store:lock(key, ttl)       -> unlock function | nil, err
local clock = require "smartauth.clock"
local M = {}

local Memory = { __name = "smartauth.store.memory" }
Memory.__index = Memory

--- In-process store; entries expire after their ttl.
function M.memory()
  return setmetatable({ entries = {}, expiry = {}, locks = {} }, Memory)
end

function Memory:get(key)
  local exp = self.expiry[key]
  if exp and clock.now() >= exp then
    self.entries[key], self.expiry[key] = nil, nil
  end
  return self.entries[key]
end

function Memory:set(key, entry, ttl)
  self.entries[key] = entry
  self.expiry[key] = ttl and clock.now() + ttl or nil
  return true
end

function Memory:delete(key)
  self.entries[key], self.expiry[key] = nil, nil
  return true
end

-- One process, one thread: a blocking caller holds the lock for the whole
-- refresh, so the lock only has to be re-entrant-safe, not wait.
function Memory:lock(key)
  self.locks[key] = (self.locks[key] or 0) + 1
  return function()
    local n = (self.locks[key] or 1) - 1
    self.locks[key] = n > 0 and n or nil
  end
end

--- Check that v can serve as a store; returns v or nil, message.
function M.check(v)
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil, "store must be an object" end
  for _, m in ipairs { "get", "set", "delete", "lock" } do
    if type(v[m]) ~= "function" then return nil, "store has no '" .. m .. "' method" end
  end
  return v
end

return M
