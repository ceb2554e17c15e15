--- Internal: OpenID Connect ID token validation (OIDC Core §3.1.3.7, §3.2.2.11,
-- §3.3.2.12): signature from the JWKS or the client secret, alg from an
-- allow-list, then every claim check. Each rejection is a validation error
-- whose `check` names the failed check.
-- @module smartauth.oidc
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local grant = require "smartauth.grant"
local json = require "smartauth.json"
local jwe = require "smartauth.jwe"
local jwks_mod = require "smartauth.jwks"
local jwt = require "smartauth.jwt"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local secrets = vault.secrets
local has_word = url.has_word

local function cfg_err(msg)
  return nil, errors.new("config", msg)
end

local M = {}

-- From the core's one alg table: signed with a published key, or with the
-- client secret (HMAC).
M.ASYMMETRIC = {}
local HMAC = {}
for alg, a in pairs(core.jws_algs()) do
  if a.kty == "oct" then HMAC[alg] = true else M.ASYMMETRIC[#M.ASYMMETRIC + 1] = alg end
end
table.sort(M.ASYMMETRIC)
-- the same as a set (read only: an alg allow-list for check_signature)
M.ASYMMETRIC_SET = {}
for _, a in ipairs(M.ASYMMETRIC) do M.ASYMMETRIC_SET[a] = true end
local NO_OPTS = {}

local function reject(check, msg)
  return nil, errors.new("validation", "ID token rejected: " .. msg, { check = check })
end

local os_time = os.time

local is_number = compat.is_finite

-- OIDC Core §3.1.3.6: base64url of the left half of the alg's hash.
function M.half_hash(alg, value)
  local digest = core.jws_hash(alg, value)
  return core.b64url_encode(digest:sub(1, #digest / 2))
end

--- The algorithms this provider accepts for ID tokens (cached until the
-- options or metadata it comes from change); with `userinfo`, for signed
-- UserInfo answers (the metadata's userinfo_signing_alg_values_supported
-- narrows them instead).
function M.allowed_algs(p, userinfo)
  local field = userinfo and "_ui_algs_cache" or "_algs_cache"
  local c = p[field]
  if c and c.metadata == p:metadata() and c.list == p.options.id_token_algs
      and c.hs == p.options.id_token_signed_response_alg then
    return c.allowed
  end
  local allowed = M.compute_allowed_algs(p, userinfo)
  p[field] = { metadata = p:metadata(), list = p.options.id_token_algs,
    hs = p.options.id_token_signed_response_alg,
    allowed = allowed }
  return allowed
end

function M.compute_allowed_algs(p, userinfo)
  local allowed = {}
  if p.options.id_token_algs then
    for _, a in ipairs(p.options.id_token_algs) do allowed[a] = true end
  else
    local supported = p:metadata() and p:metadata()[userinfo and "userinfo_signing_alg_values_supported"
      or "id_token_signing_alg_values_supported"]
    for _, a in ipairs(M.ASYMMETRIC) do allowed[a] = true end
    if type(supported) == "table" then
      -- only what the provider says it uses, within what we implement
      local narrowed = {}
      for _, a in ipairs(supported) do if allowed[a] then narrowed[a] = true end end
      if next(narrowed) then allowed = narrowed end
    end
  end
  -- HMAC only when this client is registered for it: the secret is the key
  local hs = p.options.id_token_signed_response_alg
  if hs and HMAC[hs] then allowed[hs] = true end
  for a in pairs(HMAC) do
    if a ~= hs then allowed[a] = nil end
  end
  allowed.none = nil
  return allowed
end

--- The part every JWT this provider verifies shares (ID tokens, RFC 9068
-- access tokens): alg from the allow-list (`none` never), then the
-- signature with a key of the key set chosen by kid and alg, or, for HS*
-- when `hmac` is true, the client secret.
-- @param p provider
-- @param token the compact JWS
-- @param h its decoded header (from jwt.parse)
-- @param sig the signature bytes (from jwt.parse)
-- @param input_len the signing input's length (from jwt.parse)
-- @param now the time keys are checked at
-- @param refuse function(check, msg) -> nil, err (names the token in the message)
-- @param hmac whether HS* with the client secret may be accepted
-- @param[opt] allowed the alg allow-list (a set; default: the ID tokens')
-- @return true, or nil, err (validation: check alg, kid, signature, jwks)
function M.check_signature(p, token, h, sig, input_len, now, refuse, hmac, allowed)
  local alg = h.alg
  if type(alg) ~= "string" then return refuse("alg", "header has no alg") end
  if alg == "none" then return refuse("alg", "alg none is never accepted") end
  if not (allowed or M.allowed_algs(p))[alg] or (HMAC[alg] and not hmac) then
    return refuse("alg", "alg " .. alg:sub(1, 20) .. " is not allowed for this client")
  end
  local verified = false
  if HMAC[alg] then
    local secret = secrets[p].client_secret
    if not secret then return refuse("alg", alg .. " needs the client secret") end
    local key = core.key_oct(secret)
    verified = key:verify(alg, token, sig, input_len) == true
    key:close()
  else
    local set, serr = p._keyset
    if not set then
      set, serr = M.keyset(p)
      if not set then return nil, serr end
    end
    local cands, cerr = set:candidates(h.kid, alg, now)
    if not cands then return nil, cerr end
    for i = 1, #cands do
      -- verify refuses (nil) an alg the key cannot do, before any math
      local ok = cands[i].key:verify(alg, token, sig, input_len)
      if ok == true then
        verified = true
        break
      elseif ok == nil and h.kid then
        return refuse("kid", "key '" .. tostring(h.kid):sub(1, 64) .. "' cannot be used with " .. alg)
      end
    end
  end
  if not verified then return refuse("signature", "signature does not verify") end
  return true
end

--- Verify the signature and claims of an ID token.
-- @param p provider
-- @param id_token compact JWS string
-- @param opts { nonce=, max_age=, access_token= (for at_hash), code= (for c_hash),
--               require_at_hash=, require_c_hash=, leeway=,
--               userinfo= (a signed UserInfo answer: its algs, exp and iat optional) }
-- @return claims or nil, err
function M.verify(p, id_token, opts)
  opts = opts or NO_OPTS
  local now = os_time() + clock.offset -- clock.now(), inlined: this is per verification
  local hc = p._header_cache
  if not hc then
    hc = jwt.header_cache()
    p._header_cache = hc
  end
  local h, c, sig, input_len = jwt.parse(id_token, hc)
  if not h then return nil, c end
  local ok, serr = M.check_signature(p, id_token, h, sig, input_len, now, reject, true,
    M.allowed_algs(p, opts.userinfo))
  if not ok then return nil, serr end
  local alg = h.alg
  local userinfo = opts.userinfo

  -- claims
  local leeway = opts.leeway or p.options.leeway or 0
  if type(c.iss) ~= "string" or c.iss ~= p:endpoint("issuer") then
    return reject("iss", "iss does not match the issuer")
  end
  if type(c.sub) ~= "string" or c.sub == "" then return reject("sub", "no sub claim") end
  local aud = c.aud
  local client = p.options.client_id
  if type(aud) == "string" then
    if aud ~= client then return reject("aud", "aud is not this client") end
  elseif type(aud) == "table" and #aud > 0 then
    local found = false
    for _, a in ipairs(aud) do if a == client then found = true end end
    if not found then return reject("aud", "aud does not contain this client") end
    if #aud > 1 and c.azp == nil and not userinfo then return reject("azp", "several audiences and no azp") end
  else
    return reject("aud", "no aud claim")
  end
  if c.azp ~= nil and c.azp ~= client then return reject("azp", "azp is not this client") end
  local exp, iat = c.exp, c.iat
  -- OIDC Core §5.3.2: a signed UserInfo answer need not carry exp and iat;
  -- when it does they are checked
  if not (userinfo and exp == nil) then
    if not is_number(exp) then return reject("exp", "no exp claim") end
    if now - leeway >= exp then return reject("exp", "expired") end
  end
  if not (userinfo and iat == nil) then
    if not is_number(iat) then return reject("iat", "no iat claim") end
    if iat > now + leeway then return reject("iat", "iat is in the future") end
  end
  if opts.nonce ~= nil then
    if type(c.nonce) ~= "string" or not core.ct_equal(c.nonce, opts.nonce) then
      return reject("nonce", c.nonce == nil and "nonce missing" or "nonce does not match")
    end
  end
  if opts.max_age ~= nil then
    if not is_number(c.auth_time) then return reject("auth_time", "max_age was asked but auth_time is missing") end
    if c.auth_time + opts.max_age + leeway < now then
      return reject("auth_time", "authentication is older than max_age")
    end
  end
  if opts.access_token and (c.at_hash ~= nil or opts.require_at_hash) then
    if type(c.at_hash) ~= "string" or not core.ct_equal(c.at_hash, M.half_hash(alg, opts.access_token)) then
      return reject("at_hash", "at_hash does not match the access token")
    end
  end
  if opts.code and (c.c_hash ~= nil or opts.require_c_hash) then
    if type(c.c_hash) ~= "string" or not core.ct_equal(c.c_hash, M.half_hash(alg, opts.code)) then
      return reject("c_hash", "c_hash does not match the code")
    end
  end
  return c
end

-- ----------------------------------------------- the provider's OIDC methods

-- The provider's key set: static (option jwks) or fetched from jwks_uri.
function M.keyset(self)
  if self._keyset then return self._keyset end
  local set = jwks_mod.new(function()
    local ep, err = discovery.endpoint(self, "jwks_uri")
    if not ep then return nil, err end
    local res, herr = transport.call(self, { url = ep, headers = { "Accept: application/json" } })
    if not res then return nil, herr end
    if res.status ~= 200 then
      return nil, errors.new("http", "JWKS request failed", { status = res.status })
    end
    return res.body
  end)
  if self.options.jwks then
    local ok, err = set:load(self.options.jwks)
    if not ok then return nil, err end
    set.fetch = function() return nil, "static key set" end
  end
  self._keyset = set
  return set
end

--- Discover the provider when nothing says where its keys are (no option
-- jwks, no jwks_uri, no metadata yet): once, before the first verification.
-- @return true, or nil, err
function M.need_keys(p)
  if p.options.jwks or p:endpoint("jwks_uri") or p:metadata() then return true end
  return p:discover()
end

--- Verify an ID token: signature (JWKS or, for HS*, the client secret),
-- alg allow-list, iss, aud, azp, exp, iat, nonce, auth_time, at_hash, c_hash.
-- @param self the provider (the method `p:verify_id_token`)
-- @param id_token compact JWS
-- @param opts { nonce=, max_age=, access_token=, code= }
-- @return claims or nil, err (validation, err.check names the failed check)
function M.verify_id_token(self, id_token, opts)
  if type(id_token) ~= "string" then
    errors.argerror(1, "verify_id_token", "string expected", id_token)
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.argerror(2, "verify_id_token", "table expected", opts)
  end
  if not self:endpoint("issuer") then return cfg_err("verify_id_token needs the provider's issuer") end
  local kok, kerr = M.need_keys(self)
  if not kok then return nil, kerr end
  -- a nested JWT (OIDC Core §10.2): decrypted with decryption_keys, then
  -- verified like any other; never accepted unsigned
  if jwe.is_jwe(id_token) then
    local inner, derr = jwe.maybe_decrypt(self, id_token, "ID token")
    if not inner then return nil, vault.scrub(self, derr) end
    id_token = inner
  end
  local claims, err = M.verify(self, id_token, opts)
  if not claims then return nil, vault.scrub(self, err) end
  return claims
end

--- The ID token of a code response (exchange_code, the device grant)
-- must verify, and name the same user as a front-channel one.
function M.check_code_token(self, tok, session, cb)
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

local UI_NOTE = "UserInfo rejected"

--- A signed UserInfo answer (OIDC Core §5.3.2, `application/jwt`): verified
-- as an ID token is (signature with the provider's key set or, for HS*, the
-- client secret; the alg allow-list; iss; aud), then its claims are the
-- answer. An encrypted one (a JWE: five parts) is decrypted with the
-- `decryption_keys` (or the keys derived from the client secret) first.
-- Inside is a JWS, verified as above, or, when the provider encrypts
-- without signing (OIDC Core §5.3.2 allows it: rp-userinfo-enc), a JSON
-- object, used as a plain `application/json` answer is: it came from the
-- UserInfo endpoint over the same TLS channel, and the encryption only hides
-- it. ID tokens and JARM responses are never accepted so (jwe.maybe_decrypt):
-- they pass through other hands, and only a signature says who made them.
-- Content shaped as a JWS is always verified, never read as claims.
-- @return claims or nil, err (validation, err.check names the failed check)
function M.signed_userinfo(self, body)
  local jws = type(body) == "string" and body:match("^%s*(.-)%s*$") or ""
  local _, dots = jws:gsub("%.", "")
  if dots == 4 then
    local what = "UserInfo response"
    local inner, h = jwe.open(self, jws, what)
    if not inner then return nil, vault.scrub(self, h) end
    local cty = h.cty and h.cty:upper()
    if cty == "JWT" or jwe.is_jws(inner) then
      local nerr
      inner, nerr = jwe.nested(inner, h, what)
      if not inner then return nil, nerr end
      jws = inner
    elseif cty ~= nil and cty ~= "JSON" and cty ~= "APPLICATION/JSON" then
      return nil, errors.new("validation", what .. ": the encrypted content's cty is "
        .. errors.clean_text(h.cty, 32) .. ", not JWT or JSON", { check = "jwe" })
    else
      local claims = json.object(inner)
      if type(claims) ~= "table" then
        return nil, errors.new("validation", what .. ": the encrypted content is neither a JWS nor a JSON object",
          { check = "jwe" })
      end
      return claims
    end
  end
  if not self:endpoint("issuer") then
    return nil, errors.new("validation", "a signed UserInfo answer needs the provider's issuer to be checked",
      { check = "iss" })
  end
  local ok, derr = M.need_keys(self)
  if not ok then return nil, derr end
  local claims, err = M.verify(self, jws, { userinfo = true })
  if not claims then
    if errors.is(err) and type(err.description) == "string" then
      err.description = err.description:gsub("^ID token rejected", UI_NOTE)
    end
    return nil, vault.scrub(self, err)
  end
  return claims
end

--- UserInfo (OIDC Core §5.3) with the token; `sub` must match the ID
-- token's when both are known.
-- @param self the provider (the method `p:userinfo`)
-- @param tok token object (default: p:token())
-- @param opts { resolve_claims = true: aggregated and distributed claims
--   verified and in place (smartauth.claims), claims_issuers = { ... } }
-- @return claims table or nil, err
function M.userinfo(self, tok, opts)
  local ep, err = discovery.endpoint(self, "userinfo_endpoint")
  if not ep then return nil, err end
  if tok == nil then
    tok, err = self:token()
    if not tok then return nil, err end
  end
  local res, rerr = self:request { url = ep, token = type(tok) == "string" and { access_token = tok } or tok,
    headers = { "Accept: application/json" } }
  if not res then return nil, rerr end
  if res.status ~= 200 then
    local _, e = grant.decode(self, res, "userinfo endpoint")
    if e and e.kind == "oauth" then return nil, e end
    return nil, errors.new("http", "userinfo endpoint returned HTTP " .. res.status, { status = res.status })
  end
  local ct = (res.headers["content-type"] or ""):lower()
  local info
  if ct:find("application/jwt", 1, true) then
    info, err = M.signed_userinfo(self, res.body)
    if not info then return nil, err end
  else
    info = json.object(res.body)
  end
  if type(info) ~= "table" then
    return nil, errors.new("validation", "UserInfo response is not a JSON object")
  end
  if type(info.sub) ~= "string" then
    return nil, errors.new("validation", "UserInfo has no sub", { check = "sub" })
  end
  -- only verified claims count: an ID token we did not verify proves nothing
  local known_sub = type(tok) == "table" and type(tok.claims) == "table" and tok.claims.sub
  if known_sub and known_sub ~= info.sub then
    return nil, errors.new("validation", "UserInfo sub does not match the ID token's", { check = "sub" })
  end
  if opts and opts.resolve_claims then return require("smartauth.claims").resolve(self, info, opts) end
  return info
end

return M
