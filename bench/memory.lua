-- Benchmark 5a: RSS stays flat over many token requests and verifications.
--   lua5.4 bench/memory.lua TOKEN_URL N KEYDIR
-- KEYDIR holds rsa.pem, p256.pem, ed25519.pem (private keys, PEM). Warms up
-- (so the heap and libcurl's caches reach their working size), then does N
-- client_credentials grants and N ID token verifications (RS256, ES256 and
-- EdDSA in turn), with a full collection before each reading. Prints one
-- JSON object with VmRSS (KiB) and the Lua heap (KiB) at each point.
package.path = "./lua/?.lua;./lua/?/init.lua;./bench/?.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local smartauth = require "smartauth"
local cjson = require "cjson"
local idtok = require "idtoken"

local url, n, keydir = arg[1], math.tointeger(tonumber(arg[2])), arg[3]
assert(url and n and keydir, "usage: memory.lua TOKEN_URL N KEYDIR")

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function settle()
  collectgarbage("collect")
  collectgarbage("collect")
  return { rss = rss(), heap = math.floor(collectgarbage("count")) }
end

local p = assert(smartauth.provider {
  token_endpoint = url, client_id = "bench-client", client_secret = "bench-secret", retry = false,
})
local function grants(count)
  for _ = 1, count do
    local tok, err = p:client_credentials()
    if not tok then error("grant failed: " .. tostring(err)) end
  end
end

local cases = {}
for i, alg in ipairs { "RS256", "ES256", "EdDSA" } do
  cases[i] = idtok.case(alg, keydir)
end
local function verifications(count)
  for i = 1, count do
    local c = cases[i % #cases + 1]
    local claims, err = c.provider:verify_id_token(c.token, { nonce = c.nonce })
    if not claims then error(c.alg .. " verification failed: " .. tostring(err)) end
  end
end

local warm = math.max(1000, n // 10)
grants(warm)
verifications(warm)
local start = settle()
grants(n)
local after_grants = settle()
verifications(n)
local after_verify = settle()
print(cjson.encode {
  n = n, warmup = warm, start = start, after_grants = after_grants, after_verify = after_verify,
})
