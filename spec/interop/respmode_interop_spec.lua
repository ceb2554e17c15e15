-- Interop: response modes against oidc-provider, configured by spec/interop/ext/respmode.js:
-- form_post (the provider answers with an auto-submitting form: posted to a recording
-- server standing in for the redirect URI, and to the real loopback listener of p:login),
-- and JARM (query.jwt, fragment.jwt, jwt, form_post.jwt) signed ES256 for jarm-client.
-- oidc-provider has no aggregated claims: spec/claims_spec.lua plays that part.
local smartauth = require "smartauth"
local cjson = require "cjson"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"
local server = require "helpers.server"

-- p:login in a child process (the listener and the user must run at the same
-- time): prints the authorization URL, then the login's result as JSON.
local CHILD = [[
package.path = arg[1] .. ";" .. package.path
package.cpath = arg[2] .. ";" .. package.cpath
local smartauth = require "smartauth"
local cjson = require "cjson"
local p = assert(smartauth.discover(arg[3], { client_id = "form-client", client_secret = "form-secret",
  redirect_uri = "http://127.0.0.1/cb", scope = "openid email", response_mode = arg[4] }))
local tok, err = p:login { timeout = 30, show = function() end, open = function(u)
  io.write(u, "\n")
  io.flush()
  return true
end }
io.write(cjson.encode({ sub = tok and tok.claims and tok.claims.sub or false, err = err and tostring(err) or false }))
]]

describe("#interop response modes against oidc-provider", function()
  local op, s, tmp

  setup(function()
    op = oidc.start { extend = "spec/interop/ext/respmode.js" }
    s = server.start()
    tmp = proc.tmpdir("smartauth-respmode-interop.XXXXXX")
  end)
  teardown(function()
    if op then op:stop() end
    if s then s:stop() end
    if tmp then proc.rmtree(tmp) end
  end)
  before_each(function() s:reset() end)

  local function discover(client, extra)
    local o = { client_id = client, client_secret = client == "jarm-client" and "jarm-secret" or "form-secret",
      redirect_uri = "http://127.0.0.1/cb", scope = "openid email" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.discover(op.issuer, o))
  end

  it("finds JARM in the metadata", function()
    local md = discover("jarm-client"):metadata()
    local modes = table.concat(md.response_modes_supported, " ")
    for _, m in ipairs({ "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt" }) do
      assert.matches(m, modes, 1, true)
    end
    assert.is_table(md.authorization_signing_alg_values_supported)
  end)

  describe("JARM", function()
    for _, case in ipairs({ { "query.jwt", "?" }, { "jwt", "?" }, { "fragment.jwt", "#" } }) do
      it(case[1] .. ": the signed response is verified, then its code exchanged", function()
        local p = discover("jarm-client", { response_mode = case[1] })
        local u, session = assert(p:authorization_url())
        local redirect = op:login(u, { login = "alice" })
        local params = redirect:match("%" .. case[2] .. "(.*)$")
        assert.matches("^response=[%w_-]+%.[%w_-]+%.[%w_-]+$", params)
        local tok, err = p:exchange_code { url = redirect, session = session }
        assert(tok, tostring(err))
        assert.equal("alice", tok.claims.sub)
      end)
    end

    it("form_post.jwt: the posted form holds the signed response", function()
      s:script("/cb", { status = 302, headers = { Location = s.url .. "/done" } })
      local p = discover("jarm-client", { response_mode = "form_post.jwt", redirect_uri = s.url .. "/cb" })
      local u, session = assert(p:authorization_url())
      op:login(u, { login = "alice" })
      local req = s:last_request()
      assert.equal("POST", req.method)
      assert.matches("^response=", req.body)
      local tok, err = p:exchange_code { form = req.body, session = session }
      assert(tok, tostring(err))
      assert.equal("alice", tok.claims.sub)
    end)

    it("an error travels inside the signed response", function()
      local p = discover("jarm-client", { response_mode = "query.jwt" })
      local u, session = assert(p:authorization_url())
      local redirect = op:login(u, { login = "alice", deny = true })
      assert.not_matches("error=", redirect, 1, true)
      local tok, err = p:exchange_code { url = redirect, session = session }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("access_denied", err.code)
    end)

    it("refuses the real response with a changed signature, or for another client", function()
      local p = discover("jarm-client", { response_mode = "query.jwt" })
      local u, session = assert(p:authorization_url())
      local redirect = op:login(u, { login = "alice" })
      local last = redirect:sub(-2, -2)
      local forged = redirect:sub(1, -3) .. (last == "A" and "B" or "A") .. redirect:sub(-1)
      local tok, err = p:exchange_code { url = forged, session = session }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      local other = discover("form-client", { response_mode = "query.jwt",
        authorization_signed_response_alg = "ES256" })
      tok, err = other:exchange_code { url = redirect, session = session }
      assert.is_nil(tok)
      assert.equal("aud", err.check)
    end)

    it("exchanges inside smartauth.spawn", function()
      local p = discover("jarm-client", { response_mode = "jwt" })
      local u, session = assert(p:authorization_url())
      local redirect = op:login(u, { login = "alice" })
      local task = smartauth.spawn(function() return p:exchange_code { url = redirect, session = session } end)
      smartauth.run()
      local ok, tok, err = task:result()
      assert.is_true(ok)
      assert(tok, tostring(err))
      assert.equal("alice", tok.claims.sub)
    end)
  end)

  describe("form_post", function()
    it("the auto-submitted form, given to exchange_code", function()
      s:script("/cb", { status = 302, headers = { Location = s.url .. "/done" } })
      local p = discover("form-client", { response_mode = "form_post", redirect_uri = s.url .. "/cb" })
      local u, session = assert(p:authorization_url())
      op:login(u, { login = "alice" })
      local req = s:last_request()
      assert.equal("POST", req.method)
      assert.matches("application/x-www-form-urlencoded", req.headers["content-type"], 1, true)
      assert.is_string(req.form.code)
      local tok, err = p:exchange_code { form = req.body, session = session }
      assert(tok, tostring(err))
      assert.equal("alice", tok.claims.sub)
    end)

    for _, mode in ipairs({ "form_post", "form_post.jwt" }) do
      it(mode .. " through a real loopback login", function()
        local script = tmp .. "/login.lua"
        local f = assert(io.open(script, "w"))
        f:write(CHILD)
        f:close()
        local child = proc.spawn({ proc.LUA, script, "./lua/?.lua;./lua/?/init.lua", "./" .. proc.BUILD .. "/?.so",
          op.issuer, mode }, tmp .. "/login.err")
        local u = child:read("*l")
        assert.matches("response_mode=" .. mode:gsub("%.", "%%."), u)
        -- the OP's form is posted to the listener, which answers with its own page
        local ok, e = pcall(op.login, op, u, { login = "alice" })
        assert.is_false(ok)
        assert.matches("You are logged in", tostring(e), 1, true)
        local got = cjson.decode(child:read("*a"))
        child:close()
        assert.equal("alice", got.sub, tostring(got.err) .. " " .. (proc.read_file(tmp .. "/login.err") or ""))
      end)
    end
  end)

  it("the implicit and front-channel token response types are a config error", function()
    local p, err = smartauth.discover(op.issuer, { client_id = "form-client", response_type = "id_token token" })
    assert.is_nil(p)
    assert.equal("config", err.kind)
    assert.matches("RFC 9700", err.description, 1, true)
  end)
end)
