--- Internal: The refresh lock of a store, in two parts. In this process: one holder
-- (a coroutine) per store and key, which may take it again (nested calls).
-- Across processes: what the backend's `try(key, ttl)` gives, a release
-- function, false when someone else holds it, or nil, err. try never
-- waits: this module's loop is the only place that does, so a waiting
-- task yields to the engine instead of stopping the program.
-- @module smartauth.store.lock
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local core = require "smartauth.core"

local M = {}

local now = core.monotonic

M.MAX_TTL = 86400 -- seconds a lock may be asked for

-- Who holds what, per store: kept off the store objects.
local holds = setmetatable({}, { __mode = "k" })

-- Wait a little without stopping the rest of the program: inside an engine
-- task this yields; a blocking caller drives the engine meanwhile, so a task
-- that holds the lock can finish.
local function pause(seconds)
  if engine.current() then engine.sleep(seconds) else engine.step(seconds) end
end

--- Take the lock on key of store for up to ttl seconds, waiting as long.
-- A holder that kept it past ttl (a cancelled task that never unlocked) is
-- taken over, as Redis would expire it. `stop` (optional) is called
-- whenever the lock is found taken: a value from it ends the wait (what
-- the waiter needed was done by the holder: a renewed token).
-- @return unlock function (true, or what the release returns; a second
--   call does nothing) or nil, err (storage; retryable on timeout), or
--   nil, nil, what stop returned
function M.take(store, key, ttl, try, stop)
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl > M.MAX_TTL then
    errors.argerror(2, "lock", "seconds 0.." .. M.MAX_TTL .. " expected", errors.NOGOT, 3)
  end
  local held = holds[store]
  if not held then
    held = {}
    holds[store] = held
  end
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
    if stop then
      local v = stop()
      if v ~= nil then return nil, nil, v end
    end
    if now() >= deadline then
      return nil, errors.new("storage", ("timed out after %g s waiting for the lock on '%s'"):format(ttl, key),
        { retryable = true })
    end
    pause(math.min(wait, math.max(0, deadline - now())))
    wait = math.min(wait * 2, 0.025)
  end
end

return M
