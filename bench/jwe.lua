-- Benchmark 11 (bench/run.lua): JWE decryption of an encrypted ID token
-- (jwe.decrypt: the strict header, the key choice, the C decryption) per CPU
-- second, against `openssl speed` for the primitive that dominates it: the
-- RSA-2048 private operation (RSA-OAEP-256 + A256GCM) and the P-256 ECDH
-- derivation (ECDH-ES + A128GCM). Interleaved rounds, medians.
local jwe = require "smartauth.jwe"
local idtok = require "idtoken"

local M = {}

M.CASES = {
  { alg = "RSA-OAEP-256", enc = "A256GCM", key = "rsa.pem", speed = "rsa2048", what = "rsa2048 sign (private op)",
    limit = 0.80 },
  { alg = "ECDH-ES", enc = "A128GCM", key = "p256.pem", speed = "ecdhp256", what = "ecdhp256",
    limit = 0.35 },
}

-- Private-key operations per second: the first rate of the `+F` line
-- (rsa: sign/s then verify/s; ecdh: op/s).
local function speed(h, name)
  local out = h.must("timeout 30 openssl speed -seconds 1 -mr " .. name .. " 2>/dev/null")
  local line = ("\n" .. out):match("\n(%+F%d*:[^\n]+)")
  local v = line and tonumber(line:match("^%+F%d*:%d+:%d+:([%d.]+)"))
  if not v then error("cannot read openssl speed output for " .. name .. ":\n" .. out) end
  return v
end

--- h: { must, median, compare, header, rounds, keydir, now }
function M.run(h)
  h.header(("11. JWE decryption of an encrypted ID token (decryptions per CPU second, median of %d "
    .. "rounds of 1 s interleaved with openssl speed -seconds 1 for the private-key primitive)"):format(h.rounds))
  local out = {}
  for _, c in ipairs(M.CASES) do
    local pem = assert(io.open(h.keydir .. "/" .. c.key, "rb")):read("a")
    local keys = assert(jwe.load_keys { pem })
    local inner = idtok.case("RS256", h.keydir).token -- the nested JWS, as a provider sends it
    local token = assert(jwe.encrypt(inner, keys[1].key, { alg = c.alg, enc = c.enc, cty = "JWT",
      kid = keys[1].kid }))
    local function check()
      local pt, err = jwe.decrypt(token, keys)
      if pt ~= inner then error(c.alg .. " decryption failed: " .. tostring(err)) end
    end
    check()
    local function ours()
      local count, c0, w0 = 0, os.clock(), h.now()
      repeat
        for _ = 1, 20 do jwe.decrypt(token, keys) end
        count = count + 20
      until os.clock() - c0 >= 1 or h.now() - w0 >= 5
      return count / (os.clock() - c0)
    end
    local mine, theirs, ratios = {}, {}, {}
    for r = 1, h.rounds do
      if r % 2 == 1 then mine[r] = ours(); theirs[r] = speed(h, c.speed)
      else theirs[r] = speed(h, c.speed); mine[r] = ours() end
      ratios[r] = mine[r] / theirs[r]
    end
    check()
    out[c.alg .. "+" .. c.enc] = { smartauth_per_s = mine, openssl_speed_per_s = theirs, token_bytes = #token }
    h.compare {
      id = "11." .. c.alg, name = "11 jwe.decrypt " .. c.alg .. " + " .. c.enc, value = h.median(mine),
      unit = "/s", baseline_name = "openssl speed " .. c.speed, baseline = h.median(theirs),
      ratio = h.median(ratios), op = ">=", limit = c.limit,
    }
  end
  return out
end

return M
