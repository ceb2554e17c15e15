--- A test OpenID Provider on the recording server (spec/helpers/server.lua), shared by
-- the specs that verify ID tokens or sign client assertions (oidc, jwks, authcode,
-- client_auth, grant): the test keys' JWKS, ID tokens signed with them, and a provider
-- whose issuer is the server.
--
--   local idp = require "helpers.idp"
--   local T = idp.new()                 -- then, in setup: s = server.start(); T.s = s
--   T.serve_jwks(doc)                   -- /jwks answers doc (default: every test key)
--   T.provider(extra)                   -- issuer, jwks_uri, token_endpoint on T.s, client "cid"
--   T.fetches(path)                     -- requests to path ("/jwks" by default)
--   T.claims(extra)                     -- iss = T.s.url, sub "alice", aud "cid", valid for 300 s
--   T.token(alg, extra_claims, extra_header)  -- signed by the core with the alg's test key
--   idp.public_jwk(kind, extra), idp.default_jwks(), idp.merge(base, extra), idp.segments(tok)
--   idp.KID, idp.ALGS, idp.SECRET, idp.NONE, idp.BEARER
--
-- A NONE value in extra removes that claim or header member.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local J = require "helpers.jwt"

local M = {}

M.KID = { RSA = "rsa-1", ["P-256"] = "ec-256", ["P-384"] = "ec-384", ["P-521"] = "ec-521", Ed25519 = "ed-1" }
M.ALGS = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA" }
M.SECRET = "client-secret-of-cid-0123456789"
M.NONE = setmetatable({}, { __name = "absent" }) -- removes a claim or header member
M.BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

function M.merge(base, extra)
  for k, v in pairs(extra or {}) do
    if v == M.NONE then base[k] = nil else base[k] = v end
  end
  return base
end

function M.public_jwk(kind, extra)
  return J.public_jwk(J.key(kind), M.merge({ kid = M.KID[kind], use = "sig" }, extra))
end

function M.default_jwks()
  return J.jwks(M.public_jwk("RSA"), M.public_jwk("P-256"), M.public_jwk("P-384"), M.public_jwk("P-521"),
    M.public_jwk("Ed25519"))
end

function M.segments(tok)
  return tok:match("^([^.]*)%.([^.]*)%.([^.]*)$")
end

--- The helpers that need the server; T.s is read at call time, so a spec sets it in setup.
function M.new()
  local T = {}

  function T.serve_jwks(doc)
    T.s:script("/jwks", { json = doc or M.default_jwks() }, 0)
  end

  function T.provider(extra)
    local o = {
      issuer = T.s.url, jwks_uri = T.s.url .. "/jwks", token_endpoint = T.s.url .. "/token",
      client_id = "cid",
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  function T.fetches(path)
    local n = 0
    for _, r in ipairs(T.s:requests()) do
      if r.path == (path or "/jwks") then n = n + 1 end
    end
    return n
  end

  function T.claims(extra)
    local now = clock.now()
    return M.merge({ iss = T.s.url, sub = "alice", aud = "cid", iat = now, exp = now + 300 }, extra)
  end

  -- A token signed by the core with the test key of the alg (kid set to that key's).
  function T.token(alg, extra_claims, extra_header)
    alg = alg or "RS256"
    local kind = J.KIND_FOR_ALG[alg]
    local header = M.merge({ alg = alg, typ = "JWT", kid = M.KID[kind] }, extra_header)
    return J.sign(header, T.claims(extra_claims), J.key(kind), alg)
  end

  return T
end

return M
