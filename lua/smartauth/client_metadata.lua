--- RFC 7591 client metadata as it travels: the request's JSON (stable
-- bytes, empty arrays as `[]`), the client information response checked
-- before anything in it is kept, and the auth-method names mapped to
-- `client_auth`. Used by register.lua (and resource_meta.lua for store keys).
-- @module smartauth.client_metadata
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local url = require "smartauth.url"

local M = {}

local function verr(msg, fields) return nil, errors.new("validation", msg, fields) end

--- token_endpoint_auth_method (RFC 7591 §2) -> the provider's client_auth
local AUTH_METHODS = {
  client_secret_basic = "basic", client_secret_post = "post", none = "none",
  client_secret_jwt = "client_secret_jwt", private_key_jwt = "private_key_jwt",
  tls_client_auth = "tls_client_auth", self_signed_tls_client_auth = "self_signed_tls_client_auth",
}
M.AUTH_METHODS = AUTH_METHODS

local function is_int(v, min)
  return type(v) == "number" and v == v and v >= (min or 0) and v < 2 ^ 53 and math.floor(v) == v
end

--- RFC 7591 §3.2.1 / RFC 7592 §3: the client information response, checked
-- before anything in it is kept. `requested` is the metadata sent (its
-- redirect URIs must come back); `old_id` the client_id it must keep (read,
-- update). Returns true, or nil, err (`validation`).
function M.check_answer(d, requested, allow_http, old_id)
  if type(d.client_id) ~= "string" or d.client_id == "" or #d.client_id > 1024 or d.client_id:find("%c") then
    return verr("registration answer: 'client_id' must be a non-empty string")
  end
  if old_id and d.client_id ~= old_id then
    return verr("registration answer: 'client_id' is not the registered client's")
  end
  if d.client_secret ~= nil and (type(d.client_secret) ~= "string" or d.client_secret == "") then
    return verr("registration answer: 'client_secret' must be a non-empty string")
  end
  if d.client_secret ~= nil and not is_int(d.client_secret_expires_at) then
    return verr("registration answer: 'client_secret_expires_at' must be a non-negative integer when " ..
      "'client_secret' is given (RFC 7591 §3.2.1)")
  end
  if d.client_id_issued_at ~= nil and not is_int(d.client_id_issued_at) then
    return verr("registration answer: 'client_id_issued_at' must be a non-negative integer")
  end
  if d.registration_access_token ~= nil and
      (type(d.registration_access_token) ~= "string" or d.registration_access_token == "") then
    return verr("registration answer: 'registration_access_token' must be a non-empty string")
  end
  if d.registration_client_uri ~= nil then
    local ok, msg = false, "not a string"
    if type(d.registration_client_uri) == "string" then
      ok, msg = url.check_endpoint(d.registration_client_uri, allow_http)
    end
    if not ok then return verr("registration answer: 'registration_client_uri' is not a usable URL: " .. msg) end
  end
  local m = d.token_endpoint_auth_method
  if m ~= nil and (type(m) ~= "string" or not AUTH_METHODS[m]) then
    return verr("registration answer: 'token_endpoint_auth_method' " ..
      (type(m) == "string" and ("'" .. errors.clean_text(m, 60) .. "' is not one smartauth speaks") or
        "must be a string"))
  end
  local auth = AUTH_METHODS[m or "client_secret_basic"]
  if (auth == "basic" or auth == "post" or auth == "client_secret_jwt") and d.client_secret == nil then
    return verr("registration answer: method '" .. (m or "client_secret_basic") .. "' but no 'client_secret'")
  end
  if d.redirect_uris ~= nil then
    if type(d.redirect_uris) ~= "table" then return verr("registration answer: 'redirect_uris' must be a list") end
    for _, v in ipairs(d.redirect_uris) do
      if type(v) ~= "string" then return verr("registration answer: 'redirect_uris' must list strings") end
    end
  end
  -- the server may change metadata (RFC 7591 §3.2.1), but a client whose
  -- redirect URIs were dropped or replaced cannot log anyone in
  if type(requested) == "table" and type(requested.redirect_uris) == "table" then
    local got = {}
    for _, v in ipairs(type(d.redirect_uris) == "table" and d.redirect_uris or {}) do got[v] = true end
    for _, v in ipairs(requested.redirect_uris) do
      if not got[v] then
        return verr("registration answer does not list the requested redirect URI '" ..
          errors.clean_text(tostring(v), 200) .. "'")
      end
    end
  end
  if d.scope ~= nil and type(d.scope) ~= "string" then return verr("registration answer: 'scope' must be a string") end
  return true
end

-- Metadata fields that are JSON arrays (RFC 7591 §2, OIDC Registration §2):
-- an empty Lua table there is sent as [] (lua-cjson would send {}).
local ARRAYS = { redirect_uris = true, grant_types = true, response_types = true, contacts = true,
  request_uris = true, default_acr_values = true, post_logout_redirect_uris = true }

--- Client metadata as JSON, sorted keys (stable bytes), empty arrays as [].
function M.encode(md)
  local keys = {}
  for k in pairs(md) do
    if type(k) ~= "string" then error("client metadata keys must be strings", 4) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = md[k]
    local enc
    if ARRAYS[k] and type(v) == "table" and next(v) == nil then enc = "[]"
    else enc = json.encode(v) end
    if not enc then error("client metadata field '" .. k .. "' cannot be sent as JSON", 4) end
    parts[i] = json.encode(k) .. ":" .. enc
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

return M
