--- Writes the seed corpus of fuzz_jwe.c (run from the checkout after `make`):
-- lua5.4 spec/fuzz/mkseeds_jwe.lua. Tokens are encrypted to the harness's own
-- fixed keys (read from fuzz_jwe.c), one per alg and enc, plus hostile ones.
package.cpath = "./build/?.so;" .. package.cpath
local core = require "smartauth.core"
local cjson = require "cjson"

local root = "spec/fuzz/corpus/jwe/"
os.execute("mkdir -p " .. root)

local function write(file, data)
  local f = assert(io.open(root .. file, "wb"))
  f:write(data)
  f:close()
end

local function u16(s)
  assert(#s < 65536)
  return string.char(#s >> 8, #s & 255) .. s
end

local src = assert(io.open("spec/fuzz/fuzz_jwe.c", "rb")):read("*a")
local function pem(name)
  local body = src:match("static const char " .. name .. "%[%] =%s*(.-);")
  local out = {}
  for line in body:gmatch('"(.-)"') do out[#out + 1] = (line:gsub("\\n", "\n")) end
  return table.concat(out)
end
local secret = src:match('secret%[%] = "(.-)"')
local rsa, p256 = assert(core.key_pem(pem("pem_rsa"))), assert(core.key_pem(pem("pem_p256")))
local algs = { "RSA-OAEP", "RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW", "A128KW", "A256KW", "dir" }
local encs = { "A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512" }
local cek = { 16, 32, 32, 64 }
local plain = '{"iss":"https://idp.example","sub":"alice"}'

for ai, alg in ipairs(algs) do
  for ei, enc in ipairs(encs) do
    local key, ki
    if alg:match("^RSA") then key, ki = rsa, 0
    elseif alg:match("^ECDH") then key, ki = p256, 1
    elseif alg == "A128KW" then key, ki = core.key_oct(secret:sub(1, 16)), 2
    elseif alg == "A256KW" then key, ki = core.key_oct(secret:sub(1, 32)), 3
    else
      ki = ({ [16] = 2, [32] = 3, [64] = 4 })[cek[ei]]
      key = core.key_oct(secret:sub(1, cek[ei]))
    end
    local tok = assert(key:jwe_encrypt(alg, enc, plain, "kid", "JWT"))
    local h = cjson.decode(core.jwe_parse(tok))
    local x, y = "", ""
    if h.epk then x, y = core.b64url_decode(h.epk.x), core.b64url_decode(h.epk.y) end
    write(("%s-%s"):format(alg, enc), string.char(ki, ai - 1, ei - 1) .. u16(x) .. u16(y) .. u16("") .. u16("")
      .. tok)
  end
end
write("rsa1_5", "\0\8\0" .. u16("RSA1_5") .. u16("") .. u16("") .. u16("") .. u16("") .. "a.b.c.d.e")
write("six-parts", "\0\0\0" .. u16("") .. u16("") .. u16("") .. u16("") .. "a.b.c.d.e.f")
print("seeds written under " .. root)
