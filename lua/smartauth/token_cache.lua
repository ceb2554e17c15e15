--- Bounded caches a resource server keeps per provider, keyed by the
-- token's SHA-256 (never the token): positive RFC 7662 introspection
-- answers (`introspection_cache`), until the token's `exp` or a cap, and
-- the claims of JWT access tokens that passed every check
-- (`verified_cache`), until their `exp`. Negative answers and refused
-- tokens are never kept.
-- @module smartauth.token_cache
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local options = require "smartauth.options"

local M = {}

local math_type = compat.math_type

local is_number = compat.is_finite

M.CACHE_MAX_TTL = 300      -- seconds a positive answer is kept at most
M.CACHE_MAX_ENTRIES = 1000
M.VERIFIED_MAX_TTL = 86400 -- a verified token is kept until its exp, up to a day

local Cache = { __name = "smartauth.token_cache" }
Cache.__index = Cache

--- Check the `introspection_cache` and `verified_cache` options: true,
-- false, or `{ max_entries =, max_ttl = }`. Returns true or nil, message.
function M.check_option(v)
  if type(v) == "boolean" then return true end
  if type(v) ~= "table" then return nil, "must be true, false or { max_entries =, max_ttl = }" end
  for k, x in pairs(v) do
    if k == "max_entries" then
      if not (math_type(x) == "integer" or (is_number(x) and x == math.floor(x))) or x < 1 or x > 1e7 then
        return nil, "max_entries must be an integer from 1 to 10000000"
      end
    elseif k == "max_ttl" then
      if not is_number(x) or x <= 0 or x > 86400 then
        return nil, "max_ttl must be a number of seconds from 0 to 86400"
      end
    else
      return nil, "has an unknown field '" .. tostring(k) .. "'"
    end
  end
  return true
end

-- An LRU of positive answers: a doubly linked list, most recent first.
local function new_cache(o, default_ttl)
  o = type(o) == "table" and o or options.NO_OPTS
  local head = {}
  head.next, head.prev = head, head
  return setmetatable({ max_entries = o.max_entries or M.CACHE_MAX_ENTRIES,
    max_ttl = o.max_ttl or default_ttl or M.CACHE_MAX_TTL, map = {}, n = 0, head = head }, Cache)
end

local function unlink(e)
  e.prev.next, e.next.prev = e.next, e.prev
end

local function push_front(head, e)
  e.next, e.prev = head.next, head
  head.next.prev = e
  head.next = e
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

function Cache:_drop(e)
  unlink(e)
  self.map[e.key] = nil
  self.n = self.n - 1
end

--- The cached answer for a token (a copy), or nil.
function Cache:get(token, now)
  local key = core.sha2(256, token)
  local e = self.map[key]
  if not e then return nil end
  if e.expires <= (now or clock.now()) then
    self:_drop(e)
    return nil
  end
  unlink(e)
  push_front(self.head, e)
  return copy(e.data)
end

--- Keep a positive answer until its `exp` or `max_ttl`, whichever is
-- first; a negative one, or one already expired, is not kept.
function Cache:put(token, data, now)
  if type(data) ~= "table" or data.active ~= true then return end
  now = now or clock.now()
  local expires = now + self.max_ttl
  if data.exp ~= nil then
    if not is_number(data.exp) then return end
    if data.exp < expires then expires = data.exp end
  end
  self:keep(token, data, expires, now)
end

--- Keep data for a token until `expires` (epoch seconds) or `max_ttl`,
-- whichever is first; nothing is kept when that is not in the future.
function Cache:keep(token, data, expires, now)
  now = now or clock.now()
  if now + self.max_ttl < expires then expires = now + self.max_ttl end
  if expires <= now then return end
  local key = core.sha2(256, token)
  local old = self.map[key]
  if old then self:_drop(old) end
  while self.n >= self.max_entries do
    self:_drop(self.head.prev) -- the least recently used
  end
  local e = { key = key, data = copy(data), expires = expires }
  self.map[key] = e
  push_front(self.head, e)
  self.n = self.n + 1
end

--- The number of answers kept.
function Cache:size()
  return self.n
end

--- The provider's cache of verified JWT access tokens (the
-- `verified_cache` option), or nil when the option is off.
function M.verified(p)
  local o = p.options.verified_cache
  if not o then return nil end
  local c = p._verified_cache
  if not c then
    c = new_cache(o, M.VERIFIED_MAX_TTL)
    p._verified_cache = c
  end
  return c
end

--- The provider's introspection cache, or nil when the option is off.
function M.introspection(p)
  local o = p.options.introspection_cache
  if not o then return nil end
  local c = p._introspection_cache
  if not c then
    c = new_cache(o)
    p._introspection_cache = c
  end
  return c
end

return M
