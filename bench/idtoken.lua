-- ID tokens for benchmarks 4 and 5: a provider with a static JWKS holding the
-- public half of a key made with the openssl CLI, and a realistic signed ID
-- token (the claims an OpenID provider sends after a login).
local core = require "smartauth.core"
local jwt = require "smartauth.jwt"
local smartauth = require "smartauth"
local proc = require "helpers.proc"

local M = {}

M.FILES = { RS256 = "rsa.pem", ES256 = "p256.pem", EdDSA = "ed25519.pem" }
M.GENPKEY = {
  RS256 = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
  ES256 = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
  EdDSA = "-algorithm ED25519",
}

local function read(path) return assert(proc.read_file(path), "cannot read " .. path) end

--- Make the three keys in dir with the openssl CLI.
function M.make_keys(dir)
  for alg, file in pairs(M.FILES) do
    local cmd = "openssl genpkey " .. M.GENPKEY[alg] .. " -out '" .. dir .. "/" .. file .. "' 2>/dev/null"
    assert(os.execute(cmd), "openssl genpkey failed for " .. alg)
  end
end

--- { alg, provider, token, nonce } for one algorithm, keys from dir.
function M.case(alg, dir)
  local key = assert(core.key_pem(read(dir .. "/" .. M.FILES[alg])))
  local raw = assert(key:public())
  local jwk = { kty = raw.kty, crv = raw.crv, kid = "bench-" .. alg, alg = alg, use = "sig" }
  for _, f in ipairs { "n", "e", "x", "y" } do
    if raw[f] then jwk[f] = core.b64url_encode(raw[f]) end
  end
  local issuer = "https://login.example.com"
  local p = assert(smartauth.provider {
    issuer = issuer, client_id = "bench-client", jwks = { keys = { jwk } },
  })
  local now = os.time()
  local nonce = "n-0S6_WzA2Mj-" .. alg
  local token = assert(jwt.encode({ alg = alg, kid = jwk.kid, typ = "JWT" }, {
    iss = issuer, sub = "248289761001", aud = "bench-client", azp = "bench-client",
    exp = now + 24 * 3600, iat = now, auth_time = now, nonce = nonce,
    name = "Jane Doe", email = "janedoe@example.com", email_verified = true,
    sid = "08a5019c-17e1-4977-8f42-65a12843ea02",
  }, key))
  return { alg = alg, provider = p, token = token, nonce = nonce }
end

return M
