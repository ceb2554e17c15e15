-- The main job, end to end on this machine: a real OpenID provider
-- (oidc-provider from npm) on 127.0.0.1, discovered by smartauth; a service
-- token by client credentials; a person's login by authorization code with
-- PKCE; a protected endpoint (userinfo) called with the token; a refresh.
--
-- Run with `make demo` (or `bash examples/demo.sh` on a fresh machine).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local smartauth = require "smartauth"
local oidc = require "helpers.oidc" -- starts the provider and plays its login form

local function step(fmt, ...) io.write("\n== ", fmt:format(...), "\n") end
local function check(v, err)
  if not v then
    io.stderr:write("demo failed: ", tostring(err), "\n")
    os.exit(1)
  end
  return v
end

step("starting oidc-provider on 127.0.0.1")
local op <close> = oidc.start()
print("issuer:", op.issuer)

step("discovery")
local p = check(smartauth.discover(op.issuer, {
  client_id = "basic-client",
  client_secret = "s3cret: %+ x",       -- Basic-encoded as RFC 6749 §2.3.1 says
  redirect_uri = "http://127.0.0.1/cb",
  scope = "openid email profile",
}))
print("token endpoint:   ", p:endpoint("token_endpoint"))
print("userinfo endpoint:", p:endpoint("userinfo_endpoint"))

step("client credentials (a service logging in as itself)")
local svc = check(p:client_credentials { scope = "api:read" })
print(svc)

step("authorization code + PKCE (a person logging in)")
local url, session = p:authorization_url()
check(url, session)
print("authorization URL:", url:sub(1, 90) .. "...")
-- A person would open `url` in a browser; here the provider's login and
-- consent forms are submitted over HTTP.
local redirect = op:login(url, { login = "alice", password = "any" })
print("redirected to:    ", (redirect:gsub("code=[^&]+", "code=...")))
local tok = check(p:exchange_code { url = redirect, session = session })
print(tok)
-- exchange_code verified the ID token: signature from the JWKS, iss, aud,
-- exp, iat, nonce, at_hash
print("ID token verified; claims:", tok.claims.sub, tok.claims.email, ("exp %d"):format(tok.claims.exp))

step("calling a protected endpoint (userinfo) with the token")
local res = check(p:request { url = p:endpoint("userinfo_endpoint"), token = tok })
print("HTTP " .. res.status .. ": " .. res.body)
if res.status ~= 200 then os.exit(1) end
local info = check(p:userinfo(tok)) -- the same, decoded, with sub checked against the ID token
print("userinfo sub matches the ID token:", info.sub == tok.claims.sub)

step("refresh (the provider rotates refresh tokens)")
local fresh = check(p:refresh(tok))
print(fresh)
print("refresh token rotated:", fresh.refresh_token ~= tok.refresh_token)

step("done")
