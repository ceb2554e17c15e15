--- Internal: Token exchange (RFC 8693) and any extension grant (`p:grant`,
-- e.g. RFC 7523's jwt-bearer) over grant.lua's form POST: the provider's
-- client authentication, retry policy and error handling.
--
-- What they return is handed to the caller and never kept: an exchanged
-- token is for another audience, actor or type than the provider's own, so
-- it neither replaces the provider's token (memory and store) nor is served
-- by `p:token()` (as golang/oauth2 and openid-client do). A token object's
-- `to_entry` keeps `issued_token_type` (in `ext`) for a caller that stores
-- one itself.
-- @module smartauth.exchange
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local vault = require "smartauth.vault"

local M = {}

--- The grant type of RFC 8693.
M.GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"

--- RFC 8693 §3 token type identifiers.
M.TOKEN_TYPES = {
  access_token = "urn:ietf:params:oauth:token-type:access_token",
  refresh_token = "urn:ietf:params:oauth:token-type:refresh_token",
  id_token = "urn:ietf:params:oauth:token-type:id_token",
  saml1 = "urn:ietf:params:oauth:token-type:saml1",
  saml2 = "urn:ietf:params:oauth:token-type:saml2",
  jwt = "urn:ietf:params:oauth:token-type:jwt",
}

local argerror = errors.argerror

-- Form fields only the library sets: a caller's params may not replace the
-- grant type or the client's authentication.
local RESERVED = {
  grant_type = true, client_id = true, client_secret = true,
  client_assertion = true, client_assertion_type = true,
}

-- A parameter value for the form: strings, numbers and booleans as text; a
-- list repeats the parameter (RFC 8707 resource, RFC 8693 audience) except
-- for scope, which is one space-separated value.
local function form_value(fname, name, v)
  local tv = type(v)
  if tv == "string" or tv == "number" or tv == "boolean" then return tostring(v) end
  if tv == "table" then
    local out = {}
    for i, item in ipairs(v) do
      if type(item) ~= "string" then
        error(fname .. ": parameter '" .. name .. "' item " .. i .. " must be a string", 3)
      end
      out[i] = item
    end
    if #out == 0 then return nil end
    if name == "scope" then return table.concat(out, " ") end
    return out
  end
  error(fname .. ": parameter '" .. name .. "' must be a string, number, boolean or list of strings", 3)
end

-- A token given as a string or a token object (its access token).
local function token_arg(v, field)
  if type(v) == "table" then v = v[field or "access_token"] end
  return v
end

-- Secret values among a form's parameters, for scrubbing errors.
local function form_secrets(form, extra)
  local list = extra or {}
  local fields = require("smartauth.vault").SECRET_FIELDS
  for k, v in pairs(form) do
    if fields[k] and type(v) == "string" then list[#list + 1] = v end
  end
  return list
end

-- RFC 8693 §2.2.1's `N_A` (an issued token that is not an access token)
-- is one of token.lua's token types: grant.decode takes it like Bearer.
local function post(self, form, extra)
  local res, err = grant.post_form(self, "token_endpoint", form)
  if not res then return nil, vault.scrub(self, err, extra) end
  local tok, derr = grant.decode(self, res, nil, extra)
  if not tok then return nil, vault.scrub(self, derr, extra) end
  return tok
end

--- Run any grant at the token endpoint (RFC 6749 §4.5 extension grants,
-- e.g. RFC 7523 `urn:ietf:params:oauth:grant-type:jwt-bearer` with
-- `assertion`), with the provider's client authentication, retry policy and
-- error handling. The token is returned, not kept (see the module's notes);
-- an ID token in the answer is verified when the provider has an issuer.
-- @param self the provider (the method `p:grant`)
-- @tparam string grant_type the grant's `grant_type` value
-- @tparam[opt] table params form parameters: strings, numbers, booleans, or
--   lists of strings (sent as repeated parameters; `scope` joined by spaces)
-- @return a `smartauth.token`, or nil, err
function M.grant(self, grant_type, params)
  if type(grant_type) ~= "string" or grant_type == "" or grant_type:find("[%c%s]") then
    argerror(1, "grant", "grant type string expected", grant_type)
  end
  if params ~= nil and type(params) ~= "table" then argerror(2, "grant", "table expected", params) end
  local form = { grant_type = grant_type }
  for k, v in pairs(params or {}) do
    if type(k) ~= "string" then error("grant: parameters must have string names", 2) end
    if RESERVED[k] then error("grant: parameter '" .. k .. "' is set by the provider", 2) end
    form[k] = form_value("grant", k, v)
  end
  local extra = form_secrets(form)
  local tok, err = post(self, form, extra)
  if not tok then return nil, err end
  if tok.id_token then
    local ok, verr = grant.verify_grant_id_token(self, tok)
    if not ok then return nil, verr end
  end
  return tok
end

local EXCHANGE_FIELDS = {
  subject_token = true, subject_token_type = true, actor_token = true, actor_token_type = true,
  audience = true, resource = true, scope = true, requested_token_type = true,
}

local function type_arg(v, name)
  if v == nil then return nil end
  if type(v) ~= "string" or v == "" then
    error("token_exchange: '" .. name .. "' must be a token type URI string", 3)
  end
  return M.TOKEN_TYPES[v] or v
end

--- Token exchange (RFC 8693 §2.1): trade a subject token (and an actor's)
-- for a token for another audience, resource, scope or type. The answer
-- must carry `issued_token_type` (kept as `tok.issued_token_type` and in
-- `tok.ext`); `token_type` `N_A` is accepted for a token that is not an
-- access token. The tokens sent never appear in errors or `on_http` events.
-- The result is returned, never kept: the provider's own token stays.
-- @param self the provider (the method `p:token_exchange`)
-- @tparam table opts `subject_token` (a string or a token object: its
--   access token) and `subject_token_type` (a URI, or a short name of
--   `TOKEN_TYPES`: `"access_token"`, `"id_token"`, `"jwt"`, ...) are required;
--   `actor_token` with `actor_token_type`; `audience` and `resource` (a
--   string or a list: repeated parameters), `scope` (a string or a list),
--   `requested_token_type`; any other field is sent as a form parameter
-- @return a `smartauth.token` with `issued_token_type`, or nil, err
function M.token_exchange(self, opts)
  if type(opts) ~= "table" then argerror(1, "token_exchange", "table expected", opts) end
  local subject = token_arg(opts.subject_token)
  if type(subject) ~= "string" or subject == "" then
    error("token_exchange: 'subject_token' (a token string or token object) is required", 2)
  end
  local subject_type = type_arg(opts.subject_token_type, "subject_token_type")
  if not subject_type then error("token_exchange: 'subject_token_type' is required", 2) end
  local actor = token_arg(opts.actor_token)
  if actor ~= nil and (type(actor) ~= "string" or actor == "") then
    error("token_exchange: 'actor_token' must be a token string or token object", 2)
  end
  local actor_type = type_arg(opts.actor_token_type, "actor_token_type")
  if actor and not actor_type then
    error("token_exchange: 'actor_token' needs 'actor_token_type'", 2)
  elseif actor_type and not actor then
    error("token_exchange: 'actor_token_type' without 'actor_token'", 2)
  end
  local form = {
    grant_type = M.GRANT_TYPE, subject_token = subject, subject_token_type = subject_type,
    actor_token = actor, actor_token_type = actor_type,
    requested_token_type = type_arg(opts.requested_token_type, "requested_token_type"),
  }
  for _, k in ipairs { "audience", "resource", "scope" } do
    if opts[k] ~= nil then form[k] = form_value("token_exchange", k, opts[k]) end
  end
  for k, v in pairs(opts) do
    if not EXCHANGE_FIELDS[k] then
      if type(k) ~= "string" then error("token_exchange: parameters must have string names", 2) end
      if RESERVED[k] then error("token_exchange: parameter '" .. k .. "' is set by the provider", 2) end
      form[k] = form_value("token_exchange", k, v)
    end
  end
  local extra = form_secrets(form)
  local tok, err = post(self, form, extra)
  if not tok then return nil, err end
  local itt = tok.extra and tok.extra.issued_token_type
  if type(itt) ~= "string" or itt == "" or itt:find("[%c]") then
    return nil, errors.new("validation", "token exchange answer has no issued_token_type",
      { check = "issued_token_type" })
  end
  tok.issued_token_type = itt
  tok.ext = tok.ext or {}
  tok.ext.issued_token_type = itt
  return tok
end

return M
