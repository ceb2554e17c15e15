--- Internal: URL helpers: the few pieces of RFC 3986 the client needs.
-- @module smartauth.url
local M = {}

-- smartauth.core (it maps libcrypto) loads on the first form encoded or
-- decoded: `require "smartauth"` and a token cached in memory need none.
local core_mod
local function core()
  if not core_mod then core_mod = require "smartauth.core" end
  return core_mod
end

--- The out-of-band redirect URI of native and CLI apps (SmartFile, SmartTask).
M.OOB = "urn:ietf:wg:oauth:2.0:oob"

--- Is `v` the out-of-band redirect URI (or its short form "oob")?
function M.is_oob(v)
  return v == M.OOB or v == "oob"
end

--- Split an absolute http(s) URL. Returns {scheme, host, port, path, query,
-- fragment} or nil, message.
function M.parse(u)
  if type(u) ~= "string" then return nil, "not a string" end
  if u:find("[%s%c]") then return nil, "contains whitespace or control characters" end
  local scheme, rest = u:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL" end
  scheme = scheme:lower()
  local authority, tail = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then return nil, "user information in URLs is not allowed" end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^(%[[%x:.]+%])(.*)$")
  else
    host, port = authority:match("^([^:]*)(.*)$")
  end
  if not host or host == "" then return nil, "no host" end
  if port ~= "" then
    port = port:match("^:(%d+)$")
    if not port or tonumber(port) > 65535 then return nil, "invalid port" end
    port = tonumber(port)
  else
    port = nil
  end
  local path, query, fragment = tail:match("^([^?#]*)%??([^#]*)#?(.*)$")
  return {
    scheme = scheme, host = host:lower(), port = port, path = path,
    query = query, fragment = fragment,
  }
end

--- Is the host a loopback address (127.0.0.0/8, ::1, localhost)?
function M.is_loopback(host)
  host = host:lower()
  if host == "localhost" or host == "[::1]" or host:match("%.localhost$") then return true end
  local a = host:match("^127%.(%d+)%.(%d+)%.(%d+)$")
  return a ~= nil
end

-- URLs check_endpoint accepted, per allow_http: p:request checks its URL
-- on every call, and the patterns cost more than the rest of the Lua
-- layer of a GET. A pure function of the string; bounded.
local accepted = { [true] = {}, [false] = {} }
local naccepted = 0

local check_endpoint

--- Check an endpoint: https, or http on a loopback host, or http with the
-- explicit opt-in. Returns true or nil, message.
function M.check_endpoint(u, allow_http)
  local known = accepted[allow_http and true or false]
  if known[u] then return true end
  local ok, err = check_endpoint(u, allow_http)
  if ok then
    if naccepted >= 256 then
      accepted, naccepted = { [true] = {}, [false] = {} }, 0
      known = accepted[allow_http and true or false]
    end
    known[u], naccepted = true, naccepted + 1
  end
  return ok, err
end

function check_endpoint(u, allow_http)
  local p, err = M.parse(u)
  if not p then return nil, err end
  if p.scheme == "https" then return true end
  if p.scheme == "http" then
    if allow_http or M.is_loopback(p.host) then return true end
    return nil, "plain http is only allowed for loopback hosts (or with allow_http = true)"
  end
  return nil, "scheme must be https"
end

--- Encode a table as a query/form string with sorted keys (stable bytes);
-- a list value repeats the name.
function M.encode(params)
  local names, n = {}, 0
  for k in pairs(params) do n = n + 1; names[n] = k end
  if n > 1 then table.sort(names) end
  local flat, m = {}, 0
  for i = 1, n do
    local k = names[i]
    local v = params[k]
    if type(v) == "table" then
      for _, item in ipairs(v) do flat[m + 1], flat[m + 2], m = k, tostring(item), m + 2 end
    elseif v ~= false then
      flat[m + 1], flat[m + 2], m = k, tostring(v), m + 2
    end
  end
  return core().form_encode(flat)
end

