--- Interactive login for people: choosing a flow, and the steps a person
-- sees. The loopback redirect (RFC 8252, its listener in flow/loopback.lua,
-- which alone needs LuaSocket and loads when that flow runs), the device
-- authorization grant (RFC 8628, the grant in device.lua) and the
-- out-of-band paste flow (`urn:ietf:wg:oauth:2.0:oob`, as SmartFile and
-- SmartTask document).
--
-- p:login comes here (the provider loads this module on its first call).
-- Each user-facing step (opening a URL, showing a message or a code, asking
-- for input) can be replaced by the host application's own function, so a
-- game can show the code in its own UI.
-- @module smartauth.flow
local browser_mod = require "smartauth.flow.browser"
local device_grant = require "smartauth.device"
local errors = require "smartauth.errors"
local url = require "smartauth.url"

local M = {}

M.FLOWS = { "loopback", "device", "oob" }
M.LOOPBACK_TIMEOUT = 300  -- seconds a person gets to finish in the browser

-- Names kept from before the split: the grant's constants and functions
-- live in smartauth.device, the browser's in smartauth.flow.browser.
M.OOB = url.OOB
M.DEVICE_GRANT = device_grant.GRANT_TYPE
M.DEFAULT_INTERVAL = device_grant.DEFAULT_INTERVAL
M.SLOW_DOWN = device_grant.SLOW_DOWN
M.MAX_INTERVAL = device_grant.MAX_INTERVAL
M.MAX_POLL_INTERVAL = device_grant.MAX_POLL_INTERVAL
M.device_authorization = device_grant.device_authorization
M.poll_device = device_grant.poll_device
M.display = errors.display
M.can_open_browser = browser_mod.can_open
M.open_browser = browser_mod.open

local display = errors.display

local function validation(msg)
  return nil, errors.new("validation", msg)
end

-- -------------------------------------------------------- user-facing steps

-- The default user-facing steps: messages on stderr (stdout stays clean for
-- `smartauth token`), input from stdin.
local function default_show(ui)
  return function(info)
    ui.output:write(info.message, "\n")
    ui.output:flush()
  end
end

local function default_ask(ui)
  return function(prompt)
    ui.output:write(prompt)
    ui.output:flush()
    return ui.input:read("*l")
  end
end

local LOGIN_OPTS = {
  flow = "string", scope = "string", params = "table", open = "any", show = "function",
  ask = "function", sleep = "function", timeout = "number", port = "number",
  redirect_uri = "string", input = "any", output = "any", path = "string",
}

local function check_login_opts(opts)
  if opts == nil then return {} end
  -- level 3: the caller of login, two calls up from here
  if type(opts) ~= "table" then errors.argerror(1, "login", "table expected", opts, 3) end
  for k, v in pairs(opts) do
    local t = LOGIN_OPTS[k]
    if t == nil then error("login: option '" .. tostring(k) .. "' is not known", 3) end
    if t ~= "any" and type(v) ~= t then
      error("login: option '" .. k .. "' must be a " .. t .. " (got " .. type(v) .. ")", 3)
    end
  end
  if opts.open ~= nil and opts.open ~= false and type(opts.open) ~= "function" then
    error("login: option 'open' must be a function or false", 3)
  end
  if opts.flow ~= nil and opts.flow ~= "loopback" and opts.flow ~= "device" and opts.flow ~= "oob" then
    error("login: option 'flow' must be one of loopback, device, oob (got '" .. opts.flow .. "')", 3)
  end
  return opts
end

local function user_interface(opts)
  local ui = { output = opts.output or io.stderr, input = opts.input or io.stdin }
  ui.show = opts.show or default_show(ui)
  ui.ask = opts.ask or default_ask(ui)
  if opts.open == false then
    ui.open = function() return false end
  else
    ui.open = opts.open or M.open_browser
  end
  return ui
end

-- ---------------------------------------------------------- flow choice

local function interactive_grant(g)
  return g == "loopback" or g == "device" or g == "oob"
