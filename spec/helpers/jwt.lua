--- Token forging for the specs: keys made at test time with the openssl CLI, JWKS
-- documents, and JWS/JWT tokens with any header, claims or signature, including
-- deliberately broken ones.
--
--   local J = require "helpers.jwt"
--   local k = J.key("RSA")              -- cached per kind: { kind, pem, public_pem, file,
--                                        --   public_file, key (core key, private) }
--   local k2 = J.new_key("P-256")        -- always a fresh one
--   J.public_jwk(k, { kid = "a" })       -- public JWK table (from key:public())
--   J.private_jwk(k)                     -- private JWK table (members read from openssl)
--   J.jwks(jwk, ...)                     -- { keys = { ... } }
--   J.sign({ alg = "RS256", kid = "a" }, claims, k)         -- compact JWS, signed by the core
--   J.sign_openssl({ alg = "PS256" }, claims, k)            -- signed by the openssl CLI
--   J.compact(header, claims, signature_bytes)              -- anything, unsigned
--   J.hmac(header, claims, secret)                          -- HS256/384/512 with any secret
--   J.decode(token)                      -- header, claims, raw signature (not verified)
--   J.half_hash(alg, value)              -- at_hash / c_hash, computed with openssl
--   J.cleanup()                          -- removes the key files
--
-- header and claims may be tables (JSON-encoded) or strings (used as the raw JSON text).
-- Encoding here uses LuaSocket's mime and the openssl CLI, not the library under test.
local compat = require "smartauth.compat"
local cjson = require "cjson"
local mime = require "mime"
local core = require "smartauth.core"
local proc = require "helpers.proc"

local M = {}

local q = proc.shell_quote

-- Which key kind signs each alg, and the digest it uses.
M.KIND_FOR_ALG = {
  RS256 = "RSA", RS384 = "RSA", RS512 = "RSA", PS256 = "RSA", PS384 = "RSA", PS512 = "RSA",
  ES256 = "P-256", ES384 = "P-384", ES512 = "P-521", EdDSA = "Ed25519",
}
local DIGEST = {
  RS256 = "sha256", RS384 = "sha384", RS512 = "sha512",
  PS256 = "sha256", PS384 = "sha384", PS512 = "sha512",
  ES256 = "sha256", ES384 = "sha384", ES512 = "sha512",
  HS256 = "sha256", HS384 = "sha384", HS512 = "sha512",
  EdDSA = "sha512", -- OIDC at_hash / c_hash for Ed25519
}
local COORD = { ["P-256"] = 32, ["P-384"] = 48, ["P-521"] = 66 }

---------------------------------------------------------------------------- encoding

