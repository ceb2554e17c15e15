--- Internal: The wire as the debug hook sees it (option `on_http`,
-- `smartauth.on_http`): one event per HTTP exchange, with every secret the
-- library knows redacted. Loaded by transport.lua on the first event only:
-- without a hook nothing here runs.
--
-- Redaction works in two passes. First by structure: the values of the
-- parameters and JSON fields that carry secrets (access_token, code,
-- code_verifier, client_assertion, device_code, ...) in the URL's query,
-- form and JSON bodies (request and response: a token response issues
-- tokens nobody knows yet), and the credentials of Authorization-type
-- headers. Then every string of the event is scrubbed (errors.scrub: raw,
-- form-encoded, JSON-escaped, base64) of the provider's secrets and of every
-- value the first pass found, so a server that echoes a request gives none
-- of it back. Written in the Lua 5.1 subset.
-- @module smartauth.wire
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local vault = require "smartauth.vault"

local M = {}

local REDACTED = "[redacted]"
M.REDACTED = REDACTED

--- Parameter and JSON field names whose values are secrets (lower case;
-- the list lives in vault.lua, beside the secrets).
M.SECRET_FIELDS = vault.SECRET_FIELDS
local SECRET_FIELDS = M.SECRET_FIELDS

-- Headers whose whole value is a credential; for the Authorization family
-- the scheme stays readable ("Bearer [redacted]").
-- A DPoP proof (RFC 9449) is a credential for one request: its value goes
-- whole.
local CREDENTIAL_HEADERS = {
  authorization = true, ["proxy-authorization"] = true, cookie = true, ["set-cookie"] = true,
  dpop = true,
}

-- Test-only: spec/on_http_spec.lua turns it on to prove that its secret
-- checks catch an event that was not redacted.
M._test_unredacted = false

