--- Interactive login for people: the loopback redirect (RFC 8252), the
-- device authorization grant (RFC 8628) and the out-of-band paste flow
-- (`urn:ietf:wg:oauth:2.0:oob`, as SmartFile and SmartTask document).
--
-- p:login, p:device_authorization and p:poll_device come here (the provider
-- loads this module on their first call). Each user-facing step (opening a URL,
-- showing a message or a code, asking for input) can be replaced by the host
-- application's own function, so a game can show the code in its own UI.
-- @module smartauth.flow
local json = require "smartauth.json"
local engine = require "smartauth.engine"
local socket = require "socket"
local cjson = require "cjson.safe"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local secrets = require("smartauth.vault").secrets
local store = require "smartauth.store"
local url = require "smartauth.url"

local M = {}


M.OOB = "urn:ietf:wg:oauth:2.0:oob"
M.DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
M.FLOWS = { "loopback", "device", "oob" }
M.LOOPBACK_TIMEOUT = 300  -- seconds a person gets to finish in the browser
M.DEFAULT_PATH = "/callback"
M.DEFAULT_INTERVAL = 5    -- RFC 8628 §3.5: poll every 5 s unless told otherwise
M.SLOW_DOWN = 5           -- RFC 8628 §3.5: slow_down adds 5 s to the interval
M.MAX_INTERVAL = 60       -- backoff after network failures stops growing here
M.MAX_POLL_INTERVAL = 60  -- a server's interval (and slow_down growth) stops here: a
                          -- hostile one must not make the login sleep for hours

local MAX_REQUEST = 16384 -- bytes of request line and headers the listener reads
local MAX_CLIENTS = 16    -- open connections the listener keeps (browsers preconnect)
local CLIENT_IDLE = 10    -- seconds a silent connection may stay open

local function validation(msg, fields)
  return nil, errors.new("validation", msg, fields)
end

local function cfg_err(msg)
  return nil, errors.new("config", msg)
end

local function is_oob(u)
  return u == M.OOB or u == "oob"
end

--- Text from a server made safe to show on a terminal: C0 and C1 control
-- characters (escape sequences that clear the screen, set the title or hide
-- text), DEL and bidirectional overrides (which reorder what the person
-- reads) become '?'. Text that is not UTF-8 keeps printable ASCII only.
function M.display(s)
  if type(s) ~= "string" then return s end
  if not (utf8 and utf8.len(s)) then return (s:gsub("[^\32-\126]", "?")) end
  return (s:gsub("%c", "?")
    :gsub("\194[\128-\159]", "?")        -- U+0080-U+009F
    :gsub("\216\156", "?")                -- U+061C arabic letter mark
    :gsub("\226\128[\142\143\170-\174]", "?") -- U+200E-200F, U+202A-202E
    :gsub("\226\129[\166-\169]", "?"))  -- U+2066-2069
end

------------------------------------------------------------------- waiting

-- The only places the flows wait, so that a non-blocking engine can take
-- them over: a pause between device polls, and waiting for the loopback
-- listener's sockets.
local function pause(sleep, seconds)
  -- the engine's sleep: a timer inside smartauth.spawn, a plain wait outside
  if seconds > 0 then (sleep or engine.sleep)(seconds) end
end

local function wait_readable(socks, seconds)
  if not engine.current() then
    local ready = socket.select(socks, nil, seconds)
    return ready or {}
  end
  -- inside smartauth.spawn: look without waiting, and let the engine run
  -- other tasks between looks, so a game's frames go on during a login
  local deadline = core.monotonic() + seconds
  while true do
    local ready = socket.select(socks, nil, 0)
    if ready and #ready > 0 then return ready end
    local left = deadline - core.monotonic()
    if left <= 0 then return {} end
    engine.sleep(math.min(0.02, left))
  end
end

----------------------------------------------------------- user-facing steps

