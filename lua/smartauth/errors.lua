--- Error objects: every runtime failure is returned as `nil, err` where err
-- is one of these. `tostring(err)` reads well and never shows a secret.
-- @module smartauth.errors
local compat = require "smartauth.compat"
local M = {}

local KINDS = {
  oauth = true, http = true, network = true, tls = true, timeout = true,
  validation = true, config = true, storage = true,
}
M.KINDS = KINDS

--- An error object: what every function returns as `nil, err` on a
-- failure that outside data caused (wrong argument types raise instead).
-- `tostring(err)` gives "smartauth KIND error CODE (HTTP STATUS):
-- DESCRIPTION", never a secret; `errors.is(v)` tells one apart.
--
-- The kinds: `oauth` (the server answered with an OAuth `error`), `http`
-- (an unexpected status or answer: a redirect, a body that is not JSON, too
-- large), `network` (connection failed or broke), `tls` (certificate or
-- handshake), `timeout`, `validation` (an answer or token failed a check:
-- ID token, state, iss, a malformed token), `config` (options, config
-- files, or nothing to log in with), `storage` (a store failed).
-- @table Error
-- @tfield string kind one of the kinds above
-- @tfield string description human-readable text, scrubbed of secrets
-- @tfield[opt] string code the OAuth `error` code (`invalid_grant`,
--   `invalid_client`, `access_denied`, ...)
-- @tfield[opt] int status the HTTP status the error came with
-- @tfield boolean retryable whether trying again may help (network errors,
--   timeouts, 408, 429, 502, 503, 504, `temporarily_unavailable`); the retry
--   policies retry these
-- @tfield[opt] number retry_after seconds the server asked to wait (its
--   `Retry-After`)
-- @tfield[opt] string check a `validation` error's failed check: `alg`,
--   `signature`, `kid`, `jwks`, `iss`, `sub`, `aud`, `azp`, `exp`, `iat`,
--   `nbf`, `nonce`, `auth_time`, `at_hash`, `c_hash`, `id_token`, `state`,
--   `provider` (a session of another provider), `format`; for access tokens
--   (`p:verify_access_token`) also `typ`, `jti`, `client_id`, `scope`, `cnf`,
--   `dpop`; for other answers `request_uri`, `expires_in` (PAR),
--   `issued_token_type` (token exchange), `jwe` (an encrypted answer)
-- @tfield[opt] boolean reauth true when a person must log in again
--   (`p:token()` has no non-interactive grant, or the refresh token died);
--   the kind is `config` when nothing was ever stored, else what the server
--   answered
-- @tfield[opt] int attempts how many attempts were made, when a retry policy
--   made more than one
-- @tfield[opt] string error_uri the server's `error_uri` (oauth)
-- @tfield[opt] string option the option a `config` error is about
-- @tfield[opt] string path the config file a `config` error is about
-- @tfield[opt] string proxy the proxy (without credentials) a request went through
-- @tfield[opt] int core_code the C core's code (a CURLcode, errno, OpenSSL's)

local Error = { __name = "smartauth.error" }
Error.__index = Error

