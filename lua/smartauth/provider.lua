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
-- `options`, every method under `Provider`.
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
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local M = {}

local NO_OPTS = options.NO_OPTS
local secrets = vault.secrets
local os_time = os.time

local Provider = { __name = "smartauth.provider" }
Provider.__index = Provider
M.Provider = Provider

--- The endpoint options discovery fills in when they are not set.
--- The endpoint options discovery may fill in.
M.ENDPOINTS = {
  "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
  "revocation_endpoint", "introspection_endpoint", "device_authorization_endpoint",
  "end_session_endpoint",
  "pushed_authorization_request_endpoint",
}

--- The default `leeway`, in seconds.
M.DEFAULT_LEEWAY = 120 -- seconds; see DESIGN.md on early refresh margins

--- The options of `smartauth.provider{}` (and of every preset and
-- `smartauth.discover`). Each is checked when the provider is made: an
-- unknown key or a wrong type is a `config` error naming it (with a hint
-- for a near miss), numbers must be finite and in range. They are kept
-- read-only in `p.options`, except the secrets (`client_secret`,
-- `password`, `api_key`, `api_password`, `client_assertion_key`,
-- `token_headers`, the proxy's credentials, `client_key`,
-- `client_key_password`), which are kept off the provider object.
-- URL options must be `https://` (plain `http://` only for loopback hosts,
-- or with `allow_http`). In a config file the same keys make a profile,
-- except `on_http` (a function) and `store` (there a table `{ kind = ... }`).
-- @table options
-- @tfield[opt] string name the provider's name: the readable prefix of its
--   store key, and `provider` in `on_http` events (a preset or a config
--   profile sets it)
-- @tfield[opt] string issuer the OpenID Connect / OAuth issuer: discovery
--   reads `issuer/.well-known/openid-configuration`, and ID tokens must name it
-- @tfield[opt] string authorization_endpoint URL of the authorization endpoint
--   (else from discovery)
-- @tfield[opt] string token_endpoint URL of the token endpoint (else from discovery)
-- @tfield[opt] string userinfo_endpoint URL of the OpenID Connect UserInfo endpoint
-- @tfield[opt] string jwks_uri URL of the key set ID tokens are verified with
-- @tfield[opt] string revocation_endpoint URL of the RFC 7009 revocation endpoint
--   (`p:revoke`, `p:logout`)
-- @tfield[opt] string introspection_endpoint URL of the RFC 7662 introspection
--   endpoint (`p:introspect`)
-- @tfield[opt] string device_authorization_endpoint URL of the RFC 8628 device
--   authorization endpoint (the device flow)
-- @tfield[opt] string end_session_endpoint URL of the OpenID Connect end-session
--   endpoint (`p:logout` returns an `end_session_url` with it)
-- @tfield[opt] string discovery_url the discovery document's URL, when it is
--   not under the issuer (default: `issuer .. "/.well-known/openid-configuration"`)
-- @tfield[opt] string api_base base URL that relative `p:request{ url = }`
--   URLs are joined to
-- @tfield[opt] string client_id the client's identifier
-- @tfield[opt] string client_secret the client's secret (a secret: kept off the object)
-- @tfield[opt] string client_auth how the client authenticates at token-type
--   endpoints: `"basic"` (HTTP Basic), `"post"` (id and secret in the form),
--   `"none"` (public client: client_id only), `"client_secret_jwt"` or
--   `"private_key_jwt"` (RFC 7523 assertions), `"tls_client_auth"` or
--   `"self_signed_tls_client_auth"` (RFC 8705 mutual TLS: the client
--   certificate authenticates, the form carries `client_id` only; the
--   certificate is a CA-issued one the server checks against the registered
--   subject, or a self-signed one registered in the client's JWKS). Default:
--   `"basic"` with a `client_secret`, else `"none"`. basic, post and
--   client_secret_jwt need `client_secret`; private_key_jwt needs
--   `client_assertion_key`; the two mTLS methods need `client_cert`
-- @tfield[opt] string redirect_uri the registered redirect URI: `https://`, a
--   loopback `http://127.0.0.1:PORT/path` (the login flow listens there),
--   `urn:ietf:wg:oauth:2.0:oob` (the code is pasted), or an app's own
--   scheme (`com.example.app:/cb`); `http://` elsewhere only with `allow_http`
-- @tfield[opt] string scope space-separated scopes asked for by grants and
--   authorization requests; part of the store key
-- @tfield[opt] string response_type the default of `p:authorization_url`:
--   `"code"` (default), `"id_token"` or `"code id_token"` (the Hybrid
--   profile). `"token"`, `"id_token token"`, `"code token"` and
--   `"code id_token token"` are a `config` error: they put the access token
--   in the redirect, which RFC 9700 §2.1.2 says not to use
-- @tfield[opt] string response_mode the default of `p:authorization_url`:
--   `"query"`, `"fragment"`, `"form_post"` (the loopback login accepts the
--   POST; `p:exchange_code{ form = body }` takes it elsewhere), or JARM's
--   `"query.jwt"`, `"fragment.jwt"`, `"form_post.jwt"`, `"jwt"`: the
--   response is a signed JWT verified before use (see `exchange_code`)
-- @tfield[opt] string authorization_signed_response_alg JARM: the one alg
--   the response may be signed with (never `none`; HS* uses the client
--   secret). Default: the metadata's `authorization_signing_alg_values_supported`
--   within what smartauth verifies, else RS256
-- @tfield[opt] table claims_issuers aggregated and distributed claims
--   (`p:userinfo(tok, { resolve_claims = true })`): the issuers, besides
--   this provider, whose signed claims are taken (their keys are discovered)
-- @tfield[opt] table store where tokens are kept: any object with `get`,
--   `set`, `delete` and `lock` (see `smartauth.store`); default a new
--   `smartauth.store.memory()`
-- @tfield[opt] table|boolean retry a `smartauth.retry.policy`, or its options
--   (`{ attempts =, base =, max_delay =, budget = }`), or `false` for no
--   retries; default `smartauth.retry.default` (3 attempts)
-- @tfield[opt] function on_http debug hook: called with one event per HTTP
--   exchange of this provider, every secret redacted (see `smartauth.wire.event`)
-- @tfield[opt] number lock_ttl seconds the store lock is held for around a
--   refresh (1 to 86400); default the retry policy's budget + attempts x
--   `timeout` + 5, longer than a refresh can take
-- @tfield[opt] number default_expires_in the lifetime (seconds, 1 to 31536000)
--   assumed when a token answer has no `expires_in`; without it such a token
--   lives until an API call gets a 401
-- @tfield[opt=30] number timeout seconds one HTTP exchange may take in all
--   (0.001 to 86400)
-- @tfield[opt=10] number connect_timeout seconds connecting may take (0.001 to 86400)
-- @tfield[opt] string ca_file a PEM file of CA certificates to verify servers
--   with, instead of the system's store
-- @tfield[opt=120] number leeway seconds of clock skew allowed in ID-token
--   checks, and how long before its expiry a token is renewed (never more
--   than half its lifetime); 0 to 86400
-- @tfield[opt=false] boolean allow_http accept plain `http://` URLs for hosts
--   other than loopback ones
-- @tfield[opt=1048576] int max_body bytes of the largest answer accepted;
--   a larger one is an `http` error
-- @tfield[opt] string transport `"ngx"` (cosockets, inside nginx) or `"curl"`
--   (libcurl); default `"ngx"` inside nginx, else `"curl"`
-- @tfield[opt] string grant what `p:token()` runs when nothing valid is stored:
--   `"client_credentials"`, `"password"`, `"authorization_code"`,
--   `"loopback"`, `"device"`, `"oob"` or `"none"`. Default: the preset's;
--   else `"none"` with an `api_key`; else `"password"` with `username` and
--   `password`; else
--   `"client_credentials"` for a confidential client with no `redirect_uri`
--   and no `response_type`; else `"authorization_code"`. The interactive
--   ones (and `"none"`) make `p:token()` return an error with
--   `err.reauth = true` instead (`p:default_grant()` tells which applies)
-- @tfield[opt] string username the resource owner's user name (password grant)
-- @tfield[opt] string password the resource owner's password (password grant; a secret)
-- @tfield[opt] string api_key an API key sent with HTTP Basic by `p:request`
--   instead of a bearer token (SmartFile; a secret)
-- @tfield[opt] string api_password the API key's password (a secret)
-- @tfield[opt="header"] string token_placement where `p:request` puts the
--   access token: `"header"` (`Authorization: Bearer`) or `"query"`
-- @tfield[opt="access_token"] string token_param the query parameter's name
--   with `token_placement = "query"`
-- @tfield[opt] table token_headers extra headers (`{ [name] = value }`) sent
--   on every request to a token-type endpoint (token, revocation,
--   introspection, device authorization); kept as secrets
-- @tfield[opt] table id_token_algs the JWS algorithms accepted for ID tokens
--   (a list); default: those the discovery document lists among the
--   asymmetric ones the core verifies (RS, PS, ES 256/384/512, EdDSA).
--   `none` is never accepted, HS* only with `id_token_signed_response_alg`
-- @tfield[opt] string id_token_signed_response_alg `"HS256"`, `"HS384"` or
--   `"HS512"` when the client is registered for ID tokens signed with its
--   client secret
-- @tfield[opt] table jwks a static key set (`{ keys = { ... } }`) to verify ID
--   tokens with, instead of fetching `jwks_uri`
-- @tfield[opt] string|table client_assertion_key the private key for
--   `private_key_jwt`: PEM text, the path of a PEM file, or a private JWK
--   table (a secret)
-- @tfield[opt] string client_assertion_alg the assertion's JWS algorithm;
--   default the key's own (`private_key_jwt`), `"HS256"` (`client_secret_jwt`)
-- @tfield[opt] string client_assertion_kid the `kid` header of
--   `private_key_jwt` assertions
-- @tfield[opt] table decryption_keys the client's private keys for
--   encrypted (JWE) ID tokens, UserInfo answers and JARM responses: a list of
--   PEM texts, PEM file paths or private JWKs (RSA, EC; oct for A128KW,
--   A256KW, dir). Secrets, kept off the object; published (public parts,
--   `use = "enc"`) by `smartauth.jwe.provider_jwks(p)`
-- @tfield[opt] string proxy `http://[user:password@]host:port`, or `https://`
--   for a proxy spoken to over TLS; every request of the provider goes
--   through it (`https://` URLs in a CONNECT tunnel). The credentials are
--   secrets: `p.options.proxy` shows the URL without them. Without it,
--   libcurl's `https_proxy`, `HTTPS_PROXY`, `http_proxy`, `all_proxy`
--   environment variables apply
-- @tfield[opt] string no_proxy comma-separated hosts and domains that go
--   direct (`"*"`: all); overrides `NO_PROXY`
-- @tfield[opt] string client_cert mutual TLS: the client certificate, a PEM
--   file path or PEM text
-- @tfield[opt] string client_key the client certificate's private key, a
--   PEM file path or PEM text (default: read from `client_cert`); needs
--   `client_cert`; a secret
-- @tfield[opt] string client_key_password the password of an encrypted
--   `client_key` (decrypted by the C core; a secret)
-- @tfield[opt=false] boolean|table introspection_cache keep positive
--   `p:introspect` answers (`active = true`) in memory until the token's
--   `exp` or `max_ttl` seconds (default 300), whichever is first, keyed by
--   the token's SHA-256 (never the token); negative answers are never kept.
--   `true`, or `{ max_entries = (default 1000, least recently used dropped
--   first), max_ttl = }`. A revoked token stays accepted until its entry ends
-- @tfield[opt=false] boolean|table verified_cache keep the claims of JWT
--   access tokens `p:verify_access_token` accepted, in memory, keyed by the
--   token's SHA-256: a hit skips parsing and the signature (every claim,
--   audience, scope and sender check still runs); an entry ends at the
--   token's `exp` or after `max_ttl` seconds (default 86400); a refused
--   token is never kept. `true`, or `{ max_entries = (default 1000, least
--   recently used dropped first), max_ttl = }`. A token signed by a key that
--   left the key set stays accepted until its entry ends
-- @tfield[opt] string pushed_authorization_request_endpoint URL of the RFC 9126
--   pushed authorization request endpoint (else from discovery)
-- @tfield[opt=false] boolean par push every authorization request (RFC 9126):
--   `p:authorization_url` POSTs its parameters with the client's
--   authentication and returns a short URL with `client_id` and
--   `request_uri`. On by itself when the metadata says
--   `require_pushed_authorization_requests`
-- @tfield[opt=false] boolean request_object send authorization requests as a
--   signed request object (RFC 9101 JAR, `request=`), alone or pushed with
--   `par`; signed with `client_assertion_key` (needed)
-- @tfield[opt] string request_object_signing_alg the request object's JWS
--   algorithm (never `none`); default: the key's own when the metadata's
--   `request_object_signing_alg_values_supported` lists it (or lists
--   nothing), else the first listed one the key can sign with
-- @tfield[opt] string|table resource RFC 8707 resource indicator(s): an
--   absolute URI without fragment, or a list of them (sent as repeated
--   `resource` parameters) on authorization requests, code exchanges, the
--   grants and refreshes; a call's own `resource` replaces it
-- @tfield[opt] boolean use_mtls_endpoint_aliases whether the endpoints found
--   by discovery are replaced by the discovery document's
--   `mtls_endpoint_aliases` (RFC 8705 §5: token, revocation, introspection,
--   userinfo, device authorization and PAR endpoints). Default: yes when the
--   provider speaks mutual TLS (an mTLS `client_auth`, or a `client_cert`
--   and a server that announces `tls_client_certificate_bound_access_tokens`),
--   else no. `true` needs `client_cert`. An endpoint set as an option is never
--   replaced; an alias that is not a usable URL is a `validation` error of
--   discovery when the aliases are used, and ignored when they are not
-- @tfield[opt=false] boolean dpop sender-constrained tokens (DPoP, RFC 9449)
--   with an ES256 key made with the CSPRNG: token requests and `p:request`
--   carry a proof. The key is kept in the token's store entry, so the store
--   must be the memory store or one that encrypts (a file or Redis store with
--   `key`, a custom store with `encrypts = true`); else a `config` error
-- @tfield[opt] string|table dpop_key DPoP with the application's own key:
--   PEM text, the path of a PEM file, or a private JWK table (a secret); only
--   its thumbprint is stored, so any store works
-- @tfield[opt] string profile `"fapi2"`: hold the provider to the FAPI 2.0
--   Security Profile. It turns on `par` and always sends PKCE S256; needs
--   an `issuer` (or `discovery_url`), https for the issuer and every
--   endpoint (no `allow_http`, no loopback http), `client_auth`
--   `private_key_jwt`, `tls_client_auth` or `self_signed_tls_client_auth`,
--   sender-constrained tokens (`dpop`/`dpop_key`, or a `client_cert`),
--   `response_type` `"code"` only, no password grant and no out-of-band
--   code, and PS256, ES256 or EdDSA signatures only (client assertions,
--   request objects, accepted ID tokens; an RSA `client_assertion_key` of
--   2048+ bits signs PS256, EC keys must be P-256). Anything else is a
--   `config` error naming the rule and the option. Under it client
--   assertions carry the issuer as `aud`, and an authorization response
--   without `iss` (RFC 9207) is refused. Discovered endpoints and issuer
--   that are not https, or a document without
--   `pushed_authorization_request_endpoint`, are a `validation` error
--   (`check = "profile"`) of discovery, before any of them is used
-- @tfield[opt="auto"] string discovery which metadata document discovery
--   reads: `"oidc"` (`issuer/.well-known/openid-configuration`), `"oauth"`
--   (RFC 8414: `/.well-known/oauth-authorization-server` inserted between
--   the issuer's host and path, `https://h/t` → `https://h/.well-known/oauth-authorization-server/t`),
--   or `"auto"`: the OpenID one, then on a missing or unusable answer the
--   RFC 8414 one, then (an issuer with a path) `openid-configuration`
--   inserted the same way (RFC 8414 §5). Every document's `issuer` must be
--   the provider's

local SCHEMA = {
  name = "string", issuer = "string",
  authorization_endpoint = "url", token_endpoint = "url", userinfo_endpoint = "url",
  jwks_uri = "url", revocation_endpoint = "url", introspection_endpoint = "url",
  device_authorization_endpoint = "url", end_session_endpoint = "url",
  discovery_url = "url", api_base = "url",
  client_id = "string", client_secret = "string",
  client_auth = { type = "string", enum = { "basic", "post", "none", "private_key_jwt", "client_secret_jwt",
    "tls_client_auth", "self_signed_tls_client_auth" } },
  redirect_uri = "string", scope = "string",
  response_type = { type = "string", enum = { "code", "id_token", "code id_token" } }, -- check_response_type
  response_mode = { type = "string", enum = { "query", "fragment", "form_post", "query.jwt", "fragment.jwt",
    "form_post.jwt", "jwt" } },
  authorization_signed_response_alg = "string",  -- JARM (jarm.lua); never "none"
  claims_issuers = "table",                -- aggregated/distributed claims issuers trusted (claims.lua)
  store = "any", retry = "any",
  on_http = "function",                    -- debug hook: one redacted event per HTTP exchange (wire.lua)
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
  decryption_keys = "table",               -- JWE: list of PEM texts, PEM files or private JWKs (jwe.lua)
  -- proxies and mutual TLS (checked, and their secrets kept, by transport.configure)
  proxy = "string", no_proxy = "string",         -- "http://[user:password@]host:port"; "host,host"
  client_cert = "string", client_key = "string", -- PEM file paths or PEM text
  client_key_password = "string",
  introspection_cache = "any",             -- true or { max_entries =, max_ttl = } (resource.lua)
  verified_cache = "any",                  -- true or { max_entries =, max_ttl = } (resource.lua)
  -- RFC 9126 PAR, RFC 9101 JAR, RFC 8707 resource indicators (authcode.lua)
  pushed_authorization_request_endpoint = "url",
  par = "boolean",                               -- a profile (fapi2) may switch it on in new()
  request_object = "boolean",
  request_object_signing_alg = "string",         -- never "none"
  resource = "any",                              -- string or list: url.check_resource
  use_mtls_endpoint_aliases = "boolean",   -- RFC 8705 §5; default: when the provider speaks mTLS
  transport = { type = "string", enum = { "ngx", "curl" } }, -- default: ngx inside nginx, else curl
  -- DPoP, RFC 9449 (dpop.lua)
  dpop = "boolean", dpop_key = "any",      -- a generated ES256 key; PEM text, PEM file or private JWK
  profile = { type = "string", enum = { "fapi2" } }, -- FAPI 2.0 Security Profile (profile.lua)
  discovery = { type = "string", enum = { "auto", "oidc", "oauth" } }, -- RFC 8414 §5 (discovery.lua)
}
--- The options' specs (options.check): a type name or `{ type =, enum =,
-- min =, max =, integer = }` per option; `options` describes each.
M.SCHEMA = SCHEMA

--- Parse a redirect URL (or its query): `{ code =, state =, iss =,
-- id_token =, error =, ... }`, or nil, err. `smartauth.parse_redirect` is
-- the same function.
-- @function parse_redirect
-- @tparam string s the URL the authorization server redirected to, or its query
-- @tparam[opt] string response_type the request's (with `"code"` the fragment is ignored)

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

--- Is a response type one smartauth sends? true, or nil and why. Every
-- type that returns an access token in the redirect (implicit `token`,
-- `id_token token`, and the hybrid `code token`, `code id_token token`) is
-- refused: RFC 9700 §2.1.2 (the OAuth 2.0 Security BCP) says not to use
-- them, as the token leaks through history, referrers and logs, and
-- cannot be sender-constrained. `code id_token` (OIDC Hybrid) stays.
-- @tparam string rt the response_type
function M.check_response_type(rt)
  if url.has_word(rt, "token") then
    return nil, "response_type '" .. errors.clean_text(rt, 40) .. "' is not supported: it returns the " ..
      "access token in the redirect, which the OAuth 2.0 Security BCP (RFC 9700 §2.1.2) says not to use; " ..
      "use \"code\" (or \"code id_token\") and get the token from the token endpoint"
  end
  return true
end

--- Create a provider (`smartauth.provider` calls this).
-- @tparam table opts the provider's `options`
-- @tparam[opt] string where the constructor's name, for messages
-- @tparam[opt] table extra already-checked options a preset adds (region, domain)
-- @return a `Provider`, or nil, err (`config`)
function M.new(opts, where, extra)
  if type(opts) ~= "table" then
    errors.argerror(1, "provider", "table expected", opts)
  end
  where = where or "smartauth.provider"
  if type(opts.response_type) == "string" then
    local ok, why = M.check_response_type(opts.response_type)
    if not ok then return cfg_err(where .. ": option " .. why, { option = "response_type" }) end
  end
  local o, err = options.check(where, opts, SCHEMA, opts.allow_http)
  if not o then return nil, err end
  if o.authorization_signed_response_alg and o.authorization_signed_response_alg:lower() == "none" then
    return cfg_err(where .. ": option 'authorization_signed_response_alg' is never 'none'",
      { option = "authorization_signed_response_alg" })
  end
  if o.redirect_uri then
    local ok, msg = url.check_redirect_uri(o.redirect_uri, o.allow_http)
    if not ok then return cfg_err(where .. ": option 'redirect_uri' " .. msg, { option = "redirect_uri" }) end
  end
  if o.issuer then
    local ok, msg = url.check_endpoint(o.issuer, o.allow_http)
    if not ok then
      return cfg_err(where .. ": option 'issuer' is not a usable URL: " .. msg, { option = "issuer" })
    end
  end
  if o.store ~= nil then
    local ok, msg = store_mod.check(o.store)
    if not ok then return cfg_err(where .. ": option 'store' " .. msg, { option = "store" }) end
  end
  if o.retry ~= nil and o.retry ~= false and getmetatable(o.retry) == nil then
    if type(o.retry) ~= "table" then
      return cfg_err(where .. ": option 'retry' must be a retry policy, its options, or false",
        { option = "retry" })
    end
    local ok, pol = pcall(require("smartauth.retry").policy, o.retry)
    if not ok then return cfg_err(where .. ": option 'retry': " .. tostring(pol), { option = "retry" }) end
    o.retry = pol
  end
  for _, name in ipairs { "introspection_cache", "verified_cache" } do
    if o[name] ~= nil then
      local ok, msg = require("smartauth.token_cache").check_option(o[name])
      if not ok then
        return cfg_err(where .. ": option '" .. name .. "' " .. msg, { option = name })
      end
    end
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
  if o.resource ~= nil then
    local r, msg = url.check_resource(o.resource)
    if not r then return cfg_err(where .. ": option 'resource' " .. msg, { option = "resource" }) end
    o.resource = r
  end
  if o.request_object and o.client_assertion_key == nil then
    return cfg_err(where .. ": option 'request_object' needs option 'client_assertion_key' (the signing key)",
      { option = "client_assertion_key" })
  end
  if o.request_object_signing_alg ~= nil and (o.request_object_signing_alg:lower() == "none"
      or o.request_object_signing_alg:find("^HS")) then
    return cfg_err(where .. ": option 'request_object_signing_alg' must be an asymmetric algorithm" ..
      " (request objects are signed with client_assertion_key)", { option = "request_object_signing_alg" })
  end
  if (o.client_auth == "tls_client_auth" or o.client_auth == "self_signed_tls_client_auth")
      and o.client_cert == nil then
    return cfg_err(where .. ": client_auth '" .. o.client_auth .. "' needs option 'client_cert' " ..
      "(the TLS client certificate authenticates the client)", { option = "client_cert" })
  end
  if o.use_mtls_endpoint_aliases and o.client_cert == nil then
    return cfg_err(where .. ": option 'use_mtls_endpoint_aliases' needs option 'client_cert'",
      { option = "use_mtls_endpoint_aliases" })
  end
  if o.profile then
    local ok, perr = require("smartauth.profile").check(o, where, M.ENDPOINTS)
    if not ok then return nil, perr end
  end
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
-- `options`); its methods follow. Every method returns `nil, err` on a
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
