--- The generic OAuth 2.0 / OpenID Connect provider: its options (checked
-- once, kept in `p.options`, never as fields, so no option shadows a
-- method), its secrets (in the vault, never on the object), and the method
-- table that names the file of each concern. Presets are this plus data.
--
--     discovery.lua     p:discover(), endpoints found by discovery
--     client_auth.lua   basic | post | none | client_secret_jwt | private_key_jwt
--                       | tls_client_auth | self_signed_tls_client_auth
--     grant.lua         client_credentials, password, refresh, revoke, introspect, logout
--     exchange.lua      token_exchange (RFC 8693), grant (any grant type)
--     logout.lua        end_session_url (RP-Initiated Logout)
--     authcode.lua      authorization_url (PAR, JAR), exchange_code, parse_redirect
--     token_source.lua  token(), the token lifecycle, store key
--     api.lua           request(): the token attached, one renewal on 401
--     oidc.lua          verify_id_token, userinfo
--     resource.lua      verify_access_token, the introspection cache
--     device.lua, flow.lua   device grant and login flows, loaded on first use
--
-- `smartauth.provider{...}` (module smartauth) makes one; the presets and
-- `smartauth.discover` make theirs here too. Every option is listed in
-- `smartauth.schema.options`, every method under `Provider`.
-- @module smartauth.provider
-- Only what making a provider and serving a cached token need loads with
-- this module; grants, API calls, discovery and the HTTP transport load on
-- their first use (a game or a CLI call with a stored token never maps
-- them, nor libcurl).
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local options = require "smartauth.options"
local store_mod = require "smartauth.store"
local token_source = require "smartauth.token_source"
local vault = require "smartauth.vault"
local schema = require "smartauth.schema"

local M = {}

local NO_OPTS = options.NO_OPTS
local secrets = vault.secrets
local os_time = os.time

local Provider = { __name = "smartauth.provider" }
Provider.__index = Provider
M.Provider = Provider

--- The endpoint options discovery may fill in.
M.ENDPOINTS = {
  "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
  "revocation_endpoint", "introspection_endpoint", "device_authorization_endpoint",
  "end_session_endpoint",
  "pushed_authorization_request_endpoint",
}

--- The default `leeway`, in seconds.
M.DEFAULT_LEEWAY = 120 -- seconds; see DESIGN.md on early refresh margins

--- The options' specs (`smartauth.schema`): `options.check` reads them;
-- `smartauth.schema.options` describes each.
M.SCHEMA = schema.SCHEMA

--- Parse a redirect URL (or its query): `{ code =, state =, iss =,
-- id_token =, error =, ... }`, or nil, err. `smartauth.parse_redirect` is
-- the same function.
-- @function parse_redirect
-- @tparam string s the URL the authorization server redirected to, or its query
-- @tparam[opt] string response_type the request's (with `"code"` the fragment is ignored)

--- Create a provider (`smartauth.provider` calls this).
-- @tparam table opts the provider's options (`smartauth.schema.options`)
-- @tparam[opt] string where the constructor's name, for messages
-- @tparam[opt] table extra already-checked options a preset adds (region, domain)
-- @return a `Provider`, or nil, err (`config`)
function M.new(opts, where, extra)
  if type(opts) ~= "table" then
    errors.argerror(1, "provider", "table expected", opts)
  end
  where = where or "smartauth.provider"
  local o, err = schema.check(opts, where, M.ENDPOINTS)
  if not o then return nil, err end
  local self = setmetatable({}, Provider)
  -- secrets, tokens and what may hold one (an API key, token_headers) are
  -- kept off the object: dumping a provider shows none of them
  local s = { client_secret = o.client_secret, password = o.password, api_password = o.api_password,
    client_assertion_key = o.client_assertion_key, api_key = o.api_key, token_headers = o.token_headers,
    decryption_keys = o.decryption_keys }
  o.client_secret, o.password, o.api_password, o.client_assertion_key = nil, nil, nil, nil
  o.decryption_keys = nil
  o.api_key, o.token_headers = nil, nil
  secrets[self] = s
  if o.proxy ~= nil or o.client_cert ~= nil or o.client_key ~= nil or o.client_key_password ~= nil then
    local conf_ok, terr = require("smartauth.transport").configure(o, s, where)
    if not conf_ok then return nil, terr end
  end
  if o.dpop or o.dpop_key ~= nil then
    local dpop_ok, derr = require("smartauth.dpop").configure(o, s, where)
    if not dpop_ok then return nil, derr end
  end
  if o.profile then
    local ok, kerr = require("smartauth.profile").check_key(o, function()
      return require("smartauth.client_auth").signing_key(self)
    end, where)
    if not ok then return nil, kerr end
  end
  for k, v in pairs(extra or NO_OPTS) do o[k] = v end
  o.leeway = o.leeway or M.DEFAULT_LEEWAY
  o.store = o.store or store_mod.memory()
  o.token_placement = o.token_placement or "header"
  o.token_param = o.token_param or "access_token"
  -- options live in one table, never as fields: no option shadows a method
  self.options = setmetatable({}, {
    __index = o,
    __newindex = function(_, k)
      error("provider options are read-only (option '" .. tostring(k) .. "'): make a new provider", 2)
    end,
    __pairs = function() return next, o, nil end,
  })
  self._disc = {} -- what discovery found: endpoints, issuer
  self.api_key_auth = s.api_key ~= nil or nil
  s.source = token_source.new(self, s)
  return self
