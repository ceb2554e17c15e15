-- The strict JSON decoder (csrc/json.c through core.json_decode) and its
-- wrapper smartauth.json: differential tests against lua-cjson and a strict
-- reference recogniser written here, then hostile input.
local core = require "smartauth.core"
local json = require "smartauth.json"
local cjson = require "cjson.safe"

local null = cjson.null

-- A seeded PRNG (64-bit LCG, high bits): r(n) is 1..n.
local function prng(seed)
  local s = seed
  return function(n)
    s = s * 6364136223846793005 + 1442695040888963407
    return (s >> 33) % n + 1
  end
end

-- Deep equality. Numbers must be == and of the same subtype; with loose,
-- an integer is compared through the double it rounds to (lua-cjson 2.1.0
-- decodes every number as a double, so it cannot hold 2^53 + 1).
local function same(a, b, loose)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if loose then return a + 0.0 == b + 0.0 end
    return a == b and math.type(a) == math.type(b)
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k], loose) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

---------------------------------------------------------------- generator
-- Random JSON text together with the value it denotes, built side by side
-- so the expected value does not come from any JSON decoder.

local ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
local SIMPLE = { { '\\"', '"' }, { "\\\\", "\\" }, { "\\/", "/" }, { "\\b", "\b" }, { "\\f", "\f" },
                 { "\\n", "\n" }, { "\\r", "\r" }, { "\\t", "\t" } }
local WS = { " ", "\t", "\n", "\r", "  ", "\r\n", " \t " }

local function hex4(r, cp)
  return (r(2) == 1 and "\\u%04x" or "\\u%04X"):format(cp)
end

