--- The generic OAuth 2.0 / OpenID Connect provider: every grant, token
-- caching and refresh, and calling APIs with the token attached. Presets are
-- this plus data.
local json = require "smartauth.json"
local clock = require "smartauth.clock"
local cjson = require "cjson.safe"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local engine = require "smartauth.engine"
local retry = require "smartauth.retry"
local jwks_mod = require "smartauth.jwks"
local jwt = require "smartauth.jwt"
local oidc = require "smartauth.oidc"
local options = require "smartauth.options"
local store_mod = require "smartauth.store"
local token_mod = require "smartauth.token"
local token_source = require "smartauth.token_source"
local url = require "smartauth.url"

local M = {}

local os_time = os.time

local Provider = { __name = "smartauth.provider" }
Provider.__index = Provider
M.Provider = Provider

local function random_token(n)
  return core.b64url_encode(core.random(n or 32))
end
M.random_token = random_token

-- Secrets live outside the object so that dumping a provider (pairs,
-- inspect, a debugger) never shows them.
local secrets = setmetatable({}, { __mode = "k" })

M.ENDPOINTS = {
  "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
  "revocation_endpoint", "introspection_endpoint", "device_authorization_endpoint",
  "end_session_endpoint",
}

M.DEFAULT_LEEWAY = 120 -- seconds; see DESIGN.md on early refresh margins

local SCHEMA = {
  name = "string", issuer = "string",
  authorization_endpoint = "url", token_endpoint = "url", userinfo_endpoint = "url",
  jwks_uri = "url", revocation_endpoint = "url", introspection_endpoint = "url",
  device_authorization_endpoint = "url", end_session_endpoint = "url",
  discovery_url = "url", api_base = "url",
  client_id = "string", client_secret = "string",
  client_auth = { type = "string", enum = { "basic", "post", "none", "private_key_jwt", "client_secret_jwt" } },
  redirect_uri = "string", scope = "string",
  response_type = { type = "string", enum = { "code", "id_token", "code id_token", "id_token token",
    "code token", "code id_token token" } },
  store = "any", retry = "any",
  lock_ttl = { type = "number", min = 1, max = 86400 },   -- seconds the store lock is held for
  default_expires_in = { type = "number", min = 1, max = 31536000 }, -- when the server sends none
  timeout = { type = "number", min = 0.001, max = 86400 },
  connect_timeout = { type = "number", min = 0.001, max = 86400 },
  ca_file = "string",
  leeway = { type = "number", min = 0, max = 86400 },
  allow_http = "boolean",
  max_body = { type = "number", min = 1, max = 2147483647, integer = true },
  grant = { type = "string", enum = { "client_credentials", "password", "authorization_code",
    "loopback", "device", "oob", "none" } },
  username = "string", password = "string",
  api_key = "string", api_password = "string",
  token_placement = { type = "string", enum = { "header", "query" } },
  token_param = "string",
  token_headers = "table",
  -- OpenID Connect
  id_token_algs = "table",                 -- allow-list; default: what discovery says, within what we verify
  id_token_signed_response_alg = "string", -- HS256/384/512 only when the client is registered for it
  jwks = "table",                          -- a static key set instead of fetching jwks_uri
  -- RFC 7523 client assertions
  client_assertion_key = "any",            -- PEM text, path to a PEM file, or a private JWK table
  client_assertion_alg = "string",
  client_assertion_kid = "string",
}
M.SCHEMA = SCHEMA

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

local function check_redirect_uri(v, allow_http)
  if v == "urn:ietf:wg:oauth:2.0:oob" or v == "oob" then return true end
  local scheme = v:match("^(%a[%w+.-]*):")
  if not scheme then return nil, "is not an absolute URI" end
  scheme = scheme:lower()
  if scheme == "http" or scheme == "https" then
    return url.check_endpoint(v, allow_http)
  end
  -- private-use schemes of native apps (RFC 8252 §7.1) are fine
  return true
end

--- Create a provider. See DESIGN.md for the options. Returns provider or
-- nil, err (config).
function M.new(opts, where)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'provider' (table expected, got " .. type(opts) .. ")", 2)
  end
  where = where or "smartauth.provider"
  local o, err = options.check(where, opts, SCHEMA, opts.allow_http)
  if not o then return nil, err end
  if o.redirect_uri then
    local ok, msg = check_redirect_uri(o.redirect_uri, o.allow_http)
    if not ok then return cfg_err(where .. ": option 'redirect_uri' " .. msg, { option = "redirect_uri" }) end
  end
  if o.issuer then
    local ok, msg = url.check_endpoint(o.issuer, o.allow_http)
    if not ok then return cfg_err(where .. ": option 'issuer' is not a usable URL: " .. msg, { option = "issuer" }) end
  end
  if o.store ~= nil then
    local ok, msg = store_mod.check(o.store)
    if not ok then return cfg_err(where .. ": option 'store' " .. msg, { option = "store" }) end
  end
  if o.retry ~= nil and o.retry ~= false and getmetatable(o.retry) == nil then
    if type(o.retry) ~= "table" then
      return cfg_err(where .. ": option 'retry' must be a retry policy, its options, or false", { option = "retry" })
    end
    local ok, pol = pcall(retry.policy, o.retry)
    if not ok then return cfg_err(where .. ": option 'retry': " .. tostring(pol), { option = "retry" }) end
    o.retry = pol
  end
  if o.client_auth == nil then
    o.client_auth = o.client_secret and "basic" or "none"
  end
  if o.client_auth == "private_key_jwt" and o.client_assertion_key == nil then
    return cfg_err(where .. ": client_auth 'private_key_jwt' needs option 'client_assertion_key'",
      { option = "client_assertion_key" })
  end
  if (o.client_auth == "basic" or o.client_auth == "post" or o.client_auth == "client_secret_jwt")
      and not o.client_secret then
    return cfg_err(where .. ": client_auth '" .. o.client_auth .. "' needs option 'client_secret'",
      { option = "client_secret" })
  end
  local self = setmetatable({}, Provider)
  -- secrets, tokens and what may hold one (an API key, token_headers) are
  -- kept off the object: dumping a provider shows none of them
  local s = { client_secret = o.client_secret, password = o.password, api_password = o.api_password,
    client_assertion_key = o.client_assertion_key, api_key = o.api_key, token_headers = o.token_headers }
  o.client_secret, o.password, o.api_password, o.client_assertion_key = nil, nil, nil, nil
  o.api_key, o.token_headers = nil, nil
  secrets[self] = s
  for k, v in pairs(o) do self[k] = v end
  self.api_key_auth = s.api_key ~= nil or nil
  self.leeway = self.leeway or M.DEFAULT_LEEWAY
  self.store = self.store or store_mod.memory()
  self.token_placement = self.token_placement or "header"
  self.token_param = self.token_param or "access_token"
  s.source = token_source.new(self, s, {
    refresh = function(tok, ropts) return self:_refresh_request(tok, ropts) end,
    grant = function(name, gopts) return self:_grant_request(name, gopts) end,
  })
  return self
