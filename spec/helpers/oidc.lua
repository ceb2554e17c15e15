-- spec/helpers/oidc.lua: drives the interop OpenID Provider (spec/interop/provider.js, the
-- npm package oidc-provider) from busted specs. It does not use the smartauth library.
--
--   local oidc = require "helpers.oidc"
--   local op = oidc.start()            -- or oidc.start{ access_token_ttl = 5, port = 0 }
--   op.issuer, op.port, op.admin_port, op.pid, op.kids, op.clients
--   op.pkjwt_key_file, op.pkjwt_jwk_file, op.pkjwt_kid, op.pkjwt_alg
--   op:rotate()                        -- new signing keys, new kids; returns the new kids
--   op:rotate{ keep_previous = true }  -- new keys sign, the old ones stay in the JWKS
--   op:login(authorization_url, { login = "alice", password = "x" })
--                                      -- -> "http://127.0.0.1:PORT/cb?code=...&state=...&iss=..."
--       creds.deny = true     -> the user clicks [ Cancel ]: the redirect carries error=access_denied
--       creds.session = {}    -> keep the OP's cookies in this table across calls (single sign-on:
--                                a second login with the same table skips the login form, and the
--                                consent too once granted; prompt=none then works)
--   op:device_login(verification_uri_complete, { login = "alice" })  -- -> true
--   op:stop()
--
-- Small HTTP/encoding helpers used by the specs are exported too: oidc.request,
-- oidc.form_encode, oidc.url_encode, oidc.url_decode, oidc.parse_query, oidc.b64url_decode,
-- oidc.jwt_decode.

local compat = require "smartauth.compat"
local http = require "socket.http"
local ltn12 = require "ltn12"
local mime = require "mime"
local cjson = require "cjson.safe"

local M = {}

---------------------------------------------------------------------------------------------
-- paths

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function cwd()
  local h = io.popen("pwd")
  local d = h:read("*l")
  h:close()
  return d
end

local function file_exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- repository root, from this file's location (spec/helpers/oidc.lua)
local function repo_root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  if src:sub(1, 1) ~= "/" then src = cwd() .. "/" .. src end
  return dirname(dirname(dirname(src)))
end

M.root = repo_root()
M.provider_js = M.root .. "/spec/interop/provider.js"

---------------------------------------------------------------------------------------------
-- encoding helpers

