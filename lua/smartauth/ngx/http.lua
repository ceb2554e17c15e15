--- Internal: the HTTP/1.1 client of the ngx transport, over nginx
-- cosockets (`ngx.socket.tcp`): the bytes-on-the-wire half of
-- engine.request inside nginx. It sends one request and reads one answer
-- (status line, headers, a Content-Length, chunked or read-to-close body)
-- within the libcurl engine's limits (200 headers, 192 KiB of headers, the
-- request's max_body), follows no redirect, keeps connections alive in
-- pools per scheme, host, port and client certificate, and fails with the
-- libcurl engine's error kinds (network, timeout, tls, http). TLS is
-- verified against nginx's `lua_ssl_trusted_certificate`, with SNI.
--
-- The parser reads from any object with `receiveany(max)` and
-- `receive(n)` (cosocket semantics: data, or nil, "closed"|"timeout"|msg),
-- so specs drive it with a fake socket outside nginx.
-- @module smartauth.ngx.http
local errors = require "smartauth.errors"
local url = require "smartauth.url"

local M = {}

M.MAX_HEADERS = 200           -- as the libcurl engine (http_impl.h)
M.MAX_HEADER_BYTES = 196608   -- 192 KiB, as the libcurl engine
M.DEFAULT_MAX_BODY = 1048576  -- 1 MiB, as the libcurl engine
M.DEFAULT_TIMEOUT = 30        -- seconds for the whole exchange, as the libcurl engine
M.DEFAULT_CONNECT_TIMEOUT = 10
M.KEEPALIVE_IDLE = 60000      -- ms an idle pooled connection is kept
M.KEEPALIVE_POOL = 16         -- idle connections kept per pool and worker
local MAX_CHUNK_LINE = 1024   -- a chunk-size line: hex digits and extensions
local READ_SIZE = 16384

local function http_err(msg, fields)
  return nil, errors.new("http", msg, fields)
end

local function malformed(msg)
  return http_err("malformed response: " .. msg)
end

-- A failure reading from the socket: a timeout, or the connection gone.
local function io_err(err, what)
  if err == "timeout" then
    return nil, errors.new("timeout", "timed out " .. what)
  end
  return nil, errors.new("network", "connection " .. (err == "closed" and "closed" or "failed: " .. tostring(err))
    .. " " .. what)
end

-- ----------------------------------------------------------- the reader

-- Bytes read but not yet used, over a socket: lines within a limit, exact
-- lengths, what is left until the peer closes.
local Reader = {}
Reader.__index = Reader

--- A reader over sock; `before(what)` (optional) is called before every
-- socket read and returns nil, err to stop (the overall deadline).
function M.reader(sock, before)
  return setmetatable({ sock = sock, buf = "", before = before, got = false }, Reader)
end

function Reader:fill(what)
  if self.before then
    local ok, err = self.before(what)
    if not ok then return nil, err end
  end
  local data, err = self.sock:receiveany(READ_SIZE)
  if not data then return io_err(err, what) end
  self.got = true
  self.buf = self.buf .. data
  return true
end

-- One line without its CRLF (a bare LF ends a line too, as libcurl
-- accepts); nil, err past `limit` bytes without an end.
function Reader:line(limit, what, too_long)
  while true do
    local i = self.buf:find("\n", 1, true)
    if i then
      if i - 1 > limit then return too_long() end
      local line = self.buf:sub(1, i - 1)
      self.buf = self.buf:sub(i + 1)
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      return line
    end
    if #self.buf > limit then return too_long() end
    local ok, err = self:fill(what)
    if not ok then return nil, err end
  end
end

-- Exactly n bytes (n already checked against the body limit).
function Reader:exact(n, what)
  local have = #self.buf
  if have >= n then
    local s = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return s
  end
  local head = self.buf
  self.buf = ""
  if self.before then
    local ok, err = self.before(what)
    if not ok then return nil, err end
  end
  local data, err = self.sock:receive(n - have)
  if not data then return io_err(err, what) end
  return head .. data
end