function Error:__tostring()
  local parts = { "smartauth " .. self.kind .. " error" }
  if self.code then parts[#parts + 1] = " " .. tostring(self.code) end
  if self.status then parts[#parts + 1] = " (HTTP " .. tostring(self.status) .. ")" end
  if self.description and self.description ~= "" then
    parts[#parts + 1] = ": " .. self.description
  end
  return table.concat(parts)
end

-- Statuses a client may retry: request timeout, rate limiting and the
-- gateway family. The retry policies use the same table.
local RETRY_STATUS = { [408] = true, [429] = true, [502] = true, [503] = true, [504] = true }
M.RETRY_STATUS = RETRY_STATUS

--- Make an error object.
-- @param kind one of oauth, http, network, tls, timeout, validation, config, storage
-- @param description human-readable text (must not contain secrets)
-- @param fields optional table: code, status, retryable, retry_after, headers
function M.new(kind, description, fields)
  if not KINDS[kind] then error("unknown error kind '" .. tostring(kind) .. "'", 2) end
  local e = setmetatable({ kind = kind, description = description }, Error)
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  if e.retryable == nil then
    if kind == "network" or kind == "timeout" then
      e.retryable = true
    elseif e.status and RETRY_STATUS[e.status] then
      e.retryable = true
    elseif kind == "oauth" and e.code == "temporarily_unavailable" then
      e.retryable = true
    else
      e.retryable = false
    end
  end
  return e
end

--- Text from outside for an error message: control characters (escape
-- sequences, CR/LF) become spaces, and it is cut at `max` bytes. Scrub
-- secrets before cutting, or a cut secret escapes the scrubber.
function M.clean_text(s, max)
  if type(s) ~= "string" then return nil end
  s = s:gsub("[%c]", " ")
  if #s > max then s = s:sub(1, max) .. "…" end
  return s
end

--- Text from a server made safe to show on a terminal (a login prompt, a
-- device's tostring): C0 and C1 control characters (escape sequences that
-- clear the screen, set the title or hide text), DEL and bidirectional
-- overrides (which reorder what the person reads) become '?'. Text that is
-- not UTF-8 keeps printable ASCII only. Anything but a string comes back as is.
function M.display(s)
  if type(s) ~= "string" then return s end
  if not compat.utf8_len(s) then return (s:gsub("[^\32-\126]", "?")) end
  return (s:gsub("%c", "?")
    :gsub("\194[\128-\159]", "?")        -- U+0080-U+009F
    :gsub("\216\156", "?")                -- U+061C arabic letter mark
    :gsub("\226\128[\142\143\170-\174]", "?") -- U+200E-200F, U+202A-202E
    :gsub("\226\129[\166-\169]", "?"))  -- U+2066-2069
end

--- Raise the error of a programming mistake in an argument, as
-- luaL_argerror words it: "bad argument #n to 'fname' (expected, got
-- type)". `got` is the value (its type is named) unless `expected` says it
-- all; `level` is error()'s level as seen from the function whose argument
-- is wrong (default 2: its caller).
function M.argerror(n, fname, expected, got, level)
  local msg = "bad argument " .. (n and ("#" .. n .. " ") or "") .. "to '" .. fname .. "' (" .. expected
  if got ~= M.NOGOT then msg = msg .. ", got " .. type(got) end
  error(msg .. ")", (level or 2) + 1)
end

--- Pass as `got` when the message needs no type.
M.NOGOT = setmetatable({}, { __name = "smartauth.errors.nogot" })

--- Is v an error object?
function M.is(v)
  return getmetatable(v) == Error
end

-- The C core's kinds (sa_err_kind_name) as error kinds.
local FROM_CORE = {
  network = "network", tls = "tls", timeout = "timeout", http = "http",
  validation = "validation", storage = "storage", argument = "config",
}

--- The one reader of the C core's failure shape `nil, kind, msg, code`.
-- fields: extra fields for the error; `as` (a kind) files every failure of
-- a concern under one kind (a store's are "storage"), retryable when the
-- core says network or timeout. An out-of-memory failure raises, as the
-- Lua allocator's own does. A non-zero code (CURLcode, errno, OpenSSL's)
-- is kept as `core_code`.
function M.from_core(kind, msg, code, fields)
  if kind == "memory" then error("smartauth: out of memory", 2) end
  local f = {}
  local as
  if fields then
    for k, v in pairs(fields) do f[k] = v end
    as, f.as = f.as, nil
  end
  if as and f.retryable == nil then f.retryable = kind == "network" or kind == "timeout" end
  if code and code ~= 0 then f.core_code = code end
  return M.new(as or FROM_CORE[kind] or "network", msg or tostring(kind), f)
end

-- Loaded on first use: scrubbing is on error paths only, and this module
-- must stay loadable on its own.
local core, json_mod

-- The characters of base64(pad .. raw) that depend on raw alone, for pads
-- of 0, 1 and 2 bytes: wherever raw sits in a base64 text (at the end of
-- "id:secret" in a Basic header, or anywhere in an echoed blob), one of
-- these three runs appears in it. The characters that mix raw with what is
-- around it are caught by widening a match to the whole base64 run.
local function b64_cores(raw, out)
  for pad = 0, 2 do
    local enc = core.b64_encode(("\0"):rep(pad) .. raw)
    -- char i (0-based) holds bits 6i..6i+5: skip those that hold pad bits
    -- and stop before the first that would hold a byte after raw
    local first = math.floor((8 * pad + 5) / 6) + 1
    local last = math.floor((8 * (pad + #raw)) / 6)
    local piece = enc:sub(first, last)
    if #piece >= 4 then out[#out + 1] = { piece, true } end
  end
end

-- Every encoding the library itself makes of a secret: the raw bytes, form
-- encoding (url.encode, the token request body), JSON escaping (lua-cjson), and
-- base64 of the raw and of the form-encoded bytes (HTTP Basic: RFC 7617 for
-- API keys, RFC 6749 §2.3.1 for client credentials). {text, is_base64}.
local function encodings(secret, out)
  if not core then
    core = require "smartauth.core"
    json_mod = require "smartauth.json"
  end
  out[#out + 1] = { secret, false }
  local form = core.form_escape(secret)
  if form ~= secret then out[#out + 1] = { form, false } end
  local json = json_mod.encode(secret)
  json = json and json:sub(2, -2)
  if json and json ~= secret then out[#out + 1] = { json, false } end
  b64_cores(secret, out)
  if form ~= secret then b64_cores(form, out) end
end

local REDACTED = "[redacted]"

-- Replace every occurrence of each secret in s, in every encoding the
-- library makes of it (a server that echoes the request body or the
-- Authorization header sends those back); secrets shorter than 4
-- characters are left alone (they would mangle ordinary text).
function M.scrub(s, secrets)
  if type(s) ~= "string" or not secrets or s == "" then return s end
  local list = {}
  -- secrets may hold holes (absent ones): walk to the largest index
  local n = 0
  for k in pairs(secrets) do
    if compat.math_type(k) == "integer" and k > n then n = k end
  end
  for i = 1, n do
    local secret = secrets[i]
    if type(secret) == "string" and #secret >= 4 then encodings(secret, list) end
  end
  if #list == 0 then return s end
  -- longest first: a shorter encoding must not cut a longer one in half
  table.sort(list, function(a, b) return #a[1] > #b[1] end)
  for _, e in ipairs(list) do
    local text, b64 = e[1], e[2]
    local start = 1
    while true do
      local i, j = s:find(text, start, true)
      if not i then break end
      if b64 then
        -- the whole base64 run: its edge characters carry bits of the secret
        while i > 1 and s:find("^[%w+/]", i - 1) do i = i - 1 end
        while j < #s and s:find("^[%w+/=]", j + 1) do j = j + 1 end
      end
      s = s:sub(1, i - 1) .. REDACTED .. s:sub(j + 1)
      start = i + #REDACTED
    end
  end
  return s
end

--- Show a secret as its first characters and its length only.
function M.redact(secret)
  if type(secret) ~= "string" then return tostring(secret) end
  if #secret <= 8 then return "[" .. #secret .. " chars]" end
  return secret:sub(1, 4) .. "…[" .. #secret .. " chars]"
end

return M
