--- Internal: The token lifecycle of one provider (after golang/oauth2's TokenSource):
-- where p:token() finds a valid token, and what happens when one dies.
--
-- States of a provider's token in this process:
--
--   EMPTY    nothing in memory.
--   FRESH    a token in memory, good until `fresh_until` (its expiry less
--            the leeway, never more than half its lifetime): token()
--            returns it after one comparison, with no lock and no store.
--   UNSAVED  a token in memory that the store refused (p:save_error()):
--            it is handed out, and every token() call first tries the save
--            again, so a rotated refresh token is never lost.
--   STALE    within the leeway of its expiry, past it, or retired by a 401
--            (the stored entry is rewritten with its expiry in the past and
--            its refresh token kept, so every process renews it).
--
-- token() outside FRESH, one caller per key in this process (single
-- flight) and, with a shared store, across processes (store:lock, held for
-- `lock_ttl` seconds, longer than the work it guards may take):
--
--   1. Read the stored entry (an UNSAVED token in memory wins over it).
--      Fresh enough and not forced: FRESH.
--   2. It has a refresh token: refresh.
--        done                     -> a new ID token is verified (same sub),
--                                    absent fields keep their old values;
--                                    saved: FRESH, or UNSAVED.
--        retryable failure        -> the old access token while it has not
--                                    expired, else the error.
--        invalid_client           -> the refresh token is kept; the error.
--        any other 4xx / oauth    -> the refresh token is dead: the entry is
--                                    deleted only if it still holds that
--                                    refresh token (else another process has
--                                    renewed it: that entry is used); on to 3.
--   3. The provider's non-interactive grant (client_credentials, password):
--      FRESH or UNSAVED. A provider for people has none: `nil, err` with
--      err.reauth = true ("log in"); err.kind is "config" when nothing was
--      ever stored, else what the server answered.
--
-- Cancelling the task inside any of this resolves the flight (the callers
-- waiting on it try again) and releases the lock.
-- @module smartauth.token_source
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local token_mod = require "smartauth.token"
local vault = require "smartauth.vault"

local secrets = vault.secrets

local M = {}

-- The engine (tasks, flights) loads with the first token that is not in
-- memory: a cached token needs none of it.
local engine_mod
local function engine()
  if not engine_mod then engine_mod = require "smartauth.engine" end
  return engine_mod
end

--- Grants that need a person: token() never runs them.
M.INTERACTIVE = {
  authorization_code = true, loopback = true, device = true, oob = true, none = true,
}

local HUGE = math.huge

M.DEFAULT_TIMEOUT = 30 -- seconds: the engine's total timeout when none is set

local Source = { __name = "smartauth.token_source" }
Source.__index = Source

--- A source for provider `p`. `state` is where the provider keeps its
-- secrets (the token lives there, not on the provider).
-- provider's request functions, each returning an unsaved token or nil, err:
--   ops.refresh(tok, opts), ops.grant(name, opts)
function M.new(p, state)
  p._fresh_until = -HUGE
  return setmetatable({ p = p, state = state, flights = {} }, Source)
end

--- When a token is due for renewal: `leeway` before its expiry, never more
-- than half its lifetime (a 60 s token with a 120 s leeway would always be
-- stale), at least `min_ttl` before it. math.huge for a token without an
-- expiry.
function Source:refresh_at(t, min_ttl)
  local exp = t.expires_at
  if not exp then return HUGE end
  local margin = self.p.options.leeway
  if t.issued_at then margin = math.min(margin, (exp - t.issued_at) / 2) end
  if min_ttl and min_ttl > margin then margin = min_ttl end
  return exp - margin
end

-- The token in memory; fresh_until is what the cached path of p:token()
-- compares with: nothing is fresh while a save is pending.
function Source:set(t)
  self.state.tok = t
  self.p._fresh_until = (t and not self.state.save_error) and self:refresh_at(t) or -HUGE
end

--- The token in memory, if any (no store, no network).
function Source:current()
  return self.state.tok
end

--- Why the last token could not be saved, or nil.
function Source:save_error()
  return self.state.save_error
end

--- Seconds the store lock is held for around a refresh: the `lock_ttl`
-- option, else long enough for every retry the policy allows (its budget
-- plus attempts x timeout) and 5 s more, so it never expires mid-refresh.
function Source:lock_ttl()
  local p = self.p
  local ttl = p.options.lock_ttl
  if ttl then return ttl end
  local pol = p.options.retry
  if pol == nil then
    -- retry.default, without loading retry.lua for it (a CLI call with a
    -- stored token makes no request): its fields are RETRY_DEFAULTS'
    local r = package.loaded["smartauth.retry"]
    pol = r and r.default or require("smartauth.options").RETRY_DEFAULTS
  end
  local attempts, budget = 1, 0
  if pol then attempts, budget = pol.attempts or 1, pol.budget or 0 end
  return budget + attempts * (p.options.timeout or M.DEFAULT_TIMEOUT) + 5
end

local function entry_ttl(tok)
  -- an entry without a refresh token is useless once expired
  if tok.refresh_token or not tok.expires_at then return nil end
  return math.max(1, tok.expires_at - clock.now())
end

--- Keep a token: in the store under `key` (default: the provider's), and in
-- memory when it is the provider's own. A store that refuses it leaves it
-- UNSAVED, never lost. Returns the token and the save error, if any.
function Source:put(tok, key)
  local p = self.p
  local main = key == nil or key == p:store_key()
  key = key or p:store_key()
  if not tok.refresh_token and tok.expires_at and tok.expires_at <= (tok.issued_at or clock.now()) then
    -- expires_in 0: good for this one call, nothing worth keeping
    return tok
  end
  local ok, err = p.options.store:set(key, tok:to_entry(), entry_ttl(tok))
  if main then
    if ok then
      self.state.save_error = nil
    else
      self.state.save_error = err or errors.new("storage", "the store did not keep the token")
    end
    self:set(tok)
  end
  if not ok then return tok, err end
  return tok
end

-- A pending save, tried again before anything else.
function Source:retry_save()
  local t = self.state.tok
  if t and self.state.save_error then self:put(t) end
end

local function retryable(err)
  if err.retryable then return true end
  local k = err.kind
  return k == "network" or k == "timeout" or k == "tls" or k == "storage"
    or (err.status ~= nil and err.status >= 500)
end

--- Does this refresh failure mean the refresh token is dead? Any
-- non-retryable 4xx or OAuth error does, except invalid_client: a
-- mistyped or rotated client secret says nothing about the token.
function M.dead_refresh(err)
  if retryable(err) or err.code == "invalid_client" then return false end
  if err.kind == "oauth" then return true end
  return err.kind == "http" and err.status ~= nil and err.status >= 400 and err.status < 500
end

local function reauth(err)
  err.reauth = true
  return nil, err
end

-- A stored DPoP-bound token is used only with its key (dpop.lua); dpop.lua
-- loads only for a provider with DPoP or an entry that is bound.
local function usable(p, t, err)
  if not t then return t, err end
  local ext = t.ext
  if secrets[p].dpop or t.token_type == "DPoP" or (ext and (ext.dpop_jkt or ext.dpop_key)) then
    if not require("smartauth.dpop").usable(p, t) then return nil end
  end
  return t
end

-- The stored token under key, or nil; nil, err when the store fails.
local function read(p, key)
  local entry, err = p.options.store:get(key)
  if err then return nil, err end
  if entry == nil then return nil end
  return usable(p, token_mod.from_entry(entry))
end

--- Refresh `t` and keep the result under `key`. The server may have
-- retired the old refresh token already, so the new one is returned even
-- when the store refuses it (UNSAVED).
function Source:refresh(t, opts, key)
  local nt, err = require("smartauth.grant").refresh_request(self.p, t, opts)
  if not nt then return nil, err end
  return (self:put(nt, key))
end

-- Step 2's failure path: delete the entry only if it still holds the
-- refresh token that failed. An entry holding another one was renewed by
-- someone whose lock outlived ours: use it.
function Source:drop_dead(key, rt, opts)
  local p = self.p
  local cur, err = read(p, key)
  if err then return nil end
  if cur and cur.refresh_token ~= rt then
    if clock.now() < self:refresh_at(cur, opts.min_ttl) then return cur end
    return nil
  end
  if cur then p.options.store:delete(key) end
  if self.state.tok and self.state.tok.refresh_token == rt then
    self.state.save_error = nil
    self:set(nil)
  end
  return nil
end

-- Steps 1-3 under the lock.
function Source:obtain(key, main, opts)
  local p, st = self.p, self.state
  local now = clock.now()
  local t, serr = read(p, key)
  if serr then
    -- the store cannot be read: a valid token in memory still serves
    local mt = main and st.tok
    if mt and not opts.force and not mt:expired(0, now) then return mt end
    return nil, serr
  end
  if main and st.save_error and st.tok then t = st.tok end
  if t and not opts.force and now < self:refresh_at(t, opts.min_ttl) then
    if main then self:set(t) end
    return t
  end
  local dead
  if t and t.refresh_token then
    local nt, err = self:refresh(t, opts, key)
    if nt then return nt end
    if not M.dead_refresh(err) then
      -- a temporary failure, or a client problem: the old token while it lasts
      if retryable(err) and not opts.force and not t:expired(0, now) then
        if main then self:set(t) end
        return t
      end
      return nil, err
    end
    local other = self:drop_dead(key, t.refresh_token, opts)
    if other then
      if main then self:set(other) end
      return other
    end
    dead = err
  end
  local grant = p:default_grant()
  if not M.INTERACTIVE[grant] then
    local nt, gerr = require("smartauth.grant").grant_request(self.p, grant, opts)
    if not nt then return nil, gerr end
    return (self:put(nt, key))
  end
  if dead then
    dead.description = "the refresh token was refused, log in again: " .. (dead.description or "")
    return reauth(dead)
  end
  if t then
    return reauth(errors.new("oauth", "the token has expired" ..
      (opts.force and " or was refused" or "") .. " and cannot be refreshed: log in again",
      { code = "invalid_token" }))
  end
  return reauth(errors.new("config", "no token stored and grant '" .. grant ..
    "' needs a person: log in first (p:login, or authorization_url + exchange_code)"))
end

-- What a flight resolves with when its leader was cancelled: the callers
-- waiting on it try again themselves.
local CANCELLED = setmetatable({}, { __name = "smartauth.token_source.cancelled" })

--- A valid token (see the states at the top).
-- @param opts { force = bool, min_ttl = seconds, scope = string }
function Source:token(opts)
  local p, st = self.p, self.state
  if p.api_key_auth then
    return nil, errors.new("config", "this provider uses HTTP Basic with an API key; it has no bearer token")
  end
  local key = p:store_key(opts.scope)
  local main = key == p:store_key()
  if main then
    self:retry_save()
    local t = st.tok
    if t and not opts.force and clock.now() < self:refresh_at(t, opts.min_ttl) then return t end
  end
  while true do
    local f = self.flights[key]
    if not f then break end
    local tok, err = f:wait()
    if tok ~= CANCELLED then
      if tok or not opts.force then return tok, err end
      break -- a forced call wants a new token, not the one in flight
    end
  end
  local f = engine().flight()
  self.flights[key] = f
  local unlock
  local function finish(...)
    if unlock then unlock() end
    unlock = nil
    if self.flights[key] == f then self.flights[key] = nil end
    f:resolve(...)
  end
  local function failed(e) finish(nil, errors.new("config", "token() failed: " .. tostring(e))) end
  local release = engine().on_cancel(function(e)
    if e == nil then finish(CANCELLED) else failed(e) end
  end)
  -- While someone else holds the lock (another process renewing), the
  -- entry it stores ends the wait: a fleet does not queue through the lock
  -- just to read it. Not for a forced call (it wants a new token), nor over
  -- an UNSAVED token in memory (it wins over the stored one).
  local peek
  if not opts.force and not (main and st.save_error) then
    peek = function()
      local t = read(p, key)
      if t and clock.now() < self:refresh_at(t, opts.min_ttl) then return t end
    end
  end
  local lerr, fresh
  unlock, lerr, fresh = p.options.store:lock(key, self:lock_ttl(), peek)
  local ok, tok, err
  if fresh then
    if main then self:set(fresh) end
    ok, tok, err = true, fresh, nil
  elseif not unlock then
    ok, tok, err = true, nil, lerr
  elseif engine().current() then
    -- in a task obtain may yield, which 5.1 cannot do across a pcall: if
    -- it raises, the task fails and the on_cancel function above runs
    ok, tok, err = true, self:obtain(key, main, opts)
  else
    ok, tok, err = pcall(self.obtain, self, key, main, opts)
  end
  release()
  if ok then
    finish(tok, err)
    return tok, err
  end
  failed(tok)
  error(tok, 0)
end

--- A 401 from an API call retires the access token everywhere: from
-- memory, and from the store if the entry still holds it (rewritten as
-- expired with its refresh token, so every process renews it).
function Source:retire(access_token)
  local p, st = self.p, self.state
  local past = clock.now() - 1
  local mt = st.tok
  if mt and mt.access_token == access_token then
    if st.save_error then
      mt.expires_at = past -- UNSAVED: keep its refresh token in memory
      self:set(mt)
    else
      self:set(nil)
    end
  end
  local key = p:store_key()
  local unlock, lerr = p.options.store:lock(key, self:lock_ttl())
  if not unlock then return nil, lerr end
  local release = engine().on_cancel(unlock)
  local t, err = read(p, key)
  local ok = true
  if t and t.access_token == access_token then
    t.expires_at = past
    ok, err = p.options.store:set(key, t:to_entry(), entry_ttl(t))
  end
  release()
  unlock()
  if err then return nil, err end
  return ok
end

-- --------------------------------------------- the provider's token methods

local function make_store_key(self, scope)
  local id = table.concat({
    self:endpoint("issuer") or self:endpoint("token_endpoint") or "", self.options.client_id or "",
    self.options.username or "",
    scope or "", secrets[self].api_key or "",
  }, "\n")
  local prefix = (self.options.name or "provider"):gsub("[^%w_.-]", "_")
  local core = require "smartauth.core" -- libcrypto maps here, not at require "smartauth"
  return prefix .. "." .. core.b64url_encode(core.sha2(256, id)):sub(1, 16)
end

--- The key this provider's token is stored under: readable prefix plus a
-- digest of what makes the token distinct.
-- @param self the provider (the method `p:store_key`)
-- @param scope another scope than the provider's (a token of its own)
function M.store_key(self, scope)
  if scope ~= nil and scope ~= self.options.scope then return make_store_key(self, scope) end
  local k = self._store_key
  if not k then
    k = make_store_key(self, self.options.scope)
    self._store_key = k
  end
  return k
end


--- Forget the token (locally and in the store).
function M.forget(self)
  local s = secrets[self]
  s.save_error = nil
  s.source:set(nil)
  return self.options.store:delete(self:store_key())
end

--- The grant token() runs when nothing valid is stored, decided from the
-- options alone (never from discovery): the `grant` option (or the
-- preset's), else "password" when username and password are given, else
-- "client_credentials" for a confidential client with no redirect URI and
-- no interactive response type, else "authorization_code" (a person logs
-- in: token() never falls back to an app-only token).
function M.default_grant(self)
  if self.options.grant then return self.options.grant end
  local s = secrets[self]
  if s.api_key then return "none" end
  if self.options.username and s.password then return "password" end
  if self.options.client_auth ~= "none" and not self.options.redirect_uri and not self.options.response_type then
    return "client_credentials"
  end
  return "authorization_code"
end

--- The token in memory or, failing that, in the store; no network.
-- @return token, or nil (none), or nil, err (the store failed)
function M.stored(self)
  local s = secrets[self]
  if s.tok then return s.tok end
  local entry, err = self.options.store:get(self:store_key())
  if err then return nil, err end
  if entry == nil then return nil end
  return usable(self, token_mod.from_entry(entry))
end

--- nil, or why the last token could not be saved (it is kept in memory
-- and handed out; the save is tried again on the next token() call).
function M.save_error(self)
  return secrets[self].save_error
end

return M