--- Is there a browser this process can open (a desktop session)?
function M.can_open_browser()
  local sep = package.config:sub(1, 1)
  if sep == "\\" then return true end
  local h = io.popen("uname -s 2>/dev/null")
  local sys = h and h:read("l") or ""
  if h then h:close() end
  if sys == "Darwin" then return true end
  if (os.getenv("DISPLAY") or "") == "" and (os.getenv("WAYLAND_DISPLAY") or "") == "" then
    return false
  end
  return os.execute("command -v xdg-open >/dev/null 2>&1") == true
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Variables a browser must not inherit: the store's key and every ${NAME} a
-- loaded config expanded (where secrets come from). A browser may live for
-- days and hands its environment to its helpers and extensions. A config
-- that was never loaded expanded nothing, so it is not required here.
local function secret_env_names()
  local names = { store.KEY_ENV }
  local config = package.loaded["smartauth.config"]
  if type(config) == "table" and config.secret_env_names then
    for _, n in ipairs(config.secret_env_names()) do names[#names + 1] = n end
  end
  local ok = {}
  for _, n in ipairs(names) do
    if type(n) == "string" and n:match("^[%a_][%w_]*$") then ok[#ok + 1] = n end
  end
  return ok
end

-- A command run in the background with the given descriptors closed and
-- the secret variables unset: a browser started by xdg-open may live for
-- hours, and must not keep the loopback listener's socket (LuaSocket does
-- not set close-on-exec) nor the secrets this process was given.
local function spawn_detached(cmd, fds)
  local closes = {}
  local unset = secret_env_names()
  if #unset > 0 then closes[1] = "unset " .. table.concat(unset, " ") .. " ;" end
  local big = false
  for _, fd in ipairs(fds or {}) do
    fd = math.tointeger(fd)
    if fd and fd > 2 then
      closes[#closes + 1] = "exec " .. fd .. ">&- ;"
      if fd > 9 then big = true end
    end
  end
  local inner = table.concat(closes, " ") .. " exec " .. cmd .. " </dev/null >/dev/null 2>&1"
  -- POSIX sh only promises descriptors 0-9 in redirections; bash takes any
  local shell = "sh"
  if big and os.execute("command -v bash >/dev/null 2>&1") == true then shell = "bash" end
  return os.execute(shell .. " -c " .. sh_quote(inner) .. " </dev/null >/dev/null 2>&1 &") == true
end

--- Open a URL in the person's browser: xdg-open, open or start. Returns true
-- when a command was started (it may still fail to show anything, which is
-- why the flows print the URL too).
-- @param u the URL
-- @param ctx optional { fds = {descriptors the browser must not inherit} }
function M.open_browser(u, ctx)
  if type(u) ~= "string" or u:find("[%c\"]") then return false end
  if package.config:sub(1, 1) == "\\" then
    return os.execute('start "" "' .. u .. '"') == true
  end
  local h = io.popen("uname -s 2>/dev/null")
  local sys = h and h:read("l") or ""
  if h then h:close() end
  local cmd = sys == "Darwin" and "open" or "xdg-open"
  if os.execute("command -v " .. cmd .. " >/dev/null 2>&1") ~= true then return false end
  return spawn_detached(cmd .. " " .. sh_quote(u), ctx and ctx.fds)
end

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
    return ui.input:read("l")
  end
end

local LOGIN_OPTS = {
  flow = "string", scope = "string", params = "table", open = "any", show = "function",
  ask = "function", sleep = "function", timeout = "number", port = "number",
  redirect_uri = "string", input = "any", output = "any", path = "string",
}

local function check_login_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'login' (table expected, got " .. type(opts) .. ")", 3)
  end
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

------------------------------------------------------------- flow choice

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
  if redirect and is_oob(redirect) then return "oob" end
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

------------------------------------------------------------------ device

local Device = { __name = "smartauth.device" }
Device.__index = Device

-- The device code is a bearer secret until used: keep it out of tostring.
function Device:__tostring()
  return "smartauth.device(user_code " .. M.display(tostring(self.user_code)) .. ", " ..
    M.display(tostring(self.verification_uri)) .. ")"
end

local function positive_int(v)
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) == "integer" and v > 0 then return v end
  return nil
end

--- Device authorization request (RFC 8628 §3.1).
-- @param opts { scope=, ... any extra parameter (resource, audience) }
-- @return a device table { device_code, user_code, verification_uri,
--   verification_uri_complete, expires_in, expires_at, interval } or nil, err
function M.device_authorization(self, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'device_authorization' (table expected, got " .. type(opts) .. ")", 2)
  end
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
  if data.interval ~= nil and data.interval ~= cjson.null then
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
-- @param dev the table device_authorization returned
-- @param opts { sleep = function(seconds) } (default: the engine's sleep, which yields inside a task)
-- @return token or nil, err (oauth access_denied or expired_token, ...)
function M.poll_device(self, dev, opts)
  if type(dev) ~= "table" or type(dev.device_code) ~= "string" then
    error("bad argument #1 to 'poll_device' (device table from device_authorization expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'poll_device' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local interval = math.min(positive_int(dev.interval) or M.DEFAULT_INTERVAL, M.MAX_POLL_INTERVAL)
  local lifetime = positive_int(dev.expires_in) or 1800
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
    local tok, err = grant.request(self, { grant_type = M.DEVICE_GRANT, device_code = dev.device_code },
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

---------------------------------------------------------------- loopback

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  }))
end

--- The small page the browser sees at the end of a loopback login.
function M.page(title, text)
  return "<!doctype html><html><head><meta charset=\"utf-8\"><title>" .. html_escape(title) ..
    "</title><style>body{font-family:sans-serif;margin:4em auto;max-width:32em;line-height:1.5}</style>" ..
    "</head><body><h1>" .. html_escape(title) .. "</h1><p>" .. html_escape(text) .. "</p></body></html>\n"
end

local REASONS = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
  [431] = "Request Header Fields Too Large" }

local function respond(sock, status, title, text)
  local body = M.page(title, text)
  local head = table.concat({
    "HTTP/1.1 " .. status .. " " .. REASONS[status],
    "Content-Type: text/html; charset=utf-8",
    "Content-Length: " .. #body,
    "Cache-Control: no-store",
    "Referrer-Policy: no-referrer",
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options: nosniff",
    "Connection: close",
    "", "",
  }, "\r\n")
  sock:settimeout(2)
  sock:send(head .. body)
  sock:close()
end

-- Where to listen and which redirect URI to announce: the configured
-- loopback redirect URI (its port when it has one, else a random one), or
-- http://127.0.0.1:<random>/callback.
--
-- A `localhost` redirect URI is served on 127.0.0.1 AND [::1], same port,
-- and the login fails when either is taken: the browser may resolve
-- localhost to either address, and whoever else listens on the other one
-- would receive the code and state (RFC 8252 §8.3). Only a system without
-- IPv6 (nobody can listen on ::1 there) is served on 127.0.0.1 alone.
local function loopback_target(p, opts)
  local configured = opts.redirect_uri or p.options.redirect_uri
  local host, port, path = "127.0.0.1", 0, M.DEFAULT_PATH
  local hosts
  local uri_host = host
  if configured and not is_oob(configured) then
    local u = url.parse(configured)
    if not u or u.scheme ~= "http" or not url.is_loopback(u.host) then
      return cfg_err("the loopback flow needs an http://127.0.0.1 redirect URI, not '" .. configured .. "'")
    end
    port = u.port or 0
    path = u.path ~= "" and u.path or "/"
    uri_host = u.host
    if u.host == "[::1]" then host = "::1" end
    local h = u.host:lower()
    if h == "localhost" or h:match("%.localhost$") then hosts = { "127.0.0.1", "::1" } end
  end
  if opts.port then port = math.tointeger(opts.port) or error("login: option 'port' must be an integer", 4) end
  if opts.path then path = opts.path end
  return { hosts = hosts or { host }, uri_host = uri_host, port = port, path = path }
end

local function bind(host, port)
  if host ~= "::1" then return socket.bind(host, port, 8) end
  local server, err = socket.tcp6()
  if not server then return nil, err end
  local ok, berr = server:bind(host, port)
  if ok then ok, berr = server:listen(8) end
  if not ok then
    server:close()
    return nil, berr
  end
  return server
end

-- errors that say this system has no IPv6 loopback at all
local function no_ipv6(err)
  err = tostring(err):lower()
  return err:find("family not supported", 1, true) or err:find("assign requested address", 1, true)
end

-- Listeners on every host of the target, one port: a list of server
-- sockets and the port, or nil, err.
local function listen(target)
  local hosts = target.hosts
  local last_err
  -- a random port free on 127.0.0.1 may be taken on ::1: try a few
  for _ = 1, (target.port == 0 and #hosts > 1) and 8 or 1 do
    local servers, port = {}, target.port
    local err, failed
    for i, host in ipairs(hosts) do
      local server, berr = bind(host, port)
      if server then
        server:settimeout(0)
        servers[#servers + 1] = server
        local _, p = server:getsockname()
        port = math.tointeger(tonumber(p))
      elseif not (i > 1 and host == "::1" and no_ipv6(berr)) then
        err, failed = berr, host
        break
      end
    end
    if not err then return servers, port end
    for _, server in ipairs(servers) do server:close() end
    last_err = errors.new("network", "cannot listen on " .. failed .. " port " .. port .. ": " .. tostring(err) ..
      (#hosts > 1 and " (the redirect URI names localhost, which a browser may reach on 127.0.0.1 or ::1:" ..
        " both must be free)" or ""))
    if target.port ~= 0 or tostring(err) ~= "address already in use" then break end
  end
  return nil, last_err
end

-- One HTTP request's start line and headers from a connection's buffer.
local function parse_request(buf)
  local head = buf:match("^(.-)\r?\n\r?\n")
  if not head then return nil end
  local method, target = head:match("^(%u+) (%S+) HTTP/1%.[01]")
  return method or false, target
end

-- Serve the loopback listener until one valid callback arrives: a request
-- to the callback path whose state matches. Everything else (favicon,
-- other paths, other states, silent preconnections) is answered or dropped
-- and the flow goes on.
local function serve_callback(servers, cb_path, session, deadline, handle)
  local clients = {}
  local listening = {}
  for _, server in ipairs(servers) do listening[server] = true end
  local function drop(c)
    for i, x in ipairs(clients) do
      if x == c then table.remove(clients, i) break end
    end
    c.sock:close()
  end
  local guard <close> = setmetatable({}, { __close = function()
    for _, c in ipairs(clients) do c.sock:close() end
    for _, server in ipairs(servers) do server:close() end
  end })
  local _ = guard
  while true do
    local now = socket.gettime()
    local left = deadline - now
    if left <= 0 then return nil end
    local socks, by_sock = {}, {}
    for i, server in ipairs(servers) do socks[i] = server end
    for _, c in ipairs(clients) do
      socks[#socks + 1] = c.sock
      by_sock[c.sock] = c
    end
    for _, s in ipairs(wait_readable(socks, math.min(left, 1))) do
      if listening[s] then
        local sock = s:accept()
        if sock then
          sock:settimeout(0)
          if #clients >= MAX_CLIENTS then drop(clients[1]) end
          clients[#clients + 1] = { sock = sock, buf = "", since = socket.gettime() }
        end
      elseif by_sock[s] then
        local c = by_sock[s]
        local data, err, partial = s:receive(4096)
        local chunk = data or partial
        if chunk and #chunk > 0 then c.buf = c.buf .. chunk end
        local method, target = parse_request(c.buf)
        if method == nil and #c.buf > MAX_REQUEST then
          respond(s, 431, "Request too large", "This request is too large.")
          drop(c)
        elseif method == nil then
          if err == "closed" then drop(c) end
        elseif method == false then
          respond(s, 400, "Bad request", "This is not a request this page understands.")
          drop(c)
        elseif method ~= "GET" then
          respond(s, 405, "Method not allowed", "Only the browser's redirect is expected here.")
          drop(c)
        else
          local path, query = target:match("^([^?#]*)%??([^#]*)")
          local params = path == cb_path and url.decode(query) or nil
          if path ~= cb_path then
            respond(s, 404, "Not found", "Nothing here.")
            drop(c)
          elseif not params or type(params.state) ~= "string"
              or not core.ct_equal(params.state, session.state) then
            respond(s, 400, "Not this login",
              "This address does not belong to the login in progress. Go back to the application and try again.")
            drop(c)
          else
            -- the one valid callback: answer after the code is exchanged, so
            -- that the page tells the truth
            local tok, herr = handle(target)
            if tok then
              respond(s, 200, "Login complete", "You are logged in. You may close this tab.")
            else
              respond(s, 200, "Login failed", tostring(herr) ..
                ". You may close this tab and try again from the application.")
            end
            drop(c)
            return true, tok, herr
          end
        end
      end
    end
    now = socket.gettime()
    for i = #clients, 1, -1 do
      if now - clients[i].since > CLIENT_IDLE then drop(clients[i]) end
    end
  end
end

local function loopback(p, opts, ui)
  local target, terr = loopback_target(p, opts)
  if not target then return nil, terr end
  local servers, port = listen(target)
  if not servers then return nil, port end
  local function close_all()
    for _, server in ipairs(servers) do server:close() end
  end
  local redirect_uri = "http://" .. target.uri_host .. ":" .. port .. target.path
  local params = {}
  for k, v in pairs(opts.params or {}) do params[k] = v end
  params.redirect_uri, params.scope = redirect_uri, opts.scope
  local auth_url, session = p:authorization_url(params)
  if not auth_url then
    close_all()
    return nil, session
  end
  local timeout = opts.timeout or M.LOOPBACK_TIMEOUT
  local deadline = socket.gettime() + timeout
  local fds = {}
  for i, server in ipairs(servers) do fds[i] = server:getfd() end
  local ok_open, opened = pcall(ui.open, auth_url, { fds = fds })
  if not ok_open then
    close_all()
    error(opened, 0)
  end
  ui.show {
    flow = "loopback", url = auth_url, redirect_uri = redirect_uri, opened = opened == true,
    message = (opened and "Your browser has been opened to log in. If it did not open, visit:\n  "
      or "To log in, open this address in a browser on this computer:\n  ") .. M.display(auth_url),
  }
  local done, tok, err = serve_callback(servers, target.path, session, deadline, function(target_path)
    return p:exchange_code { url = redirect_uri:match("^(http://[^/]+)") .. target_path, session = session }
  end)
  if not done then
    return nil, errors.new("timeout", "no login arrived at " .. redirect_uri .. " within " ..
      timeout .. " s (the browser did not come back; run the login again)")
  end
  return tok, err
end

--------------------------------------------------------------------- oob

local function oob(p, opts, ui)
  local redirect = opts.redirect_uri or p.options.redirect_uri
  if not redirect or redirect == "oob" then redirect = M.OOB end
  local params = {}
  for k, v in pairs(opts.params or {}) do params[k] = v end
  params.redirect_uri, params.scope = redirect, opts.scope
  local auth_url, session = p:authorization_url(params)
  if not auth_url then return nil, session end
  local paste_what = redirect == M.OOB and "the code the page shows"
    or "the address of the page the browser lands on (it may not load)"
  ui.show {
    flow = "oob", url = auth_url, redirect_uri = redirect,
    message = "To log in, open this address in a browser, then paste " .. paste_what .. " here:\n  " ..
      M.display(auth_url),
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

------------------------------------------------------------------- login

local function device(p, opts, ui)
  local dev, err = p:device_authorization { scope = opts.scope }
  if not dev then return nil, err end
  -- all three come from the server: shown cleaned, here and in a host's UI
  local user_code, vuri = M.display(dev.user_code), M.display(dev.verification_uri)
  local complete = M.display(dev.verification_uri_complete)
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

--- Log a person in with the best flow the provider and the situation allow:
-- the loopback redirect when a browser can be opened here, else the device
-- flow when the provider has one, else the paste flow or a printed URL.
-- @param opts { flow = "loopback"|"device"|"oob", scope=, params = {extra
--   authorization parameters}, timeout = seconds (loopback), port=, path=,
--   redirect_uri=, open = function(url, ctx) -> opened | false (ctx.fds:
--   the listener's descriptors, which a process it starts must not inherit),
--   show = function(info) (info.flow, .message, .url, .user_code,
--   .verification_uri, ...), ask = function(prompt) -> string, sleep =
--   function(seconds), input = file (default stdin), output = file (default
--   stderr) }
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