-- Everything until the peer closes, within max bytes.
function Reader:rest(max, what)
  local parts, total = { self.buf }, #self.buf
  self.buf = ""
  while total <= max do
    if self.before then
      local ok, err = self.before(what)
      if not ok then return nil, err end
    end
    local data, err = self.sock:receiveany(READ_SIZE)
    if not data then
      if err == "closed" then return table.concat(parts), nil end
      return io_err(err, what)
    end
    parts[#parts + 1] = data
    total = total + #data
  end
  return nil, "too large"
end

-- ------------------------------------------------------------ the parser

local function too_large_body(max)
  return http_err("response body exceeds the limit of " .. max .. " bytes")
end

local function headers_too_large()
  return http_err("response headers exceed the limit of " .. M.MAX_HEADER_BYTES .. " bytes")
end

-- The status line: "HTTP/1.x NNN reason".
local function status_line(line)
  local major, minor, status, rest = line:match("^HTTP/(%d)%.(%d) (%d%d%d)(.*)$")
  if not major then return nil end
  if major ~= "1" then return nil end
  if rest ~= "" and (rest:sub(1, 1) ~= " " or rest:find("[%z\1-\8\10-\31\127]")) then return nil end
  return tonumber(status), tonumber(minor)
end

-- A header field value as RFC 9110 allows (no control characters but HTAB).
local function field(line)
  local name, value = line:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
  if not name then return nil end
  if value:find("[%z\1-\8\10-\31\127]") then return nil end
  return name:lower(), value
end

local function read_headers(r)
  local headers, n, bytes = {}, 0, 0
  while true do
    local left = M.MAX_HEADER_BYTES - bytes
    local line, err = r:line(left, "reading the response headers", headers_too_large)
    if not line then return nil, err end
    bytes = bytes + #line + 2
    if bytes > M.MAX_HEADER_BYTES then return headers_too_large() end
    if line == "" then return headers end
    if line:find("^[ \t]") then return malformed("obsolete header line folding") end
    local name, value = field(line)
    if not name then return malformed("bad header line") end
    n = n + 1
    if n > M.MAX_HEADERS then
      return http_err("response has more than " .. M.MAX_HEADERS .. " headers")
    end
    local prev = headers[name]
    -- repeats joined as RFC 9110 §5.3 allows (as the libcurl engine does)
    headers[name] = prev and (prev .. ", " .. value) or value
  end
end

local function read_chunked(r, max)
  local parts, total = {}, 0
  local function bad_line() return malformed("chunk size line too long") end
  while true do
    local line, err = r:line(MAX_CHUNK_LINE, "reading the response body", bad_line)
    if not line then return nil, err end
    local hex = line:match("^(%x+)[ \t]*$") or line:match("^(%x+)[ \t]*;")
    if not hex or #hex > 8 then return malformed("bad chunk size") end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, then the empty line
      local bytes = 0
      while true do
        local t, terr = r:line(M.MAX_HEADER_BYTES - bytes, "reading the response trailers", headers_too_large)
        if not t then return nil, terr end
        bytes = bytes + #t + 2
        if t == "" then return table.concat(parts) end
      end
    end
    total = total + size
    if total > max then return too_large_body(max) end
    local data, derr = r:exact(size, "reading the response body")
    if not data then return nil, derr end
    parts[#parts + 1] = data
    local crlf, cerr = r:exact(2, "reading the response body")
    if not crlf then return nil, cerr end
    if crlf ~= "\r\n" then return malformed("chunk not followed by CRLF") end
  end
end

--- Read one response from sock. method: the request's (a HEAD answer has
-- no body); max_body: bytes; before: see `reader`.
-- @return { status, headers (lower-case names), body, keepalive } or nil, err
--   (http for a malformed or oversized answer, network/timeout for the socket)
function M.read_response(sock, method, max_body, before)
  max_body = max_body or M.DEFAULT_MAX_BODY
  local r = M.reader(sock, before)
  local status, minor, headers
  repeat
    local line, err = r:line(M.MAX_HEADER_BYTES, "reading the status line", headers_too_large)
    if not line then
      -- nothing at all came back: the connection was closed before an answer
      if not r.got and errors.is(err) then err.empty = true end
      return nil, err
    end
    status, minor = status_line(line)
    if not status then return malformed("bad status line") end
    if status < 100 or status > 599 then return malformed("bad status code") end
    headers, err = read_headers(r)
    if not headers then return nil, err end
    -- 1xx interim answers are skipped (101 is not asked for)
  until status >= 200
  local conn = (headers.connection or ""):lower():gsub("[,\t]", " ")
  local keepalive = not url.has_word(conn, "close") and (minor >= 1 or url.has_word(conn, "keep-alive"))
  local body, err
  local te = headers["transfer-encoding"]
  if method == "HEAD" or status == 204 or status == 304 then
    body = ""
  elseif te then
    if te:lower():match("^%s*(.-)%s*$") ~= "chunked" then
      return malformed("unsupported transfer encoding")
    end
    body, err = read_chunked(r, max_body)
    if not body then return nil, err end
  elseif headers["content-length"] then
    local cl = headers["content-length"]
    -- repeated equal values are one length (RFC 9110 §8.6); anything else is malformed
    local first = cl:match("^(%d+)")
    if not first or #first > 15 then return malformed("bad Content-Length") end
    for v in cl:gmatch("[^,]+") do
      if v:match("^%s*(.-)%s*$") ~= first then return malformed("bad Content-Length") end
    end
    local n = tonumber(first)
    if n > max_body then return too_large_body(max_body) end
    body, err = r:exact(n, "reading the response body")
    if not body then return nil, err end
  else
    keepalive = false
    body, err = r:rest(max_body, "reading the response body")
    if not body then
      if err == "too large" then return too_large_body(max_body) end
      return nil, err
    end
  end
  if r.buf ~= "" then keepalive = false end -- bytes after the answer: not reusable
  return { status = status, headers = headers, body = body, keepalive = keepalive }
end

-- ----------------------------------------------------- the request bytes

local NO_SEND = { host = true, ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

--- The request's bytes; nil, err (config) for a header that could split
-- the request (CR, LF or NUL) or is not "Name: value".
function M.build(method, u, headers, body)
  local target = (u.path ~= "" and u.path or "/") .. (u.query ~= "" and "?" .. u.query or "")
  local default_port = u.scheme == "https" and 443 or 80
  local host = u.host .. ((u.port and u.port ~= default_port) and ":" .. u.port or "")
  local out = { method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n" }
  local accept = false
  for _, h in ipairs(headers or {}) do
    if type(h) ~= "string" or h:find("[%z\r\n]") then
      return nil, errors.new("config", "a request header contains CR, LF or NUL")
    end
    local name = h:match("^([!#$%%&'*+%-.^_`|~%w]+):")
    if not name then return nil, errors.new("config", "a request header is not 'Name: value'") end
    local lname = name:lower()
    if not NO_SEND[lname] then
      if lname == "accept" then accept = true end
      out[#out + 1] = h
      out[#out + 1] = "\r\n"
    end
  end
  if not accept then out[#out + 1] = "Accept: */*\r\n" end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    out[#out + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  if body then out[#out + 1] = body end
  return table.concat(out)
end

-- ------------------------------------------------------------- a request

local function ms(s) return math.max(1, math.floor(s * 1000 + 0.5)) end

-- The client certificate and key, parsed once per worker (ngx.ssl's cdata).
local certs = {}

local function read_pem(v)
  if v:find("-----BEGIN", 1, true) then return v end
  local f = io.open(v, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function client_cert(req)
  local id = req.client_cert .. "\0" .. (req.client_key or "")
  local c = certs[id]
  if c then return c end
  if req.client_key_password then
    return nil, errors.new("config", "option 'client_key_password' is not supported under transport ngx " ..
      "(ngx.ssl reads unencrypted keys only)", { option = "client_key_password" })
  end
  local ok, ssl = pcall(require, "ngx.ssl")
  if not ok then return nil, errors.new("config", "client certificates need ngx.ssl (lua-resty-core)") end
  local cert_pem = read_pem(req.client_cert)
  local key_pem = read_pem(req.client_key or req.client_cert)
  if not cert_pem or not key_pem then
    return nil, errors.new("config", "cannot read the client certificate or key (the nginx workers' user " ..
      "reads the files; PEM text works too)", { option = "client_cert" })
  end
  local cert = ssl.parse_pem_cert(cert_pem)
  local key = ssl.parse_pem_priv_key(key_pem)
  if not cert or not key then
    return nil, errors.new("config", "the client certificate or key is not valid PEM", { option = "client_cert" })
  end
  c = { cert = cert, key = key, id = tostring(#certs + 1) }
  certs[#certs + 1] = c
  certs[id] = c
  return c
end

local function tls_err(msg)
  return nil, errors.new("tls", "TLS handshake failed: " .. tostring(msg))
end

--- Send one request over a cosocket (ngx.socket.tcp) and read its answer:
-- engine.request's contract (opts: method, url, headers, body, timeout,
-- connect_timeout, max_body, client_cert, client_key).
-- @param opts the request
-- @param now a monotonic clock in seconds
-- @return { status, headers, body, connects } or nil, err
function M.request(opts, now)
  local u, perr = url.parse(opts.url)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then
    return nil, errors.new("config", "bad URL: " .. tostring(perr or "not http or https"))
  end
  local method = opts.method or (opts.body and "POST" or "GET")
  local bytes, berr = M.build(method, u, opts.headers, opts.body)
  if not bytes then return nil, berr end
  local tls = u.scheme == "https"
  local port = u.port or (tls and 443 or 80)
  local host = u.host:gsub("^%[(.*)%]$", "%1")
  local cert
  if opts.client_cert then
    local cerr
    cert, cerr = client_cert(opts)
    if not cert then return nil, cerr end
  end
  -- one pool per destination and TLS identity: a connection made with a
  -- client certificate never serves a request without it
  local pool = u.scheme .. ":" .. host .. ":" .. port .. (cert and (":c" .. cert.id) or "")
  local timeout = opts.timeout or M.DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local function before(what)
    local left = deadline - now()
    if left <= 0 then return nil, errors.new("timeout", "timed out " .. what .. " (after " .. timeout .. " s)") end
    return true, left
  end
  local attempts = 0
  while true do
    attempts = attempts + 1
    local sock = rawget(_G, "ngx").socket.tcp()
    local ct = math.min(opts.connect_timeout or M.DEFAULT_CONNECT_TIMEOUT, math.max(0.001, deadline - now()))
    sock:settimeouts(ms(ct), ms(timeout), ms(timeout))
    local ok, err = sock:connect(host, port, { pool = pool })
    if not ok then
      if err == "timeout" then return nil, errors.new("timeout", "timed out connecting to " .. host .. ":" .. port) end
      local hint = ""
      if tostring(err):find("resolve", 1, true) then hint = " (nginx resolves names with its 'resolver' directive)" end
      return nil, errors.new("network", "cannot connect to " .. host .. ":" .. port .. ": " .. tostring(err) .. hint)
    end
    local reused = (sock:getreusedtimes() or 0) > 0
    if tls and not reused then
      if cert then
        local cok, cerr = sock:setclientcert(cert.cert, cert.key)
        if not cok then sock:close() return nil, errors.new("config", "client certificate: " .. tostring(cerr)) end
      end
      local sok, serr = sock:sslhandshake(false, host, true)
      if not sok then
        sock:close()
        if serr == "timeout" then return nil, errors.new("timeout", "timed out in the TLS handshake") end
        return tls_err(serr)
      end
    end
    local res
    local _, left = before("sending the request")
    if not left then sock:close() return before("sending the request") end
    sock:settimeouts(ms(ct), ms(left), ms(left))
    local sent, serr = sock:send(bytes)
    if sent then
      res, err = M.read_response(sock, method, opts.max_body, function(what)
        local okb, l = before(what)
        if okb then sock:settimeouts(ms(ct), ms(l), ms(l)) end
        return okb, l
      end)
    else
      err = select(2, io_err(serr, "sending the request"))
    end
    if res then
      if res.keepalive then sock:setkeepalive(M.KEEPALIVE_IDLE, M.KEEPALIVE_POOL) else sock:close() end
      res.keepalive = nil
      res.connects = reused and 0 or 1
      return res
    end
    sock:close()
    -- a kept-alive connection the server had closed: once more on a new one
    -- (the request was not answered, and a token request may be repeated)
    local stale = reused and (not sent or (err.empty and err.kind == "network"))
    if not stale or attempts >= 3 then
      err.empty = nil
      return nil, err
    end
  end
end

return M