end

function Provider:__tostring()
  return "smartauth.provider(" .. (self.name or self.issuer or self.token_endpoint or "?") ..
    (self.client_id and (", client " .. self.client_id) or "") .. ")"
end

-- Every secret this provider knows, to scrub from error text.
function Provider:_secrets(extra)
  local s = secrets[self]
  -- a list without holes: a missing client secret must not hide the password
  local list, n = {}, 0
  local function add(v)
    if type(v) == "string" and v ~= "" then n = n + 1; list[n] = v end
  end
  add(s.client_secret); add(s.password); add(s.api_password); add(s.api_key)
  if s.tok then add(s.tok.access_token); add(s.tok.refresh_token) end
  if extra then for _, v in ipairs(extra) do add(v) end end
  return list
end

function Provider:_scrub(err, extra)
  if errors.is(err) then
    local list = self:_secrets(extra)
    err.description = errors.scrub(err.description, list)
    err.code = errors.scrub(err.code, list)
    err.error_uri = errors.scrub(err.error_uri, list)
  end
  return err
end

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- HTTP options common to every call this provider makes, through the
-- engine (yields inside a task) and the retry policy. Token requests are
-- safe to retry; API calls with other methods are retried on 429 only.
function Provider:_http(req)
  if req.timeout == nil then req.timeout = self.timeout end
  if req.connect_timeout == nil then req.connect_timeout = self.connect_timeout end
  if req.ca_file == nil then req.ca_file = self.ca_file end
  if req.max_body == nil then req.max_body = self.max_body end
  local policy = self.retry
  if policy == false or req.no_retry then return engine.request(req) end
  local only_429 = req.api and not IDEMPOTENT[req.method or "GET"]
  req.no_retry, req.api = nil, nil
  return (policy or retry.default):run(function()
    local res, err = engine.request(req)
    if only_429 and not (res and res.status == 429) then return res, err, true end
    return res, err
  end, engine.sleep)
end

------------------------------------------------------------------ discovery

local discovery_cache = {} -- url -> {doc=, at=}
M.DISCOVERY_TTL = 3600

--- Fetch and apply the OpenID configuration (endpoints the options did not
-- set). Cached per process for DISCOVERY_TTL seconds.
function Provider:discover()
  if not self.issuer and not self.discovery_url then
    return cfg_err("cannot discover: no 'issuer' or 'discovery_url'")
  end
  local durl = self.discovery_url or
    (self.issuer:gsub("/+$", "") .. "/.well-known/openid-configuration")
  local cached = discovery_cache[durl]
  local doc
  if cached and clock.now() - cached.at < M.DISCOVERY_TTL then
    doc = cached.doc
  else
    local res, err = self:_http { url = durl, headers = { "Accept: application/json" } }
    if not res then return nil, err end
    if res.status ~= 200 then
      return nil, errors.new("http", "discovery document request failed", { status = res.status })
    end
    local d = json.object(res.body)
    if type(d) ~= "table" then
      return nil, errors.new("validation", "discovery document is not a JSON object")
    end
    doc = d
  end
  if self.issuer and doc.issuer ~= self.issuer then
    return nil, errors.new("validation", "discovery document issuer '" ..
      tostring(doc.issuer):sub(1, 200) .. "' does not match '" .. self.issuer .. "'")
  end
  for _, k in ipairs(M.ENDPOINTS) do
    local v = doc[k]
    if self[k] == nil and v ~= nil then
      local ok, msg = false, "not a string"
      if type(v) == "string" then ok, msg = url.check_endpoint(v, self.allow_http) end
      if not ok then
        return nil, errors.new("validation", "discovery document field '" .. k ..
          "' is not a usable URL: " .. msg)
      end
      self[k] = v
    end
  end
  self.issuer = self.issuer or doc.issuer
  self.metadata = doc
  discovery_cache[durl] = { doc = doc, at = cached and cached.at or clock.now() }
  return self
end

-- An endpoint, discovering once if it is missing and an issuer is known.
function Provider:_endpoint(name)
  if self[name] == nil and (self.issuer or self.discovery_url) and not self.metadata then
    local ok, err = self:discover()
    if not ok then return nil, err end
  end
  if self[name] == nil then
    return cfg_err("provider has no " .. name .. " (set the option or an issuer to discover it)")
  end
  return self[name]
end

--------------------------------------------------------------- token calls


local function clean_text(s, max)
  if type(s) ~= "string" then return nil end
  s = s:gsub("[%c]", " ")
  if #s > max then s = s:sub(1, max) .. "…" end
  return s
end

local function retry_after(headers)
  local v = headers and headers["retry-after"]
  return v and tonumber(v:match("^%s*(%d+)%s*$")) or nil
end

--- Turn a token-endpoint response into a token or an error.
function Provider:_token_response(res, what, extra_secrets)
  local tok, err = self:_decode_token_response(res, what, extra_secrets)
  if err and res.attempts then err.attempts = res.attempts end
  return tok, err
end

