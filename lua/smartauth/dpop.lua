--- DPoP, RFC 9449: sender-constrained tokens. The client side (a key per
-- provider, a proof per request, the server's nonces) and the resource
-- server's check of a proof (`verify_proof`).
--
-- The client's key: `dpop = true` makes an ES256 key with the CSPRNG; it
-- is kept in the token's stored entry (`ext.dpop_key`), so only a store that
-- keeps entries private may hold it (memory, or one that encrypts).
-- `dpop_key` (PEM text, PEM file or private JWK) is the application's own:
-- only its thumbprint goes into the entry (`ext.dpop_jkt`). A stored token
-- bound to another key is never used. The private key lives in the
-- provider's vault record, never on the provider or in an error.
-- @module smartauth.dpop
local clock = require "smartauth.clock"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local vault = require "smartauth.vault"

local secrets = vault.secrets
local b64url = core.b64url_encode
local sha2 = core.sha2
local floor = math.floor

local M = {}

M.TYP = "dpop+jwt"
M.DEFAULT_LEEWAY = 60   -- seconds either side of a proof's iat (verify_proof)
M.MAX_NONCE = 512       -- bytes of a server nonce we keep
M.MAX_NONCES = 16       -- origins whose latest nonce a provider remembers
M.MAX_JTI = 256         -- bytes of a proof's jti accepted by verify_proof
M.JTI_PREFIX = "dpop-jti."

local function cfg_err(where, option, msg)
  return nil, errors.new("config", where .. ": option '" .. option .. "' " .. msg, { option = option })
end

local function invalid(check, msg)
  return nil, errors.new("validation", "DPoP proof rejected: " .. msg, { check = check })
end

-- ------------------------------------------------------------------ keys

-- The JWK thumbprint (RFC 7638) of a public JWK whose members are
-- base64url strings: the required members in lexicographic order, no
-- whitespace. nil for a JWK it cannot describe.
local function b64ok(v) return type(v) == "string" and v ~= "" and not v:find("[^%w_-]") end

--- The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK table.
-- @tparam table jwk `{ kty =, crv =, x =, y = }`, `{ kty = "RSA", n =, e = }`
--   or `{ kty = "OKP", crv =, x = }` (members base64url encoded)
-- @return the thumbprint, or nil for a JWK without its required members
function M.thumbprint(jwk)
  if type(jwk) ~= "table" then return nil end
  local s
  if jwk.kty == "EC" and type(jwk.crv) == "string" and jwk.crv:find("^[%w-]+$")
      and b64ok(jwk.x) and b64ok(jwk.y) then
    s = '{"crv":"' .. jwk.crv .. '","kty":"EC","x":"' .. jwk.x .. '","y":"' .. jwk.y .. '"}'
  elseif jwk.kty == "RSA" and b64ok(jwk.e) and b64ok(jwk.n) then
    s = '{"e":"' .. jwk.e .. '","kty":"RSA","n":"' .. jwk.n .. '"}'
  elseif jwk.kty == "OKP" and type(jwk.crv) == "string" and jwk.crv:find("^[%w-]+$") and b64ok(jwk.x) then
    s = '{"crv":"' .. jwk.crv .. '","kty":"OKP","x":"' .. jwk.x .. '"}'
  else
    return nil
  end
  return b64url(sha2(256, s))
end

-- The public JWK of a core key, members base64url encoded.
local function public_jwk(key)
  local raw = assert(key:public())
  local jwk = { kty = raw.kty, crv = raw.crv }
  for _, f in ipairs { "n", "e", "x", "y" } do
    if raw[f] then jwk[f] = b64url(raw[f]) end
  end
  return jwk
end

-- What a proof needs of a key, built once per key: the signing alg, the
-- thumbprint, and the header's base64url segment (it never changes).
local function key_record(key, alg)
  local jwk = public_jwk(key)
  local header = json.encode { typ = M.TYP, alg = alg, jwk = jwk }
  return { key = key, alg = alg, jwk = jwk, jkt = M.thumbprint(jwk), head = b64url(header) .. "." }
end

local function read_pem(src)
  if src:find("-----BEGIN", 1, true) then return src end
  local f, ferr = io.open(src, "rb")
  if not f then return nil, "cannot read " .. tostring(ferr) end
  local pem = f:read("*a")
  f:close()
  return pem
end

-- A core private key from the dpop_key option: PEM text, a PEM file, or a
-- private JWK table. nil, message (never quoting the key).
local function parse_key(src)
  local key, kind, msg
  if type(src) == "table" then
    key, msg = require("smartauth.jwks").parse_private_jwk(src)
  elseif type(src) == "string" then
    local pem, perr = read_pem(src)
    if not pem then return nil, perr end
    key, kind, msg = core.key_pem(pem)
  else
    return nil, "must be PEM text, the path of a PEM file, or a private JWK table"
  end
  if not key then return nil, tostring(msg or kind) end
  if not key:has_private() then return nil, "is a public key; DPoP proofs need the private key" end
  return key
end

-- A key that may sign proofs, with its alg (the core's alg table: ES256
-- for P-256, RS256 for RSA, EdDSA for Ed25519).
local function signing_alg(key)
  local alg, kind, msg = key:default_alg()
  if not alg then return nil, tostring(msg or kind) end
  local kty = key:type()
  if kty == "oct" then return nil, "an HMAC key cannot sign DPoP proofs" end
  return alg
end

-- Whether a store keeps its entries private: the memory store, a file or
-- Redis store with a key, or a custom store that says it encrypts.
local function store_private(store)
  if store == nil then return true end -- the default memory store
  local mt = getmetatable(store)
  if mt and mt.__name == "smartauth.store.memory" then return true end
  return store.encrypted == true or store.encrypts == true
end

--- Check the DPoP options of a new provider (o, already type-checked) and
-- keep the key in its vault record s (`dpop_key` is moved off the options).
-- @return true or nil, err (config)
function M.configure(o, s, where)
  if o.dpop_key ~= nil then
    local src = o.dpop_key
    o.dpop_key = nil
    local key, msg = parse_key(src)
    if not key then return cfg_err(where, "dpop_key", msg) end
    local alg, aerr = signing_alg(key)
    if not alg then return cfg_err(where, "dpop_key", aerr) end
    s.dpop = key_record(key, alg)
    s.dpop.own = true -- the application's key: only its thumbprint is stored
    o.dpop = true
    return true
  end
  if o.dpop then
    if not store_private(o.store) then
      return cfg_err(where, "dpop", "keeps a generated DPoP key in the store entry; this store " ..
        "does not encrypt: use the memory store, a file or Redis store with 'key', a store with " ..
        "'encrypts = true', or option 'dpop_key' (only its thumbprint is stored)")
    end
    s.dpop = key_record(assert(core.key_generate("EC", "P-256")), "ES256")
  end
  return true
end

-- A stored generated key, parsed once per provider and thumbprint.
local function stored_record(s, jwk)
  local jkt = M.thumbprint(jwk)
  if not jkt then return nil end
  local cur = s.dpop
  if cur.jkt == jkt then return cur end
  local key = require("smartauth.jwks").parse_private_jwk(jwk)
  if not key or not key:alg_ok("ES256") then return nil end
  return key_record(key, "ES256")
end

--- Whether a stored token may be used by this provider (token_source
-- asks before using an entry). A DPoP-bound token needs its key: with
-- `dpop_key`, the entry's thumbprint must be the key's; with `dpop = true`,
-- the entry must carry its key, which becomes the provider's (the token
-- and its refresh token are bound to it). A provider without DPoP never
-- uses a DPoP-bound token.
-- @return true or false
function M.usable(p, t)
  local s = secrets[p]
  local ext = t.ext
  local bound = t.token_type == "DPoP" or (ext and (ext.dpop_jkt ~= nil or ext.dpop_key ~= nil))
  if not s.dpop then return not bound end
  if not bound then return true end -- a Bearer token the server gave instead
  if s.dpop.own then return ext ~= nil and ext.dpop_jkt == s.dpop.jkt end
  if not ext or type(ext.dpop_key) ~= "table" then return false end
  local rec = stored_record(s, ext.dpop_key)
  if not rec or (ext.dpop_jkt ~= nil and ext.dpop_jkt ~= rec.jkt) then return false end
  s.dpop = rec
  return true
