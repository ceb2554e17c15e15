-- What only Lua 5.4 can say: to-be-closed variables (`local x <close>`).
-- The other specs call __close themselves so that they run on every
-- runtime; this file proves the syntax itself closes each object. Lua 5.4
-- only (spec/run_tests.sh leaves it out on 5.1, 5.2, 5.3 and LuaJIT,
-- which cannot parse it).
local core_http = require "smartauth.core_http"
local store = require "smartauth.store"
local proc = require "helpers.proc"
local server = require "helpers.server"

describe("to-be-closed variables (Lua 5.4)", function()
  it("close an engine at the end of the block", function()
    local e
    do
      local x <close> = core_http.engine()
      e = x
      assert.matches("smartauth.engine", tostring(e))
    end
    assert.matches("closed", tostring(e))
  end)

  it("close a file store at the end of the block", function()
    local tmp = proc.tmpdir("smartauth-close.XXXXXX")
    finally(function() proc.rmtree(tmp) end)
    local s
    do
      local x <close> = assert(store.file { dir = tmp, key = false })
      s = x
      assert.is_true(s:set("k", { v = 1 }, 60))
    end
    assert.has_error(function() s:get("k") end) -- closed: further calls raise
  end)

  it("stop the test server at the end of the block", function()
    local pid
    do
      local t <close> = server.start()
      pid = t.pid
    end
    assert.is_false(proc.alive(pid))
  end)
end)
