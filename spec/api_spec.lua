-- request() of lua/smartauth/api.lua against the recording server: the Bearer header,
-- one refresh on 401, bodies, api_base, and the token kept out of errors.
local smartauth = require "smartauth"
local server = require "helpers.server"

describe("provider", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  describe("request()", function()
    it("attaches the token as a Bearer header", function()
      local p = provider()
      local res = assert(p:request { url = s.url .. "/api/items", query = { q = "a b" } })
      assert.equal(200, res.status)
      local r = s:last_request()
      assert.equal("/api/items", r.path)
      assert.equal("q=a%20b", r.query)
      assert.matches("^Bearer at%-", r.headers.authorization)
    end)

    it("refreshes once and retries on 401", function()
      local p = provider()
      assert(p:token())
      s:revoke_all()
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(200, res.status)
      local reqs = s:requests()
      assert.equal(4, #reqs) -- grant, 401, new grant, 200
      assert.equal("/api", reqs[2].path)
      assert.equal("/token", reqs[3].path)
      assert.not_equal(reqs[2].headers.authorization, reqs[4].headers.authorization)
    end)

    it("returns the second 401 as a response instead of looping", function()
      local p = provider()
      s:script("/api", { status = 401, body = "no" }, 5)
      local res = assert(p:request { url = s.url .. "/api" })
      assert.equal(401, res.status)
      assert.equal(4, #s:requests())
    end)

    it("sends form and JSON bodies", function()
      local p = provider()
      assert(p:request { url = s.url .. "/api", body = { b = "2", a = "1" } })
      local r = s:last_request()
      assert.equal("POST", r.method)
      assert.equal("a=1&b=2", r.body)
      assert.equal("application/x-www-form-urlencoded", r.headers["content-type"])
      assert(p:request { method = "PUT", url = s.url .. "/api", json = { x = 1 } })
      r = s:last_request()
      assert.equal('{"x":1}', r.body)
      assert.equal("application/json", r.headers["content-type"])
    end)

    it("resolves relative URLs against api_base", function()
      local p = provider { api_base = s.url .. "/api/v2/" }
      assert(p:request { url = "/things" })
      assert.equal("/api/v2/things", s:last_request().path)
    end)

    it("refuses plain http to a non-loopback API host", function()
      local _, err = provider():request { url = "http://api.example/x" }
      assert.equal("config", err.kind)
      assert.equal(0, #s:requests())
    end)

    it("keeps the token out of transport errors", function()
      local p = provider { token_placement = "query" }
      local tok = assert(p:token())
      local _, err = p:request { url = "http://127.0.0.1:1/api" }
      assert.equal("network", err.kind)
      assert.not_matches(tok.access_token, tostring(err), 1, true)
    end)
  end)
end)

-- url.check_endpoint keeps the URLs it accepted (p:request checks its URL on
-- every call): what one allow_http accepted says nothing for the other.
describe("url.check_endpoint", function()
  local url = require "smartauth.url"

  it("answers per allow_http, also for a URL it accepted before", function()
    for _ = 1, 2 do
      assert.is_true(url.check_endpoint("http://api.example.com/v1", true))
      local ok, msg = url.check_endpoint("http://api.example.com/v1", false)
      assert.is_nil(ok)
      assert.matches("plain http is only allowed", msg)
      assert.is_true(url.check_endpoint("https://api.example.com/v1"))
      assert.is_nil((url.check_endpoint("ftp://api.example.com/v1", true)))
    end
  end)

  it("stays right past the number of URLs it keeps", function()
    for i = 1, 600 do
      assert.is_true(url.check_endpoint("https://h" .. i .. ".example.com/"))
      assert.is_true(url.check_endpoint("http://h" .. i .. ".example.com/", true))
      assert.is_nil((url.check_endpoint("http://h" .. i .. ".example.com/", false)))
    end
  end)
end)