end

--- Pick the flow for a provider and a situation.
-- @param p provider (endpoints already discovered when it has an issuer)
-- @param opts login options (flow=, open=)
-- @param env { browser = bool } (default: can_open_browser())
-- @return "loopback", "device" or "oob"
function M.choose(p, opts, env)
  opts = opts or {}
  if opts.flow then return opts.flow end
  if interactive_grant(p.options.grant) then return p.options.grant end
  local redirect = opts.redirect_uri or p.options.redirect_uri
  -- SmartFile takes only its registered callback: a loopback one, or the
  -- verifier shown on screen and pasted
  if p.options.preset == "smartfile" then
    if redirect and redirect:match("^http://127%.0%.0%.1:%d+/") then return "loopback" end
    return "oob"
  end
  if redirect and url.is_oob(redirect) then return "oob" end
  local has_authz = p:endpoint("authorization_endpoint") ~= nil
  local has_device = p:endpoint("device_authorization_endpoint") ~= nil
  local browser = type(opts.open) == "function"
  if not browser and opts.open ~= false then
    if env and env.browser ~= nil then browser = env.browser else browser = M.can_open_browser() end
  end
  if has_authz and browser then return "loopback" end
  if has_device then return "device" end
  -- no browser here: paste where the service documents it, else print the
  -- URL for a browser on this machine
  if has_authz and (p.options.preset == "smartfile" or p.options.preset == "smarttask") then return "oob" end
  if has_authz and redirect and not redirect:match("^http://") then return "oob" end
  if has_authz then return "loopback" end
  return "device"
end

-- ------------------------------------------------------------- loopback

local function loopback(p, opts, ui)
  -- LuaSocket loads here, the first time a listener is needed
  local listener_mod = require "smartauth.flow.loopback"
  local configured = opts.redirect_uri or p.options.redirect_uri
  local target, terr = listener_mod.target(not url.is_oob(configured) and configured or nil, opts)
  if not target then return nil, terr end
  local listener, lerr = listener_mod.listen(target)
  if not listener then return nil, lerr end
  local redirect_uri = listener.redirect_uri
  local params = {}
  for k, v in pairs(opts.params or {}) do params[k] = v end
  params.redirect_uri, params.scope = redirect_uri, opts.scope
  local auth_url, session = p:authorization_url(params)
  if not auth_url then
    listener:close()
    return nil, session
  end
  local timeout = opts.timeout or M.LOOPBACK_TIMEOUT
  local ok_open, opened = pcall(ui.open, auth_url, { fds = listener:fds() })
  if not ok_open then
    listener:close()
    error(opened, 0)
  end
  ui.show {
    flow = "loopback", url = auth_url, redirect_uri = redirect_uri, opened = opened == true,
    message = (opened and "Your browser has been opened to log in. If it did not open, visit:\n  "
      or "To log in, open this address in a browser on this computer:\n  ") .. display(auth_url),
  }
  local done, tok, err = listener:serve(session.state, timeout, function(callback_url)
    return p:exchange_code { url = callback_url, session = session }
  end)
  if not done then
    return nil, errors.new("timeout", "no login arrived at " .. redirect_uri .. " within " ..
      timeout .. " s (the browser did not come back; run the login again)")
  end
  return tok, err
end

-- ------------------------------------------------------------------ oob