end

--- Mark a token the provider received as bound to its key: `ext.dpop_jkt`,
-- and with a generated key the private JWK in `ext.dpop_key`.
function M.bind(p, tok)
  local rec = secrets[p].dpop
  if tok.token_type ~= "DPoP" then return tok end
  local ext = tok.ext or {}
  tok.ext = ext
  ext.dpop_jkt = rec.jkt
  if not rec.own then
    if not rec.private then rec.private = assert(rec.key:private_jwk()) end
    ext.dpop_key = rec.private
  end
  return tok
end

-- ---------------------------------------------------------------- proofs

-- htu: the URL without query and fragment (RFC 9449 §4.2).
local function htu_of(u)
  return (u:match("^[^?#]*"))
end

local function origin_of(u)
  return (u:match("^(%a[%w+.-]*://[^/?#]*)") or u):lower()
end

-- A nonce is NQCHAR (RFC 9449 §8.1: %x21 / %x23-5B / %x5D-7E) and short.
local function nonce_ok(v)
  return type(v) == "string" and v ~= "" and #v <= M.MAX_NONCE and not v:find('[^\33-\126]')
    and not v:find('["\\]')
end
M.nonce_ok = nonce_ok

--- Remember the latest nonce a server gave (the DPoP-Nonce header of any
-- answer), per origin. Returns the nonce when it is new and well formed.
function M.remember_nonce(p, u, headers)
  local n = headers and headers["dpop-nonce"]
  if n == nil or not nonce_ok(n) then return nil end
  local s = secrets[p]
  local t = s.dpop_nonces
  if not t then t = { n = 0 }; s.dpop_nonces = t end
  local o = origin_of(u)
  if t[o] == n then return nil end
  if t[o] == nil then
    if t.n >= M.MAX_NONCES then t = { n = 0 }; s.dpop_nonces = t end
    t.n = t.n + 1
  end
  t[o] = n
  return n
