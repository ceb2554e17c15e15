--- Regenerates the seed corpora in spec/fuzz/corpus/ (run from the checkout
-- after `make`): lua5.4 spec/fuzz/mkseeds.lua
-- Needs the openssl command and build/smartauth/core.so. Keys are generated
-- fresh; the jws seeds are signed with the fixed keys of fuzz_jws.c. Files
-- whose names start with "crash-" are past findings and are never touched.
package.cpath = "./build/?.so;" .. package.cpath
local core = require "smartauth.core"

local root = "spec/fuzz/corpus/"

local function sh(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("*a")
  assert(f:close(), "command failed: " .. cmd)
  return out
end

local function write(name, file, data)
  os.execute("mkdir -p " .. root .. name)
  local f = assert(io.open(root .. name .. "/" .. file, "wb"))
  f:write(data)
  f:close()
end

local function u16(s)
  assert(#s < 65536)
  return string.char(#s >> 8, #s & 255) .. s
end

local tmp = sh("mktemp -d"):gsub("%s+$", "")
local function pem(args, file)
  sh("openssl " .. args .. " -out " .. tmp .. "/" .. file .. " 2>/dev/null")
  local f = assert(io.open(tmp .. "/" .. file, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- the hex blocks of `openssl pkey -text -noout`, as bytes, by label
local function components(file)
  local text = sh("openssl pkey -in " .. tmp .. "/" .. file .. " -text -noout")
  local out, label = {}, nil
  for line in text:gmatch("[^\n]+") do
    local l = line:match("^(%w+):%s*$")
    if l then
      label = l
      out[label] = ""
    elseif label and line:match("^%s+[%x:]+$") then
      out[label] = out[label] .. line:gsub("[%s:]", ""):gsub("%x%x", function(h)
        return string.char(tonumber(h, 16))
      end)
    else
      label = nil
    end
  end
  return out
end

-- form ---------------------------------------------------------------------
local forms = {
  "grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fclient%2Eexample%2Ecom%2Fcb",
  "access_token=2YotnFZFEjr1zCsicMWpAA&token_type=bearer&expires_in=3600&scope=read+write",
  "error=invalid_grant&error_description=The+code+has+expired%21",
  "code=abc&state=xyz%3D%3D&&=empty&novalue&a=%&b=%4&c=%zz&d=%C3%A9%00",
  "+%2B%20+",
}
for i, s in ipairs(forms) do write("form", "seed-" .. i, s) end

-- b64 ----------------------------------------------------------------------
local b64 = {
  "\1eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ", "\1-_8", "\1Zm9vYg", "\1Zh", "\1Zm9v+",
  "\0Zm9vYg==", "\0Zm9vYmE=", "\0Zg", "\0Zh==", "\0Zm9=v", "\0+/8=",
}
for i, s in ipairs(b64) do write("b64", "seed-" .. i, s) end

-- jwk ----------------------------------------------------------------------
pem("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048", "rsa.pem")
pem("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256", "p256.pem")
pem("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384", "p384.pem")
pem("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521", "p521.pem")
pem("genpkey -algorithm ED25519", "ed.pem")
local rsa = components("rsa.pem")
local e = "\1\0\1"
write("jwk", "rsa-public", "\0" .. u16(rsa.modulus) .. u16(e) .. string.rep("\0", 256))
write("jwk", "rsa-private-crt", "\4" .. u16(rsa.modulus) .. u16(e) .. u16(rsa.privateExponent)
  .. u16(rsa.prime1) .. u16(rsa.prime2) .. u16(rsa.exponent1) .. u16(rsa.exponent2)
  .. u16(rsa.coefficient))
write("jwk", "rsa-private-nocrt", "\4" .. u16(rsa.modulus) .. u16(e) .. u16(rsa.privateExponent)
  .. string.rep(u16(""), 5))
for i, c in ipairs{ { "p256.pem", 32 }, { "p384.pem", 48 }, { "p521.pem", 66 } } do
  local k = components(c[1])
  local x, y = k.pub:sub(2, 1 + c[2]), k.pub:sub(2 + c[2])
  local d = string.rep("\0", c[2] - #k.priv) .. k.priv
  write("jwk", "ec-public-" .. i, "\1" .. string.char(i - 1) .. u16(x) .. u16(y)
    .. string.rep("\1", 2 * c[2]))
  write("jwk", "ec-private-" .. i, "\5" .. string.char(i - 1) .. u16(x) .. u16(y) .. u16(d))
end
local ed = components("ed.pem")
write("jwk", "okp-public", "\2\3" .. u16(ed.pub) .. string.rep("\2", 64))
write("jwk", "okp-private", "\6\3" .. u16(ed.pub) .. u16(ed.priv))
write("jwk", "okp-private-nox", "\6\3" .. u16("") .. u16(ed.priv))
write("jwk", "okp-other-crv", "\2\4" .. u16("X25519") .. u16(ed.pub))
write("jwk", "oct", "\3" .. u16("a-shared-secret-of-some-length!!") .. string.rep("\3", 32))

-- pem ----------------------------------------------------------------------
local pems = {
  ["rsa-pkcs8"] = "rsa.pem", ["p256"] = "p256.pem", ["p384"] = "p384.pem",
  ["p521"] = "p521.pem", ["ed25519"] = "ed.pem",
}
for name, file in pairs(pems) do
  local f = assert(io.open(tmp .. "/" .. file, "rb"))
  write("pem", name, f:read("*a"))
  f:close()
end
write("pem", "rsa-spki", pem("pkey -in " .. tmp .. "/rsa.pem -pubout", "rsa-pub.pem"))
write("pem", "rsa-traditional", pem("rsa -in " .. tmp .. "/rsa.pem -traditional", "rsa-trad.pem"))
write("pem", "rsa-pkcs1-public", pem("rsa -in " .. tmp .. "/rsa.pem -RSAPublicKey_out", "rsa-p1.pem"))
write("pem", "ec-traditional", pem("ec -in " .. tmp .. "/p256.pem", "ec-trad.pem"))
write("pem", "ec-spki", pem("pkey -in " .. tmp .. "/p384.pem -pubout", "ec-pub.pem"))
write("pem", "ed25519-spki", pem("pkey -in " .. tmp .. "/ed.pem -pubout", "ed-pub.pem"))
write("pem", "encrypted", pem("pkey -in " .. tmp .. "/p256.pem -aes128 -passout pass:x", "enc.pem"))
write("pem", "ec-params", pem("ecparam -name prime256v1", "params.pem"))
write("pem", "secp256k1", pem("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1", "k1.pem"))
write("pem", "x25519", pem("genpkey -algorithm X25519", "x25519.pem"))
write("pem", "rsa-pss", pem("genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048", "pss.pem"))
write("pem", "rsa-1024", pem("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024", "small.pem"))
write("pem", "truncated", pem("pkey -in " .. tmp .. "/rsa.pem", "t.pem"):sub(1, 400))

-- jws: signed with fuzz_jws.c's own keys ----------------------------------
local src = assert(io.open("spec/fuzz/fuzz_jws.c", "rb")):read("*a")
local keys = {}
for name, body in src:gmatch('static const char pem_(%w+)%[%] =\n(.-)\n    ;') do
  keys[name] = body:gsub('%s*"(.-)\\n"', "%1\n")
end
local input = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcCIsInN1YiI6ImFsaWNlIn0"
local algs = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
               "EdDSA", "HS256", "HS384", "HS512" }
local key_for = { RS = 0, PS = 0, ES256 = 1, ES384 = 2, ES512 = 3, EdDSA = 4, HS = 5 }
local key_pem = { [0] = "rsa", "p256", "p384", "p521", "ed" }
for i, alg in ipairs(algs) do
  local ki = key_for[alg] or key_for[alg:sub(1, 2)]
  local sig
  if ki == 5 then
    sig = core.hmac(tonumber(alg:sub(3)), "fuzz-hmac-secret-of-32-bytes-...", input)
  else
    sig = assert(core.key_pem(keys[key_pem[ki]])):sign(alg, input)
  end
  write("jws", "sig-" .. alg, string.char(ki, i - 1) .. u16(input) .. sig)
end
write("jws", "alg-none", "\0\14" .. u16("none") .. u16(input))
write("jws", "alg-odd", "\1\14" .. u16("ES256\0x") .. u16(input) .. string.rep("\0", 64))

-- http ---------------------------------------------------------------------
write("http", "token", "\200HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n"
  .. "Cache-Control: no-store\r\nPragma: no-cache\r\nContent-Length: 42\r\n\r\n")
write("http", "continue", "\16HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\n"
  .. "WWW-Authenticate: Bearer realm=\"x\", error=\"invalid_token\"\r\n"
  .. "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n  folded\r\n\tRetry-After:  60  \r\n:\r\n\r\n")
write("http", "h2", "\0HTTP/2 429\r\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n")

-- store --------------------------------------------------------------------
local dir = tmp .. "/store"
local fs = assert(core.fstore_open(dir, "fuzz-store-secret-0123456789abcdef"))
for i, v in ipairs{ "", '{"access_token":"t","expires_at":1700000000}', string.rep("x", 300) } do
  assert(fs:set("fuzz", v))
  local f = assert(io.open(dir .. "/fuzz.tok", "rb"))
  write("store", "sealed-" .. i, u16("fuzz") .. f:read("*a"))
  f:close()
end
fs:close()
write("store", "plain", u16("fuzz") .. '{"access_token":"t"}')
write("store", "names", u16("../etc/passwd\0.%2e") .. "SAE\1")
write("store", "header-only", u16("fuzz") .. "SAE\1" .. string.rep("\0", 32))

os.execute("rm -rf " .. tmp)
print("seeds written under " .. root)