local function add(list, v)
  if type(v) == "string" and v ~= "" then list[#list + 1] = v end
end

-- One "name=value" pair of a query or form: the value redacted when the
-- name is a secret's (decoded: "acc%65ss_token" is access_token too).
local function redact_pairs(q, secret_names, found)
  return (q:gsub("[^&]+", function(pair)
    local rawname = pair:match("^([^=]*)=")
    if not rawname then return nil end
    local t = core.form_decode(pair)
    local name, value = nil, nil
    if t then name, value = next(t) end
    if type(name) ~= "string" then name, value = rawname, pair:sub(#rawname + 2) end
    if not secret_names[name:lower()] then return nil end
    add(found, value)
    add(found, pair:sub(#rawname + 2))
    return rawname .. "=" .. REDACTED
  end))
end

-- A URL with the secrets of its query (and a password in its userinfo)
-- redacted.
local function redact_url(u, secret_names, found)
  if type(u) ~= "string" then return u end
  local base, query, frag = u:match("^([^?#]*)%??([^#]*)(#?.*)$")
  if not base then return u end
  base = base:gsub("^(%a[%w+.-]*://[^/@:]*:)([^/@]*)@", function(pre, pass)
    add(found, pass)
    return pre .. REDACTED .. "@"
  end)
  if query ~= "" then query = "?" .. redact_pairs(query, secret_names, found) end
  if frag ~= "" then frag = "#" .. redact_pairs(frag:sub(2), secret_names, found) end
  return base .. query .. frag
end

-- The values of secret fields anywhere in a decoded JSON value.
local function json_secrets(v, found, depth)
  if depth > 64 then return end
  for k, x in pairs(v) do
    if type(x) == "table" then
      json_secrets(x, found, depth + 1)
    elseif type(x) == "string" and type(k) == "string" and SECRET_FIELDS[k:lower()] then
      add(found, x)
    end
  end
end

-- The strings of a decoded JSON value (keys too) into out; true when a
-- secret field holds anything but the redaction mark.
local function json_strings(v, out, depth)
  if depth > 64 then return true end
  for k, x in pairs(v) do
    if type(k) == "string" then out[#out + 1] = k end
    if type(x) == "table" then
      if json_strings(x, out, depth + 1) then return true end
    elseif type(x) == "string" then
      if type(k) == "string" and SECRET_FIELDS[k:lower()] and x ~= REDACTED and x ~= "" then
        return true
      end
      out[#out + 1] = x
    end
  end
  return false
end

-- Does a decoded JSON value still hold a secret: a secret field's value,
-- or one of list in any string (a server may escape it as lua-cjson does
-- not: "\u00fc", "/" for "\/")? One scrub over all strings joined by NUL,
-- which no encoding of a secret spans.
local function json_leaks(v, list)
  local out = {}
  if json_strings(v, out, 0) then return true end
  local all = table.concat(out, "\0")
  return errors.scrub(all, list) ~= all
end

-- A copy of a decoded JSON value with secret fields redacted and every
-- string scrubbed.
local function json_redact(v, list, depth)
  if depth > 64 then return REDACTED end
  local out = {}
  for k, x in pairs(v) do
    local nk = type(k) == "string" and errors.scrub(k, list) or k
    if type(x) == "table" then
      x = json_redact(x, list, depth + 1)
    elseif type(x) == "string" then
      if type(k) == "string" and SECRET_FIELDS[k:lower()] and x ~= "" then x = REDACTED
      else x = errors.scrub(x, list) end
    end
    out[nk] = x
  end
  return out
end

-- A body is read as what it looks like: a JSON value when it starts like
-- one (servers mislabel theirs), a form when its content type says so.
local function body_kind(body, ctype)
  if type(body) ~= "string" or body == "" then return nil end
  if body:find("^%s*[{%[]") then return "json" end
  if ctype and ctype:lower():find("application/x-www-form-urlencoded", 1, true) then return "form" end
  return nil
end

-- First pass over a body: the secrets it carries, and for a form the body
-- with them redacted.
local function body_pass(body, ctype, found)
  local kind = body_kind(body, ctype)
  if kind == "form" then return redact_pairs(body, SECRET_FIELDS, found), kind end
  if kind == "json" then
    local v = json.decode(body)
    if type(v) == "table" then json_secrets(v, found, 0) else kind = nil end
  end
  return body, kind
end

-- Second pass over a JSON body: scrubbed as text (keeps the server's
-- bytes), unless a secret survived that (an escape the scrubber does not
-- know, a value too short to scrub): then decoded, redacted and encoded
-- again.
local function json_final(body, list)
  local out = errors.scrub(body, list)
  local v = json.decode(out)
  if type(v) == "table" and not json_leaks(v, list) then return out end
  v = json.decode(body)
  if type(v) ~= "table" then return REDACTED end
  return errors.scrub(json.encode(json_redact(v, list, 0)) or REDACTED, list)
end

-- A credential header's value: the scheme kept, the rest redacted (and
-- found, base64 decoded for Basic: its password part is a secret).
local function redact_credential(name, value, found)
  if name == "cookie" or name == "set-cookie" or name == "dpop" then
    add(found, value)
    return REDACTED
  end
  local scheme, cred = value:match("^(%S+)%s+(.-)%s*$")
  if not scheme then
    add(found, value)
    return REDACTED
  end
  add(found, cred)
  if scheme:lower() == "basic" then
    local plain = core.b64_decode(cred)
    if plain then add(found, plain:match("^[^:]*:(.*)$")) end
  end
  return scheme .. " " .. REDACTED
end

-- Request header lines ("Name: value") as a table of lower-cased names
-- (repeats joined with ", ", as response headers come), first pass done.
local function request_headers(lines, extra_secret, found)
  local out = {}
  for _, line in ipairs(lines or {}) do
    local name, value = tostring(line):match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      if CREDENTIAL_HEADERS[name] then
        value = redact_credential(name, value, found)
      elseif extra_secret[name] then
        add(found, value)
        value = REDACTED
      end
      out[name] = out[name] and (out[name] .. ", " .. value) or value
    end
  end
  return out
end

local function response_headers(h, found)
  if type(h) ~= "table" then return nil end
  local out = {}
  for name, value in pairs(h) do
    if type(value) == "string" then
      if CREDENTIAL_HEADERS[name] then
        value = redact_credential(name, value, found)
      elseif name == "location" or name == "content-location" then
        value = redact_url(value, SECRET_FIELDS, found)
      end
    end
    out[name] = value
  end
  return out
end

local function scrub_table(t, list)
  if not t then return nil end
  for k, v in pairs(t) do t[k] = errors.scrub(v, list) end
  return t
end

-- A copy of an error object with its texts scrubbed; the caller's own is
-- left as it is (it scrubs what it returns itself).
local function scrub_error(err, list)
  if err == nil then return nil end
  if type(err) ~= "table" then return errors.scrub(tostring(err), list) end
  local c = {}
  for k, v in pairs(err) do
    if type(v) == "string" then c[k] = errors.scrub(v, list)
    elseif type(v) ~= "table" and type(v) ~= "function" then c[k] = v end
  end
  return setmetatable(c, getmetatable(err))
end

--- What a debug hook gets: one table per HTTP exchange (each attempt of a
-- retried request is its own event), every secret the library knows
-- redacted as `[redacted]` (the client secret, passwords, API keys, access,
-- refresh and ID tokens, codes, PKCE verifiers, client assertions, request
-- objects, device codes, a proxy's credentials, DPoP proofs), in every encoding the library makes of
-- them (raw, form encoded, JSON escaped, base64 as in HTTP Basic), in the
-- request and in the answer. Hooks: the provider's `on_http` option and
-- `smartauth.on_http(fn)`; a hook that raises is reported once on stderr
-- and the request goes on. `smartauth --verbose` prints these events.
-- @table event
-- @tfield string|nil provider the provider's `name` (a preset's, a config
--   profile's), else its preset, else its issuer
-- @tfield string method the request method (`"GET"`, `"POST"`, ...)
-- @tfield string url the request URL, secrets in its query (`access_token`,
--   `code`, ...) redacted
-- @tfield table request_headers `{ [lower-case name] = value }`; credentials
--   as `Basic [redacted]`, `Bearer [redacted]`, `DPoP [redacted]`; a `dpop`
--   proof as `[redacted]`
-- @tfield string|nil request_body the body sent, secret values redacted
-- @tfield number|nil status the HTTP status, nil when the exchange failed
-- @tfield table|nil response_headers `{ [lower-case name] = value }`
-- @tfield string|nil response_body the body received, secret values redacted
-- @tfield number elapsed seconds the exchange took
-- @tfield boolean|nil reused whether an open connection was reused (nil when
--   the exchange failed)
-- @tfield int attempt 1 for the first try, 2 for the first retry, ...
-- @tfield table|nil error a scrubbed copy of the error object when the
--   transfer failed (see `smartauth.errors`), else nil

--- The event of one exchange, every secret redacted.
-- @param p the provider
-- @param req engine.request's table (method, url, headers, body)
-- @param res the response or nil
-- @param err the error or nil
-- @param elapsed seconds the exchange took
-- @param attempt the attempt's number (1-based)
function M.event(p, req, res, err, elapsed, attempt)
  local o = p.options
  local s = vault.secrets[p]
  local found = vault.secrets_of(p)
  -- query placement may use another parameter name; token_headers may
  -- carry an API key
  local query_names = SECRET_FIELDS
  local tp = o.token_param
  if tp and not SECRET_FIELDS[tp:lower()] then
    query_names = setmetatable({ [tp:lower()] = true }, { __index = SECRET_FIELDS })
  end
  local extra_headers = {}
  if s and type(s.token_headers) == "table" then
    for k, v in pairs(s.token_headers) do
      if type(k) == "string" then extra_headers[k:lower()] = true; add(found, tostring(v)) end
    end
  end

  local ev = {
    provider = o.name or o.preset or p:endpoint("issuer"),
    method = req.method or "GET",
    attempt = attempt,
    elapsed = elapsed,
    status = res and res.status or nil,
    reused = nil,
  }
  if res and res.connects ~= nil then ev.reused = res.connects == 0 end
  ev.url = redact_url(req.url, query_names, found)
  ev.request_headers = request_headers(req.headers, extra_headers, found)
  local rq_kind, rs_kind
  ev.request_body, rq_kind = body_pass(req.body, ev.request_headers["content-type"], found)
  if res then
    ev.response_headers = response_headers(res.headers, found)
    ev.response_body, rs_kind = body_pass(res.body, res.headers and res.headers["content-type"], found)
  end

  -- second pass: every string, with everything known and found
  ev.url = errors.scrub(ev.url, found)
  scrub_table(ev.request_headers, found)
  scrub_table(ev.response_headers, found)
  if rq_kind == "json" then ev.request_body = json_final(ev.request_body, found)
  else ev.request_body = errors.scrub(ev.request_body, found) end
  if rs_kind == "json" then ev.response_body = json_final(ev.response_body, found)
  else ev.response_body = errors.scrub(ev.response_body, found) end
  ev.error = scrub_error(err, found)
  return ev
end

-- The same event with nothing redacted: only for the spec's negative
-- control (M._test_unredacted).
local function raw_event(p, req, res, err, elapsed, attempt)
  local h = {}
  for _, line in ipairs(req.headers or {}) do
    local name, value = tostring(line):match("^([^:]+):%s*(.-)%s*$")
    if name then h[name:lower()] = value end
  end
  return { provider = p.options.name, method = req.method or "GET", url = req.url,
    status = res and res.status, request_headers = h, request_body = req.body,
    response_headers = res and res.headers, response_body = res and res.body,
    elapsed = elapsed, reused = res and res.connects == 0, attempt = attempt, error = err }
end

local reported = setmetatable({}, { __mode = "k" })

-- A hook that raises must not break the request: said once per hook on
-- stderr (its message is its own: the event it saw was redacted).
local function call(hook, ev)
  local ok, msg = pcall(hook, ev)
  if not ok and not reported[hook] then
    reported[hook] = true
    pcall(io.stderr.write, io.stderr, "smartauth: on_http hook failed (reported once): ",
      tostring(msg), "\n")
  end
end

--- Build the event of one exchange and give it to the provider's hook and
-- the process-wide one (either may be nil).
function M.emit(p, own, global, req, res, err, elapsed, attempt)
  local build = M._test_unredacted and raw_event or M.event
  local ok, ev = pcall(build, p, req, res, err, elapsed, attempt)
  if not ok then
    -- a bug here must not break the request either; the message names no value
    pcall(io.stderr.write, io.stderr, "smartauth: on_http event failed: ", tostring(ev), "\n")
    return
  end
  if own then call(own, ev) end
  if global and global ~= own then call(global, ev) end
end

return M