--- base64url without padding (RFC 7515 §2).
function M.b64(s)
  local b = mime.b64(s) or ""
  return (b:gsub("+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

--- Inverse of b64 (no validation: for reading what we made).
function M.unb64(s)
  s = s:gsub("-", "+"):gsub("_", "/")
  s = s .. string.rep("=", (4 - #s % 4) % 4)
  return (mime.unb64(s)) or ""
end

local function json(v)
  if type(v) == "string" then return v end
  return cjson.encode(v)
end

--- An unsigned compact JWS with the given raw signature bytes (default none).
function M.compact(header, claims, sig)
  return M.b64(json(header)) .. "." .. M.b64(json(claims)) .. "." .. M.b64(sig or "")
end

--- Decodes (does not verify) a compact JWS: header table, claims table, raw signature.
function M.decode(token)
  local h, p, s = token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  assert(h, "not a compact JWS")
  return cjson.decode(M.unb64(h)), cjson.decode(M.unb64(p)), M.unb64(s)
end

------------------------------------------------------------------------------ files

local dir
local function workdir()
  if not dir then dir = proc.tmpdir("smartauth-jwt.XXXXXX") end
  return dir
end

local counter = 0
local function tmpfile(name)
  counter = counter + 1
  return workdir() .. "/" .. counter .. "-" .. name
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

local function read(path) return assert(proc.read_file(path), "cannot read " .. path) end

-- Runs a shell command; raises with the command on failure.
local function sh(cmd)
  local ok, code, out = proc.run(cmd .. " 2>/dev/null")
  if not ok then error("command failed (exit " .. tostring(code) .. "): " .. cmd, 3) end
  return out
end

--- Removes every file this helper made.
function M.cleanup()
  if dir then proc.rmtree(dir) end
  dir = nil
end

------------------------------------------------------------------------------- keys

local GENPKEY = {
  RSA = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048",
  RSA1024 = "-algorithm RSA -pkeyopt rsa_keygen_bits:1024",
  ["P-256"] = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
  ["P-384"] = "-algorithm EC -pkeyopt ec_paramgen_curve:P-384",
  ["P-521"] = "-algorithm EC -pkeyopt ec_paramgen_curve:P-521",
  Ed25519 = "-algorithm ED25519",
}

--- A fresh private key of a kind: "RSA" (2048 bits), "RSA1024", "P-256", "P-384",
-- "P-521" or "Ed25519". Returns { kind, pem, public_pem, file, public_file, key }.
function M.new_key(kind)
  local opts = assert(GENPKEY[kind], "unknown key kind " .. tostring(kind))
  local file = tmpfile(kind .. ".pem")
  sh("openssl genpkey " .. opts .. " -out " .. q(file))
  local public_file = tmpfile(kind .. ".pub.pem")
  sh("openssl pkey -in " .. q(file) .. " -pubout -out " .. q(public_file))
  local pem = read(file)
  local key = assert(core.key_pem(pem))
  return { kind = kind, pem = pem, public_pem = read(public_file), file = file,
    public_file = public_file, key = key }
end

local cache = {}
--- A key of this kind, made once per process.
function M.key(kind)
  if not cache[kind] then cache[kind] = M.new_key(kind) end
  return cache[kind]
end

--- The public JWK of a key (from the core's key:public()), with extra members.
function M.public_jwk(k, extra)
  local raw = assert((k.key or k):public())
  local jwk = { kty = raw.kty, crv = raw.crv }
  for _, f in ipairs { "n", "e", "x", "y" } do
    if raw[f] then jwk[f] = M.b64(raw[f]) end
  end
  for name, v in pairs(extra or {}) do jwk[name] = v end
  return jwk
end

--- A JWKS document from JWK tables.
function M.jwks(...)
  return { keys = { ... } }
end

-- "openssl pkey -text" prints byte strings as "    00:a3:68:..." lines after a label.
local function text_fields(text)
  local fields, current = {}, nil
  for line in text:gmatch("[^\n]+") do
    local label, rest = line:match("^(%a[%w]*):%s*(.-)%s*$")
    if label then
      current = label
      fields[label] = rest
    elseif current and line:match("^%s+[%x:]+%s*$") then
      fields[current] = fields[current] .. line:gsub("%s", "")
    end
  end
  return fields
end

local function hex_bytes(hex)
  hex = hex:gsub(":", "")
  return (hex:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function strip_zeros(s)
  return (s:gsub("^%z+", ""))
end

local function pad(s, n)
  s = strip_zeros(s)
  return string.rep("\0", n - #s) .. s
end

--- The private JWK of a key, read with "openssl pkey -text" (independent of the core).
function M.private_jwk(k, extra)
  local f = text_fields(sh("openssl pkey -in " .. q(k.file) .. " -text -noout"))
  local jwk
  if k.kind:match("^RSA") then
    local e = compat.tointeger(tonumber(f.publicExponent:match("^(%d+)")))
    local ebytes = ""
    while e > 0 do ebytes = string.char(e % 256) .. ebytes; e = math.floor(e / 256) end
    jwk = { kty = "RSA", n = M.b64(strip_zeros(hex_bytes(f.modulus))), e = M.b64(ebytes) }
    for name, label in pairs { d = "privateExponent", p = "prime1", q = "prime2", dp = "exponent1",
      dq = "exponent2", qi = "coefficient" } do
      jwk[name] = M.b64(strip_zeros(hex_bytes(f[label])))
    end
  elseif k.kind == "Ed25519" then
    jwk = { kty = "OKP", crv = "Ed25519", d = M.b64(hex_bytes(f.priv)), x = M.b64(hex_bytes(f.pub)) }
  else
    local n = COORD[k.kind]
    local pub = hex_bytes(f.pub)
    assert(pub:byte(1) == 4 and #pub == 1 + 2 * n, "uncompressed EC point expected")
    jwk = { kty = "EC", crv = k.kind, d = M.b64(pad(hex_bytes(f.priv), n)),
      x = M.b64(pub:sub(2, n + 1)), y = M.b64(pub:sub(n + 2)) }
  end
  for name, v in pairs(extra or {}) do jwk[name] = v end
  return jwk
end

---------------------------------------------------------------------------- signing

--- A compact JWS signed by the core key of k (or a core key object) with header.alg
-- (or alg, to sign under a different alg than the header claims).
function M.sign(header, claims, k, alg)
  local input = M.b64(json(header)) .. "." .. M.b64(json(claims))
  local key = k.key or k
  alg = alg or (type(header) == "table" and header.alg)
  local sig = assert(key:sign(alg, input))
  return input .. "." .. M.b64(sig)
end

--- A compact JWS signed with HMAC over any secret bytes (a client secret, a public
-- key's PEM text, a JWK's JSON text...), computed by the openssl CLI.
function M.hmac(header, claims, secret, alg)
  alg = alg or header.alg
  local input = M.b64(json(header)) .. "." .. M.b64(json(claims))
  local inf = write(tmpfile("hmac-in"), input)
  local keyhex = secret:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  local sig = sh("openssl dgst -" .. DIGEST[alg] .. " -mac HMAC -macopt hexkey:" .. keyhex ..
    " -binary " .. q(inf))
  return input .. "." .. M.b64(sig)
end

-- DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }) -> raw r || s.
local function der_to_raw(der, n)
  local pos = 1
  local function len()
    local b = der:byte(pos); pos = pos + 1
    if b < 0x80 then return b end
    local count, v = b - 0x80, 0
    for _ = 1, count do v = v * 256 + der:byte(pos); pos = pos + 1 end
    return v
  end
  assert(der:byte(pos) == 0x30); pos = pos + 1
  len()
  local parts = {}
  for i = 1, 2 do
    assert(der:byte(pos) == 0x02); pos = pos + 1
    local l = len()
    parts[i] = pad(der:sub(pos, pos + l - 1), n)
    pos = pos + l
  end
  return parts[1] .. parts[2]
end

--- A compact JWS signed by the openssl CLI (not the core), for an independent check
-- of every alg's signature encoding (PSS salt length, raw ECDSA r||s, Ed25519).
function M.sign_openssl(header, claims, k)
  local alg = header.alg
  local input = M.b64(json(header)) .. "." .. M.b64(json(claims))
  local inf = write(tmpfile("sign-in"), input)
  local sig
  if alg == "EdDSA" then
    sig = sh("openssl pkeyutl -sign -rawin -inkey " .. q(k.file) .. " -in " .. q(inf))
  else
    local cmd = "openssl dgst -" .. DIGEST[alg] .. " -binary -sign " .. q(k.file)
    if alg:match("^PS") then
      cmd = cmd .. " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"
    end
    sig = sh(cmd .. " " .. q(inf))
    if alg:match("^ES") then sig = der_to_raw(sig, COORD[k.kind]) end
  end
  return input .. "." .. M.b64(sig)
end

--- OIDC at_hash / c_hash (Core §3.1.3.6): base64url of the left half of the alg's
-- hash of value, computed by the openssl CLI.
function M.half_hash(alg, value)
  local inf = write(tmpfile("hash-in"), value)
  local digest = sh("openssl dgst -" .. DIGEST[alg] .. " -binary " .. q(inf))
  return M.b64(digest:sub(1, #digest / 2))
end

return M
