-- Signed UserInfo answers (OIDC Core §5.3.2, `application/jwt`; lua/smartauth/oidc.lua)
-- against the recording server: verified like an ID token (signature with the key set,
-- the alg allow-list, iss, aud) and the same sub as the verified ID token; hostile ones
-- refused with the check named. The interop spec gets one from oidc-provider.
local smartauth = require "smartauth"
local clock = require "smartauth.clock"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

local KID, SECRET, NONE = idp.KID, idp.SECRET, idp.NONE

describe("signed UserInfo", function()
  local s
  local T = idp.new()

  setup(function()
    s = server.start()
    T.s = s
  end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function()
    s:reset()
    T.serve_jwks()
  end)

  local function provider(extra)
    local o = { client_secret = SECRET, userinfo_endpoint = s.url .. "/userinfo" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return T.provider(o)
  end

  local function tok(sub)
    local t = assert(smartauth.token.from_response({ access_token = "at-ui", expires_in = 3600 }, clock.now()))
    t.claims = { sub = sub or "alice" }
    return t
  end

  -- UserInfo claims: no exp or iat unless given (OIDC Core does not ask for them)
  local function ui_claims(extra)
    return idp.merge({ iss = s.url, aud = "cid", sub = "alice", email = "alice@example.com" }, extra)
  end

  local function serve(body, ctype)
    s:script("/userinfo", { body = body, headers = { ["Content-Type"] = ctype or "application/jwt; charset=utf-8" } })
  end

  local function signed(extra_claims, header, alg)
    alg = alg or "RS256"
    local kind = J.KIND_FOR_ALG[alg]
    return J.sign(idp.merge({ alg = alg, kid = KID[kind] }, header), ui_claims(extra_claims), J.key(kind), alg)
  end

  local function refused(check, body, p, t)
    serve(body)
    p = p or provider()
    local ok, info, err = pcall(p.userinfo, p, t or tok())
    assert.is_true(ok, tostring(info))
    assert.is_nil(info)
    assert.is_table(err)
    assert.equal("validation", err.kind)
    if check then assert.equal(check, err.check) end
    return err
  end

  it("verifies an RS256-signed answer and returns its claims", function()
    serve(signed())
    local info = assert(provider():userinfo(tok()))
    assert.equal("alice", info.sub)
    assert.equal("alice@example.com", info.email)
    assert.equal(s.url, info.iss)
    local seen
    for _, r in ipairs(s:requests()) do if r.path == "/userinfo" then seen = r end end
    assert.equal("Bearer at-ui", seen.headers.authorization)
  end)

  it("verifies ES256 and EdDSA answers, and checks exp and iat when present", function()
    for _, alg in ipairs { "ES256", "EdDSA" } do
      serve(signed({ exp = clock.now() + 60, iat = clock.now() }, nil, alg))
      assert(provider():userinfo(tok()))
    end
    refused("exp", signed { exp = clock.now() - 3600 })
    refused("iat", signed { iat = clock.now() + 3600 })
    refused("exp", signed { exp = "tomorrow" })
  end)

  it("refuses a bad signature", function()
    local good = signed()
    local h, p = idp.segments(good)
    local other = J.sign({ alg = "RS256", kid = KID.RSA }, ui_claims(), J.new_key("RSA"), "RS256")
    local _, _, sig = idp.segments(other)
    refused("signature", h .. "." .. p .. "." .. sig)
    -- the claims changed after signing
    refused("signature", h .. "." .. J.b64('{"iss":"' .. s.url .. '","aud":"cid","sub":"mallory"}') .. "."
      .. select(3, idp.segments(good)))
  end)

  it("refuses another audience, another issuer, no sub", function()
    local err = refused("aud", signed { aud = "someone-else" })
    assert.matches("^UserInfo rejected", err.description)
    refused("aud", signed { aud = NONE })
    refused("iss", signed { iss = "https://evil.example" })
    refused("sub", signed { sub = NONE })
  end)

  it("refuses another sub than the verified ID token's", function()
    serve(signed { sub = "mallory" })
    local info, err = provider():userinfo(tok("alice"))
    assert.is_nil(info)
    assert.equal("sub", err.check)
  end)

  it("refuses alg none and an HMAC the client is not registered for", function()
    refused("alg", J.compact({ alg = "none" }, ui_claims()))
    refused("alg", J.compact({ alg = "none" }, ui_claims(), "sig"))
    refused("alg", J.hmac({ alg = "HS256" }, ui_claims(), SECRET))
    -- registered for HS256: the client secret verifies it
    serve(J.hmac({ alg = "HS256" }, ui_claims(), SECRET))
    assert(provider { id_token_signed_response_alg = "HS256" }:userinfo(tok()))
  end)

  it("refuses garbage, truncated and oversized bodies without raising", function()
    for _, body in ipairs { "", "garbage", "a.b", "a.b.c", "...", '{"sub":"alice"}', signed():sub(1, 40),
      string.rep("A", 70000) .. ".b.c", string.rep(".", 100000) } do
      refused(nil, body)
    end
  end)

  it("refuses an encrypted (JWE) answer with a clear error", function()
    -- the client secret gives this provider symmetric keys (OIDC Core §10.2), so the
    -- header is read, and its missing enc named
    local err = refused("jwe", "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn")
    assert.matches("UserInfo response: JWE header has no enc", err.description)
  end)

  it("needs the issuer to check a signed answer", function()
    serve(signed())
    local p = assert(smartauth.provider { client_id = "cid", userinfo_endpoint = s.url .. "/userinfo",
      jwks_uri = s.url .. "/jwks" })
    local info, err = p:userinfo(tok())
    assert.is_nil(info)
    assert.equal("validation", err.kind)
  end)
end)
