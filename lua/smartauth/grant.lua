--- Internal: Requests to token-type endpoints (after golang/oauth2's
-- internal/token.go): one function builds the form POST with client
-- authentication (prepared once where the bytes never change), one turns
-- the answer into a token or an OAuth error; every grant, revocation and
-- introspection uses both.
-- @module smartauth.grant
local clock = require "smartauth.clock"
local compat = require "smartauth.compat"
local client_auth = require "smartauth.client_auth"
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local options = require "smartauth.options"
local token_mod = require "smartauth.token"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local secrets = vault.secrets
local check_opts = options.call_opts
local NO_OPTS = options.NO_OPTS

local M = {}

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

local clean_text = errors.clean_text

local function retry_after(headers)
  local v = headers and headers["retry-after"]
  return v and tonumber(v:match("^%s*(%d+)%s*$")) or nil
end

local decode_response

--- Turn a token-endpoint response into a token or an error.
function M.decode(self, res, what, extra_secrets)
  local tok, err = decode_response(self, res, what, extra_secrets)
  if err and res.attempts then err.attempts = res.attempts end
  return tok, err
end

-- Text from a server for an error message: scrubbed before it is
-- shortened, or a cut secret escapes the scrubber.
function M.server_text(self, v, max, extra_secrets)
  if type(v) ~= "string" then return nil end
  return clean_text(errors.scrub(v, vault.secrets_of(self, extra_secrets)), max)
end

function decode_response(self, res, what, extra_secrets)
  local status = res.status
  what = what or "token endpoint"
  if status >= 300 and status < 400 then
    return nil, errors.new("http", what .. " answered with a redirect; redirects are not followed",
      { status = status })
  end
  local data = json.object(res.body)
  if data and data.error ~= nil and data.error ~= json.null then
    if type(data.error) ~= "string" then
      return nil, errors.new("validation", what .. " returned a malformed error field", { status = status })
    end
    local desc = M.server_text(self, data.error_description, 500, extra_secrets)
      or ("the " .. what .. " refused the request")
    return nil, errors.new("oauth", desc, {
      code = M.server_text(self, data.error, 100, extra_secrets), status = status,
      error_uri = M.server_text(self, data.error_uri, 300, extra_secrets),
      retry_after = retry_after(res.headers),
    })
  end
  if status < 200 or status >= 300 then
    return nil, errors.new("http", what .. " returned HTTP " .. status, {
      status = status, retry_after = retry_after(res.headers),
    })
  end
  if not data then
    local ct = clean_text(res.headers["content-type"] or "no content type", 100)
    return nil, errors.new("http", what .. " returned a body that is not a JSON object (" .. ct .. ")",
      { status = status })
  end
  local tok, terr = token_mod.from_response(data, clock.now())
  if tok and not tok.expires_at and self.options.default_expires_in then
    tok.expires_in = self.options.default_expires_in
    tok.expires_at = tok.issued_at + self.options.default_expires_in
  end
  return tok, terr
end

-- The fixed headers of every POST to a token-type endpoint, built once (this
-- is on every grant): Accept, Content-Type, the token_headers option in
-- sorted order (stable bytes) and, for client_auth "basic", the credentials
-- (RFC 6749 §2.3.1). Kept with the secrets, not on the provider table.

local MAX_PREPARED = 8