end

--- A provider: what `smartauth.provider{}`, `smartauth.discover` and the
-- presets return. Its options are in `p.options` (read-only; see
-- `smartauth.schema.options`); its methods follow. Every method returns `nil, err` on a
-- failure (an error object, see `smartauth.errors`) and raises only on a
-- programming mistake (a wrong argument type).
-- @type Provider

function Provider:__tostring()
  return "smartauth.provider(" .. (self.options.name or self:endpoint("issuer")
    or self:endpoint("token_endpoint") or "?") ..
    (self.options.client_id and (", client " .. self.options.client_id) or "") .. ")"
end

--- An endpoint (or "issuer"): the option, else what discovery found; no
-- network.
-- @tparam string name an endpoint option's name, or `"issuer"`
-- @treturn string|nil the URL
function Provider:endpoint(name)
  local v = self.options[name]
  if v == nil then v = self._disc[name] end
  return v
end

--- The discovery document, or nil before discovery.
-- @treturn table|nil the document as decoded
function Provider:metadata()
  return self._metadata
end

local TOKEN_OPTS = { force = "boolean", min_ttl = "number", scope = "string" }

--- A valid token: cached, else stored, refreshed when within leeway of
-- expiry, else the provider's non-interactive grant (see token_source for
-- the whole lifecycle). Concurrent callers share one request; with a store
-- that locks across processes, one caller does the work.
-- @tparam[opt] table opts
-- @tparam[opt] boolean opts.force renew now (refresh, else the grant)
-- @tparam[opt] number opts.min_ttl renew when fewer seconds are left
-- @tparam[opt] string opts.scope a token for another scope, stored apart
-- @return a `smartauth.token` or nil, err (`err.reauth`: a person must log in)
function Provider:token(opts)
  -- the cached path: os.time plus the clock's offset is clock.now() inlined
  if not opts and os_time() + clock.offset < self._fresh_until then
    return secrets[self].tok
  end
  if opts ~= nil then
    if type(opts) ~= "table" then
      errors.argerror(1, "token", "table expected", opts)
    end
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

-- -------------------------------------------------------- the method table

--- Fetch the discovery document (OpenID Connect Discovery / RFC 8414) and
-- fill in the endpoints the options did not set; the document's `issuer`
-- must equal the `issuer` option. Cached per process for an hour. Methods
-- that need a missing endpoint discover on their own.
-- @function Provider:discover
-- @return the provider, or nil, err

