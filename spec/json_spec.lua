-- smartauth.json: the one guarded place every response handler decodes
-- outside JSON through (lua-cjson underneath, as DESIGN.md has it).
local json = require "smartauth.json"
local cjson = require "cjson.safe"

local TOKEN_RESPONSE = '{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"Bearer",'
  .. '"expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","scope":"read write",'
  .. '"id_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","extra":{"n":[1,2,{"x":null}]}}'

local function show(s) return (s:gsub("%c", function(c) return ("\\%d"):format(c:byte()) end)) end

describe("smartauth.json", function()
  it("object returns the object, or nil alone for anything else", function()
    assert.same({ sub = "x", n = 1 }, json.object('{"sub":"x","n":1}'))
    assert.same({}, json.object("  {}  "))
    for _, x in ipairs { "[]", "[{}]", "1", '"s"', "null", "true", "", "{", '{"a":1}x', " [1]" } do
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

  it("keeps null as cjson.null and nested values as tables", function()
    local t = json.object(TOKEN_RESPONSE)
    assert.equal("Bearer", t.token_type)
    assert.equal(3600, t.expires_in)
    assert.equal(cjson.null, t.extra.n[3].x)
  end)

  it("refuses every proper prefix of a token response", function()
    assert.is_table(json.object(TOKEN_RESPONSE))
    local bad = {}
    for n = 0, #TOKEN_RESPONSE - 1 do
      if json.object(TOKEN_RESPONSE:sub(1, n)) ~= nil then bad[#bad + 1] = n end
    end
    assert.same({}, bad)
  end)

  it("survives hostile input: deep nesting, huge values, NUL bytes", function()
    assert.is_nil(json.object(("{\"a\":"):rep(100000)))
    assert.is_nil(json.object(("[{\"a\":"):rep(50000)))
    local big = ("x"):rep(1024 * 1024)
    assert.equal(big, json.object('{"v":"' .. big .. '"}').v)
    local parts = {}
    for i = 1, 200000 do parts[i] = tostring(i) end
    assert.equal(200000, #json.object('{"a":[' .. table.concat(parts, ",") .. "]}").a)
    assert.equal("c\0d", json.object('{"a\\u0000b":"c\\u0000d"}')["a\0b"])
    assert.same({ a = 3, b = 2 }, json.object('{"a":1,"b":2,"a":3}')) -- the last wins
  end)
end)
