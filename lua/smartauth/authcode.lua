--- Internal: The authorization code flow (RFC 6749 §4.1, RFC 7636 PKCE, OpenID
-- Connect's hybrid and implicit responses, RFC 9207 iss): the request URL
-- and its session, callback parsing, and the code exchange.
-- @module smartauth.authcode
local compat = require "smartauth.compat"
local client_auth = require "smartauth.client_auth"
local clock = require "smartauth.clock"
local json = require "smartauth.json"
local core = require "smartauth.core"
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local jarm = require "smartauth.jarm"
local jwt = require "smartauth.jwt"
local options = require "smartauth.options"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local secrets = vault.secrets
local check_opts = options.call_opts
local clean_text = errors.clean_text
local parse_callback = jarm.parse_callback
local has_word = url.has_word

local M = {}

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

local function random_token(n)
  return core.b64url_encode(core.random(n or 32))
end


local AUTHZ_CONSUMED = {
  redirect_uri = true, scope = true, response_type = true, pkce = true, state = true, nonce = true,
  resource = true, response_mode = true, request_uri = true, code_verifier = true,
}

M.REQUEST_OBJECT_TTL = 300 -- seconds a request object is valid (FAPI 2.0: at most 3600 past nbf)
M.MAX_REQUEST_URI = 4096   -- bytes of a pushed request's request_uri

-- Is the request pushed (RFC 9126)? The option (a profile such as fapi2
-- sets it when the provider is made), or the metadata's requirement.
local function par_on(self)
  if self.options.par then return true end
  local md = self:metadata()
  return type(md) == "table" and md.require_pushed_authorization_requests == true
end

-- The request object's alg: the option, else the key's own when the
-- metadata lists it (or lists nothing), else the first listed alg the key
-- signs with. Never none, never HS* (the key is asymmetric).
local function request_object_alg(self, key)
  local alg = self.options.request_object_signing_alg
  if alg then
    local ok, _, why = key:alg_ok(alg)
    if not ok then
      return cfg_err("client_assertion_key cannot sign request objects with " .. alg .. ": " .. tostring(why))
    end
    return alg
  end
  local own = key:default_alg()
  local md = self:metadata()
  local listed = type(md) == "table" and md.request_object_signing_alg_values_supported
  if type(listed) ~= "table" or listed[1] == nil then
    if own then return own end
    return cfg_err("client_assertion_key: no signing algorithm for request objects")
  end
  for _, a in ipairs(listed) do
    if a == own then return own end
  end
  for _, a in ipairs(listed) do
    if type(a) == "string" and a ~= "none" and not a:find("^HS") and key:alg_ok(a) then return a end
  end
  return cfg_err("none of the provider's request_object_signing_alg_values_supported can be signed " ..
    "with client_assertion_key (set option 'request_object_signing_alg')")
end

-- The signed request object (RFC 9101 §4): every parameter as a claim
-- (`structured` holds the JSON-valued ones as values), iss = client_id,
-- aud = issuer, a short life and a fresh jti. A bearer of the whole
-- request: it never appears in errors or hook events (wire.lua).
local function request_object(self, params, structured)
  local iss = self:endpoint("issuer")
  if not iss then
    return cfg_err("request_object needs the provider's issuer (the request object's audience)")
  end
  if type(self.options.client_id) ~= "string" then
    return cfg_err("request_object needs option 'client_id' (the request object's issuer)")
  end
  local key, kerr = client_auth.signing_key(self)
  if not key then return nil, kerr end
  local alg, aerr = request_object_alg(self, key)
  if not alg then return nil, aerr end
  local claims = {}
  for k, v in pairs(params) do claims[k] = v end
  for k, v in pairs(structured) do claims[k] = v end
  local now = clock.now()
  claims.iss, claims.aud = self.options.client_id, iss
  claims.iat, claims.nbf, claims.exp = now, now, now + M.REQUEST_OBJECT_TTL
  claims.jti = random_token(24)
  local out, err = jwt.encode({ alg = alg, typ = "oauth-authz-req+jwt", kid = self.options.client_assertion_kid },
    claims, key)
  if not out then
    return cfg_err("cannot sign the request object: " .. tostring(errors.is(err) and err.description or err))
  end
  return out
end

local PAR_WHAT = "pushed authorization request endpoint"

-- Push the request (RFC 9126 §2) with the client's authentication; the
-- answer's request_uri, or nil, err. An error answer is the usual oauth
-- error; an answer without a usable request_uri or expires_in is refused.
local function push(self, form, secret)
  local extra = secret and { secret } or nil
  local res, err = grant.post_form(self, "pushed_authorization_request_endpoint", form)
  if not res then return nil, vault.scrub(self, err, extra) end
  local data = json.object(res.body)
  if res.status < 200 or res.status >= 300 or (data and data.error ~= nil and data.error ~= json.null) then
    local _, derr = grant.decode(self, res, PAR_WHAT, extra)
    return nil, vault.scrub(self, derr or errors.new("http", PAR_WHAT .. " returned HTTP " .. res.status,
      { status = res.status }), extra)
  end
  if not data then
    return nil, errors.new("http", PAR_WHAT .. " returned a body that is not a JSON object", { status = res.status })
  end
  local ru, ttl = data.request_uri, data.expires_in
  if type(ru) ~= "string" or ru == "" or #ru > M.MAX_REQUEST_URI or ru:find("[%s%c]") then
    return nil, errors.new("validation", PAR_WHAT .. " answered without a usable request_uri",
      { check = "request_uri", status = res.status })
  end
  if type(ttl) ~= "number" or not (ttl > 0 and ttl < math.huge) then
    return nil, errors.new("validation", PAR_WHAT .. " answered without a positive expires_in",
      { check = "expires_in", status = res.status })
  end
  return ru, ttl
end


-- Who a session belongs to: the issuer, else the token endpoint and client
-- (RFC 9207 §4's mix-up: provider A's code and PKCE verifier must never
-- reach provider B). Discovers first when the issuer would come from
-- discovery, so that both ends of a flow see the same identity.
local function authz_identity(self)
  if not self:endpoint("issuer") and self.options.discovery_url and not self:metadata() then
    local ok, err = self:discover()
    if not ok then return nil, err end
  end
  if self:endpoint("issuer") then return "issuer " .. self:endpoint("issuer") end
  return "token_endpoint " .. tostring(self:endpoint("token_endpoint")) ..
    " client_id " .. tostring(self.options.client_id)
end

-- RFC 9101 §5.2.3 with a request object the application hosts: only
-- request_uri and client_id (and, for OpenID Connect, response_type and
-- scope) travel; everything else is in the object. The session records
-- what the object holds for the callback's checks.
local function hosted_request(self, opts, params, session)
  local ru = opts.request_uri
  if type(ru) ~= "string" or #ru > M.MAX_REQUEST_URI or ru:find("[%s%c]") or not ru:find("^%a[%w+.-]*:.") then
    return cfg_err("authorization_url: 'request_uri' must be an absolute URI of at most " ..
      M.MAX_REQUEST_URI .. " bytes")
  end
  if self.options.request_object or par_on(self) then
    return cfg_err("authorization_url: 'request_uri' cannot be combined with request_object or par")
  end
  if type(opts.state) ~= "string" then
    return cfg_err("authorization_url: 'request_uri' needs 'state' (the state the request object holds)")
  end
  for k in pairs(opts) do
    if not AUTHZ_CONSUMED[k] and k ~= "max_age" then
      return cfg_err("authorization_url: '" .. clean_text(tostring(k), 40) .. "' cannot be sent with " ..
        "'request_uri': put it in the request object (RFC 9101)")
    end
  end
  session.nonce = type(opts.nonce) == "string" and opts.nonce or nil
  session.code_verifier = type(opts.code_verifier) == "string" and opts.code_verifier or nil
  local out = { client_id = self.options.client_id, request_uri = ru }
  if has_word(params.scope, "openid") then out.response_type, out.scope = params.response_type, params.scope end
  return out
end

-- Does the provider's metadata promise iss in every authorization response?
local function iss_promised(self)
  local md = self:metadata()
  return type(md) == "table" and md.authorization_response_iss_parameter_supported == true
end

--- Build an authorization request URL (RFC 6749 §4.1.1, RFC 7636, OIDC).
-- state and PKCE S256 are on by default, nonce whenever an ID token may
-- come back. Any other field is sent as a request parameter. With
-- `request_object` the parameters travel in a signed request object (RFC
-- 9101); with `par` (or the metadata's requirement) they are pushed first
-- (RFC 9126) and the URL carries only client_id and request_uri: then
-- this makes a request (it yields inside a task) and can fail.
-- @param self the provider (the method `p:authorization_url`)
-- @param opts redirect_uri, scope, response_type, state, nonce (false: none),
--   pkce (false: none), max_age, response_mode, resource (RFC 8707), and
--   request parameters
-- @return url, session (a plain table to keep until the callback), or nil, err
function M.authorization_url(self, opts)
  opts = check_opts(opts, "authorization_url")
  local ep, err = discovery.endpoint(self, "authorization_endpoint")
  if not ep then return nil, err end
  local response_type = opts.response_type or self.options.response_type or "code"
  local fapi = self.options.profile == "fapi2"
  if fapi and (response_type ~= "code" or opts.pkce == false) then
    return cfg_err("authorization_url: profile 'fapi2' allows only response_type 'code' with PKCE S256",
      { option = response_type ~= "code" and "response_type" or "pkce" })
  end
  local rt_ok, rt_why = require("smartauth.schema").check_response_type(response_type)
  if not rt_ok then return cfg_err("authorization_url: " .. rt_why) end
  local mode = opts.response_mode or self.options.response_mode
  if mode ~= nil then
    local ok, why = jarm.check_mode(mode)
    if not ok then return cfg_err("authorization_url: " .. why) end
  end
  local scope = opts.scope or self.options.scope
  local redirect_uri = opts.redirect_uri or self.options.redirect_uri
  if redirect_uri then
    local ok, msg = url.check_redirect_uri(redirect_uri, self.options.allow_http)
    if not ok then return cfg_err("redirect_uri " .. msg) end
  end
  -- max_age feeds the auth_time check: NaN or a fraction would switch it off
  local max_age = opts.max_age
  if max_age ~= nil then
    max_age = compat.tointeger(tonumber(max_age))
    if not max_age or max_age < 0 then
      return cfg_err("authorization_url: 'max_age' must be a non-negative integer (seconds)")
    end
  end
  local resource, rerr = grant.resource(self, opts.resource, "authorization_url")
  if rerr then return nil, rerr end
  local identity, ierr = authz_identity(self)
  if not identity then return nil, ierr end
  local session = {
    state = opts.state or random_token(32),
    redirect_uri = redirect_uri,
    scope = scope,
    response_type = response_type,
    response_mode = mode,
    max_age = max_age,
    issuer = self:endpoint("issuer"),
    provider = identity,
    iss_required = (fapi or iss_promised(self)) or nil,
    created_at = clock.now(),
    resource = resource or nil,
  }
  local params = {
    response_type = response_type, client_id = self.options.client_id,
    redirect_uri = redirect_uri, scope = scope, state = session.state, response_mode = mode,
  }
  if opts.request_uri ~= nil then
    local hosted, herr = hosted_request(self, opts, params, session)
    if not hosted then return nil, herr end
    session.max_age = max_age
    return url.add_query(ep, hosted), session
  end
  if opts.pkce ~= false and has_word(response_type, "code") then
    session.code_verifier = core.pkce_verifier()
    params.code_challenge = core.pkce_challenge(session.code_verifier)
    params.code_challenge_method = "S256"
  end
  if opts.nonce ~= false and (has_word(scope, "openid") or has_word(response_type, "id_token")) then
    session.nonce = type(opts.nonce) == "string" and opts.nonce or random_token(32)
    params.nonce = session.nonce
  end
  -- JSON-valued parameters as values, for a request object's claims
  local structured = {}
  for k, v in pairs(opts) do
    if not AUTHZ_CONSUMED[k] then
      if type(k) ~= "string" then error("authorization parameters must have string names", 2) end
      if type(v) == "table" then
        if k == "claims" or k == "authorization_details" then
          structured[k] = v
          v = json.encode(v)
        else
          v = table.concat(v, " ")
        end
      end
      params[k] = tostring(v)
    end
  end
  if max_age then params.max_age, structured.max_age = tostring(max_age), max_age end
  params.resource = resource or nil
  local secret
  if self.options.request_object then
    local ro, roerr = request_object(self, params, structured)
    if not ro then return nil, roerr end
    secret = ro
    params = { client_id = self.options.client_id, request = ro }
  end
  if par_on(self) then
    local ru, perr = push(self, params, secret)
    if not ru then return nil, perr end
    params = { client_id = self.options.client_id, request_uri = ru }
  end
  return url.add_query(ep, params), session
end

--- Parse the URL (or just the query) the authorization server redirected
-- to, or a form_post body (it reads as a query): returns {code=, state=,
-- iss=, id_token=, error=, response= (JARM, not verified here), ...} or
-- nil, err. Parameters in the fragment (implicit and hybrid flows) are
-- included unless response_type is "code" (whose response is in the
-- query). A parameter given more than once is refused (RFC 6749 §3.1).
-- @param s the redirect URL, its query, or a form_post body
-- @param response_type optional: the response_type of the request
function M.parse_redirect(s, response_type)
  if type(s) ~= "string" then errors.argerror(1, "parse_redirect", "string expected", s) end
  return parse_callback(s, response_type == nil or has_word(response_type, "id_token")
    or has_word(response_type, "token"))
end

--- Exchange an authorization code (RFC 6749 §4.1.3) after checking the
-- callback against the session: the session is this provider's, then state
-- (constant time), then iss (RFC 9207), and only then an error is reported.
-- @param self the provider (the method `p:exchange_code`)
-- @param opts { code=, state=, iss=, url= (the whole redirect), session=,
--   keep= }; iss = false: there is no authorization response to carry iss (a
--   code a person typed in), so a provider's promise of iss cannot be
--   checked; keep = false: the token is returned, not kept
function M.exchange_code(self, opts)
  opts = check_opts(opts, "exchange_code")
  local session = opts.session
  if type(session) ~= "table" then
    errors.argerror(nil, "exchange_code", "session from authorization_url expected", session)
  end
  if opts.keep ~= nil and type(opts.keep) ~= "boolean" then
    errors.argerror(nil, "exchange_code", "'keep' must be a boolean", opts.keep)
  end
  -- before anything is sent: this code and verifier were made for one provider
  local identity, ierr = authz_identity(self)
  if not identity then return nil, ierr end
  if type(session.provider) ~= "string" or session.provider ~= identity then
    return nil, errors.new("validation", "the session was not made by this provider's authorization_url",
      { check = "provider" })
  end
  local rt = session.response_type or "code"
  local no_response = opts.iss == false
  local mode = session.response_mode
  local cb = { code = opts.code, state = opts.state, iss = opts.iss or nil, response = opts.response }
  local given = opts.url or opts.form
  if given ~= nil then
    if type(given) ~= "string" or (opts.url and opts.form) then
      errors.argerror(nil, "exchange_code", "one string 'url' or 'form' expected", given)
    end
    if no_response then errors.argerror(nil, "exchange_code", "iss = false with a redirect", errors.NOGOT) end
    local parsed, perr
    if opts.form then
      parsed, perr = jarm.parse_form(given)
    else
      parsed, perr = parse_callback(given, has_word(rt, "id_token") or has_word(rt, "token")
        or jarm.in_fragment(mode, rt))
    end
    if not parsed then return nil, perr end
    cb = parsed
  end
  -- JARM: only the verified response's parameters count
  local jerr
  cb, jerr = jarm.response(self, cb, mode)
  if not cb then return nil, jerr end
  -- state first: anyone can send a browser to the callback with an error of
  -- their own text, only the authorization server knows the state
  if type(cb.state) ~= "string" or type(session.state) ~= "string"
      or not core.ct_equal(cb.state, session.state) then
    return nil, errors.new("validation", "state mismatch: the callback does not belong to this session",
      { check = "state" })
  end
  local iss = cb.iss
  if iss == nil and self.options.profile == "fapi2" then
    -- FAPI 2.0 §5.3.3.2 (RFC 9207): always, and there is no out-of-band code
    return nil, errors.new("validation", "the authorization response has no iss, which profile 'fapi2' " ..
      "requires (RFC 9207)", { check = "iss" })
  elseif iss == nil then
    -- RFC 9207 §2.4: once the metadata promises iss, a response without it
    -- is refused; an out-of-band code has no redirect to carry it, and a
    -- response with an ID token carries the issuer in its iss claim (the
    -- OpenID Connect mix-up defence; oidc-provider sends no iss parameter
    -- then), verified below before the code is used
    if (session.iss_required or iss_promised(self)) and not url.is_oob(session.redirect_uri)
        and not no_response and not has_word(rt, "id_token") then
      return nil, errors.new("validation", "the authorization response has no iss, which the provider's " ..
        "metadata promises (RFC 9207)", { check = "iss" })
    end
  elseif type(iss) ~= "string" or (self:endpoint("issuer") and iss ~= self:endpoint("issuer")) then
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
  -- RFC 8707 §2.2: the resource of the token asked for, by default the
  -- authorization request's
  local resource = session.resource
  if opts.resource ~= nil or resource == nil then
    local rerr
    resource, rerr = grant.resource(self, opts.resource, "exchange_code")
    if rerr then return nil, rerr end
  end
  local form = {
    grant_type = "authorization_code", code = cb.code,
    redirect_uri = opts.redirect_uri or session.redirect_uri,
    code_verifier = session.code_verifier, resource = resource,
  }
  local tok, err = grant.request(self, form, { cb.code })
  if not tok then return nil, err end
  local ok, verr = require("smartauth.oidc").check_code_token(self, tok, session, cb)
  if not ok then return nil, verr end
  -- keep = false: one person's token for an application serving many; the
  -- provider's own token (memory and store) stays as it was
  if opts.keep == false then return tok end
  return (secrets[self].source:put(tok))
end


return M