end

--- A DPoP proof JWT for one request (RFC 9449 §4.2).
-- @param p the provider (its key and remembered nonces)
-- @tparam string method the request method
-- @tparam string u the request URL (query and fragment are left out of htu)
-- @tparam[opt] string access_token for `ath` (requests to resource servers)
-- @tparam[opt] string nonce the server's nonce (default: the latest from u's origin)
-- @return the proof (compact JWS), or nil, err
function M.proof(p, method, u, access_token, nonce)
  local s = secrets[p]
  local rec = s.dpop
  if not rec then return nil, errors.new("config", "this provider has no DPoP key (options 'dpop', 'dpop_key')") end
  local nonces = s.dpop_nonces
  if nonce == nil and nonces then nonce = nonces[origin_of(u)] end
  local claims = {
    jti = b64url(core.random(16)), htm = method, htu = htu_of(u), iat = floor(clock.now()),
    nonce = nonce, ath = access_token and b64url(sha2(256, access_token)) or nil,
  }
  local input = rec.head .. b64url(json.encode(claims))
  local sig, kind, msg, code = rec.key:sign(rec.alg, input)
  if not sig then return nil, errors.from_core(kind, msg, code) end
  return input .. "." .. b64url(sig)
end

--- The proof header line (`DPoP: ...`) for a request.
function M.header(p, method, u, access_token, nonce)
  local pr, err = M.proof(p, method, u, access_token, nonce)
  if not pr then return nil, err end
  return "DPoP: " .. pr
end

-- --------------------------------------------------------- token requests

local discovery -- loaded with the first token request

--- A token-endpoint request with a proof (grant.request with DPoP on): the
-- form POST, a `use_dpop_nonce` answer taken and the request sent once
-- more with the nonce, the answer decoded and the token bound to the key.
-- @return token or nil, err
function M.token_request(p, form, extra_secrets, prep_key)
  local grant = require "smartauth.grant"
  local ep = p:endpoint("token_endpoint")
  if ep == nil then
    discovery = discovery or require "smartauth.discovery"
    local err
    ep, err = discovery.endpoint(p, "token_endpoint")
    if not ep then return nil, err end
  end
  local tok, terr
  for attempt = 1, 2 do
    local line, perr = M.header(p, "POST", ep)
    if not line then return nil, perr end
    local res, err = grant.post_form(p, "token_endpoint", form, prep_key, { line })
    if not res then return nil, vault.scrub(p, err, extra_secrets) end
    local fresh = M.remember_nonce(p, ep, res.headers)
    tok, terr = grant.decode(p, res, nil, extra_secrets)
    if tok or not (terr.kind == "oauth" and terr.code == "use_dpop_nonce") then break end
    if attempt == 2 or not fresh then
      terr.description = terr.description .. (attempt == 2
        and " (the token endpoint asked for a new DPoP nonce again after a retry with one)"
        or " (the token endpoint sent no new usable DPoP-Nonce header)")
      break
    end
  end
  if not tok then return nil, vault.scrub(p, terr, extra_secrets) end
  return M.bind(p, tok)
end

-- ----------------------------------------------------- the resource server

local ALLOWED = {} -- asymmetric algs the core verifies (never none, never HS*)
for alg, a in pairs(core.jws_algs()) do
  if a.kty ~= "oct" then ALLOWED[alg] = true end
end

local PRIVATE_MEMBERS = { "d", "p", "q", "dp", "dq", "qi", "k", "oth" }