--- Client credentials grant (RFC 6749 §4.4); the token is kept (memory and store).
-- @function Provider:client_credentials
-- @tparam[opt] table opts `scope` (default the provider's), `resource`
--   (RFC 8707: a URI or a list; default the option), and any extra form
--   parameter (`audience`, ...)
-- @return a `smartauth.token`, or nil, err

--- Resource owner password grant (RFC 6749 §4.3); the token is kept.
-- @function Provider:password
-- @tparam[opt] table opts `username`, `password`, `scope`, `resource`
--   (defaults: the provider's options), and any extra form parameter
-- @return a `smartauth.token`, or nil, err

--- Refresh a token (RFC 6749 §6) and keep the result. The refresh token,
-- scope and ID token are kept when the answer has none; a new ID token is
-- verified (same `sub`). A new token the store refuses is still returned
-- (`p:save_error()` says why).
-- @function Provider:refresh
-- @tparam table|string tok a token object, or a refresh token
-- @tparam[opt] table opts `scope`, `resource` (default the option), and any
--   extra form parameter
-- @return a `smartauth.token`, or nil, err

--- Revoke a token (RFC 7009) and forget it. A token object's refresh token
-- is revoked when it has one (which ends the grant), else its access token.
-- @function Provider:revoke
-- @tparam table|string tok a token object or a token string
-- @tparam[opt] table opts `hint` = `"access_token"` or `"refresh_token"`
-- @return true, or nil, err

--- Token introspection (RFC 7662). With the `introspection_cache` option a
-- positive answer is kept (a copy is returned; a hit sends no request).
-- @function Provider:introspect
-- @tparam table|string tok a token object or a token string
-- @tparam[opt] table opts `hint` (token_type_hint)
-- @return the answer (`{ active = true, scope =, sub =, exp =, ... }`), or nil, err

--- Build an authorization request URL (RFC 6749 §4.1.1), with state, PKCE
-- S256, and a nonce whenever an ID token may come back.
-- @function Provider:authorization_url
-- @tparam[opt] table opts `redirect_uri`, `scope`, `response_type` (defaults:
--   the provider's options), `state` (default random), `nonce` (a string, or
--   `false` for none), `pkce` (`false` turns it off), `max_age` (seconds),
--   `response_mode`, `resource` (RFC 8707: a URI or a list, sent as repeated
--   parameters; default the `resource` option); any other field (`prompt`,
--   `login_hint`, `acr_values`, `ui_locales`, ...) is sent as a request
--   parameter. With `request_object` the parameters travel in a signed
--   request object (RFC 9101); with `par` (or when the metadata requires it)
--   they are pushed first (RFC 9126) and the URL carries only `client_id`
--   and `request_uri`: then this makes a request (it yields inside a task)
--   and can fail. `response_mode` (default the option): see the option.
--   `request_uri` (a request object the application hosts, RFC 9101 §5.2):
--   only `client_id` and `request_uri` are sent (with `response_type` and
--   `scope` when the scope has `openid`); `state` is needed, and `nonce`
--   and `code_verifier` are given as the object holds them; any other
--   request parameter is a `config` error
-- @return the URL and the session (a plain table to keep until the
--   callback: state, nonce, code_verifier, ...), or nil, err (`config`,
--   or the push's `oauth`, `http`, `validation`, ... error)

--- Exchange an authorization code (RFC 6749 §4.1.3) after checking the
-- callback against the session, in this order: the session is this
-- provider's, `state` (constant time), `iss` (RFC 9207), then an `error=`
-- is reported. An ID token is verified (nonce, at_hash, c_hash). The token
-- is kept as the provider's own (memory and store), unless `keep = false`.
-- @function Provider:exchange_code
-- @tparam table opts `session` (from `authorization_url`), and either `url`
--   (the whole redirect) or `code`, `state` and `iss`; `iss = false` for a
--   code a person typed in (nothing can carry `iss`); `resource` (RFC 8707;
--   default the authorization request's). `form` instead of `url`: a
--   `form_post` response's body (`application/x-www-form-urlencoded`, at
--   most 64 KiB, each name once). With a JARM `response_mode` only the
--   `response` JWT counts (in `url`, `form`, or as `response`): it is
--   verified (signature, alg, iss, aud, exp) before its `state`, `iss`,
--   `error` or `code` is used. `keep = false`: the token is only returned,
--   neither stored nor kept in memory, and the provider's own token stays as
--   it was: for a web application logging in many people, which keeps each
--   person's tokens itself (examples/nginx/login)
-- @return a `smartauth.token` (with `claims` when an ID token came), or nil, err

--- The key this provider's token is stored under: a readable prefix (the
-- `name` option) and a digest of issuer or token endpoint, client id,
-- username, scope and API key.
-- @function Provider:store_key
-- @tparam[opt] string scope another scope than the provider's
-- @treturn string the key

--- The grant `p:token()` runs when nothing valid is stored, decided from the
-- options alone (see the `grant` option).
-- @function Provider:default_grant
-- @treturn string the grant's name

--- The token in memory, else the stored one; no network.
-- @function Provider:stored
-- @return a `smartauth.token`, or nil (none), or nil, err (the store failed)

--- Why the last token could not be saved, or nil. An unsaved token is kept
-- in memory and handed out; the save is tried again on the next `token()`.
-- @function Provider:save_error
-- @return nil, or an error object (`storage`)

--- Forget the token, in memory and in the store (no revocation).
-- @function Provider:forget
-- @return true, or nil, err (the store failed)

--- Log out: revoke the access token and the refresh token (RFC 7009, one
-- request each, with `token_type_hint`), then forget the token. With an
-- end-session endpoint it also gives the RP-Initiated Logout URL (its
-- `id_token_hint` the stored token's ID token) for a browser to open.
-- @function Provider:logout
-- @tparam[opt] table opts what `end_session_url` takes (`post_logout_redirect_uri`, `state`, ...)
-- @return `{ revoked = { "access_token", "refresh_token" }, failed = { [name] = err },
--   end_session_url = url or nil }`, or nil, err when the token cannot be forgotten

--- Token exchange (RFC 8693): trade a subject token (and an actor token)
-- for a token for another audience, resource, scope or type. The answer
-- must name `issued_token_type`; `token_type` `N_A` is accepted for a token
-- that is not an access token. The result is returned, never kept: the
-- provider's own token (memory and store) stays as it was.
-- @function Provider:token_exchange
-- @tparam table opts `subject_token` (a string, or a token object: its
--   access token) and `subject_token_type` (a URI, or `"access_token"`,
--   `"refresh_token"`, `"id_token"`, `"jwt"`, `"saml1"`, `"saml2"`) are
--   required; `actor_token` needs `actor_token_type`; `audience`, `resource`
--   (a string or a list: repeated parameters), `scope`, `requested_token_type`;
--   any other field is sent as a form parameter
-- @return a `smartauth.token` with `issued_token_type`, or nil, err

--- Run any grant at the token endpoint (an RFC 6749 §4.5 extension grant,
-- e.g. `urn:ietf:params:oauth:grant-type:jwt-bearer` with `assertion`), with
-- the provider's client authentication, retries and error handling. The
-- token is returned, not kept. (The `grant` option, in `p.options`, does not
-- shadow this method.)
-- @function Provider:grant
-- @tparam string grant_type the `grant_type` value
-- @tparam[opt] table params form parameters (a list value repeats the parameter)
-- @return a `smartauth.token`, or nil, err

--- The OpenID Connect RP-Initiated Logout URL: `end_session_endpoint`
-- (option or discovery) with the parameters; a browser must open it.
-- @function Provider:end_session_url
-- @tparam[opt] table opts `id_token_hint` (an ID token or a token object),
--   `post_logout_redirect_uri`, `state`, `logout_hint`, `ui_locales`,
--   `client_id` (default the provider's)
-- @return the URL, or nil, err (`config`: no end-session endpoint)

--- Call an API with the token attached: the `Authorization: Bearer` header,
-- the query (`token_placement`), or HTTP Basic with the `api_key`. Retried
-- per the provider's policy (methods other than GET, HEAD, PUT, DELETE and
-- OPTIONS on 429 only). On a 401 the token is retired everywhere (memory
-- and store), renewed once and the call sent again. Any HTTP status is an
-- answer, not an error. A provider made by `smartauth.for_resource` also
-- follows the resource's challenges first (`insufficient_scope` step-up,
-- moved resource metadata; see `smartauth.resource_meta.follow`).
-- @function Provider:request
-- @tparam table opts
-- @tparam string opts.url the URL, or a path joined to `api_base`
-- @tparam[opt] string opts.method default `"POST"` with a body, else `"GET"`
-- @tparam[opt] table opts.headers `{ [name] = value }` or a list of `"Name: value"` lines
-- @tparam[opt] string|table opts.body a string, or a table sent form encoded
-- @param[opt] opts.json a value sent as JSON (`Content-Type: application/json`)
-- @tparam[opt] table opts.query parameters added to the URL
-- @tparam[opt] table|string opts.token a token (or access token) to use
--   instead of `p:token()`; then a 401 is returned as it is
-- @tparam[opt] number opts.timeout seconds, instead of the provider's `timeout`
-- @return `{ status =, headers = { [lower-case name] = value }, body = }`, or nil, err

--- Verify an ID token: signature (the key set, or the client secret for
-- HS*), the algorithm allow-list, then iss, aud, azp, exp, iat, nonce,
-- auth_time, at_hash, c_hash (with `leeway`). Discovers first when the key
-- set is unknown.
-- @function Provider:verify_id_token
-- @tparam string id_token the compact JWS
-- @tparam[opt] table opts `nonce`, `max_age` (seconds), `access_token` (for
--   at_hash), `code` (for c_hash)
-- @return the claims, or nil, err (`validation`; `err.check` names the failed check)

--- The OpenID Connect UserInfo claims (OIDC Core §5.3); `sub` must match a
-- verified ID token's. A signed answer (`application/jwt`) is verified like
-- an ID token (signature with the key set, the alg allow-list, iss, aud;
-- exp and iat when present); an encrypted one is refused (`validation`).
-- @function Provider:userinfo
-- @tparam[opt] table|string tok a token or access token (default `p:token()`)
-- @tparam[opt] table opts `resolve_claims = true`: aggregated and distributed
--   claims verified and put in place (see `resolve_claims`); without it
--   `_claim_names` and `_claim_sources` are returned as they came;
--   `claims_issuers`: issuers trusted for this call besides the option's
-- @return the claims table, or nil, err

--- Aggregated and distributed claims (OIDC Core §5.6.2) of a claims table
-- (a UserInfo answer, an ID token's `tok.claims`): each source's JWT is
-- verified with its issuer's keys (the provider's own issuer, or one in
-- `claims_issuers`, `https://` only, its keys discovered), a distributed
-- source fetched with its own `access_token`; the claims named for it are
-- put in place (never `sub`, `iss`, `aud`, ...), `_claim_names` and
-- `_claim_sources` removed. At most 16 sources, 256 names, 64 KiB a source.
-- @function Provider:resolve_claims
-- @tparam table claims the claims table
-- @tparam[opt] table opts `claims_issuers`
-- @return a new claims table, or nil, err (`validation` when a source fails a
--   check, `http` when it cannot be fetched): never unverified claims

--- Device authorization request (RFC 8628 §3.1).
-- @function Provider:device_authorization
-- @tparam[opt] table opts `scope`, and any extra form parameter
-- @return `{ device_code, user_code, verification_uri,
--   verification_uri_complete, expires_in, expires_at, interval }`, or nil, err

--- Poll the token endpoint until the person has approved the device (RFC
-- 8628 §3.4): waits `interval` between polls, 5 s more after each
-- `slow_down`, never past the code's expiry. Yields inside a task.
-- @function Provider:poll_device
-- @tparam table dev what `device_authorization` returned
-- @tparam[opt] table opts `sleep` = function(seconds) (default the engine's)
-- @return a `smartauth.token`, or nil, err (`access_denied`, `expired_token`, ...)

--- Log a person in with the best flow the provider and the situation allow
-- (loopback redirect, device code, or paste); see `smartauth.flow.login`
-- for the options.
-- @function Provider:login
-- @tparam[opt] table opts the login options
-- @return a `smartauth.token`, or nil, err

-- A method whose module loads on its first call.
local function lazy(module, name)
  return function(...) return require(module)[name](...) end
end

Provider.discover = lazy("smartauth.discovery", "discover")

Provider.client_credentials = lazy("smartauth.grant", "client_credentials")
Provider.password = lazy("smartauth.grant", "password")
Provider.refresh = lazy("smartauth.grant", "refresh")
Provider.revoke = lazy("smartauth.grant", "revoke")
Provider.introspect = lazy("smartauth.grant", "introspect")
Provider.logout = lazy("smartauth.grant", "logout")
Provider.token_exchange = lazy("smartauth.exchange", "token_exchange")
Provider.grant = lazy("smartauth.exchange", "grant")
Provider.end_session_url = lazy("smartauth.logout", "end_session_url")

Provider.request = lazy("smartauth.api", "request")

Provider.store_key = token_source.store_key
Provider.default_grant = token_source.default_grant
Provider.stored = token_source.stored
Provider.save_error = token_source.save_error
Provider.forget = token_source.forget

-- OpenID Connect verification, the device grant and the login flows load
-- on first use: a token call needs none of them (nor LuaSocket).
-- a service token (client credentials, password) never builds an
-- authorization request
Provider.authorization_url = lazy("smartauth.authcode", "authorization_url")
Provider.exchange_code = lazy("smartauth.authcode", "exchange_code")
M.parse_redirect = lazy("smartauth.authcode", "parse_redirect")
Provider.verify_id_token = lazy("smartauth.oidc", "verify_id_token")
Provider.userinfo = lazy("smartauth.oidc", "userinfo")
Provider.resolve_claims = lazy("smartauth.claims", "resolve")
Provider.verify_access_token = lazy("smartauth.resource", "verify_access_token")
Provider.device_authorization = lazy("smartauth.device", "device_authorization")
Provider.poll_device = lazy("smartauth.device", "poll_device")
Provider.login = lazy("smartauth.flow", "login")

return M