local function bmp(r) -- a code point outside the surrogates
  local ranges = { { 0, 0x7f }, { 0x80, 0x7ff }, { 0x800, 0xd7ff }, { 0xe000, 0xffff } }
  local lo, hi = table.unpack(ranges[r(#ranges)])
  return lo + r(hi - lo + 1) - 1
end

local function gen_string(r)
  local text, val = { '"' }, {}
  for _ = 1, r(10) - 1 do
    local k = r(10)
    local t, v
    if k <= 3 then
      local n = r(8)
      local p = r(#ASCII - n + 1)
      t = ASCII:sub(p, p + n - 1)
      v = t
    elseif k == 4 then
      t, v = table.unpack(SIMPLE[r(#SIMPLE)])
    elseif k == 5 then
      local cp = bmp(r)
      t, v = hex4(r, cp), utf8.char(cp)
    elseif k == 6 then -- a surrogate pair
      local cp = 0x10000 + r(0x100000) - 1
      t = hex4(r, 0xd800 + ((cp - 0x10000) >> 10)) .. hex4(r, 0xdc00 + ((cp - 0x10000) & 0x3ff))
      v = utf8.char(cp)
    elseif k == 7 then -- raw UTF-8
      local cp = r(2) == 1 and bmp(r) or 0x10000 + r(0x100000) - 1
      if cp < 0x20 or cp == 0x22 or cp == 0x5c then cp = 0xe9 end
      t = utf8.char(cp)
      v = t
    elseif k == 8 then -- raw bytes >= 0x80, UTF-8 or not
      t = string.char(0x7f + r(0x80))
      v = t
    elseif k == 9 then
      t, v = "\\u0000", "\0"
    else
      t, v = "\127", "\127"
    end
    text[#text + 1] = t
    val[#val + 1] = v
  end
  text[#text + 1] = '"'
  return table.concat(text), table.concat(val)
end

local BOUNDARY = { "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                   "-9223372036854775809", "9007199254740993", "-0", "0", "1e400", "-1e400", "1e-400",
                   "18446744073709551616", "0.1", "-0.0" }

local function digits(r, n, lead)
  local t = {}
  for i = 1, n do
    t[i] = tostring(i == 1 and lead and r(9) or r(10) - 1)
  end
  return table.concat(t)
end

-- The value of a JSON number is Lua's reading of the same numeral: an
-- integer when it has no fraction or exponent and fits, else a float.
local function gen_number(r)
  local k = r(6)
  local t
  local sign = r(3) == 1 and "-" or ""
  local int = r(4) == 1 and "0" or digits(r, r(6), true)
  if k == 1 then
    t = tostring(r(2001) - 1001)
  elseif k == 2 then
    t = sign .. digits(r, r(22), true)
  elseif k == 3 then
    t = BOUNDARY[r(#BOUNDARY)]
  elseif k == 4 then
    t = sign .. int .. "." .. digits(r, r(8))
  else
    t = sign .. int .. (r(2) == 1 and ("." .. digits(r, r(4))) or "") .. (r(2) == 1 and "e" or "E")
      .. ({ "", "+", "-" })[r(3)] .. digits(r, r(3))
  end
  return t, assert(tonumber(t))
end

local function ws(r)
  return r(4) == 1 and WS[r(#WS)] or ""
end

local KEYS = { { '"a"', "a" }, { '"\\u0061"', "a" }, { '"b"', "b" }, { '"sub"', "sub" }, { '""', "" },
               { '"\\u0000"', "\0" } }

local gen_value

local function gen_container(r, budget, depth, object)
  local text, val = { object and "{" or "[", ws(r) }, {}
  for i = 1, r(6) - 1 do
    if i > 1 then text[#text + 1] = ws(r) .. "," .. ws(r) end
    if object then
      local kt, kv
      if r(2) == 1 then kt, kv = table.unpack(KEYS[r(#KEYS)]) else kt, kv = gen_string(r) end
      local vt, vv = gen_value(r, budget, depth + 1)
      text[#text + 1] = kt .. ws(r) .. ":" .. ws(r) .. vt
      val[kv] = vv -- a repeated name: the last one wins
    else
      local vt, vv = gen_value(r, budget, depth + 1)
      text[#text + 1] = vt
      val[i] = vv
    end
  end
  text[#text + 1] = ws(r) .. (object and "}" or "]")
  return table.concat(text), val
end

function gen_value(r, budget, depth)
  budget.n = budget.n - 1
  local k = r(9)
  if k <= 4 and budget.n > 0 and depth < 8 then
    return gen_container(r, budget, depth, k <= 2)
  elseif k == 5 or k == 6 then
    return gen_string(r)
  elseif k == 7 then
    return gen_number(r)
  end
  return table.unpack(({ { "true", true }, { "false", false }, { "null", null } })[r(3)])
end

-- A document: usually a small tree, sometimes a scalar, sometimes a chain
-- nested right up to the limit.
local function gen_doc(r)
  local t, v
  if r(25) == 1 then
    t, v = gen_value(r, { n = 3 }, 0)
    for _ = 1, 64 - 1 - r(8) do
      if r(2) == 1 then
        t, v = "[" .. ws(r) .. t .. ws(r) .. "]", { v }
      else
        t, v = '{"k":' .. t .. "}", { k = v }
      end
    end
  elseif r(5) == 1 then
    t, v = gen_value(r, { n = 25 }, 0) -- scalars too
  else
    t, v = gen_container(r, { n = 40 }, 0, r(2) == 1)
  end
  return ws(r) .. t .. ws(r), v
end

---------------------------------------------------------------- reference
-- A strict recogniser for RFC 8259 with the parser's own extra rules (no
-- lone surrogates, depth <= 64): true, or false and the reason, named by
-- kind so that lua-cjson's known laxities can be told apart.
local function strict(s)
  local pos, depth = 1, 0
  local function fail(why) error({ why = why }, 0) end
  local function skip() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value

  local function str()
    pos = pos + 1
    while true do
      local c = s:byte(pos)
      if not c then fail("unterminated string") end
      if c == 34 then
        pos = pos + 1
        return
      elseif c < 32 then
        fail("control character")
      elseif c == 92 then
        local e = s:sub(pos + 1, pos + 1)
        if e == "u" then
          local h = s:match("^%x%x%x%x", pos + 2)
          if not h then fail("escape") end
          local cp = tonumber(h, 16)
          pos = pos + 6
          if cp >= 0xdc00 and cp <= 0xdfff then fail("surrogate") end
          if cp >= 0xd800 and cp <= 0xdbff then
            local l = s:match("^\\u(%x%x%x%x)", pos)
            if not l or tonumber(l, 16) < 0xdc00 or tonumber(l, 16) > 0xdfff then fail("surrogate") end
            pos = pos + 6
          end
        elseif e ~= "" and ('"\\/bfnrt'):find(e, 1, true) then
          pos = pos + 2
        else
          fail("escape")
        end
      else
        pos = pos + 1
      end
    end
  end

  local function number()
    local m = s:match("^%-?0", pos) or s:match("^%-?[1-9]%d*", pos)
    if not m then fail("number") end
    pos = pos + #m
    local f = s:match("^%.%d+", pos)
    if f then pos = pos + #f end
    local e = s:match("^[eE][+-]?%d+", pos)
    if e then pos = pos + #e end
    -- nothing that could continue a numeral may follow: "01", "1.",
    -- "1e", "0x10" and the like are bad numbers, not bad separators
    if s:find("^[%w%.%+%-]", pos) then fail("number") end
  end

  local function container(close)
    depth = depth + 1
    if depth > 64 then fail("depth") end
    pos = pos + 1
    skip()
    if s:sub(pos, pos) == close then
      pos = pos + 1
      depth = depth - 1
      return
    end
    while true do
      if close == "}" then
        skip()
        if s:sub(pos, pos) ~= '"' then fail("syntax") end
        str()
        skip()
        if s:sub(pos, pos) ~= ":" then fail("syntax") end
        pos = pos + 1
      end
      value()
      skip()
      local c = s:sub(pos, pos)
      pos = pos + 1
      if c == close then
        depth = depth - 1
        return
      elseif c ~= "," then
        fail("syntax")
      end
    end
  end

  function value()
    skip()
    local c = s:sub(pos, pos)
    if c == "{" then
      container("}")
    elseif c == "[" then
      container("]")
    elseif c == '"' then
      str()
    elseif c == "-" or c:find("^%d") then
      number()
    elseif s:find("^true", pos) or s:find("^null", pos) then
      pos = pos + 4
    elseif s:find("^false", pos) then
      pos = pos + 5
    elseif c == "+" or c == "." or s:lower():find("^inf", pos) or s:lower():find("^nan", pos) then
      fail("number")
    else
      fail("syntax")
    end
  end

  local ok, err = pcall(function()
    value()
    skip()
    if pos <= #s then fail(s:byte(pos) == 0 and "NUL after value" or "trailing") end
  end)
  if ok then return true end
  if type(err) ~= "table" then error(err, 0) end
  return false, err.why
end

-- Where lua-cjson 2.1.0 accepts what RFC 8259 does not (see the explicit
-- cases in "refuses what lua-cjson lets through" below).
local CJSON_LAX = { number = true, ["control character"] = true, ["NUL after value"] = true, depth = true }

local MUTANTS = { "{", "}", "[", "]", ",", ":", '"', "\\", "0", "1", "-", "+", ".", "e", "E", "x", " ",
                  "\f", "\0", "\1", "\31", "\128", "\255", "u", "t", "n", "a", "\\u", "\\ud800", "\\udc00" }

local function mutate(r, s)
  for _ = 1, r(2) do
    local n, k = #s, r(5)
    local p = r(n + 1)
    if k == 1 and n > 0 then
      s = s:sub(1, p - 1) .. s:sub(p + 1)
    elseif k == 2 then
      s = s:sub(1, p - 1) .. MUTANTS[r(#MUTANTS)] .. s:sub(p)
    elseif k == 3 and n > 0 then
      s = s:sub(1, p - 1) .. MUTANTS[r(#MUTANTS)] .. s:sub(p + 1)
    elseif k == 4 then
      s = s:sub(1, p - 1)
    else
      local q = r(n + 1)
      s = s:sub(1, p - 1) .. s:sub(math.min(p, q), math.max(p, q)) .. s:sub(p)
    end
  end
  return s
end

local function show(s)
  return ("%q"):format(#s > 200 and s:sub(1, 200) .. "..." or s)
end

local TOKEN_RESPONSE = '{"access_token":"SlAV32hkKG","token_type":"Bearer","expires_in":3600,'
  .. '"refresh_token":"8xLOxBtZp8","scope":"openid email","id_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln",'
  .. '"ratio":-1.25e+2,"ok":true,"no":false,"nothing":null,"sub":"\\u00e9\\ud83d\\ude00\\"\\n"}'

describe("core.json_decode", function()
  it("agrees with lua-cjson and the generated values on 2000 random documents", function()
    local r = prng(20240601)
    local bad, both, deep = {}, 0, 0
    for i = 1, 2000 do
      local text, want = gen_doc(r)
      local ours, msg = core.json_decode(text)
      local theirs = cjson.decode(text)
      if #text > 64 and text:find("^%s*[%[{]%s*[%[{]%s*[%[{]") then deep = deep + 1 end
      if not strict(text) then
        bad[#bad + 1] = ("%d: the generator made invalid JSON %s"):format(i, show(text))
      elseif ours == nil then
        bad[#bad + 1] = ("%d: refused %s: %s"):format(i, show(text), msg)
      elseif not same(ours, want) then
        bad[#bad + 1] = ("%d: wrong value for %s"):format(i, show(text))
      elseif theirs == nil then
        -- the generator stays within RFC 8259 and depth 64: lua-cjson
        -- must take all of it
        bad[#bad + 1] = ("%d: lua-cjson refused %s"):format(i, show(text))
      elseif not same(ours, theirs, true) then
        bad[#bad + 1] = ("%d: lua-cjson disagrees on %s"):format(i, show(text))
      else
        both = both + 1
      end
      if #bad >= 5 then break end
    end
    assert.same({}, bad)
    assert.equal(2000, both)
    assert.is_true(deep > 20) -- the deep chains were made
  end)

  it("accepts and refuses exactly what a strict reference does, on 2000 mutated documents", function()
    local r = prng(77)
    local bad, accepted, refused, lax = {}, 0, 0, {}
    for i = 1, 2000 do
      local text = mutate(r, (gen_doc(r)))
      local ours, msg = core.json_decode(text)
      local theirs = cjson.decode(text)
      local ok, why = strict(text)
      if (ours ~= nil) ~= ok then
        bad[#bad + 1] = ("%d: %s %s (reference: %s)"):format(i, ours ~= nil and "accepted" or "refused",
          show(text), ok and "valid" or why)
      elseif ours == nil and not msg:find("^invalid JSON at byte %d+: ") then
        bad[#bad + 1] = ("%d: message %q"):format(i, msg)
      elseif ours ~= nil then
        accepted = accepted + 1
        if theirs == nil then
          bad[#bad + 1] = ("%d: lua-cjson refused valid %s"):format(i, show(text))
        elseif not same(ours, theirs, true) then
          bad[#bad + 1] = ("%d: lua-cjson disagrees on %s"):format(i, show(text))
        end
      else
        refused = refused + 1
        -- lua-cjson takes some of these: only where it is known to be lax
        if theirs ~= nil then
          if CJSON_LAX[why] then
            lax[why] = (lax[why] or 0) + 1
          else
            bad[#bad + 1] = ("%d: lua-cjson accepted %s (%s)"):format(i, show(text), why)
          end
        end
      end
      if #bad >= 5 then break end
    end
    assert.same({}, bad)
    -- both kinds were exercised, and the laxities did turn up
    assert.is_true(accepted > 100, "accepted " .. accepted)
    assert.is_true(refused > 1000, "refused " .. refused)
    assert.is_true((lax.number or 0) > 0 and (lax["control character"] or 0) > 0)
  end)

  it("decodes every value type", function()
    local v = core.json_decode('{"s":"x","i":1,"f":1.5,"t":true,"f2":false,"n":null,"a":[1,"2",[]],"o":{}}')
    assert.same({ s = "x", i = 1, f = 1.5, t = true, f2 = false, n = null, a = { 1, "2", {} }, o = {} }, v)
    assert.equal(null, v.n)
    assert.equal("userdata", type(v.n))
    assert.equal(null, core.json_decode("null"))
    assert.is_true(core.json_decode("true"))
    assert.is_false(core.json_decode("false"))
    assert.equal("caf\195\169", core.json_decode('"caf\\u00e9"'))
    assert.equal("\240\159\152\128", core.json_decode('"\\ud83d\\ude00"'))
    assert.equal('"\\/\b\f\n\r\t', core.json_decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
    assert.equal("\255\128\192", core.json_decode('"\255\128\192"')) -- raw bytes pass through
    -- nulls keep their places in arrays
    local a = core.json_decode("[null,1,null]")
    assert.equal(3, #a)
    assert.equal(null, a[1])
    assert.equal(null, a[3])
  end)

  it("gives integers that fit as integers, everything else as floats", function()
    local cases = {
      { "0", 0, "integer" }, { "-0", 0, "integer" }, { "42", 42, "integer" }, { "-7", -7, "integer" },
      { "9223372036854775807", math.maxinteger, "integer" },
      { "-9223372036854775808", math.mininteger, "integer" },
      { "9007199254740993", 9007199254740993, "integer" }, -- exact, where a double is not
      { "9223372036854775808", 2.0 ^ 63, "float" },
      { "-9223372036854775809", -2.0 ^ 63, "float" },
      { "18446744073709551616", 2.0 ^ 64, "float" },
      { "1.0", 1.0, "float" }, { "1e2", 100.0, "float" }, { "1E+2", 100.0, "float" },
      { "1.5e-3", 0.0015, "float" }, { "-0.0", -0.0, "float" }, { "0e0", 0.0, "float" },
      { "1e400", math.huge, "float" }, { "-1e400", -math.huge, "float" }, { "1e-400", 0.0, "float" },
    }
    for _, c in ipairs(cases) do
      local v = core.json_decode(c[1])
      assert.equal(c[2], v, c[1])
      assert.equal(c[3], math.type(v), c[1])
    end
    assert.equal(-math.huge, 1 / core.json_decode("-0.0")) -- the sign of a float zero is kept
    -- numerals longer than the binding's 64-byte buffer
    local long = "1." .. ("0"):rep(100) .. "1"
    assert.equal(1.0, core.json_decode(long))
    assert.equal(tonumber(("9"):rep(80)), core.json_decode(("9"):rep(80)))
    assert.equal(-1e-80, core.json_decode("-0." .. ("0"):rep(79) .. "1"))
    assert.same({ a = { 1.0 } }, core.json_decode('{"a":[' .. long .. "]}"))
  end)

  it("refuses what lua-cjson lets through", function()
    -- lua-cjson 2.1.0 (decode_invalid_numbers on by default) hands any
    -- numeral to strtod, passes raw control characters through in strings,
    -- stops at the first NUL byte, and allows 1000 levels of nesting.
    -- RFC 8259 allows none of that; the strict parser refuses all of it.
    local lax = {
      "01", "-01", "00", "1.", "-1.", "+1", "0x10", "-0x10", "1.e3", "-inf", "-Infinity", "[-nan]",
      '"a\1b"', '"tab\there"', '"line\nbreak"', '{"k\31":1}',
      "{}\0", '{"a":1}\0{"b":2}', "[1]\0garbage",
      ("["):rep(65) .. ("]"):rep(65), ("["):rep(1000) .. ("]"):rep(1000),
    }
    for _, s in ipairs(lax) do
      assert.is_not_nil(cjson.decode(s), show(s)) -- still lax, or this list is stale
      local v, msg = core.json_decode(s)
      assert.is_nil(v, show(s))
      assert.matches("^invalid JSON at byte %d+: ", msg)
    end
  end)

  it("refuses malformed input with a message naming the byte", function()
    local cases = {
      { "", 0, "unexpected end" }, { "   ", 3, "unexpected end" }, { "[1,]", 3, "unexpected character" },
      { '{"a" 1}', 5, "expected ':'" }, { "[1 2]", 3, "expected ',' or ']'" },
      { '{"a":1 "b":2}', 7, "expected ',' or '}'" }, { "{,}", 1, "expected a member name" },
      { "1 2", 2, "trailing characters" }, { "tru", 0, "invalid literal" }, { "nulll", 4, "trailing characters" },
      { '"\\ud83d"', 7, "lone high surrogate" }, { '"\\ude00"', 7, "lone low surrogate" },
      { '"\\x"', 2, "invalid escape" }, { '"\\u12"', 2, "invalid \\u escape" }, { '"abc', 4, "unterminated string" },
      { '"a\1"', 2, "control character in string" }, { "\f1", 0, "unexpected character" },
      { "-", 1, "invalid number" }, { ".5", 0, "unexpected character" }, { "1e", 2, "invalid number" },
      { "01", 1, "trailing characters" },
    }
    for _, c in ipairs(cases) do
      local v, msg = core.json_decode(c[1])
      assert.is_nil(v, show(c[1]))
      assert.equal(("invalid JSON at byte %d: %s"):format(c[2], c[3]), msg)
    end
    for _, s in ipairs { "[", "{", "]", "}", '{"a"}', '{"a":}', "{a:1}", "[1:2]", "'a'", "True", "nil",
      "[1,,2]", "{}{}", "\v1", "1\f", "\194\160" .. "1", '{"a":1,}', "[1}", '{"a":1]' } do
      local v, msg = core.json_decode(s)
      assert.is_nil(v, show(s))
      assert.matches("^invalid JSON at byte %d+: ", msg)
    end
    assert.has_error(function() core.json_decode() end)
    assert.has_error(function() core.json_decode({}) end)
  end)

  it("refuses every proper prefix of a token response", function()
    assert.is_table(core.json_decode(TOKEN_RESPONSE))
    local bad = {}
    for n = 0, #TOKEN_RESPONSE - 1 do
      local prefix = TOKEN_RESPONSE:sub(1, n)
      local v, msg = core.json_decode(prefix)
      local at = msg and tonumber(msg:match("^invalid JSON at byte (%d+): "))
      if v ~= nil or not at or at > n then bad[#bad + 1] = n end
      if json.object(prefix) ~= nil then bad[#bad + 1] = -n end
    end
    assert.same({}, bad)
  end)

  it("takes oversized documents: a 1 MiB string, a 200000-element array", function()
    local big = ("x"):rep(1 << 20)
    local v = core.json_decode('{"v":"' .. big .. '"}')
    assert.equal(big, v.v)
    local parts = {}
    for i = 1, 200000 do parts[i] = tostring(i) end
    local a = core.json_decode("[" .. table.concat(parts, ",") .. "]")
    assert.equal(200000, #a)
    assert.equal(1, a[1])
    assert.equal(200000, a[200000])
    assert.equal("integer", math.type(a[123456]))
    -- and an object of 100000 members
    parts = {}
    for i = 1, 100000 do parts[i] = ('"k%d":%d'):format(i, i) end
    local o = core.json_decode("{" .. table.concat(parts, ",") .. "}")
    assert.equal(100000, o.k100000)
    -- a 1 MiB string of escapes
    local s = core.json_decode('"' .. ("\\u00e9"):rep(1 << 17) .. '"')
    assert.equal(("\195\169"):rep(1 << 17), s)
  end)

  it("bounds nesting: 64 levels, not 65, and 100000 '[' without crashing", function()
    local function nest(n, open, close) return open:rep(n) .. close:rep(n) end
    local v = core.json_decode(nest(64, "[", "]"))
    for _ = 1, 63 do v = v[1] end
    assert.same({}, v)
    local o = core.json_decode((nest(64, '{"a":', "}"):gsub('{"a":}', "{}")))
    assert.is_table(o)
    local _, msg = core.json_decode(nest(65, "[", "]"))
    assert.equal("invalid JSON at byte 64: nested too deeply", msg)
    _, msg = core.json_decode((nest(65, '{"a":', "}"):gsub('{"a":}', "{}")))
    assert.matches("nested too deeply", msg)
    for _, s in ipairs { ("["):rep(100000), ("{\"a\":"):rep(100000), ("[{\"a\":"):rep(50000),
      nest(100000, "[", "]") } do
      local x, m = core.json_decode(s)
      assert.is_nil(x)
      assert.matches("nested too deeply", m)
    end
  end)

  it("keeps NUL bytes in strings and names", function()
    local v = core.json_decode('{"a\\u0000b":"c\\u0000d","\\u0000":"\\u0000"}')
    assert.equal("c\0d", v["a\0b"])
    assert.equal("\0", v["\0"])
    assert.is_nil(v.a)
    assert.equal(3, #core.json_decode('"\\u0000\\u0000\\u0000"'))
    -- a raw NUL is a control character, inside a string or out
    for _, s in ipairs { '"a\0b"', '{"a\0":1}', "[1,\0 2]", "\0[]", "[]\0" } do
      assert.is_nil(core.json_decode(s), show(s))
    end
  end)

  it("keeps the last of repeated member names", function()
    assert.same({ a = 3, b = 2 }, core.json_decode('{"a":1,"b":2,"a":3}'))
    -- the same name spelt differently is still the same name
    assert.same({ a = "second" }, core.json_decode('{"a":"first","\\u0061":"second"}'))
    assert.same({ a = null }, core.json_decode('{"a":1,"a":null}'))
  end)

  it("refuses anything but an object when asked for one", function()
    assert.same({ a = 1 }, core.json_decode('{"a":1}', true))
    assert.same({}, core.json_decode(" {} ", true))
    for _, s in ipairs { "[]", "[{}]", '"{}"', "1", "1.5", "true", "false", "null" } do
      local v, msg = core.json_decode(s, true)
      assert.is_nil(v, s)
      assert.equal("not a JSON object", msg)
      assert.is_not_nil(core.json_decode(s)) -- and fine without the flag
      assert.is_not_nil(core.json_decode(s, false))
    end
    -- invalid JSON still says why
    local _, msg = core.json_decode("[", true)
    assert.matches("^invalid JSON at byte 1: ", msg)
  end)
end)

describe("smartauth.json", function()
  it("object returns the object, or nil alone for anything else", function()
    assert.same({ sub = "x", n = 1 }, json.object('{"sub":"x","n":1}'))
    for _, x in ipairs { "[]", "1", '"s"', "null", "true", "", "{", '{"a":1}x', "{}\0" } do
      assert.equal(1, select("#", json.object(x)), show(x))
      assert.is_nil(json.object(x), show(x))
    end
    assert.is_nil(json.object(nil))
    assert.is_nil(json.object())
    assert.is_nil(json.object(42)) -- not the string "42"
    assert.is_nil(json.object({}))
    assert.is_nil(json.object(true))
    assert.is_nil(json.object(function() end))
  end)

  it("decode is the core decoder: any value, or nil and a message", function()
    assert.equal(core.json_decode, json.decode)
    assert.same({ 1, null, "x" }, json.decode('[1,null,"x"]'))
    local v, msg = json.decode("[1,]")
    assert.is_nil(v)
    assert.equal("invalid JSON at byte 3: unexpected character", msg)
  end)
end)
