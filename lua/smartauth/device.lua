--- Internal: The device authorization grant (RFC 8628): ask for a device code, then
-- poll the token endpoint until the person has approved it on another
-- device. The grant side only: showing the code is the login flow's part
-- (smartauth.flow), or the host application's.
--
-- p:device_authorization and p:poll_device come here (the provider loads
-- this module on their first call).
-- @module smartauth.device
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local json = require "smartauth.json"
local secrets = require("smartauth.vault").secrets
local url = require "smartauth.url"

local M = {}

M.GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
M.DEFAULT_INTERVAL = 5    -- RFC 8628 §3.5: poll every 5 s unless told otherwise
M.SLOW_DOWN = 5           -- RFC 8628 §3.5: slow_down adds 5 s to the interval
M.MAX_INTERVAL = 60       -- backoff after network failures stops growing here
M.MAX_POLL_INTERVAL = 60  -- a server's interval (and slow_down growth) stops here: a
                          -- hostile one must not make the login sleep for hours
M.DEFAULT_LIFETIME = 1800 -- seconds a device table without expires_in is polled

local function validation(msg)
  return nil, errors.new("validation", msg)
end

local Device = { __name = "smartauth.device" }
Device.__index = Device

-- The device code is a bearer secret until used: keep it out of tostring.
function Device:__tostring()
  return "smartauth.device(user_code " .. errors.display(tostring(self.user_code)) .. ", " ..
    errors.display(tostring(self.verification_uri)) .. ")"
end

local function positive_int(v)
  if compat.math_type(v) == "float" and v == math.floor(v) then v = compat.tointeger(v) end
  if compat.math_type(v) == "integer" and v > 0 then return v end
  return nil
end

-- The one place the grant waits, so that a non-blocking engine can take it
-- over: the engine's sleep is a timer inside smartauth.spawn, a plain wait
-- outside; a host may pass its own.
local function pause(sleep, seconds)
  if seconds > 0 then (sleep or engine.sleep)(seconds) end
end

--- Device authorization request (RFC 8628 §3.1).
-- @param self the provider (the method `p:device_authorization`)
-- @param opts { scope=, ... any extra parameter (resource, audience) }
-- @return a device table { device_code, user_code, verification_uri,
--   verification_uri_complete, expires_in, expires_at, interval } or nil, err
function M.device_authorization(self, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then errors.argerror(1, "device_authorization", "table expected", opts) end
  local form = { scope = opts.scope or self.options.scope }
  for k, v in pairs(opts) do
    if k ~= "scope" then
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
        error("device_authorization: parameter '" .. tostring(k) .. "' must be a string or number", 2)
      end
      form[k] = tostring(v)
    end
  end
  local res, err = grant.post_form(self, "device_authorization_endpoint", form)
  if not res then return nil, err end
  if res.status ~= 200 then
    local _, e = grant.decode(self, res, "device authorization endpoint")
    return nil, e or errors.new("http", "device authorization endpoint returned HTTP " .. res.status,
      { status = res.status })
  end
  local data = json.object(res.body)
  if type(data) ~= "table" then
    return validation("device authorization response is not a JSON object")
  end
  for _, k in ipairs { "device_code", "user_code" } do
    if type(data[k]) ~= "string" or data[k] == "" then
      return validation("device authorization response has no " .. k)
    end
  end
  -- some services say verification_url (an early draft's name)
  local vuri = data.verification_uri or data.verification_url
  if type(vuri) ~= "string" or not url.parse(vuri) then
    return validation("device authorization response has no usable verification_uri")
  end
  local complete = data.verification_uri_complete
  if complete ~= nil and (type(complete) ~= "string" or not url.parse(complete)) then
    complete = nil
  end
  local expires_in = positive_int(tonumber(data.expires_in))
  if not expires_in then return validation("device authorization response has no valid expires_in") end
  local interval = M.DEFAULT_INTERVAL
  if data.interval ~= nil and data.interval ~= json.null then
    interval = positive_int(tonumber(data.interval))
    if not interval then return validation("device authorization response has an invalid interval") end
    interval = math.min(interval, M.MAX_POLL_INTERVAL)
  end
  return setmetatable({
    device_code = data.device_code,
    user_code = data.user_code,
    verification_uri = vuri,
    verification_uri_complete = complete,
    expires_in = expires_in,
    expires_at = clock.now() + expires_in,
    interval = interval,
    scope = form.scope,
  }, Device)
end

--- Poll the token endpoint until the person has approved the device (RFC
-- 8628 §3.4-3.5): waits `interval` seconds between polls, 5 s more after
-- each slow_down, and backs off on network failures; no wait is longer than
-- MAX_POLL_INTERVAL or than the code has left to live (then it says expired).
-- @param self the provider (the method `p:poll_device`)
-- @param dev the table device_authorization returned
-- @param opts { sleep = function(seconds) } (default: the engine's sleep, which yields inside a task)
-- @return token or nil, err (oauth access_denied or expired_token, ...)
function M.poll_device(self, dev, opts)
  if type(dev) ~= "table" or type(dev.device_code) ~= "string" then
    errors.argerror(1, "poll_device", "device table from device_authorization expected", errors.NOGOT)
  end
  if opts ~= nil and type(opts) ~= "table" then errors.argerror(2, "poll_device", "table expected", opts) end
  opts = opts or {}
  local interval = math.min(positive_int(dev.interval) or M.DEFAULT_INTERVAL, M.MAX_POLL_INTERVAL)
  local lifetime = positive_int(dev.expires_in) or M.DEFAULT_LIFETIME
  local deadline = dev.expires_at or (clock.now() + lifetime)
  local waited = 0
  local function expired()
    return nil, errors.new("oauth", "the device code expired before the login was finished",
      { code = "expired_token" })
  end
  while true do
    -- a code is expired when the clock says so or when we have waited its
    -- whole lifetime (a host's sleep may not move the wall clock)
    local left = math.min(deadline - clock.now(), lifetime - waited)
    if left <= 0 then return expired() end
    if interval > left then
      -- the code dies before the next poll is allowed: say so when it does
      pause(opts.sleep, left)
      return expired()
    end
    pause(opts.sleep, interval)
    waited = waited + interval
    local tok, err = grant.request(self, { grant_type = M.GRANT_TYPE, device_code = dev.device_code },
      { dev.device_code })
    if tok then
      local ok, verr = require("smartauth.oidc").check_code_token(self, tok,
        { scope = dev.scope, response_type = "device" }, {})
      if not ok then return nil, verr end
      return (secrets[self].source:put(tok))
    end
    local pending = err.kind == "oauth" and err.code == "authorization_pending"
    if err.kind == "oauth" and err.code == "slow_down" then
      interval = math.min(interval + M.SLOW_DOWN, M.MAX_POLL_INTERVAL)
    elseif err.kind == "network" or err.kind == "timeout" or (err.retryable and err.kind ~= "oauth") then
      interval = math.min(interval * 2, M.MAX_INTERVAL)
    elseif not pending then
      if err.kind == "oauth" and err.code == "access_denied" then
        err.description = "the login was refused (access_denied)"
      elseif err.kind == "oauth" and err.code == "expired_token" then
        err.description = "the device code expired before the login was finished"
      end
      return nil, err
    end
  end
end

return M
