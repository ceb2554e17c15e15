-- The provider face: construction, options (validated, kept in p.options, never
-- shadowing a method), and what printing a provider shows. What the provider does
-- has a spec per module: grant_spec, authcode_spec, token_source_spec, api_spec,
-- client_auth_spec, oidc_spec, jwks_spec.
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

  describe("construction", function()
    it("exposes resolved endpoints as fields", function()
      local p = provider { authorization_endpoint = "https://idp.example/authorize" }
      assert.equal(s.url .. "/token", p:endpoint("token_endpoint"))
      assert.equal("https://idp.example/authorize", p:endpoint("authorization_endpoint"))
    end)

    it("rejects unknown options, naming them", function()
      local p, err = smartauth.provider { token_endpoint = s.url, clientid = "x" }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.matches("'clientid' is not known %(did you mean 'client_id'%?%)", err.description)
    end)

    it("rejects wrong option types, naming them", function()
      local _, err = smartauth.provider { token_endpoint = s.url, timeout = "5" }
      assert.equal("config", err.kind)
      assert.matches("'timeout' must be a number", err.description)
      _, err = smartauth.provider { token_endpoint = s.url, client_auth = "magic" }
      assert.matches("'client_auth' must be one of", err.description)
    end)

    it("accepts plain http only for loopback hosts or with allow_http", function()
      assert.is_nil((smartauth.provider { token_endpoint = "http://idp.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "http://127.0.0.1.evil.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "ftp://idp.example/token" }))
      assert.is_nil((smartauth.provider { token_endpoint = "https://user@idp.example/token" }))
      assert.truthy(smartauth.provider { token_endpoint = "http://localhost:8080/token" })
      assert.truthy(smartauth.provider { token_endpoint = "http://[::1]:8080/token" })
      assert.truthy(smartauth.provider { token_endpoint = "http://idp.example/token", allow_http = true })
      local _, err = smartauth.provider { token_endpoint = "https://x/t", redirect_uri = "http://app.example/cb" }
      assert.matches("redirect_uri", err.description)
    end)

    it("needs a client_secret for secret-based client authentication", function()
      local _, err = smartauth.provider { token_endpoint = s.url, client_id = "a", client_auth = "post" }
      assert.matches("needs option 'client_secret'", err.description)
    end)

    it("raises on a non-table argument", function()
      assert.has_error(function() smartauth.provider("x") end)
    end)

    it("never shows the client secret when printed or dumped", function()
      local p = provider { client_secret = "very-secret-value" }
      assert.not_matches("very%-secret", tostring(p))
      for k, v in pairs(p) do
        assert.not_equal("very-secret-value", v, k)
      end
    end)
  end)
end)

describe("provider face (issue 13)", function()
  -- every option of the schema, each with a value of its type
  local VALUES = {
    string = "x", url = "https://idp.example/x", number = 60, boolean = false, table = {}, any = nil,
  }

  it("keeps every option in p.options: no option shadows a method", function()
    local provider_mod = require "smartauth.provider"
    local opts = {}
    for k, spec in pairs(provider_mod.SCHEMA) do
      local t = type(spec) == "table" and spec.type or spec
      local v = VALUES[t]
      if type(spec) == "table" and spec.enum then v = spec.enum[1] end
      if type(spec) == "table" and spec.min and v ~= nil and type(v) == "number" then v = math.max(v, spec.min) end
      opts[k] = v
    end
    opts.client_auth, opts.client_secret = "basic", "s"
    opts.issuer, opts.redirect_uri = "https://idp.example", "https://app.example/cb"
    opts.store, opts.retry, opts.client_assertion_key, opts.jwks = nil, nil, nil, nil
    opts.id_token_algs = { "RS256" }
    opts.proxy = "http://proxy.example:3128"
    opts.profile = nil -- a profile's own rules: spec/fapi_spec.lua
    local p = assert(smartauth.provider(opts))
    for k in pairs(opts) do
      assert.is_nil(rawget(p, k), "option " .. k .. " is a field of the provider")
    end
    local mt = getmetatable(p).__index
    for name, fn in pairs(mt) do
      if type(fn) == "function" then
        assert.equal(fn, p[name], "method " .. name .. " is shadowed")
      end
    end
    for _, m in ipairs { "token", "request", "refresh", "logout", "default_grant", "stored", "discover",
      "authorization_url", "exchange_code", "verify_id_token", "userinfo", "login", "endpoint", "metadata" } do
      assert.is_function(p[m], m)
    end
    assert.has_error(function() p.options.scope = "other" end)
  end)

  it("takes a plain access token string in request{ token = }", function()
    local s = server.start()
    local ok, err = pcall(function()
      local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c" })
      s:script("/api/me", { body = "ok" })
      local res = assert(p:request { url = s.url .. "/api/me", token = "at-plain" })
      assert.equal(200, res.status)
      assert.equal("Bearer at-plain", s:last_request().headers.authorization)
      assert.has_error(function() p:request { url = s.url .. "/api/me", token = 42 } end)
    end)
    s:stop()
    assert(ok, err)
  end)
end)