local function oob(p, opts, ui)
  local redirect = opts.redirect_uri or p.options.redirect_uri
  if not redirect or url.is_oob(redirect) then redirect = url.OOB end
  local params = {}
  for k, v in pairs(opts.params or {}) do params[k] = v end
  params.redirect_uri, params.scope = redirect, opts.scope
  local auth_url, session = p:authorization_url(params)
  if not auth_url then return nil, session end
  local paste_what = redirect == url.OOB and "the code the page shows"
    or "the address of the page the browser lands on (it may not load)"
  ui.show {
    flow = "oob", url = auth_url, redirect_uri = redirect,
    message = "To log in, open this address in a browser, then paste " .. paste_what .. " here:\n  " ..
      display(auth_url),
  }
  local input = ui.ask("Code: ")
  if type(input) ~= "string" then
    return validation("no code was entered (end of input)")
  end
  input = input:match("^%s*(.-)%s*$")
  if input == "" then return validation("no code was entered") end
  if input:match("^%a[%w+.-]*://") or input:find("code=", 1, true) or input:find("error=", 1, true) then
    -- the whole redirect URL (or its query): state is checked
    return p:exchange_code { url = input, session = session }
  end
  -- a bare code: there is no state to check, nor an iss (the person typed
  -- no authorization response); PKCE still binds it to this session
  return p:exchange_code { code = input, state = session.state, iss = false, session = session }
end

-- --------------------------------------------------------------- device

-- The grant is smartauth.device's; this is the person's side: the code and
-- where to enter it, then the wait.
local function device(p, opts, ui)
  local dev, err = p:device_authorization { scope = opts.scope }
  if not dev then return nil, err end
  -- all three come from the server: shown cleaned, here and in a host's UI
  local user_code, vuri = display(dev.user_code), display(dev.verification_uri)
  local complete = display(dev.verification_uri_complete)
  local msg = "To log in, visit " .. vuri .. " and enter the code: " .. user_code
  if complete then
    msg = msg .. "\n  (or open " .. complete .. ")"
  end
  ui.show {
    flow = "device", user_code = user_code, verification_uri = vuri,
    verification_uri_complete = complete, expires_in = dev.expires_in,
    url = complete or vuri, message = msg,
  }
  return p:poll_device(dev, { sleep = opts.sleep })
end

-- ---------------------------------------------------------------- login

--- Log a person in with the best flow the provider and the situation allow:
-- the loopback redirect when a browser can be opened here, else the device
-- flow when the provider has one, else the paste flow or a printed URL.
-- @param self the provider (the method `p:login`)
-- @tparam[opt] table opts the login options (an unknown one raises):
-- @tparam[opt] string opts.flow `"loopback"`, `"device"` or `"oob"` (default: chosen)
-- @tparam[opt] string opts.scope the scope asked for
-- @tparam[opt] table opts.params extra authorization request parameters
-- @tparam[opt=300] number opts.timeout seconds the loopback listener waits
--   for the browser
-- @tparam[opt] number opts.port the loopback listener's port (default: the
--   redirect URI's, else any free one)
-- @tparam[opt] string opts.path the loopback redirect's path (default: the
--   redirect URI's, else `"/callback"`)
-- @tparam[opt] string opts.redirect_uri instead of the provider's
-- @param[opt] opts.open `function(url, ctx)` returning whether a browser
--   opened (`ctx.fds`: the listener's descriptors, which a process it
--   starts must not inherit), or `false`: never open a browser
-- @tparam[opt] function opts.show `function(info)` showing a step to the person
--   (`info.flow`, `.message`, `.url`, `.user_code`, `.verification_uri`, ...)
-- @tparam[opt] function opts.ask `function(prompt)` returning what the person
--   typed (the paste flow)
-- @tparam[opt] function opts.sleep `function(seconds)` for device polling
-- @param[opt] opts.input a file to read from (default stdin)
-- @param[opt] opts.output a file for messages (default stderr)
-- @return token or nil, err
function M.login(self, opts)
  opts = check_login_opts(opts)
  local ui = user_interface(opts)
  if not opts.flow and not interactive_grant(self.options.grant) and self:endpoint("issuer") and not self:metadata()
      and not (self:endpoint("authorization_endpoint") and self:endpoint("token_endpoint")) then
    local ok, err = self:discover()
    if not ok then return nil, err end
  end
  local flow = M.choose(self, opts)
  if flow == "device" then return device(self, opts, ui) end
  if flow == "oob" then return oob(self, opts, ui) end
  return loopback(self, opts, ui)
end

return M
