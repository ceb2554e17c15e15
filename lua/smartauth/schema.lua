--- The provider's options: what each one means (the `options` table below
-- is the reference), their types and ranges (`SCHEMA`), and the rules
-- between them, checked once when a provider is made (`check`). Split from
-- provider.lua, which keeps the object and its methods.
-- @module smartauth.schema
local errors = require "smartauth.errors"
local options = require "smartauth.options"
local store_mod = require "smartauth.store"
local url = require "smartauth.url"

local M = {}

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

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
--   PEM texts, PEM file paths or private JWKs (RSA, EC, X25519; oct for
--   A128KW, A256KW, dir). Secrets, kept off the object; published (public
--   parts, `use = "enc"`) by `smartauth.jwe.provider_jwks(p)`. With a
--   `client_secret`, the A128KW, A256KW and dir keys derived from it (OIDC
--   Core §10.2) are tried too, and never published
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

--- Check a provider's options: types and ranges (`SCHEMA`), then the rules
-- between options. Returns a new table of the checked options (secrets
-- still in it: provider.new moves them to the vault), or nil, err
-- (`config`, `err.option` naming the option).
-- @tparam table opts the options as given
-- @tparam string where the constructor's name, for messages
-- @tparam table endpoints the endpoint options (`smartauth.provider.ENDPOINTS`)
function M.check(opts, where, endpoints)
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
    local ok, perr = require("smartauth.profile").check(o, where, endpoints)
    if not ok then return nil, perr end
  end
  return o
end

return M