-- Text from a server for an error message: scrubbed before it is
-- shortened, or a cut secret escapes the scrubber.
function Provider:_server_text(v, max, extra_secrets)
  if type(v) ~= "string" then return nil end
  return clean_text(errors.scrub(v, self:_secrets(extra_secrets)), max)
end

function Provider:_decode_token_response(res, what, extra_secrets)
  local status = res.status
  what = what or "token endpoint"
  if status >= 300 and status < 400 then
    return nil, errors.new("http", what .. " answered with a redirect; redirects are not followed",
      { status = status })
  end
  local data = json.object(res.body)
  if data and data.error ~= nil and data.error ~= cjson.null then
    if type(data.error) ~= "string" then
      return nil, errors.new("validation", what .. " returned a malformed error field", { status = status })
    end
    local desc = self:_server_text(data.error_description, 500, extra_secrets)
      or ("the " .. what .. " refused the request")
    return nil, errors.new("oauth", desc, {
      code = self:_server_text(data.error, 100, extra_secrets), status = status,
      error_uri = self:_server_text(data.error_uri, 300, extra_secrets),
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
  if tok and not tok.expires_at and self.default_expires_in then
    tok.expires_in = self.default_expires_in
    tok.expires_at = tok.issued_at + self.default_expires_in
  end
  return tok, terr
end

-- The fixed headers of every POST to a token-type endpoint, built once (this
-- is on every grant): Accept, Content-Type, the token_headers option in
-- sorted order (stable bytes) and, for client_auth "basic", the credentials
-- (RFC 6749 §2.3.1). Kept with the secrets, not on the provider table.
function Provider:_form_headers()
  local s = secrets[self]
  local h = s.form_headers
  if h and s.form_headers_auth == self.client_auth then return h end
  h = { "Accept: application/json", "Content-Type: application/x-www-form-urlencoded" }
  local extra = s.token_headers
  if extra then
    local names = {}
    for k in pairs(extra) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do h[#h + 1] = k .. ": " .. extra[k] end
  end
  if self.client_auth == "basic" then
    h[#h + 1] = "Authorization: " .. core.basic_auth(self.client_id or "", s.client_secret)
  end
  s.form_headers, s.form_headers_auth = h, self.client_auth
  return h
end

-- Client authentication (RFC 6749 §2.3) applied to a token-endpoint form
-- ("basic" is in _form_headers).
function Provider:_client_auth(form, audience)
  local method = self.client_auth
  if method == "basic" then
    return true
  elseif method == "post" then
    form.client_id = self.client_id
    form.client_secret = secrets[self].client_secret
  elseif method == "none" then
    form.client_id = self.client_id
  else
    local assertion, err = self:_client_assertion(audience)
    if not assertion then return nil, err end
    form.client_id = self.client_id
    form.client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    form.client_assertion = assertion
  end
  return true
end

-- The signing key for private_key_jwt, parsed once.
function Provider:_assertion_key()
  local s = secrets[self]
  if s.assertion_key then return s.assertion_key, s.assertion_alg end
  local src = s.client_assertion_key
  local key, kind, msg
  if type(src) == "table" then
    key, msg = jwks_mod.parse_private_jwk(src)
    kind = "config"
  elseif type(src) == "string" then
    local pem = src
    if not src:find("-----BEGIN", 1, true) then
      local f, ferr = io.open(src, "rb")
      if not f then return cfg_err("client_assertion_key: cannot read " .. tostring(ferr)) end
      pem = f:read("a")
      f:close()
    end
    key, kind, msg = core.key_pem(pem)
  else
    return cfg_err("private_key_jwt needs option 'client_assertion_key' (PEM, PEM file or JWK)")
  end
  if not key then return cfg_err("client_assertion_key: " .. tostring(msg or kind)) end
  local alg = self.client_assertion_alg
  if not alg then
    local kty, _, crv = key:type()
    alg = (kty == "RSA" and "RS256") or (kty == "OKP" and "EdDSA") or
      (crv == "P-384" and "ES384") or (crv == "P-521" and "ES512") or "ES256"
  end
  local ok, why = key:alg_ok(alg)
  if not ok then return cfg_err("client_assertion_key cannot sign " .. alg .. ": " .. tostring(why)) end
  s.assertion_key, s.assertion_alg = key, alg
  return key, alg
end

--- RFC 7523 client assertion for client_secret_jwt / private_key_jwt.
function Provider:_client_assertion(audience)
  local now = clock.now()
  local claims = {
    iss = self.client_id, sub = self.client_id, aud = audience,
    jti = random_token(24), iat = now, exp = now + 60,
  }
  local header, tmp = { typ = "JWT" }, false
  local key
  if self.client_auth == "client_secret_jwt" then
    header.alg = self.client_assertion_alg or "HS256"
    key = core.key_oct(secrets[self].client_secret)
    tmp = true
  else
    local alg
    key, alg = self:_assertion_key()
    if not key then return nil, alg end
    header.alg = alg
    header.kid = self.client_assertion_kid
  end
  local out, kind, msg = jwt.encode(header, claims, key)
  if tmp then key:close() end
  if not out then return cfg_err("cannot sign the client assertion: " .. tostring(msg or kind)) end
  return out
end

-- Client authentication methods whose request bytes do not change from one
-- request to the next (the JWT ones carry a fresh jti and iat each time).
local FIXED_AUTH = { basic = true, post = true, none = true }
local MAX_PREPARED = 8

--- POST a form to an endpoint with client authentication.
-- prep_key names a form that is the same on every call (a client
-- credentials grant without extra parameters): its request is built once
-- and kept with the secrets (a "post" body holds the client secret).
function Provider:_post_form(endpoint_name, form, prep_key)
  local ep = self[endpoint_name]
  if ep == nil then
    local err
    ep, err = self:_endpoint(endpoint_name)
    if not ep then return nil, err end
  end
  local headers = self:_form_headers()
  local s = secrets[self]
  local req = prep_key and s.prepared and s.prepared[prep_key]
  -- headers are rebuilt when client_auth changes, so their identity says
  -- whether the prepared bytes are still this provider's
  if not (req and req.url == ep and req.headers == headers) then
    local ok, aerr = self:_client_auth(form, ep)
    if not ok then return nil, aerr end
    req = { method = "POST", url = ep, headers = headers, body = url.encode(form) }
    if prep_key and FIXED_AUTH[self.client_auth] then
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
  req.timeout, req.connect_timeout = self.timeout, self.connect_timeout
  req.ca_file, req.max_body = self.ca_file, self.max_body
  local res, herr = self:_http(req)
  if not res then return nil, self:_scrub(herr) end
  return res
end

function Provider:_grant(form, extra_secrets, prep_key)
  local res, err = self:_post_form("token_endpoint", form, prep_key)
  if not res then return nil, self:_scrub(err, extra_secrets) end
  local tok, terr = self:_token_response(res, nil, extra_secrets)
  if not tok then return nil, self:_scrub(terr, extra_secrets) end
  return tok
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

local NO_OPTS = setmetatable({}, { __newindex = function() error("read-only", 2) end })

local SCOPE_ONLY = { scope = true }
local PASSWORD_CONSUMED = { username = true, password = true, scope = true }
local REFRESH_CONSUMED = { scope = true, force = true, min_ttl = true }

local function check_opts(opts, fname)
  if opts == nil then return NO_OPTS end
  if type(opts) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  return opts
end

-- An ID token from a grant other than the code flow (password, refresh,
-- client credentials) carries no nonce; it is verified all the same (OIDC
-- Core §12.2 for refresh: same iss, aud and sub) before its claims are
-- kept. A provider without an issuer cannot verify one: it keeps the
-- string but never claims from it.
function Provider:_grant_id_token(tok, prev)
  local prev_claims = prev and prev.claims
  if not tok.id_token then
    if prev then tok.id_token, tok.claims = prev.id_token, prev_claims end
    return true
  end
  if not self.issuer then
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

-- The requests of the non-interactive grants, unsaved (token_source keeps
-- what they return).
function Provider:_cc_request(opts)
  local scope = opts.scope or self.scope
  local form = { grant_type = "client_credentials", scope = scope }
  local prep_key
  if (scope == nil or type(scope) == "string")
      and (next(opts) == nil or (next(opts) == "scope" and next(opts, "scope") == nil)) then
    prep_key = scope and "client_credentials " .. scope or "client_credentials"
  else
    add_extra(form, opts, SCOPE_ONLY)
  end
  local tok, err = self:_grant(form, nil, prep_key)
  if not tok then return nil, err end
  local ok, verr = self:_grant_id_token(tok)
  if not ok then return nil, verr end
  return tok
end

function Provider:_password_request(opts)
  local pw = opts.password or secrets[self].password
  local user = opts.username or self.username
  if type(user) ~= "string" or type(pw) ~= "string" then
    return cfg_err("password grant needs 'username' and 'password'")
  end
  local form = { grant_type = "password", username = user, password = pw, scope = opts.scope or self.scope }
  add_extra(form, opts, PASSWORD_CONSUMED)
  local tok, err = self:_grant(form, { pw })
  if not tok then return nil, err end
  local ok, verr = self:_grant_id_token(tok)
  if not ok then return nil, verr end
  return tok
end

-- What token() runs when nothing valid is stored (token_source's ops.grant).
function Provider:_grant_request(name, opts)
  local scope = opts.scope
  if name == "client_credentials" then
    return self:_cc_request(scope and { scope = scope } or NO_OPTS)
  elseif name == "password" then
    return self:_password_request(scope and { scope = scope } or NO_OPTS)
  end
  return cfg_err("grant '" .. tostring(name) .. "' cannot run without a person")
end

--- Client credentials grant (RFC 6749 §4.4).
-- @param opts { scope=, ... any extra parameter (resource, audience) }
-- @return token or nil, err
function Provider:client_credentials(opts)
  local tok, err = self:_cc_request(check_opts(opts, "client_credentials"))
  if not tok then return nil, err end
  return (secrets[self].source:put(tok))
end

--- Resource owner password grant (RFC 6749 §4.3).
-- @param opts { username=, password=, scope= } (defaults from the provider)
function Provider:password(opts)
  local tok, err = self:_password_request(check_opts(opts, "password"))
  if not tok then return nil, err end
  return (secrets[self].source:put(tok))
end

-- The refresh request (RFC 6749 §6), unsaved. Absent fields keep their
-- old values: the refresh token when the server does not rotate it, scope,
-- the ID token and its claims (a new ID token is verified first).
function Provider:_refresh_request(tok, opts)
  local rt = type(tok) == "string" and tok or (type(tok) == "table" and tok.refresh_token)
  if type(rt) ~= "string" or rt == "" then
    return nil, errors.new("validation", "token has no refresh_token")
  end
  local form = { grant_type = "refresh_token", refresh_token = rt, scope = opts.scope }
  add_extra(form, opts, REFRESH_CONSUMED)
  local nt, err = self:_grant(form, { rt })
  if not nt then return nil, err end
  nt.refresh_token = nt.refresh_token or rt
  local prev = type(tok) == "table" and tok or nil
  if prev then nt.scope = nt.scope or prev.scope end
  local ok, verr = self:_grant_id_token(nt, prev or {})
  if not ok then return nil, verr end
  return nt
end

--- Refresh a token (RFC 6749 §6) and keep the result. The refresh token is
-- kept when the server does not rotate it, and so are the ID token and its
-- claims; a new ID token is verified (same user). A new token the store
-- refuses is still returned (the server may have retired the old refresh
-- token): p:save_error() says why, and the save is tried again.
-- @param tok token object or refresh token string
-- @param opts { scope= }
function Provider:refresh(tok, opts)
  opts = check_opts(opts, "refresh")
  local nt, err = self:_refresh_request(tok, opts)
  if not nt then return nil, err end
  return (secrets[self].source:put(nt))
end

------------------------------------------------------ authorization code


local function has_word(s, w)
  return type(s) == "string" and (" " .. s .. " "):find(" " .. w .. " ", 1, true) ~= nil
end

local AUTHZ_CONSUMED = {
  redirect_uri = true, scope = true, response_type = true, pkce = true, state = true, nonce = true,
}

local OOB = { ["urn:ietf:wg:oauth:2.0:oob"] = true, oob = true }

-- Who a session belongs to: the issuer, else the token endpoint and client
-- (RFC 9207 §4's mix-up: provider A's code and PKCE verifier must never
-- reach provider B). Discovers first when the issuer would come from
-- discovery, so that both ends of a flow see the same identity.
function Provider:_authz_identity()
  if not self.issuer and self.discovery_url and not self.metadata then
    local ok, err = self:discover()
    if not ok then return nil, err end
  end
  if self.issuer then return "issuer " .. self.issuer end
  return "token_endpoint " .. tostring(self.token_endpoint) .. " client_id " .. tostring(self.client_id)
end

-- Does the provider's metadata promise iss in every authorization response?
function Provider:_iss_promised()
  local md = self.metadata
  return type(md) == "table" and md.authorization_response_iss_parameter_supported == true
end

--- Build an authorization request URL (RFC 6749 §4.1.1, RFC 7636, OIDC).
-- state and PKCE S256 are on by default, nonce whenever an ID token may
-- come back. Any other field is sent as a request parameter.
-- @return url, session (a plain table to keep until the callback)
function Provider:authorization_url(opts)
  opts = check_opts(opts, "authorization_url")
  local ep, err = self:_endpoint("authorization_endpoint")
  if not ep then return nil, err end
  local response_type = opts.response_type or self.response_type or "code"
  local scope = opts.scope or self.scope
  local redirect_uri = opts.redirect_uri or self.redirect_uri
  if redirect_uri then
    local ok, msg = check_redirect_uri(redirect_uri, self.allow_http)
    if not ok then return cfg_err("redirect_uri " .. msg) end
  end
  -- max_age feeds the auth_time check: NaN or a fraction would switch it off
  local max_age = opts.max_age
  if max_age ~= nil then
    max_age = math.tointeger(tonumber(max_age))
    if not max_age or max_age < 0 then
      return cfg_err("authorization_url: 'max_age' must be a non-negative integer (seconds)")
    end
  end
  local identity, ierr = self:_authz_identity()
  if not identity then return nil, ierr end
  local session = {
    state = opts.state or random_token(32),
    redirect_uri = redirect_uri,
    scope = scope,
    response_type = response_type,
    response_mode = opts.response_mode,
    max_age = max_age,
    issuer = self.issuer,
    provider = identity,
    iss_required = self:_iss_promised() or nil,
    created_at = clock.now(),
  }
  local params = {
    response_type = response_type, client_id = self.client_id,
    redirect_uri = redirect_uri, scope = scope, state = session.state,
  }
  if opts.pkce ~= false and has_word(response_type, "code") then
    session.code_verifier = core.pkce_verifier()
    params.code_challenge = core.pkce_challenge(session.code_verifier)
    params.code_challenge_method = "S256"
  end
  if opts.nonce ~= false and (has_word(scope, "openid") or has_word(response_type, "id_token")) then
    session.nonce = type(opts.nonce) == "string" and opts.nonce or random_token(32)
    params.nonce = session.nonce
  end
  for k, v in pairs(opts) do
    if not AUTHZ_CONSUMED[k] then
      if type(k) ~= "string" then error("authorization parameters must have string names", 2) end
      if type(v) == "table" then
        v = (k == "claims" or k == "authorization_details") and cjson.encode(v) or table.concat(v, " ")
      end
      params[k] = tostring(v)
    end
  end
  if max_age then params.max_age = tostring(max_age) end
  return url.add_query(ep, params), session
end

-- The callback's parameters; the fragment only when use_fragment (a
-- response in the query never has one, and a fragment is what page script
-- or an attacker's link can add). A name given twice, also once in the query
-- and once in the fragment, is refused (RFC 6749 §3.1).
local function parse_callback(s, use_fragment)
  s = s:match("^%s*(.-)%s*$")
  if #s > 65536 then return nil, errors.new("validation", "redirect URL is too long") end
  local query, fragment
  if s:find("^%a[%w+.-]*:") then
    query, fragment = s:match("^[^?#]*%??([^#]*)#?(.*)$")
  else
    query, fragment = s:gsub("^%?", ""), ""
  end
  local out, err = url.decode(query)
  if not out then return nil, errors.new("validation", "redirect URL: " .. err) end
  if use_fragment and fragment ~= "" then
    local f, ferr = url.decode(fragment)
    if not f then return nil, errors.new("validation", "redirect URL fragment: " .. ferr) end
    for k, v in pairs(f) do
      if out[k] ~= nil then
        return nil, errors.new("validation", "redirect URL: parameter '" .. clean_text(k, 40) ..
          "' is repeated in the query and the fragment")
      end
      out[k] = v
    end
  end
  return out
end

--- Parse the URL (or just the query) the authorization server redirected
-- to: returns {code=, state=, iss=, id_token=, error=, ...} or nil, err.
-- Parameters in the fragment (implicit and hybrid flows) are included
-- unless response_type is "code" (whose response is in the query). A
-- parameter given more than once is refused (RFC 6749 §3.1).
-- @param s the redirect URL or its query
-- @param response_type optional: the response_type of the request
function M.parse_redirect(s, response_type)
  if type(s) ~= "string" then error("bad argument #1 to 'parse_redirect' (string expected)", 2) end
  return parse_callback(s, response_type == nil or has_word(response_type, "id_token")
    or has_word(response_type, "token"))
end

--- Exchange an authorization code (RFC 6749 §4.1.3) after checking the
-- callback against the session: the session is this provider's, then state
-- (constant time), then iss (RFC 9207), and only then an error is reported.
-- @param opts { code=, state=, iss=, url= (the whole redirect), session= };
--   iss = false: there is no authorization response to carry iss (a code a
--   person typed in), so a provider's promise of iss cannot be checked
function Provider:exchange_code(opts)
  opts = check_opts(opts, "exchange_code")
  local session = opts.session
  if type(session) ~= "table" then
    error("bad argument to 'exchange_code' (session from authorization_url expected)", 2)
  end
  -- before anything is sent: this code and verifier were made for one provider
  local identity, ierr = self:_authz_identity()
  if not identity then return nil, ierr end
  if type(session.provider) ~= "string" or session.provider ~= identity then
    return nil, errors.new("validation", "the session was not made by this provider's authorization_url",
      { check = "provider" })
  end
  local rt = session.response_type or "code"
  local no_response = opts.iss == false
  local cb = { code = opts.code, state = opts.state, iss = opts.iss or nil }
  if opts.url then
    if type(opts.url) ~= "string" then error("bad argument to 'exchange_code' ('url' must be a string)", 2) end
    if no_response then error("bad argument to 'exchange_code' (iss = false with a redirect URL)", 2) end
    local parsed, perr = parse_callback(opts.url, has_word(rt, "id_token") or has_word(rt, "token")
      or session.response_mode == "fragment")
    if not parsed then return nil, perr end
    cb = parsed
  end
  -- state first: anyone can send a browser to the callback with an error of
  -- their own text, only the authorization server knows the state
  if type(cb.state) ~= "string" or type(session.state) ~= "string"
      or not core.ct_equal(cb.state, session.state) then
    return nil, errors.new("validation", "state mismatch: the callback does not belong to this session",
      { check = "state" })
  end
  local iss = cb.iss
  if iss == nil then
    -- RFC 9207 §2.4: once the metadata promises iss, a response without it
    -- is refused; an out-of-band code has no redirect to carry it
    if (session.iss_required or self:_iss_promised()) and not OOB[session.redirect_uri]
        and not no_response then
      return nil, errors.new("validation", "the authorization response has no iss, which the provider's " ..
        "metadata promises (RFC 9207)", { check = "iss" })
    end
  elseif type(iss) ~= "string" or (self.issuer and iss ~= self.issuer) then
    return nil, errors.new("validation", "iss in the authorization response does not match the issuer",
      { check = "iss" })
  end
  if cb.error then
    return nil, errors.new("oauth", clean_text(cb.error_description, 500) or
      "the authorization server refused the request", { code = clean_text(cb.error, 100) })
  end
  if has_word(rt, "id_token") then
    -- implicit or hybrid: the front-channel ID token binds the code (c_hash)
    if type(cb.id_token) ~= "string" then
      return nil, errors.new("validation", "no id_token in the callback", { check = "id_token" })
    end
    local claims, verr = self:verify_id_token(cb.id_token, { nonce = session.nonce,
      max_age = session.max_age, code = cb.code, require_c_hash = has_word(rt, "code") })
    if not claims then return nil, verr end
    cb.claims = claims
    if not has_word(rt, "code") then
      return { id_token = cb.id_token, claims = claims }
    end
  end
  if type(cb.code) ~= "string" or cb.code == "" then
    return nil, errors.new("validation", "no authorization code in the callback")
  end
  local form = {
    grant_type = "authorization_code", code = cb.code,
    redirect_uri = opts.redirect_uri or session.redirect_uri,
    code_verifier = session.code_verifier,
  }
  local tok, err = self:_grant(form, { cb.code })
  if not tok then return nil, err end
  if self._on_code_token then
    local ok, verr = self:_on_code_token(tok, session, cb)
    if not ok then return nil, verr end
  end
  return (secrets[self].source:put(tok))
end

------------------------------------------------------------ OpenID Connect

function Provider:_client_secret()
  return secrets[self].client_secret
end

-- The provider's key set: static (option jwks) or fetched from jwks_uri.
function Provider:_jwks()
  if self._keyset then return self._keyset end
  local set = jwks_mod.new(function()
    local ep, err = self:_endpoint("jwks_uri")
    if not ep then return nil, err end
    local res, herr = self:_http { url = ep, headers = { "Accept: application/json" } }
    if not res then return nil, herr end
    if res.status ~= 200 then
      return nil, errors.new("http", "JWKS request failed", { status = res.status })
    end
    return res.body
  end)
  if self.jwks then
    local ok, err = set:load(self.jwks)
    if not ok then return nil, err end
    set.fetch = function() return nil, "static key set" end
  end
  self._keyset = set
  return set
end

--- Verify an ID token: signature (JWKS or, for HS*, the client secret),
-- alg allow-list, iss, aud, azp, exp, iat, nonce, auth_time, at_hash, c_hash.
-- @param id_token compact JWS
-- @param opts { nonce=, max_age=, access_token=, code= }
-- @return claims or nil, err (validation, err.check names the failed check)
function Provider:verify_id_token(id_token, opts)
  if type(id_token) ~= "string" then
    error("bad argument #1 to 'verify_id_token' (string expected, got " .. type(id_token) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'verify_id_token' (table expected)", 2)
  end
  if not self.issuer then return cfg_err("verify_id_token needs the provider's issuer") end
  if not self.jwks and not self.jwks_uri and not self.metadata then
    local ok, err = self:discover()
    if not ok then return nil, err end
  end
  local claims, err = oidc.verify(self, id_token, opts)
  if not claims then return nil, self:_scrub(err) end
  return claims
end

-- Called by exchange_code: the ID token of a code response must verify.
function Provider:_on_code_token(tok, session, cb)
  if not tok.id_token then
    if has_word(session.scope, "openid") and has_word(session.response_type, "code") then
      return nil, errors.new("validation", "ID token missing from the token response", { check = "id_token" })
    end
    return true
  end
  local claims, err = self:verify_id_token(tok.id_token, {
    nonce = session.nonce, max_age = session.max_age,
    access_token = tok.access_token,
  })
  if not claims then return nil, err end
  if cb.claims and cb.claims.sub ~= claims.sub then
    return nil, errors.new("validation", "ID tokens of the front and back channel name different users",
      { check = "sub" })
  end
  tok.claims = claims
  return true
end

local function token_string(tok, field)
  if type(tok) == "string" then return tok end
  if type(tok) == "table" then return tok[field or "access_token"] end
  return nil
end

--- UserInfo (OIDC Core §5.3) with the token; `sub` must match the ID
-- token's when both are known.
-- @param tok token object (default: p:token())
-- @return claims table or nil, err
function Provider:userinfo(tok)
  local ep, err = self:_endpoint("userinfo_endpoint")
  if not ep then return nil, err end
  if tok == nil then
    tok, err = self:token()
    if not tok then return nil, err end
  end
  local res, rerr = self:request { url = ep, token = type(tok) == "string" and { access_token = tok } or tok,
    headers = { "Accept: application/json" } }
  if not res then return nil, rerr end
  if res.status ~= 200 then
    local _, e = self:_token_response(res, "userinfo endpoint")
    if e and e.kind == "oauth" then return nil, e end
    return nil, errors.new("http", "userinfo endpoint returned HTTP " .. res.status, { status = res.status })
  end
  local ct = (res.headers["content-type"] or ""):lower()
  local info
  if ct:find("application/jwt", 1, true) then
    return nil, errors.new("validation", "signed UserInfo responses are not supported")
  end
  info = json.object(res.body)
  if type(info) ~= "table" then
    return nil, errors.new("validation", "UserInfo response is not a JSON object")
  end
  if type(info.sub) ~= "string" then return nil, errors.new("validation", "UserInfo has no sub", { check = "sub" }) end
  -- only verified claims count: an ID token we did not verify proves nothing
  local known_sub = type(tok) == "table" and type(tok.claims) == "table" and tok.claims.sub
  if known_sub and known_sub ~= info.sub then
    return nil, errors.new("validation", "UserInfo sub does not match the ID token's", { check = "sub" })
  end
  return info
end

--- Revoke a token (RFC 7009). A token object's refresh token is revoked
-- when it has one (which ends the grant), else its access token; the
-- provider forgets it too.
-- @param tok token object or token string
-- @param opts { hint = "access_token"|"refresh_token" }
function Provider:revoke(tok, opts)
  opts = check_opts(opts, "revoke")
  local value, hint
  if type(tok) == "table" and tok.refresh_token and opts.hint ~= "access_token" then
    value, hint = tok.refresh_token, "refresh_token"
  else
    value, hint = token_string(tok), opts.hint or (type(tok) == "table" and "access_token" or nil)
  end
  if type(value) ~= "string" then error("bad argument #1 to 'revoke' (token expected)", 2) end
  local ok, err = self:_revoke_one(value, hint)
  if not ok then return nil, err end
  local cur = secrets[self].tok
  if cur and (cur.access_token == value or cur.refresh_token == value
      or (type(tok) == "table" and cur.access_token == tok.access_token)) then
    self:forget()
  end
  return true
end

-- One RFC 7009 request.
function Provider:_revoke_one(value, hint)
  local res, err = self:_post_form("revocation_endpoint", { token = value, token_type_hint = hint })
  if not res then return nil, self:_scrub(err, { value }) end
  if res.status ~= 200 then
    local _, e = self:_token_response(res, "revocation endpoint", { value })
    return nil, self:_scrub(e or errors.new("http", "revocation failed", { status = res.status }), { value })
  end
  return true
end

--- Token introspection (RFC 7662).
-- @return the response object ({active=true, scope=, sub=, exp=, ...}) or nil, err
function Provider:introspect(tok, opts)
  opts = check_opts(opts, "introspect")
  local value = token_string(tok, opts.hint == "refresh_token" and "refresh_token" or "access_token")
  if type(value) ~= "string" then error("bad argument #1 to 'introspect' (token expected)", 2) end
  local res, err = self:_post_form("introspection_endpoint", { token = value, token_type_hint = opts.hint })
  if not res then return nil, self:_scrub(err, { value }) end
  if res.status ~= 200 then
    local _, e = self:_token_response(res, "introspection endpoint", { value })
    return nil, self:_scrub(e or errors.new("http", "introspection failed", { status = res.status }), { value })
  end
  local data = json.object(res.body)
  if type(data) ~= "table" or type(data.active) ~= "boolean" then
    return nil, errors.new("validation", "introspection response has no boolean 'active'")
  end
  return data
end

-------------------------------------------------------- token() and store

--- The key this provider's token is stored under: readable prefix plus a
-- digest of what makes the token distinct.
-- @param scope another scope than the provider's (a token of its own)
function Provider:store_key(scope)
  if scope ~= nil and scope ~= self.scope then return self:_make_store_key(scope) end
  local k = self._store_key
  if not k then
    k = self:_make_store_key(self.scope)
    self._store_key = k
  end
  return k
end

function Provider:_make_store_key(scope)
  local id = table.concat({
    self.issuer or self.token_endpoint or "", self.client_id or "", self.username or "",
    scope or "", secrets[self].api_key or "",
  }, "\n")
  local prefix = (self.name or "provider"):gsub("[^%w_.-]", "_")
  return prefix .. "." .. core.b64url_encode(core.sha2(256, id)):sub(1, 16)
end

-- Kept for the flows (device grant): keep a token as token() would.
function Provider:_save(tok)
  local _, err = secrets[self].source:put(tok)
  if err then return nil, err end
  return true
end

--- Forget the token (locally and in the store).
function Provider:forget()
  local s = secrets[self]
  s.save_error = nil
  s.source:set(nil)
  return self.store:delete(self:store_key())
end

--- The grant token() runs when nothing valid is stored, decided from the
-- options alone (never from discovery): the `grant` option (or the
-- preset's), else "password" when username and password are given, else
-- "client_credentials" for a confidential client with no redirect URI and
-- no interactive response type, else "authorization_code" (a person logs
-- in: token() never falls back to an app-only token).
function Provider:default_grant()
  if self.grant then return self.grant end
  local s = secrets[self]
  if s.api_key then return "none" end
  if self.username and s.password then return "password" end
  if self.client_auth ~= "none" and not self.redirect_uri and not self.response_type then
    return "client_credentials"
  end
  return "authorization_code"
end

--- The token in memory or, failing that, in the store; no network.
-- @return token, or nil (none), or nil, err (the store failed)
function Provider:stored()
  local s = secrets[self]
  if s.tok then return s.tok end
  local entry, err = self.store:get(self:store_key())
  if err then return nil, err end
  if entry == nil then return nil end
  return token_mod.from_entry(entry)
end

--- nil, or why the last token could not be saved (it is kept in memory
-- and handed out; the save is tried again on the next token() call).
function Provider:save_error()
  return secrets[self].save_error
end

--- Log out: revoke the access token and the refresh token (RFC 7009, one
-- request each, with token_type_hint), then forget the token.
-- @return { revoked = { "access_token", "refresh_token" }, failed = { [name] = err },
--   end_session_url = url or nil } or nil, err when the token cannot be forgotten
function Provider:logout()
  local out = { revoked = {}, failed = {} }
  local t, serr = self:stored()
  if serr then out.failed.store = serr end
  if t then
    local ep, eerr = self.revocation_endpoint, nil
    if not ep then ep, eerr = self:_endpoint("revocation_endpoint") end
    for _, name in ipairs { "access_token", "refresh_token" } do
      local value = t[name]
      if value then
        local ok, err = false, eerr
        if ep then ok, err = self:_revoke_one(value, name) end
        if ok then out.revoked[#out.revoked + 1] = name else out.failed[name] = err end
      end
    end
    local ese = self.end_session_endpoint
    if ese then
      out.end_session_url = url.add_query(ese, { id_token_hint = t.id_token, client_id = self.client_id })
    end
  end
  local ok, ferr = self:forget()
  if not ok then return nil, ferr end
  return out
end

local TOKEN_OPTS = { force = "boolean", min_ttl = "number", scope = "string" }

--- A valid token: cached, else stored, refreshed when within leeway of
-- expiry, else the provider's non-interactive grant (see token_source for
-- the whole lifecycle). Concurrent callers share one request; with a store
-- that locks across processes, one caller does the work.
-- @param opts { force = true (renew now), min_ttl = seconds (renew when less
--   is left), scope = string (a token for another scope, kept apart) }
-- @return token or nil, err (err.reauth: a person must log in)
function Provider:token(opts)
  -- the cached path: os.time plus the clock's offset is clock.now() inlined
  if not opts and os_time() + clock.offset < self._fresh_until then
    return secrets[self].tok
  end
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #1 to 'token' (table expected, got " .. type(opts) .. ")", 2) end
    for k, v in pairs(opts) do
      local want = TOKEN_OPTS[k]
      if not want then error("token: unknown option '" .. tostring(k) .. "'", 2) end
      if type(v) ~= want or (want == "number" and not (v >= 0 and v < math.huge)) then
        error("token: option '" .. k .. "' must be a " .. (want == "number" and "number of seconds" or want), 2)
      end
    end
  end
  return secrets[self].source:token(opts or NO_OPTS)
end

------------------------------------------------------------- API requests

local function header_lines(h, out)
  if h == nil then return out end
  if type(h) ~= "table" then error("'headers' must be a table", 3) end
  for k, v in pairs(h) do
    local line
    if type(k) == "number" then line = v else line = k .. ": " .. tostring(v) end
    if type(line) ~= "string" or line:find("[\r\n]") then
      error("header lines must be strings without CR or LF", 3)
    end
    out[#out + 1] = line
  end
  return out
end

local function has_header(lines, name)
  name = name:lower() .. ":"
  for _, l in ipairs(lines) do
    if l:sub(1, #name):lower() == name then return true end
  end
  return false
end

--- Call an API with the token attached (header, or query parameter where the
-- provider needs it). On 401 the token is refreshed once and the call
-- retried. Any HTTP status is returned as a response.
-- @param opts { method=, url=, headers=, body= (string or form table), json=, query=, token=, timeout= }
-- @return { status=, headers=, body= } or nil, err
function Provider:request(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'request' (table expected)", 2) end
  if type(opts.url) ~= "string" then error("'url' must be a string", 2) end
  local target = url.join(self.api_base, opts.url)
  local ok, msg = url.check_endpoint(target, self.allow_http)
  if not ok then return cfg_err("request url: " .. msg) end
  if opts.query then target = url.add_query(target, opts.query) end
  local headers = header_lines(opts.headers, {})
  local body = opts.body
  if type(body) == "table" then
    body = url.encode(body)
    if not has_header(headers, "content-type") then
      headers[#headers + 1] = "Content-Type: application/x-www-form-urlencoded"
    end
  elseif opts.json ~= nil then
    body = cjson.encode(opts.json)
    headers[#headers + 1] = "Content-Type: application/json"
  end
  local method = opts.method or (body and "POST" or "GET")

  local function send(tok)
    local h, u = { table.unpack(headers) }, target
    local s = secrets[self]
    if s.api_key then
      -- plain HTTP Basic (RFC 7617) with an API key, as SmartFile documents
      h[#h + 1] = "Authorization: Basic " .. core.b64_encode(s.api_key .. ":" .. (s.api_password or ""))
    elseif tok then
      if self.token_placement == "query" then
        u = url.add_query(target, { [self.token_param] = tok.access_token })
      else
        h[#h + 1] = "Authorization: Bearer " .. tok.access_token
      end
    end
    local res, err = self:_http { method = method, url = u, headers = h, body = body, timeout = opts.timeout,
      api = true }
    if not res then return nil, self:_scrub(err, tok and { tok.access_token }) end
    return res
  end

  if self.api_key_auth then return send(nil) end
  local tok = opts.token
  if tok == nil then
    local err
    tok, err = self:token()
    if not tok then return nil, err end
  end
  local res, rerr = send(tok)
  if res and res.status == 401 and opts.token == nil then
    -- the server ended this token: retire it everywhere, renew once
    secrets[self].source:retire(tok.access_token)
    local nt, terr = self:token()
    if not nt then return nil, terr end
    res, rerr = send(nt)
  end
  return res, rerr
end

return M
