--- Internal: Where a provider keeps what must not show when it is dumped (pairs,
-- inspect, a debugger): client secret, password, API key, token headers,
-- the token itself and its lifecycle state. One weak-keyed table, provider
-- -> record, shared by the provider's concern modules; and the scrubbing of
-- error texts with everything a provider knows.
-- @module smartauth.vault
local errors = require "smartauth.errors"

local M = {}

--- provider -> { client_secret=, password=, api_password=, api_key=,
-- token_headers=, client_assertion_key=, decryption_keys=, proxy=, proxy_credentials=,
-- client_key=, client_key_password=, tok=, save_error=, source=, ... }
M.secrets = setmetatable({}, { __mode = "k" })

--- Parameter and JSON field names whose values are secrets (lower case):
-- what wire.lua redacts and what errors are scrubbed of.
M.SECRET_FIELDS = {
  access_token = true, refresh_token = true, id_token = true, token = true,
  code = true, code_verifier = true, device_code = true,
  client_secret = true, password = true, api_key = true, api_password = true,
  client_assertion = true, assertion = true, subject_token = true, actor_token = true,
  registration_access_token = true, logout_token = true,
  request = true, -- an RFC 9101 request object bears the whole authorization request
}

--- Every secret this provider knows (and `extra`), as a list without
-- holes: a missing client secret must not hide the password.
function M.secrets_of(p, extra)
  local s = M.secrets[p]
  local list, n = {}, 0
  local function add(v)
    if type(v) == "string" and v ~= "" then n = n + 1; list[n] = v end
  end
  add(s.client_secret); add(s.password); add(s.api_password); add(s.api_key)
  if s.tok then add(s.tok.access_token); add(s.tok.refresh_token) end
  -- a proxy's credentials, a client key given as PEM text and its password
  for _, v in ipairs(s.proxy_credentials or {}) do add(v) end
  if s.client_key and s.client_key:find("-----BEGIN", 1, true) then add(s.client_key) end
  add(s.client_key_password)
  -- decryption keys given as PEM text (JWK tables are never formatted into text)
  if type(s.decryption_keys) == "table" then
    for _, k in ipairs(s.decryption_keys) do
      if type(k) == "string" and k:find("-----BEGIN", 1, true) then add(k) end
    end
  end
  if extra then for _, v in ipairs(extra) do add(v) end end
  return list
end

--- Scrub an error object of every secret the provider knows, in every
-- encoding the library produces (see errors.scrub).
function M.scrub(p, err, extra)
  if errors.is(err) then
    local list = M.secrets_of(p, extra)
    err.description = errors.scrub(err.description, list)
    err.code = errors.scrub(err.code, list)
    err.error_uri = errors.scrub(err.error_uri, list)
  end
  return err
end

return M