-- A URL in the form RFC 9449 §4.3 compares: scheme and host in lower
-- case, the default port left out, no query or fragment, "/" for an
-- empty path.
local function normal_htu(u)
  if type(u) ~= "string" then return nil end
  local scheme, host, port, path = htu_of(u):match("^(%a[%w+.-]*)://([^/:]+):?(%d*)(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  if (scheme == "https" and port == "443") or (scheme == "http" and port == "80") then port = "" end
  if path == "" then path = "/" end
  return scheme .. "://" .. host:lower() .. (port ~= "" and (":" .. port) or "") .. path
end

-- Keep a jti until the proof's window ends; false when it was seen.
local function fresh_jti(store, jkt, jti, ttl)
  local key = M.JTI_PREFIX .. b64url(sha2(256, jkt .. "\0" .. jti)):sub(1, 32)
  local unlock, lerr = store:lock(key, 10)
  if not unlock then return nil, lerr end
  local seen, err = store:get(key)
  local ok = false
  if not err and seen == nil then
    ok, err = store:set(key, { v = 1, dpop_jti = true }, ttl)
  end
  unlock()
  if err then return nil, err end
  return ok == true
end

--- Check a DPoP proof as a resource server (or an authorization server)
-- does (RFC 9449 §4.3), in this order: typ, alg (asymmetric only), the
-- public `jwk` in the header, the signature with it, htm, htu, iat within
-- the leeway, jti (and its replay with a store), ath, the key's
-- thumbprint against the token's `cnf.jkt`, nonce.
-- @tparam string proof the `DPoP` header's value
-- @tparam table opts `method`, `url` (the request's), `access_token` (the
--   token sent with it: `ath` must be its hash), `jkt` (the token's
--   `cnf.jkt`), `nonce` (the nonce the server expects), `leeway` (seconds,
--   default 60), `store` (a smartauth store: seen jti values are kept
--   until the window ends, a replay is refused), `now` (seconds)
-- @return the proof's claims and the key's thumbprint, or nil, err
--   (`validation`, `err.check` names the failed check)
function M.verify_proof(proof, opts)
  if type(opts) ~= "table" then errors.argerror(2, "verify_proof", "table expected", opts) end
  if type(opts.method) ~= "string" then error("verify_proof: 'method' must be a string", 2) end
  if type(opts.url) ~= "string" then error("verify_proof: 'url' must be a string", 2) end
  if type(proof) ~= "string" then return invalid("format", "no proof") end
  local jwt = require "smartauth.jwt"
  local h, claims, sig, input_len = jwt.parse(proof)
  if not h then
    claims.description = "DPoP proof rejected: " .. claims.description
    return nil, claims
  end
  if h.typ ~= M.TYP then return invalid("typ", "typ is not dpop+jwt") end
  if type(h.alg) ~= "string" or not ALLOWED[h.alg] then
    return invalid("alg", "alg must be an asymmetric algorithm")
  end
  local jwk = h.jwk
  if type(jwk) ~= "table" then return invalid("jwk", "the header has no jwk") end
  for _, m in ipairs(PRIVATE_MEMBERS) do
    if jwk[m] ~= nil then return invalid("jwk", "the header's jwk holds a private key") end
  end
  local jkt = M.thumbprint(jwk)
  local key = jkt and require("smartauth.jwks").parse_jwk(jwk)
  if not key then return invalid("jwk", "the header's jwk is not a usable public key") end
  if not key:alg_ok(h.alg) then
    key:close()
    return invalid("alg", "alg does not fit the key")
  end
  local good = key:verify(h.alg, proof, sig, input_len)
  key:close()
  if not good then return invalid("signature", "bad signature") end
  if claims.htm ~= opts.method then return invalid("htm", "htm is not the request's method") end
  local want = normal_htu(opts.url)
  if type(claims.htu) ~= "string" or normal_htu(claims.htu) ~= want or want == nil then
    return invalid("htu", "htu is not the request's URL")
  end
  local now = opts.now or clock.now()
  local leeway = opts.leeway or M.DEFAULT_LEEWAY
  local iat = claims.iat
  if type(iat) ~= "number" or iat ~= iat or iat < now - leeway or iat > now + leeway then
    return invalid("iat", "iat is outside the accepted window")
  end
  local jti = claims.jti
  if type(jti) ~= "string" or jti == "" or #jti > M.MAX_JTI then
    return invalid("jti", "jti is missing or too long")
  end
  if opts.access_token ~= nil then
    if type(claims.ath) ~= "string" or
        not core.ct_equal(claims.ath, b64url(sha2(256, opts.access_token))) then
      return invalid("ath", "ath is not the access token's hash")
    end
  end
  if opts.jkt ~= nil and (type(opts.jkt) ~= "string" or not core.ct_equal(opts.jkt, jkt)) then
    return invalid("jkt", "the proof's key is not the one the token is bound to")
  end
  if opts.nonce ~= nil and claims.nonce ~= opts.nonce then
    return invalid("nonce", "nonce is missing or stale")
  end
  if opts.store ~= nil then
    local ok, serr = fresh_jti(opts.store, jkt, jti, math.max(1, iat + leeway - now + 1))
    if ok == nil then return nil, serr end
    if not ok then return invalid("jti", "jti was used before (replay)") end
  end
  return claims, jkt
end

return M
