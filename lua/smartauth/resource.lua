--- Resource servers: what a Lua API server needs to accept the tokens a
-- provider issues. `p:verify_access_token` checks an RFC 9068 JWT access
-- token (signature and key set as for ID tokens, through oidc.lua, then
-- typ, iss, exp, nbf, iat, aud, client_id, sub, jti, scope and the sender
-- constraint `cnf`); a `verified_cache` (token_cache.lua) skips the
-- signature of a token seen before. `smartauth.www_authenticate` (the
-- challenge, challenge.lua) words the answer to a refused one.
-- @module smartauth.resource
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local jwt = require "smartauth.jwt"
local options = require "smartauth.options"
local vault = require "smartauth.vault"

local M = {}


local is_number = compat.is_finite

local function reject(check, msg, fields)
  local f = { check = check }
  for k, v in pairs(fields or options.NO_OPTS) do f[k] = v end
  return nil, errors.new("validation", "access token rejected: " .. msg, f)
end

-- RFC 9068 §4: the media type, compared without case.
local TYP = { ["at+jwt"] = true, ["application/at+jwt"] = true }

-- The lists of the space-separated strings seen last (a resource server
-- passes the same audience and scope on every request): a few, never grown
-- past WORDS_MAX. The lists are only read.
local words_seen, words_n, WORDS_MAX = {}, 0, 32

