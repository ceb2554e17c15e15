--- Internal: The loopback redirect listener of native apps (RFC 8252 §7.3): listen
-- on 127.0.0.1 (and [::1] for a localhost redirect URI), answer every
-- request the browser sends, and hand the one valid callback to the login:
-- a GET redirect, or a form_post response (the browser POSTs a form), as a
-- callback URL whose query is the form.
-- The only module that needs LuaSocket; smartauth.flow loads it when a
-- loopback login starts.
-- @module smartauth.flow.loopback
local compat = require "smartauth.compat"
local socket = require "socket"
local core = require "smartauth.core"
local engine = require "smartauth.engine"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local url = require "smartauth.url"

local M = {}

M.DEFAULT_PATH = "/callback"

local MAX_REQUEST = 16384 -- bytes of request line and headers the listener reads
local MAX_CLIENTS = 16    -- open connections the listener keeps (browsers preconnect)
local CLIENT_IDLE = 10    -- seconds a silent connection may stay open
M.MAX_FORM = 65536        -- bytes of a form_post body (authcode's callback limit)

-- The one place the listener waits, so that a non-blocking engine can take
-- it over.
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

-- --------------------------------------------------------------- answers

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
  [411] = "Length Required", [413] = "Content Too Large", [415] = "Unsupported Media Type",
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

-- ------------------------------------------------------------- listening

--- Where to listen and which redirect URI to announce: the configured
-- loopback redirect URI (its port when it has one, else a random one), or
-- http://127.0.0.1:<random>/callback.
--
-- A `localhost` redirect URI is served on 127.0.0.1 AND [::1], same port,
-- and the login fails when either is taken: the browser may resolve
-- localhost to either address, and whoever else listens on the other one
-- would receive the code and state (RFC 8252 §8.3). Only a system without
-- IPv6 (nobody can listen on ::1 there) is served on 127.0.0.1 alone.
-- @param configured the redirect URI asked for (nil or out of band: none)
-- @param opts { port=, path= } overrides
-- @return { hosts, uri_host, port, path } or nil, err (config)
function M.target(configured, opts)
  local host, port, path = "127.0.0.1", 0, M.DEFAULT_PATH
  local hosts
  local uri_host = host
  if configured and not url.is_oob(configured) then
    local u = url.parse(configured)
    if not u or u.scheme ~= "http" or not url.is_loopback(u.host) then
      return nil, errors.new("config", "the loopback flow needs an http://127.0.0.1 redirect URI, not '" ..
        configured .. "'")
    end
    port = u.port or 0
    path = u.path ~= "" and u.path or "/"
    uri_host = u.host
    if u.host == "[::1]" then host = "::1" end
    local h = u.host:lower()
    if h == "localhost" or h:match("%.localhost$") then hosts = { "127.0.0.1", "::1" } end
  end
  if opts.port then port = compat.tointeger(opts.port) or error("login: option 'port' must be an integer", 4) end
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

-- Server sockets on every host of the target, one port: the list and the
-- port, or nil, err.
local function bind_all(target)
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
        port = compat.tointeger(tonumber(p))
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

local Listener = { __name = "smartauth.flow.listener" }
Listener.__index = Listener

--- Listen on a target (from M.target).
-- @return a listener { redirect_uri = the URI to announce, port } or nil, err
function M.listen(target)
  local servers, port = bind_all(target)
  if not servers then return nil, port end
  return setmetatable({
    servers = servers, port = port, path = target.path,
    origin = "http://" .. target.uri_host .. ":" .. port,
    redirect_uri = "http://" .. target.uri_host .. ":" .. port .. target.path,
  }, Listener)
end

--- The listening descriptors: a process the login starts (the browser)
-- must not inherit them.
function Listener:fds()
  local fds = {}
  for i, server in ipairs(self.servers) do fds[i] = server:getfd() end
  return fds
end

--- Stop listening. Harmless on a second call.
function Listener:close()
  for _, server in ipairs(self.servers) do server:close() end
end

-- One HTTP request's start line and headers from a connection's buffer:
-- method (false: not HTTP), target, the head, and the body's offset.
local function parse_request(buf)
  local head, stop = buf:match("^(.-)\r?\n\r?\n()")
  if not head then return nil end
  local method, target = head:match("^(%u+) (%S+) HTTP/1%.[01]")
  return method or false, target, head, stop
end

-- A header's value (lower-case name) and how often it came.
local function header(head, name)
  local value, n = nil, 0
  for line in head:gmatch("\n([^\r\n]*)") do
    local k, v = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if k and k:lower() == name then value, n = v, n + 1 end
  end
  return value, n
end

-- A form_post request's body: the form text, or nil, status, title, text
-- (the answer), or false while the body is still coming.
local function form_body(buf, head, stop)
  local te = header(head, "transfer-encoding")
  if te then return nil, 411, "Length required", "Send the form with a Content-Length." end
  local ctype = (header(head, "content-type") or ""):lower()
  if not ctype:find("^application/x%-www%-form%-urlencoded%s*;?") then
    return nil, 415, "Unsupported form", "Only a URL-encoded form is expected here."
  end
  local len, n = header(head, "content-length")
  if n ~= 1 or not len:find("^%d+$") then
    return nil, 411, "Length required", "Send the form with one Content-Length."
  end
  if #len > 7 or tonumber(len) > M.MAX_FORM then
    return nil, 413, "Form too large", "This form is too large."
  end
  len = tonumber(len)
  if #buf - stop + 1 < len then return false end
  local body = buf:sub(stop, stop + len - 1)
  if body:find("[^%w%%&=+._~*-]") then
    return nil, 400, "Bad request", "This form is not URL-encoded."
  end
  return body
end

-- The state a callback carries: its parameter, or in a JARM response the
-- JWT's (read unverified, only to route the request: exchange_code
-- verifies the response); true for an encrypted one, which only the login
-- can open.
local function callback_state(params)
  if params.state ~= nil or type(params.response) ~= "string" then return params.state end
  local r = params.response
  local _, dots = r:gsub("%.", "")
  if dots == 4 then return true end
  local raw = core.b64url_decode(r:match("^[^.]*%.([^.]*)%.[^.]*$") or "")
  local c = raw and json.object(raw)
  return c and c.state