--- POST a form to an endpoint with client authentication.
-- prep_key names a form that is the same on every call (a client
-- credentials grant without extra parameters): its request is built once
-- and kept with the secrets (a "post" body holds the client secret).
-- extra_headers: lines for this request only (a DPoP proof).
function M.post_form(self, endpoint_name, form, prep_key, extra_headers)
  local ep = self:endpoint(endpoint_name)
  if ep == nil then
    local err
    ep, err = discovery.endpoint(self, endpoint_name)
    if not ep then return nil, err end
  end
  local headers = client_auth.headers(self)
  local s = secrets[self]
  local req = prep_key and s.prepared and s.prepared[prep_key]
  -- headers are rebuilt when client_auth changes, so their identity says
  -- whether the prepared bytes are still this provider's
  if not (req and req.url == ep and req.headers == headers) then
    local ok, aerr = client_auth.apply(self, form, ep)
    if not ok then return nil, aerr end
    req = { method = "POST", url = ep, headers = headers, body = url.encode(form) }
    if prep_key and client_auth.fixed(self) then
      local prepared = s.prepared
      if not prepared or s.nprepared >= MAX_PREPARED then
        prepared = {}
        s.prepared, s.nprepared = prepared, 0
      end
      if not prepared[prep_key] then s.nprepared = s.nprepared + 1 end
      prepared[prep_key] = req
    end
  end
  -- the provider's current settings, also on a request kept from before
  req.timeout, req.connect_timeout = self.options.timeout, self.options.connect_timeout
  req.ca_file, req.max_body = self.options.ca_file, self.options.max_body
  if extra_headers then
    -- a copy: a prepared request keeps its own headers
    local h = { compat.unpack(req.headers) }
    for _, line in ipairs(extra_headers) do h[#h + 1] = line end
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.headers = h
    req = copy
  end
  local res, herr = transport.call(self, req)
  if not res then return nil, vault.scrub(self, herr) end
  return res
end

function M.request(self, form, extra_secrets, prep_key)
  -- DPoP (dpop.lua): a proof per request, the server's nonce, the token bound
  if secrets[self].dpop then return require("smartauth.dpop").token_request(self, form, extra_secrets, prep_key) end
  local res, err = M.post_form(self, "token_endpoint", form, prep_key)
  if not res then return nil, vault.scrub(self, err, extra_secrets) end
  local tok, terr = M.decode(self, res, nil, extra_secrets)
  if not tok then return nil, vault.scrub(self, terr, extra_secrets) end
  return tok
end

local function token_string(tok, field)
  if type(tok) == "string" then return tok end
  if type(tok) == "table" then return tok[field or "access_token"] end
  return nil
end

--- The RFC 8707 resource indicators of a request: the call's `resource`
-- (a string or a list; a wrong type raises), else the provider's option.
-- @return the value (false when there is none), or nil, err (`config`)
function M.resource(self, v, fname)
  if v == nil then return self.options.resource or false end
  if type(v) ~= "string" and type(v) ~= "table" then
    errors.argerror(nil, fname, "'resource' must be a string or a list of strings", v, 2)
  end
  local r, msg = url.check_resource(v)
  if not r then return cfg_err(fname .. ": 'resource' " .. msg, { option = "resource" }) end
  return r
end

-- Extra request parameters: anything not consumed by the grant itself.
local function add_extra(form, opts, consumed)
  if next(opts) == nil then return end
  for k, v in pairs(opts) do
    if not consumed[k] then
      if type(k) ~= "string" then error("grant parameters must have string names", 3) end
      local tv = type(v)
      if tv == "table" then v = table.concat(v, " ")
      elseif tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
        error("grant parameter '" .. k .. "' must be a string, number or boolean", 3)
      end
      form[k] = tostring(v)
    end
  end
end


local SCOPE_ONLY = { scope = true, resource = true }
local PASSWORD_CONSUMED = { username = true, password = true, scope = true, resource = true }
local REFRESH_CONSUMED = { scope = true, force = true, min_ttl = true, resource = true }


-- An ID token from a grant other than the code flow (password, refresh,
-- client credentials) carries no nonce; it is verified all the same (OIDC
-- Core §12.2 for refresh: same iss, aud and sub) before its claims are
-- kept. A provider without an issuer cannot verify one: it keeps the
-- string but never claims from it.
local function grant_id_token(self, tok, prev)
  local prev_claims = prev and prev.claims
  if not tok.id_token then
    if prev then tok.id_token, tok.claims = prev.id_token, prev_claims end
    return true
  end
  if not self:endpoint("issuer") then
    -- nothing to verify it with: kept as the server's string, never trusted
    -- (only `claims` is, and a provider without an issuer has none)
    return true
  end
  local claims, err = self:verify_id_token(tok.id_token, { access_token = tok.access_token })
  if not claims then return nil, err end
  local prev_sub = prev_claims and prev_claims.sub
  if prev_sub ~= nil and claims.sub ~= prev_sub then
    return nil, errors.new("validation", "ID token rejected: the refreshed ID token names another user",
      { check = "sub" })
  end
  tok.claims = claims
  return true
end
-- for exchange.lua's p:grant: the same check on an extension grant's answer
M.verify_grant_id_token = grant_id_token

-- The requests of the non-interactive grants, unsaved (token_source keeps
-- what they return).
local function cc_request(self, opts)
  local scope = opts.scope or self.options.scope
  local resource, rerr = M.resource(self, opts.resource, "client_credentials")
  if rerr then return nil, rerr end
  -- the provider's resource never changes: a prepared request may hold it
  local form = { grant_type = "client_credentials", scope = scope, resource = resource }
  local prep_key
  if (scope == nil or type(scope) == "string")
      and (next(opts) == nil or (next(opts) == "scope" and next(opts, "scope") == nil)) then
    prep_key = scope and "client_credentials " .. scope or "client_credentials"
  else
    add_extra(form, opts, SCOPE_ONLY)
  end
  local tok, err = M.request(self, form, nil, prep_key)
  if not tok then return nil, err end
  local ok, verr = grant_id_token(self, tok)
  if not ok then return nil, verr end
  return tok
end

local function password_request(self, opts)
  local pw = opts.password or secrets[self].password
  local user = opts.username or self.options.username
  if type(user) ~= "string" or type(pw) ~= "string" then
    return cfg_err("password grant needs 'username' and 'password'")
  end
  local resource, rerr = M.resource(self, opts.resource, "password")
  if rerr then return nil, rerr end
  local form = { grant_type = "password", username = user, password = pw, scope = opts.scope or self.options.scope,
    resource = resource }
  add_extra(form, opts, PASSWORD_CONSUMED)
  local tok, err = M.request(self, form, { pw })
  if not tok then return nil, err end
  local ok, verr = grant_id_token(self, tok)
  if not ok then return nil, verr end
  return tok
end

-- What token() runs when nothing valid is stored (token_source's ops.grant).
function M.grant_request(self, name, opts)
  local scope = opts.scope
  if name == "client_credentials" then
    return cc_request(self, scope and { scope = scope } or NO_OPTS)
  elseif name == "password" then
    return password_request(self, scope and { scope = scope } or NO_OPTS)
  end
  return cfg_err("grant '" .. tostring(name) .. "' cannot run without a person")
end

--- Client credentials grant (RFC 6749 §4.4).
-- @param self the provider (the method `p:client_credentials`)
-- @param opts { scope=, ... any extra parameter (resource, audience) }
-- @return token or nil, err
function M.client_credentials(self, opts)
  local tok, err = cc_request(self, check_opts(opts, "client_credentials"))
  if not tok then return nil, err end
  return (secrets[self].source:put(tok))
end

--- Resource owner password grant (RFC 6749 §4.3).
-- @param self the provider (the method `p:password`)
-- @param opts { username=, password=, scope= } (defaults from the provider)
function M.password(self, opts)
  local tok, err = password_request(self, check_opts(opts, "password"))
  if not tok then return nil, err end
  return (secrets[self].source:put(tok))
end

-- The refresh request (RFC 6749 §6), unsaved. Absent fields keep their
-- old values: the refresh token when the server does not rotate it, scope,
-- the ID token and its claims (a new ID token is verified first).
function M.refresh_request(self, tok, opts)
  local rt = type(tok) == "string" and tok or (type(tok) == "table" and tok.refresh_token)
  if type(rt) ~= "string" or rt == "" then
    return nil, errors.new("validation", "token has no refresh_token")
  end
  local resource, rerr = M.resource(self, opts.resource, "refresh")
  if rerr then return nil, rerr end
  local form = { grant_type = "refresh_token", refresh_token = rt, scope = opts.scope, resource = resource }
  add_extra(form, opts, REFRESH_CONSUMED)
  local nt, err = M.request(self, form, { rt })
  if not nt then return nil, err end
  nt.refresh_token = nt.refresh_token or rt
  local prev = type(tok) == "table" and tok or nil
  if prev then nt.scope = nt.scope or prev.scope end
  local ok, verr = grant_id_token(self, nt, prev or {})
  if not ok then return nil, verr end
  return nt
end

--- Refresh a token (RFC 6749 §6) and keep the result. The refresh token is
-- kept when the server does not rotate it, and so are the ID token and its
-- claims; a new ID token is verified (same user). A new token the store
-- refuses is still returned (the server may have retired the old refresh
-- token): p:save_error() says why, and the save is tried again.
-- @param self the provider (the method `p:refresh`)
-- @param tok token object or refresh token string
-- @param opts { scope= }
function M.refresh(self, tok, opts)
  opts = check_opts(opts, "refresh")
  local nt, err = M.refresh_request(self, tok, opts)
  if not nt then return nil, err end
  return (secrets[self].source:put(nt))
end

-- --------------------------------------------------- authorization code



--- Revoke a token (RFC 7009). A token object's refresh token is revoked
-- when it has one (which ends the grant), else its access token; the
-- provider forgets it too.
-- @param self the provider (the method `p:revoke`)
-- @param tok token object or token string
-- @param opts { hint = "access_token"|"refresh_token" }
function M.revoke(self, tok, opts)
  opts = check_opts(opts, "revoke")
  local value, hint
  if type(tok) == "table" and tok.refresh_token and opts.hint ~= "access_token" then
    value, hint = tok.refresh_token, "refresh_token"
  else
    value, hint = token_string(tok), opts.hint or (type(tok) == "table" and "access_token" or nil)
  end
  if type(value) ~= "string" then errors.argerror(1, "revoke", "token expected", tok) end
  local ok, err = M.revoke_one(self, value, hint)
  if not ok then return nil, err end
  local cur = secrets[self].tok
  if cur and (cur.access_token == value or cur.refresh_token == value
      or (type(tok) == "table" and cur.access_token == tok.access_token)) then
    self:forget()
  end
  return true
end

-- One RFC 7009 request.
function M.revoke_one(self, value, hint)
  local res, err = M.post_form(self, "revocation_endpoint", { token = value, token_type_hint = hint })
  if not res then return nil, vault.scrub(self, err, { value }) end
  if res.status ~= 200 then
    local _, e = M.decode(self, res, "revocation endpoint", { value })
    return nil, vault.scrub(self, e or errors.new("http", "revocation failed", { status = res.status }), { value })
  end
  return true
end

--- Token introspection (RFC 7662).
-- @param self the provider (the method `p:introspect`)
-- @param tok token object or token string
-- @param opts { hint = token_type_hint }
-- @return the response object ({active=true, scope=, sub=, exp=, ...}) or nil, err
function M.introspect(self, tok, opts)
  opts = check_opts(opts, "introspect")
  local value = token_string(tok, opts.hint == "refresh_token" and "refresh_token" or "access_token")
  if type(value) ~= "string" then errors.argerror(1, "introspect", "token expected", tok) end
  -- the introspection_cache option: a hit sends nothing (resource.lua)
  local cache = self.options.introspection_cache and require("smartauth.token_cache").introspection(self)
  local hit = cache and cache:get(value)
  if hit then return hit end
  local res, err = M.post_form(self, "introspection_endpoint", { token = value, token_type_hint = opts.hint })
  if not res then return nil, vault.scrub(self, err, { value }) end
  if res.status ~= 200 then
    local _, e = M.decode(self, res, "introspection endpoint", { value })
    return nil, vault.scrub(self, e or errors.new("http", "introspection failed", { status = res.status }), { value })
  end
  local data = json.object(res.body)
  if type(data) ~= "table" or type(data.active) ~= "boolean" then
    return nil, errors.new("validation", "introspection response has no boolean 'active'")
  end
  if cache then cache:put(value, data) end
  return data
end

--- Log out: revoke the access token and the refresh token (RFC 7009, one
-- request each, with token_type_hint), then forget the token.
-- @param self the provider (the method `p:logout`)
-- @param opts optional: what `p:end_session_url` takes (`post_logout_redirect_uri`,
--   `state`, ...); `id_token_hint` defaults to the stored token's ID token
-- @return { revoked = { "access_token", "refresh_token" }, failed = { [name] = err },
--   end_session_url = url or nil } or nil, err when the token cannot be forgotten
function M.logout(self, opts)
  if opts ~= nil and type(opts) ~= "table" then errors.argerror(1, "logout", "table expected", opts) end
  require("smartauth.logout").check(self, opts)
  local out = { revoked = {}, failed = {} }
  local t, serr = self:stored()
  if serr then out.failed.store = serr end
  local discovered -- discovery was tried: logout_url does not try again
  if t then
    local ep, eerr = self:endpoint("revocation_endpoint"), nil
    if not ep then
      ep, eerr = discovery.endpoint(self, "revocation_endpoint")
      discovered = true
    end
    for _, name in ipairs { "access_token", "refresh_token" } do
      local value = t[name]
      if value then
        local ok, err = false, eerr
        if ep then ok, err = M.revoke_one(self, value, name) end
        if ok then out.revoked[#out.revoked + 1] = name else out.failed[name] = err end
      end
    end
  end
  -- RP-Initiated Logout: the URL ends the session at the provider too
  out.end_session_url = require("smartauth.logout").logout_url(self, t, opts, discovered)
  local ok, ferr = self:forget()
  if not ok then return nil, ferr end
  return out
end

return M