-- A list of words from a space-separated string or a list of strings;
-- raises (a programming mistake) on anything else.
local function words(v, fname, what)
  local out
  if type(v) == "string" then
    out = words_seen[v]
    if out then return out end
    out = {}
    for w in v:gmatch("%S+") do out[#out + 1] = w end
    if words_n >= WORDS_MAX then words_seen, words_n = {}, 0 end
    words_seen[v], words_n = out, words_n + 1
    return out
  end
  out = {}
  if type(v) == "table" then
    for i, w in ipairs(v) do
      if type(w) ~= "string" then
        errors.argerror(2, fname, what .. "[" .. i .. "] must be a string", w, 4)
      end
      out[#out + 1] = w
    end
  else
    errors.argerror(2, fname, what .. " must be a string or a list of strings", v, 4)
  end
  return out
end

-- x5t#S256 of a PEM certificate: base64url(SHA-256(DER)), RFC 8705 §3.1.
local function cert_thumbprint(pem)
  local body = pem:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-(.-)%-%-%-%-%-END CERTIFICATE%-%-%-%-%-")
  if not body then return nil end
  local der = core.b64_decode((body:gsub("%s", "")))
  if not der or der == "" then return nil end
  return core.b64url_encode(core.sha2(256, der))
end

local VERIFY_OPTS = { audience = true, scope = true, leeway = true, dpop = true, now = true,
  client_cert = true, client_cert_thumbprint = true }

-- The sender constraint (RFC 9449 §6.1 cnf.jkt, RFC 8705 §3.1 cnf.x5t#S256).
local function check_cnf(p, token, c, opts, leeway)
  local cnf = c.cnf
  if cnf == nil then
    if opts.dpop ~= nil then
      -- RFC 9449 §7.2: the DPoP scheme with a token that is not DPoP-bound
      return reject("cnf", "a DPoP proof came with a token that is not DPoP-bound")
    end
    return true
  end
  if type(cnf) ~= "table" or cnf[1] ~= nil or next(cnf) == nil then
    return reject("cnf", "cnf is not a confirmation object")
  end
  local known = 0
  local jkt, x5t = cnf.jkt, cnf["x5t#S256"]
  if jkt ~= nil then
    known = known + 1
    if type(jkt) ~= "string" or jkt == "" then return reject("cnf", "cnf.jkt is not a string") end
    local d = opts.dpop
    if d == nil then
      return reject("dpop", "the token is DPoP-bound and the request has no DPoP proof", { dpop = true })
    end
    if type(d.proof) ~= "string" then
      return reject("dpop", "the token is DPoP-bound and the request has no DPoP proof", { dpop = true })
    end
    -- loaded only for a DPoP-bound token
    local claims, err = require("smartauth.dpop").verify_proof(d.proof, {
      method = d.method, url = d.url, access_token = token, jkt = jkt, leeway = leeway,
      store = p.options.store,
    })
    if not claims then
      local e = errors.is(err) and err or nil
      return reject("dpop", "DPoP proof: " .. tostring(e and e.description or err), {
        dpop = true, code = e and e.code or nil, proof_check = e and e.check or nil,
        nonce = e and e.nonce or nil })
    end
  end
  if x5t ~= nil then
    known = known + 1
    if type(x5t) ~= "string" or x5t == "" then return reject("cnf", "cnf.x5t#S256 is not a string") end
    local have = opts.client_cert_thumbprint
    if have == nil and opts.client_cert ~= nil then
      have = cert_thumbprint(opts.client_cert)
      if not have then return reject("cnf", "the client certificate given is not a PEM certificate") end
    end
    if have == nil then
      return reject("cnf", "the token is bound to a client certificate and none was given")
    end
    if not core.ct_equal(have, x5t) then
      return reject("cnf", "the token is bound to another client certificate")
    end
  end
  if known == 0 then
    return reject("cnf", "the token is bound by a confirmation method this server cannot check")
  end
  return true
end

--- Verify an RFC 9068 JWT access token, for a resource server: signature
-- (the provider's key set and alg allow-list, as for ID tokens; never
-- `none`, never HS*), header `typ` `at+jwt`, then `iss` (the provider's
-- issuer), `exp`, `nbf`, `iat` (with leeway), `aud` (must contain the
-- audience), `client_id`, `sub`, `jti`, `scope` (every required scope),
-- and a sender constraint: a DPoP-bound token (`cnf.jkt`) needs the
-- request's proof in `opts.dpop` (checked by `smartauth.dpop.verify_proof`,
-- with `jti` replay kept in the provider's store); a certificate-bound
-- token (`cnf.x5t#S256`) needs the certificate the client presented on the
-- TLS connection, as `opts.client_cert` (PEM, e.g. nginx's
-- `$ssl_client_raw_cert`) or `opts.client_cert_thumbprint` (base64url
-- SHA-256 of its DER). Discovers first when the key set is unknown.
-- @function Provider:verify_access_token
-- @tparam string token the compact JWS from the `Authorization` header
-- @tparam table opts
-- @tparam string|table opts.audience required: this resource server's
--   identifier (or a list of them; one must be in `aud`)
-- @tparam[opt] string|table opts.scope scopes the request needs (a
--   space-separated string or a list); each must be in the token's `scope`
-- @tparam[opt] number opts.leeway seconds of clock skew (default the
--   provider's `leeway`)
-- @tparam[opt] table opts.dpop `{ proof =, method =, url = }`: the request's
--   `DPoP` header, method and URL. With it, a token that is not DPoP-bound
--   is refused (RFC 9449 §7.2)
-- @tparam[opt] string opts.client_cert the client's TLS certificate (PEM)
-- @tparam[opt] string opts.client_cert_thumbprint or its `x5t#S256`
-- @tparam[opt] number opts.now the time to check against (default now)
-- @return the claims, or nil, err (`validation`; `err.check` names the
--   failed check: `format`, `crit`, `typ`, `alg`, `kid`, `jwks`,
--   `signature`, `iss`, `exp`, `nbf`, `iat`, `aud`, `client_id`, `sub`,
--   `jti`, `scope` (with `err.scope`, the scopes asked for), `cnf`, `dpop`);
--   `smartauth.www_authenticate(err)` words the answer
function M.verify_access_token(self, token, opts)
  if type(token) ~= "string" then
    errors.argerror(1, "verify_access_token", "string expected", token)
  end
  if type(opts) ~= "table" then
    errors.argerror(2, "verify_access_token", "table with 'audience' expected", opts)
  end
  for k in pairs(opts) do
    if not VERIFY_OPTS[k] then error("verify_access_token: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local audiences = words(opts.audience, "verify_access_token", "option 'audience'")
  if #audiences == 0 then errors.argerror(2, "verify_access_token", "option 'audience' is empty", errors.NOGOT) end
  local required = opts.scope ~= nil and words(opts.scope, "verify_access_token", "option 'scope'") or {}
  if opts.dpop ~= nil and type(opts.dpop) ~= "table" then
    errors.argerror(2, "verify_access_token", "option 'dpop' must be a table { proof =, method =, url = }", opts.dpop)
  end
  if opts.now ~= nil and not is_number(opts.now) then
    errors.argerror(2, "verify_access_token", "option 'now' must be a number", opts.now)
  end
  if opts.leeway ~= nil and not (is_number(opts.leeway) and opts.leeway >= 0) then
    errors.argerror(2, "verify_access_token", "option 'leeway' must be a number of seconds", opts.leeway)
  end
  for _, k in ipairs { "client_cert", "client_cert_thumbprint" } do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      errors.argerror(2, "verify_access_token", "option '" .. k .. "' must be a string", opts[k])
    end
  end

  local issuer = self:endpoint("issuer")
  if not issuer then
    return nil, errors.new("config", "verify_access_token needs the provider's issuer", { option = "issuer" })
  end
  local now = opts.now or clock.now()
  local leeway = opts.leeway or self.options.leeway or 0

  -- a hit skips parsing and the signature; every claim check below still runs
  local vc = self.options.verified_cache and require("smartauth.token_cache").verified(self)
  local c
  if vc then c = vc:get(token, now) end
  local hit = c ~= nil
  if not hit then
    local oidc = require "smartauth.oidc"
    local keys_ok, kerr = oidc.need_keys(self)
    if not keys_ok then return nil, kerr end
    local hc = self._header_cache
    if not hc then
      hc = jwt.header_cache()
      self._header_cache = hc
    end
    local h, sig, input_len
    h, c, sig, input_len = jwt.parse(token, hc)
    if not h then return nil, c end
    local typ = h.typ
    if type(typ) ~= "string" or not TYP[typ:lower()] then
      return reject("typ", "header typ is not at+jwt (RFC 9068)")
    end
    local ok, serr = oidc.check_signature(self, token, h, sig, input_len, now, reject, false)
    if not ok then return nil, vault.scrub(self, serr, { token }) end
  end

  if type(c.iss) ~= "string" or c.iss ~= issuer then return reject("iss", "iss does not match the issuer") end
  local exp, nbf, iat = c.exp, c.nbf, c.iat
  if not is_number(exp) then return reject("exp", "no exp claim") end
  if now - leeway >= exp then return reject("exp", "expired") end
  if nbf ~= nil then
    if not is_number(nbf) then return reject("nbf", "nbf is not a number") end
    if nbf > now + leeway then return reject("nbf", "not valid yet (nbf)") end
  end
  if not is_number(iat) then return reject("iat", "no iat claim") end
  if iat > now + leeway then return reject("iat", "iat is in the future") end

  local aud, found = c.aud, false
  if type(aud) == "string" then aud = { aud } end
  if type(aud) ~= "table" or aud[1] == nil then return reject("aud", "no aud claim") end
  for _, a in ipairs(aud) do
    for _, want in ipairs(audiences) do
      if a == want then found = true end
    end
  end
  if not found then return reject("aud", "aud does not name this resource server") end

  for _, name in ipairs { "client_id", "sub", "jti" } do
    local v = c[name]
    if type(v) ~= "string" or v == "" then return reject(name, "no " .. name .. " claim") end
  end

  if c.scope ~= nil and type(c.scope) ~= "string" then
    return reject("scope", "scope is not a string", { scope = table.concat(required, " ") })
  end
  if #required > 0 then
    local have = {}
    for w in (c.scope or ""):gmatch("%S+") do have[w] = true end
    for _, w in ipairs(required) do
      if not have[w] then
        return reject("scope", "scope '" .. errors.clean_text(w, 64) .. "' was not granted",
          { scope = table.concat(required, " "), status = 403 })
      end
    end
  end

  local cok, cerr = check_cnf(self, token, c, opts, leeway)
  if not cok then return nil, vault.scrub(self, cerr, { token, opts.dpop and opts.dpop.proof or nil }) end
  -- only a token that passed every check is kept, and never past its exp
  if vc and not hit then vc:keep(token, c, exp, now) end
  return c
end

return M