end

-- Listener:serve's loop; `clients` are the connections it keeps open.
local function serve(self, state, timeout, handle, clients)
  local deadline = socket.gettime() + timeout
  local listening = {}
  for _, server in ipairs(self.servers) do listening[server] = true end
  local function drop(c)
    for i, x in ipairs(clients) do
      if x == c then table.remove(clients, i) break end
    end
    c.sock:close()
  end
  while true do
    local now = socket.gettime()
    local left = deadline - now
    if left <= 0 then return nil end
    local socks, by_sock = {}, {}
    for i, server in ipairs(self.servers) do socks[i] = server end
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
        local method, target, head, stop = parse_request(c.buf)
        local form, status, title, text
        if method == "POST" then
          local path, query = target:match("^([^?#]*)(.*)")
          if path ~= self.path then
            form, status, title, text = nil, 404, "Not found", "Nothing here."
          elseif query ~= "" then
            -- a form_post response has no query: not a request this page takes
            form, status, title, text = nil, 405, "Method not allowed",
              "Only the browser's redirect or its form_post response is expected here."
          else
            form, status, title, text = form_body(c.buf, head, stop)
          end
        end
        if method == nil and #c.buf > MAX_REQUEST then
          respond(s, 431, "Request too large", "This request is too large.")
          drop(c)
        elseif method == nil then
          if err == "closed" then drop(c) end
        elseif method == false then
          respond(s, 400, "Bad request", "This is not a request this page understands.")
          drop(c)
        elseif method == "POST" and form == false then
          if err == "closed" then drop(c) end
        elseif method == "POST" and not form then
          respond(s, status, title, text)
          drop(c)
        elseif method ~= "GET" and method ~= "POST" then
          respond(s, 405, "Method not allowed", "Only the browser's redirect is expected here.")
          drop(c)
        else
          local path, query = target:match("^([^?#]*)%??([^#]*)")
          if form then
            -- the login reads a form_post response as the callback's query
            query = form
            target = path .. "?" .. form
          end
          local params = path == self.path and url.decode(query) or nil
          local got = params and callback_state(params)
          if path ~= self.path then
            respond(s, 404, "Not found", "Nothing here.")
            drop(c)
          elseif got ~= true and (type(got) ~= "string" or not core.ct_equal(got, state)) then
            respond(s, 400, "Not this login",
              "This address does not belong to the login in progress. Go back to the application and try again.")
            drop(c)
          else
            local tok, herr = handle(self.origin .. target)
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

--- Serve until one valid callback arrives, then stop listening: a request
-- to the callback path whose state matches. Everything else (favicon,
-- other paths, other states, silent preconnections) is answered or dropped
-- and the wait goes on.
-- @param state the login's state
-- @param timeout seconds to wait
-- @param handle function(callback_url) -> tok | nil, err: the page the
--   browser gets says which (it answers after the code is exchanged, so
--   that it tells the truth)
-- @return true, tok, err when the callback came; nil on timeout
function Listener:serve(state, timeout, handle)
  local clients = {}
  local function stop()
    for _, c in ipairs(clients) do c.sock:close() end
    self:close()
  end
  -- The listener stops however serving ends. In a task, handle may yield,
  -- which 5.1 cannot do across a pcall: a failed or cancelled task stops
  -- it through on_cancel instead.
  local release = engine.on_cancel(stop)
  local r
  if engine.current() then
    r = compat.pack(true, serve(self, state, timeout, handle, clients))
  else
    r = compat.pack(pcall(serve, self, state, timeout, handle, clients))
  end
  release()
  stop()
  if not r[1] then error(r[2], 0) end
  return compat.unpack(r, 2, r.n)
end

return M