function M.url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- application/x-www-form-urlencoded; `t` is a map or a list of {name, value} pairs
function M.form_encode(t)
  local parts = {}
  if t[1] ~= nil then
    for _, kv in ipairs(t) do
      parts[#parts + 1] = M.url_encode(kv[1]) .. "=" .. M.url_encode(kv[2])
    end
  else
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = M.url_encode(k) .. "=" .. M.url_encode(t[k])
    end
  end
  return table.concat(parts, "&")
end

function M.url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- query (after "?") or fragment of a URL, or a bare query string -> map
function M.parse_query(s)
  local q = s:match("%?([^#]*)") or (s:find("=", 1, true) and not s:find("://", 1, true) and s) or ""
  local out = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[M.url_decode(k)] = M.url_decode(v)
  end
  return out
end

function M.b64url_decode(s)
  s = s:gsub("-", "+"):gsub("_", "/")
  s = s .. string.rep("=", (4 - #s % 4) % 4)
  return (mime.unb64(s))
end

-- decodes (does NOT verify) a compact JWS: header, payload, signature input, raw signature
function M.jwt_decode(jwt)
  local h, p, sig = tostring(jwt):match("^([%w_-]+)%.([%w_-]+)%.([%w_-]*)$")
  if not h then error("not a compact JWS: " .. tostring(jwt), 2) end
  return cjson.decode(M.b64url_decode(h)), cjson.decode(M.b64url_decode(p)), h .. "." .. p,
    M.b64url_decode(sig)
end

---------------------------------------------------------------------------------------------
-- HTTP

-- oidc.request{ method=, url=, body=, headers= } -> status, headers (lower-case keys), body
-- Never follows redirects. Errors on a connection failure.
function M.request(req)
  if type(req) == "string" then req = { url = req } end
  local chunks = {}
  local headers = {}
  for k, v in pairs(req.headers or {}) do headers[k:lower()] = v end
  local body = req.body
  if type(body) == "table" then
    body = M.form_encode(body)
    headers["content-type"] = headers["content-type"] or "application/x-www-form-urlencoded"
  end
  if body then headers["content-length"] = tostring(#body) end
  local ok, status, rheaders = http.request {
    method = req.method or (body and "POST" or "GET"),
    url = req.url,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
    redirect = false,
  }
  if not ok then
    error(string.format("HTTP %s %s failed: %s", req.method or "GET", req.url, tostring(status)), 2)
  end
  return status, rheaders or {}, table.concat(chunks)
end

-- request + JSON decode of the body -> status, decoded (or nil), headers, raw body
function M.request_json(req)
  local status, headers, body = M.request(req)
  return status, cjson.decode(body), headers, body
end

---------------------------------------------------------------------------------------------
-- starting and stopping the provider

local Op = {}
Op.__index = Op

local function node_modules_ok()
  return file_exists(M.root .. "/node_modules/oidc-provider/package.json")
end

-- opts: port, access_token_ttl, id_token_ttl, refresh_token_ttl, node (binary), timeout (s),
-- extend (a JS module adding clients and configuration: see spec/interop/provider.js),
-- tls = { cert=, key=, ca= } (PEM files: the provider serves https)
function M.start(opts)
  opts = opts or {}
  if not node_modules_ok() then
    error("helpers.oidc: node_modules/oidc-provider is missing in " .. M.root ..
      ": run npm ci (in " .. M.root .. ")", 2)
  end
  local node = opts.node or "node"
  local timeout = opts.timeout or 15
  local args = { shell_quote(M.provider_js) }
  if opts.port then args[#args + 1] = tostring(compat.tointeger(opts.port)) end
  if opts.access_token_ttl then args[#args + 1] = "--access-token-ttl=" .. compat.tointeger(opts.access_token_ttl) end
  if opts.id_token_ttl then args[#args + 1] = "--id-token-ttl=" .. compat.tointeger(opts.id_token_ttl) end
  if opts.refresh_token_ttl then
    args[#args + 1] = "--refresh-token-ttl=" .. compat.tointeger(opts.refresh_token_ttl)
  end
  args[#args + 1] = "--ready-timeout=" .. compat.tointeger(timeout)
  if opts.extend then args[#args + 1] = shell_quote("--extend=" .. opts.extend) end
  if opts.tls then
    args[#args + 1] = shell_quote("--tls-cert=" .. opts.tls.cert)
    args[#args + 1] = shell_quote("--tls-key=" .. opts.tls.key)
    if opts.tls.ca then args[#args + 1] = shell_quote("--tls-ca=" .. opts.tls.ca) end
  end

  local errfile = os.tmpname()
  args[#args + 1] = shell_quote("--stderr-file=" .. errfile)
  -- `exec` so that node's parent is this Lua process: it exits when we die.
  local cmd = "exec " .. shell_quote(node) .. " " .. table.concat(args, " ") .. " 2>" .. shell_quote(errfile)
  local h = io.popen(cmd, "r")
  if not h then
    os.remove(errfile)
    error("helpers.oidc: could not run " .. cmd, 2)
  end

  -- provider.js gives up by itself after `timeout` seconds, which ends this read.
  local ready, noise = nil, {}
  while true do
    local line = h:read("*l")
    if not line then break end
    local t = line:sub(1, 1) == "{" and cjson.decode(line) or nil
    if type(t) == "table" and t.issuer then
      ready = t
      break
    end
    noise[#noise + 1] = line
  end
  if not ready then
    h:close()
    local stderr = read_file(errfile)
    os.remove(errfile)
    error(string.format("helpers.oidc: the OpenID provider did not get ready (it exited, or gave up after %d s).\n" ..
      "command: %s\nstdout: %s\nstderr:\n%s", timeout, cmd, table.concat(noise, "\n"), stderr), 2)
  end

  local op = setmetatable(ready, Op)
  op.handle = h
  op.stderr_file = errfile
  op.admin_url = "http://127.0.0.1:" .. compat.tointeger(op.admin_port)
  op.discovery_url = op.issuer .. "/.well-known/openid-configuration"
  op.port = compat.tointeger(op.port)
  op.admin_port = compat.tointeger(op.admin_port)
  op.pid = compat.tointeger(op.pid)
  return op
end

function Op:stderr()
  return read_file(self.stderr_file)
end

function Op:running()
  return self.handle ~= nil
end

function Op:stop()
  if not self.handle then return end
  os.execute("kill -TERM " .. compat.tointeger(self.pid) .. " 2>/dev/null")
  self.handle:close() -- waits for node to exit
  self.handle = nil
  os.remove(self.stderr_file)
end

Op.__close = Op.stop
Op.__gc = Op.stop

function Op:health()
  local status, t, _, body = M.request_json { url = self.admin_url .. "/health" }
  if status ~= 200 or not t then error("op:health(): HTTP " .. tostring(status) .. ": " .. body, 2) end
  return t
end

-- new signing keys; returns the list of kids now in the JWKS
function Op:rotate(opts)
  local url = self.admin_url .. "/rotate"
  if opts and opts.keep_previous then url = url .. "?keep_previous=1" end
  local status, t, _, body = M.request_json { method = "POST", url = url, body = "" }
  if status ~= 200 or not t then error("op:rotate(): HTTP " .. tostring(status) .. ": " .. body, 2) end
  self.kids = t.kids
  return t.kids
end

---------------------------------------------------------------------------------------------
-- playing the user

local Jar = {}
Jar.__index = Jar

local function new_jar() return setmetatable({ cookies = {} }, Jar) end

-- LuaSocket folds repeated Set-Cookie headers into one string joined by ", ".
local function split_set_cookie(s)
  s = s:gsub("([Ee][Xx][Pp][Ii][Rr][Ee][Ss]=%a+), ", "%1 ")
  local out = {}
  for part in s:gmatch("[^,]+") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

local function url_path(url)
  return url:match("^%a[%w+.-]*://[^/?#]*(/[^?#]*)") or "/"
end

function Jar:store(url, set_cookie)
  if not set_cookie then return end
  for _, c in ipairs(split_set_cookie(set_cookie)) do
    local name, value = c:match("^([^=;]+)=([^;]*)")
    if name then
      local path, expired = nil, false
      for attr in c:gmatch(";%s*([^;]+)") do
        local k, v = attr:match("^([^=]+)=?(.*)$")
        k = k:lower()
        if k == "path" then path = v
        elseif k == "max-age" and tonumber(v) and tonumber(v) <= 0 then expired = true
        elseif k == "expires" and v:match("1970") then expired = true
        end
      end
      if not path or path:sub(1, 1) ~= "/" then
        path = url_path(url):match("^(.*)/[^/]*$")
        if path == "" then path = "/" end
      end
      local key = name .. "\0" .. path
      if expired then
        self.cookies[key] = nil
      else
        self.cookies[key] = { name = name, value = value, path = path }
      end
    end
  end
end

function Jar:header(url)
  local p = url_path(url)
  local parts = {}
  for _, c in pairs(self.cookies) do
    local cp = c.path
    if p == cp or cp == "/" or p:sub(1, #cp) == cp and (cp:sub(-1) == "/" or p:sub(#cp + 1, #cp + 1) == "/") then
      parts[#parts + 1] = c.name .. "=" .. c.value
    end
  end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, "; ") or nil
end

local function origin(url)
  return url:match("^(%a[%w+.-]*://[^/?#]*)")
end

local function resolve(base, ref)
  if ref:match("^%a[%w+.-]*://") then return ref end
  if ref:sub(1, 2) == "//" then return base:match("^(%a[%w+.-]*:)") .. ref end
  if ref:sub(1, 1) == "/" then return origin(base) .. ref end
  local dir = base:match("^([^?#]*/)") or (origin(base) .. "/")
  return dir .. ref
end

local function html_unescape(s)
  return (s:gsub("&(#?[%w]+);", function(e)
    if e == "amp" then return "&" elseif e == "lt" then return "<" elseif e == "gt" then return ">"
    elseif e == "quot" then return '"' elseif e == "apos" then return "'"
    elseif e:match("^#[xX]%x+$") then return compat.utf8_char(tonumber(e:sub(3), 16))
    elseif e:match("^#%d+$") then return compat.utf8_char(tonumber(e:sub(2)))
    end
    return "&" .. e .. ";"
  end))
end

local function attr(tag, name)
  local v = tag:match("%s" .. name .. "%s*=%s*\"([^\"]*)\"") or tag:match("%s" .. name .. "%s*=%s*'([^']*)'")
    or tag:match("%s" .. name .. "%s*=%s*([^%s>\"']+)")
  return v and html_unescape(v)
end

-- first <form> of a page -> { action=, method=, id=, fields = { {name, value, type} ... } }
local function parse_form(html)
  local open, inner = html:match("(<form[^>]*>)(.-)</form>")
  if not open then return nil end
  local form = {
    action = attr(open, "action"),
    method = (attr(open, "method") or "get"):upper(),
    id = attr(open, "id"),
    fields = {},
  }
  for tag in inner:gmatch("<input[^>]*>") do
    local name = attr(tag, "name")
    if name then
      form.fields[#form.fields + 1] = {
        name = name, value = attr(tag, "value") or "", type = (attr(tag, "type") or "text"):lower(),
      }
    end
  end
  return form
end

-- a short, readable summary of an HTML page for error messages
local function page_text(html)
  local t = html:gsub("<style.-</style>", ""):gsub("<script.-</script>", "")
  local pres = {}
  for pre in t:gmatch("<pre>(.-)</pre>") do pres[#pres + 1] = html_unescape(pre:gsub("<[^>]+>", "")) end
  if #pres > 0 then return table.concat(pres, "; ") end
  t = html_unescape(t:gsub("<[^>]+>", " ")):gsub("%s+", " ")
  return t:sub(1, 400)
end

-- Walks the browser side of an OP interaction. Returns ("redirect", url) on the first
-- redirect leaving the OP's origin (never fetched), or ("page", html, url) on a page
-- without a form.
function Op:_browse(url, creds, what)
  creds = creds or {}
  local jar
  if creds.session then
    creds.session.jar = creds.session.jar or new_jar()
    jar = creds.session.jar
  else
    jar = new_jar()
  end
  local method, body, cur = "GET", nil, url
  local op_origin = origin(self.issuer)
  for _ = 1, 25 do
    local headers = { ["user-agent"] = "smartauth-spec-browser" }
    local cookie = jar:header(cur)
    if cookie then headers.cookie = cookie end
    if body then headers["content-type"] = "application/x-www-form-urlencoded" end
    local status, rh, rbody = M.request { method = method, url = cur, body = body, headers = headers }
    jar:store(cur, rh["set-cookie"])
    if status >= 300 and status < 400 then
      if not rh.location then
        error(string.format("%s: HTTP %d without Location at %s", what, status, cur), 3)
      end
      local loc = resolve(cur, rh.location)
      if origin(loc) ~= op_origin then return "redirect", loc end
      method, body, cur = "GET", nil, loc
    elseif status == 200 then
      local form = parse_form(rbody)
      if not form then return "page", rbody, cur end
      local abort = attr(rbody:match("<a[^>]-href=\"[^\"]-/abort\"[^>]*>") or "", "href")
      if creds.deny and abort then
        -- the user clicks [ Cancel ] on the (first) login or consent page
        method, body, cur = "GET", nil, resolve(cur, abort)
      else
        local fields = {}
        for _, f in ipairs(form.fields) do
          local v = f.value
          if f.name == "login" then
            v = creds.login or "alice"
          elseif f.name == "password" then
            v = creds.password or "x"
          elseif f.name == "user_code" and v == "" then
            v = creds.user_code or error(string.format(
              "%s: the OP asks for a user code at %s but none was given", what, cur), 3)
          end
          fields[#fields + 1] = { f.name, v }
        end
        if form.method ~= "POST" then
          error(string.format("%s: unexpected %s form at %s", what, form.method, cur), 3)
        end
        method, body, cur = "POST", M.form_encode(fields), resolve(cur, form.action or cur)
      end
    else
      error(string.format("%s: unexpected HTTP %d at %s: %s", what, status, cur, page_text(rbody)), 3)
    end
  end
  error(what .. ": too many steps (redirect or form loop) starting at " .. url, 3)
end

-- Plays the user for an authorization request: login form, then consent form. Returns the
-- full URL of the redirect to the client's redirect_uri (code, state, iss, or error=...).
function Op:login(authorization_url, creds)
  local kind, result, at = self:_browse(authorization_url, creds, "op:login")
  if kind ~= "redirect" then
    error("op:login: ended on a page instead of a redirect to the client at " .. at .. ": " ..
      page_text(result), 2)
  end
  return result
end

-- Plays the user for the device flow: verification_uri_complete (or verification_uri with
-- creds.user_code), confirm, login, consent. Returns true on the OP's success page.
function Op:device_login(verification_uri, creds)
  local kind, result, at = self:_browse(verification_uri, creds, "op:device_login")
  if kind == "page" and result:find("Sign%-in Success") then return true end
  if kind == "redirect" then error("op:device_login: unexpected redirect to " .. result, 2) end
  error("op:device_login: ended on " .. at .. ": " .. page_text(result), 2)
end

return M
