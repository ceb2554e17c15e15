describe("smoke", function() it("runs on 5.4", function() assert.equal("Lua 5.4", _VERSION) end) end)