--- Append query parameters to a URL (keeps an existing query, drops nothing).
function M.add_query(u, params)
  local q = type(params) == "string" and params or M.encode(params)
  if q == "" then return u end
  local base, frag = u:match("^([^#]*)(#?.*)$")
  return base .. (base:find("?", 1, true) and "&" or "?") .. q .. frag
end

-- The first name that occurs twice in q (decoded), for the message.
local function repeated_name(q)
  local seen = {}
  for pair in q:gmatch("[^&]+") do
    local name = next(core().form_decode(pair) or {})
    if name ~= nil and seen[name] then return name end
    if name ~= nil then seen[name] = true end
  end
end

--- Parse a query string into a table; nil, message on a malformed escape
-- or a repeated name (RFC 6749 §3.1: a parameter must not be included more
-- than once; "last wins" would let an attacker append his own code or state).
function M.decode(q)
  local t, _, err = core().form_decode(q)
  if not t then return nil, err end
  -- the C parser makes one entry per non-empty '&' segment: fewer names
  -- than segments means a name came twice
  local segments, names = 0, 0
  for _ in q:gmatch("[^&]+") do segments = segments + 1 end
  for _ in next, t do names = names + 1 end
  if names ~= segments then
    local name = repeated_name(q) or "?"
    if not name:match("^[%w_.-]+$") or #name > 40 then name = "?" end
    return nil, "parameter '" .. name .. "' is repeated"
  end
  return t
end

--- Resolve a path against a base URL ("https://h/api/2/" + "/user" -> ".../api/2/user").
function M.join(base, path)
  if path:match("^%a[%w+.-]*://") or not base then return path end
  return (base:gsub("/+$", "")) .. "/" .. (path:gsub("^/+", ""))
end

--- Is `w` one of the space-delimited words of `s` (scope, response_type)?
function M.has_word(s, w)
  return type(s) == "string" and (" " .. s .. " "):find(" " .. w .. " ", 1, true) ~= nil
end

M.MAX_RESOURCES = 32 -- resource indicators in one request: more is a mistake, not a need

-- One RFC 8707 resource indicator: an absolute URI (a scheme and more),
-- no fragment, nothing a form or a header could misread.
local function resource_ok(v)
  if type(v) ~= "string" then return nil, "must be a string or a list of strings" end
  if #v > 2048 then return nil, "is longer than 2048 bytes" end
  if v:find("[%s%c]") then return nil, "contains whitespace or control characters" end
  if not v:find("^%a[%w+.-]*:.") then return nil, "is not an absolute URI" end
  if v:find("#", 1, true) then return nil, "must not have a fragment" end
  return true
end

--- Check RFC 8707 resource indicators (§2: absolute URIs without a
-- fragment): a string, or a non-empty list of them (sent as repeated
-- `resource` parameters, url.encode's list form).
-- @return the value (a list is copied), or nil, reason
function M.check_resource(v)
  if type(v) ~= "table" then
    local ok, msg = resource_ok(v)
    if not ok then return nil, msg end
    return v
  end
  local n = #v
  if n == 0 then return nil, "must not be an empty list" end
  if n > M.MAX_RESOURCES then return nil, "has more than " .. M.MAX_RESOURCES .. " entries" end
  local out = {}
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      return nil, "must be a list (keys 1..n)"
    end
  end
  for i = 1, n do
    local ok, msg = resource_ok(v[i])
    if not ok then return nil, "entry " .. i .. " " .. msg end
    out[i] = v[i]
  end
  return out
end

--- Is `v` a usable redirect URI: the out-of-band URN, http(s) under the
-- endpoint rules, or a native app's private-use scheme (RFC 8252 §7.1)?
-- @return true or nil, reason
function M.check_redirect_uri(v, allow_http)
  if M.is_oob(v) then return true end
  local scheme = v:match("^(%a[%w+.-]*):")
  if not scheme then return nil, "is not an absolute URI" end
  scheme = scheme:lower()
  if scheme == "http" or scheme == "https" then
    return M.check_endpoint(v, allow_http)
  end
  return true
end

return M
