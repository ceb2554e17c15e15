--- Retry policies: exponential backoff with full jitter, Retry-After
-- honoured (seconds or HTTP date) within a time budget. Retries what may
-- pass (network errors, timeouts, 429, 502/503/504, temporarily_unavailable),
-- never what will not (invalid_grant, invalid_client, other 4xx).
-- @module smartauth.retry
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local options = require "smartauth.options"

local M = {}

local Policy = { __name = "smartauth.retry.policy" }
Policy.__index = Policy

--- The default options of a policy.
-- @table DEFAULTS
-- @field attempts
-- @field base
-- @field max_delay
-- @field budget
M.DEFAULTS = options.RETRY_DEFAULTS

local RETRY_STATUS = errors.RETRY_STATUS

--- A policy. attempts: tries in all (1 = no retry); base: first backoff
-- ceiling in seconds; max_delay: cap of one wait; budget: cap of all waits.
-- The wait before retry n is random in [0, min(max_delay, base x 2^(n-1))]
-- (full jitter), or what `Retry-After` asks (at most max_delay; beyond the
-- budget the error is returned, not retried). An unknown option or a value
-- that is not a finite non-negative number raises.
-- @tparam[opt] table opts
-- @tparam[opt=3] int opts.attempts tries in all, at least 1
-- @tparam[opt=0.5] number opts.base seconds: the first backoff's ceiling
-- @tparam[opt=30] number opts.max_delay seconds: the longest single wait
-- @tparam[opt=60] number opts.budget seconds: all waits together
-- @return the policy (a provider's `retry` option)
function M.policy(opts)
  opts = opts or {}
  if type(opts) ~= "table" then errors.argerror(1, "policy", "table expected", opts) end
  local p = setmetatable({}, Policy)
  for k, v in pairs(opts) do
    if M.DEFAULTS[k] == nil then error("retry.policy: unknown option '" .. tostring(k) .. "'", 2) end
    -- NaN fails every comparison and infinity never ends a loop or a wait
    if type(v) ~= "number" or not (v >= 0 and v < math.huge) then
      error("retry.policy: option '" .. k .. "' must be a finite non-negative number", 2)
    end
    if k == "attempts" and not compat.tointeger(v) then
      error("retry.policy: option 'attempts' must be an integer", 2)
    end
  end
  for k, v in pairs(M.DEFAULTS) do p[k] = opts[k] or v end
  p.attempts = compat.tointeger(p.attempts)
  if p.attempts < 1 then error("retry.policy: attempts must be at least 1", 2) end
  p.random = math.random
  return p
end

--- The policy of a provider without a `retry` option.
M.default = M.policy()

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Seconds since the epoch for a UTC date table (os.time works in local time).
local function utc_time(t)
  local y, m = t.year, t.month
  if m <= 2 then y, m = y - 1, m + 12 end
  -- days from civil (Howard Hinnant's algorithm), epoch 1970-01-01
  local floor = math.floor
  local era = floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m - 3) + 2) / 5) + t.day - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + t.hour * 3600 + t.min * 60 + t.sec
end

--- Seconds to wait from a Retry-After value (delta-seconds or an HTTP date,
-- RFC 9110 §10.2.3); nil when absent or unreadable.
function M.parse_retry_after(v, now)
  if type(v) ~= "string" then return nil end
  local secs = v:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local d, mon, y, hh, mm, ss = v:match("^%s*%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
  if not d or not MONTHS[mon] then return nil end
  local at = utc_time { year = tonumber(y), month = MONTHS[mon], day = tonumber(d),
    hour = tonumber(hh), min = tonumber(mm), sec = tonumber(ss) }
  return math.max(0, at - (now or clock.now()))
end

--- Should this outcome be retried? (res, err) as a request returns them.
function M.retryable(res, err)
  if err then
    if errors.is(err) then
      if err.kind == "oauth" then return err.code == "temporarily_unavailable" or RETRY_STATUS[err.status] == true end
      return err.retryable == true
    end
    return false
  end
  if res == nil then return false end
  if RETRY_STATUS[res.status] then return true end
  -- RFC 6749 §5.2 temporarily_unavailable in an error body
  return res.status >= 400 and type(res.body) == "string" and #res.body < 65536
    and res.body:find('"temporarily_unavailable"', 1, true) ~= nil
end

--- Backoff ceiling for attempt n (1-based): base * 2^(n-1), capped.
function Policy:backoff(n)
  return math.min(self.max_delay, self.base * 2 ^ (n - 1))
end

--- Call fn() until it succeeds, fails for good, or the policy is spent.
-- fn returns res, err like a request. sleep(seconds) waits (the engine's, so
-- waiting inside a task blocks nothing). Returns fn's last res, err.
function Policy:run(fn, sleep)
  local spent = 0
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res, err, final = fn(attempt)
    if final or not M.retryable(res, err) or attempt >= self.attempts then
      if attempt > 1 then
        if err and errors.is(err) then err.attempts = attempt end
        if type(res) == "table" then res.attempts = attempt end
      end
      return res, err
    end
    local headers = (res and res.headers) or (err and err.headers)
    local after = M.parse_retry_after(headers and headers["retry-after"])
      or (err and err.retry_after)
    local delay
    if after then
      delay = math.min(after, self.max_delay)
      if after > self.budget - spent then
        local e = errors.new(err and err.kind or "http",
          "server asked to retry after " .. after .. " s, beyond the retry budget", {
            status = (res and res.status) or (err and err.status), code = err and err.code,
            retry_after = after, retryable = false, attempts = attempt })
        return nil, e
      end
    else
      delay = self.random() * self:backoff(attempt) -- full jitter
    end
    if spent + delay > self.budget then
      delay = self.budget - spent
      if delay <= 0 then
        if err then err.attempts = attempt end
        return res, err
      end
    end
    spent = spent + delay
    sleep(delay)
  end
end

return M
