-- Token exchange (RFC 8693), p:grant (any grant) and RP-Initiated Logout
-- (lua/smartauth/exchange.lua, logout.lua, grant.lua's logout) against the recording
-- server: the bytes sent, the answers accepted and refused, what is kept (nothing), and
-- the tokens sent never in an error or an on_http event. oidc-provider runs the same
-- features in spec/interop/exchange_interop_spec.lua.
local smartauth = require "smartauth"
local cjson = require "cjson"
local server = require "helpers.server"
local idp = require "helpers.idp"
local J = require "helpers.jwt"

local TE = "urn:ietf:params:oauth:grant-type:token-exchange"
local AT = "urn:ietf:params:oauth:token-type:access_token"
local ID = "urn:ietf:params:oauth:token-type:id_token"
local JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
local SUBJECT = "subject-token-SECRET-1f8e2a"
local ACTOR = "actor-token-SECRET-77c0d1"

describe("token exchange and extension grants", function()
  local s

  setup(function() s = server.start() end)
  teardown(function()
    s:stop()
    J.cleanup()
  end)
  before_each(function() s:reset() end)

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret", retry = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  local function answer(json, status)
    s:script("/token", { status = status or 200, json = json })
  end

  local function exchanged(extra)
    local t = { access_token = "xchg-at-1", issued_token_type = AT, token_type = "Bearer", expires_in = 60 }
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end

  -- every string an error or event holds, joined
  local function text(v, out)
    out = out or {}
    if type(v) == "table" then
      for k, x in pairs(v) do text(k, out); text(x, out) end
    elseif v ~= nil then
      out[#out + 1] = tostring(v)
    end
    return table.concat(out, "\n")
  end

  describe("p:token_exchange", function()
    it("sends RFC 8693's form with client authentication and returns issued_token_type", function()
      local p = provider()
      answer(exchanged { scope = "read" })
      local tok = assert(p:token_exchange { subject_token = SUBJECT, subject_token_type = "access_token",
        actor_token = ACTOR, actor_token_type = AT, audience = { "https://a.example", "urn:b" },
        resource = "https://api.example/v1", scope = { "read", "write" }, requested_token_type = AT })
      assert.equal("xchg-at-1", tok.access_token)
      assert.equal(AT, tok.issued_token_type)
      assert.equal(AT, tok.ext.issued_token_type)
      assert.equal("Bearer", tok.token_type)
      assert.equal("read", tok.scope)
      local r = s:last_request()
      assert.equal("cid", r.basic.user)
      assert.equal("csecret", r.basic.pass)
      assert.same({
        { "actor_token", ACTOR }, { "actor_token_type", AT },
        { "audience", "https://a.example" }, { "audience", "urn:b" },
        { "grant_type", TE }, { "requested_token_type", AT },
        { "resource", "https://api.example/v1" }, { "scope", "read write" },
        { "subject_token", SUBJECT }, { "subject_token_type", AT },
      }, r.form_pairs)
    end)

    it("takes a token object as subject token (its access token)", function()
      local p = provider()
      answer(exchanged())
      local subj = assert(smartauth.token.from_response({ access_token = SUBJECT }, os.time()))
      assert(p:token_exchange { subject_token = subj, subject_token_type = AT })
      assert.equal(SUBJECT, s:last_request().form.subject_token)
    end)

    it("accepts token_type N_A for a token that is not an access token", function()
      local p = provider()
      answer(exchanged { token_type = "N_A", issued_token_type = ID, access_token = "eyJ.id.token" })
      local tok = assert(p:token_exchange { subject_token = SUBJECT, subject_token_type = AT,
        requested_token_type = "id_token" })
      assert.equal("N_A", tok.token_type)
      assert.equal(ID, tok.issued_token_type)
      assert.equal("eyJ.id.token", tok.access_token)
      assert.equal(ID, s:last_request().form.requested_token_type)
    end)

    it("refuses an answer without issued_token_type (validation)", function()
      local p = provider()
      for _, bad in ipairs { cjson.null, "", 7, { "x" } } do
        answer(exchanged { issued_token_type = bad })
        local tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT }
        assert.is_nil(tok)
        assert.equal("validation", err.kind)
        assert.equal("issued_token_type", err.check)
      end
    end)

    it("refuses a malformed N_A answer like any other (no access_token, bad bytes)", function()
      local p = provider()
      answer { token_type = "N_A", issued_token_type = ID }
      local tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      answer { token_type = "n_a", issued_token_type = ID, access_token = "a\27[31mb" }
      tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT }
      assert.is_nil(tok)
      assert.equal("validation", err.kind)
      for _, body in ipairs { "", "garbage", "[1]", '{"access_token":', string.rep("{", 5000) } do
        s:script("/token", { body = body, headers = { ["Content-Type"] = "application/json" } })
        tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT }
        assert.is_nil(tok)
        assert.is_table(err)
      end
    end)

    it("returns a token with expires_in 0 and keeps nothing (the provider's own token stays)", function()
      local p = provider()
      local own = assert(p:client_credentials())
      answer(exchanged { expires_in = 0 })
      local tok = assert(p:token_exchange { subject_token = own, subject_token_type = AT })
      assert.equal(0, tok.expires_in)
      assert.is_true(tok:expired())
      assert.equal(own.access_token, assert(p:stored()).access_token)
      assert.equal(own.access_token, assert(p:token()).access_token)
      answer(exchanged { access_token = "xchg-at-2", expires_in = 3600 })
      assert(p:token_exchange { subject_token = own, subject_token_type = AT })
      assert.equal(own.access_token, assert(p:stored()).access_token)
      local entry = assert(p.options.store:get(p:store_key()))
      assert.equal(own.access_token, entry.access_token)
    end)

    it("keeps issued_token_type through to_entry for a caller that stores the token", function()
      local p = provider()
      answer(exchanged())
      local tok = assert(p:token_exchange { subject_token = SUBJECT, subject_token_type = AT })
      local back = assert(smartauth.token.from_entry(tok:to_entry()))
      assert.equal(AT, back.ext.issued_token_type)
    end)

    it("an OAuth error is returned without the tokens sent, even when the server echoes them", function()
      local p = provider()
      answer({ error = "invalid_request", error_description = "bad subject " .. SUBJECT .. " actor " .. ACTOR }, 400)
      local tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT,
        actor_token = ACTOR, actor_token_type = AT }
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_request", err.code)
      assert.not_matches(SUBJECT, text(err) .. tostring(err), 1, true)
      assert.not_matches(ACTOR, text(err) .. tostring(err), 1, true)
      answer({ error = "invalid_target" }, 400)
      tok, err = p:token_exchange { subject_token = SUBJECT, subject_token_type = AT, audience = "x" }
      assert.is_nil(tok)
      assert.equal("invalid_target", err.code)
    end)

    it("keeps the subject and actor tokens out of on_http events", function()
      local events = {}
      local p = provider { on_http = function(ev) events[#events + 1] = ev end }
      s:script("/token", { json = exchanged { echo = SUBJECT .. "/" .. ACTOR } })
      assert(p:token_exchange { subject_token = SUBJECT, subject_token_type = AT,
        actor_token = ACTOR, actor_token_type = AT })
      assert.equal(1, #events)
      local all = text(events)
      assert.not_matches(SUBJECT, all, 1, true)
      assert.not_matches(ACTOR, all, 1, true)
      assert.not_matches("xchg-at-1", all, 1, true)
      assert.matches("subject_token=[redacted]", events[1].request_body, 1, true)
      assert.matches("actor_token=[redacted]", events[1].request_body, 1, true)
    end)

    it("refuses wrong arguments with a raise naming them", function()
      local p = provider()
      local function raises(opts, pattern)
        local ok, msg = pcall(p.token_exchange, p, opts)
        assert.is_false(ok)
        assert.matches(pattern, tostring(msg))
        assert.not_matches(SUBJECT, tostring(msg), 1, true)
      end
      raises(nil, "table expected")
      raises({ subject_token_type = AT }, "subject_token")
      raises({ subject_token = "", subject_token_type = AT }, "subject_token")
      raises({ subject_token = SUBJECT }, "subject_token_type")
      raises({ subject_token = SUBJECT, subject_token_type = 5 }, "subject_token_type")
      raises({ subject_token = SUBJECT, subject_token_type = AT, actor_token = ACTOR }, "actor_token_type")
      raises({ subject_token = SUBJECT, subject_token_type = AT, actor_token_type = AT }, "actor_token")
      raises({ subject_token = SUBJECT, subject_token_type = AT, audience = { 1 } }, "audience")
      raises({ subject_token = SUBJECT, subject_token_type = AT, grant_type = "x" }, "grant_type")
      raises({ subject_token = SUBJECT, subject_token_type = AT, client_secret = "x" }, "client_secret")
      assert.equal(0, #s:requests())
    end)

    it("works inside smartauth.spawn", function()
      local p = provider()
      answer(exchanged())
      local got, yielded
      smartauth.spawn(function()
        got = assert(p:token_exchange { subject_token = SUBJECT, subject_token_type = AT })
      end)
      yielded = got == nil
      smartauth.run()
      assert.is_true(yielded)
      assert.equal(AT, got.issued_token_type)
    end)
  end)

  describe("p:grant", function()
    it("is a method even when the grant option is set", function()
      local p = provider { grant = "client_credentials" }
      assert.equal("client_credentials", p.options.grant)
      assert.is_function(p.grant)
      answer { access_token = "jb-1", token_type = "Bearer", expires_in = 60 }
      local tok = assert(p:grant(JWT_BEARER, { assertion = "a.b.c", scope = { "x", "y" } }))
      assert.equal("jb-1", tok.access_token)
      local r = s:last_request()
      assert.same({ { "assertion", "a.b.c" }, { "grant_type", JWT_BEARER }, { "scope", "x y" } }, r.form_pairs)
      assert.equal("cid", r.basic.user)
      -- the grant option still drives p:token()
      assert.equal("client_credentials", p:default_grant())
      assert(p:token())
      assert.equal("client_credentials", s:last_request().form.grant_type)
    end)

    it("uses the provider's client authentication (post) and repeats list parameters", function()
      local p = provider { client_auth = "post" }
      answer { access_token = "g-1" }
      assert(p:grant("urn:example:custom", { resource = { "https://a", "https://b" }, n = 3, flag = true }))
      local r = s:last_request()
      assert.equal("csecret", r.form.client_secret)
      assert.same({ "https://a", "https://b" }, (function()
        local out = {}
        for _, kv in ipairs(r.form_pairs) do if kv[1] == "resource" then out[#out + 1] = kv[2] end end
        return out
      end)())
      assert.equal("3", r.form.n)
      assert.equal("true", r.form.flag)
    end)

    it("retries per the provider's policy", function()
      local p = provider { retry = { attempts = 2, base = 0.01, max_delay = 0.01 } }
      s:script("/token", { status = 503, json = { error = "temporarily_unavailable" } })
      answer { access_token = "g-2" }
      local tok = assert(p:grant(JWT_BEARER, { assertion = "x.y.z" }))
      assert.equal("g-2", tok.access_token)
      assert.equal(2, #s:requests())
    end)

    it("returns OAuth errors without the assertion, and keeps nothing", function()
      local events = {}
      local p = provider { on_http = function(ev) events[#events + 1] = ev end }
      local secret = "assertion-SECRET-9a9a9a"
      answer({ error = "invalid_grant", error_description = "bad " .. secret }, 400)
      local tok, err = p:grant(JWT_BEARER, { assertion = secret })
      assert.is_nil(tok)
      assert.equal("oauth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.not_matches(secret, tostring(err), 1, true)
      assert.not_matches(secret, text(events), 1, true)
      answer { access_token = "g-3" }
      assert(p:grant(JWT_BEARER, { assertion = secret }))
      assert.is_nil(p:stored())
    end)

    it("verifies an ID token in the answer when the provider has an issuer", function()
      local T = idp.new()
      T.s = s
      T.serve_jwks()
      local p = T.provider { client_secret = "csecret", retry = false }
      answer { access_token = "g-id", id_token = T.token("RS256") }
      local tok = assert(p:grant(JWT_BEARER, { assertion = "a.b.c" }))
      assert.equal("alice", tok.claims.sub)
      answer { access_token = "g-id2", id_token = T.token("RS256", { aud = "someone-else" }) }
      local bad, err = p:grant(JWT_BEARER, { assertion = "a.b.c" })
      assert.is_nil(bad)
      assert.equal("validation", err.kind)
      assert.equal("aud", err.check)
    end)

    it("refuses wrong arguments with a raise", function()
      local p = provider()
      for _, args in ipairs {
        { nil }, { "" }, { 5 }, { "a b" }, { JWT_BEARER, "x" }, { JWT_BEARER, { grant_type = "x" } },
        { JWT_BEARER, { client_id = "x" } }, { JWT_BEARER, { client_assertion = "x" } },
        { JWT_BEARER, { [1] = "x" } }, { JWT_BEARER, { assertion = function() end } },
      } do
        assert.has_error(function() p:grant(args[1], args[2]) end)
      end
      assert.equal(0, #s:requests())
    end)
  end)

  describe("p:end_session_url", function()
    it("builds the RP-Initiated Logout URL from the option", function()
      local p = provider { end_session_endpoint = s.url .. "/logout?x=1" }
      local u = assert(p:end_session_url { id_token_hint = "h.i.t", post_logout_redirect_uri = "https://app/bye",
        state = "st 1", logout_hint = "alice", ui_locales = "fr en" })
      assert.equal(s.url .. "/logout?x=1&client_id=cid&id_token_hint=h.i.t&logout_hint=alice" ..
        "&post_logout_redirect_uri=https%3A%2F%2Fapp%2Fbye&state=st%201&ui_locales=fr%20en", u)
      local tok = assert(smartauth.token.from_response({ access_token = "a", id_token = "i.d.t" }, os.time()))
      u = assert(p:end_session_url { id_token_hint = tok, client_id = "other" })
      assert.equal(s.url .. "/logout?x=1&client_id=other&id_token_hint=i.d.t", u)
    end)

    it("discovers the endpoint from the issuer", function()
      s:script("/.well-known/openid-configuration", { json = { issuer = s.url .. "/d1",
        token_endpoint = s.url .. "/token", end_session_endpoint = s.url .. "/end" } })
      local p = provider { issuer = s.url .. "/d1", discovery_url = s.url .. "/.well-known/openid-configuration" }
      assert.equal(s.url .. "/end?client_id=cid", assert(p:end_session_url()))
    end)

    it("is a config error without an end-session endpoint", function()
      local url, err = provider():end_session_url()
      assert.is_nil(url)
      assert.equal("config", err.kind)
      assert.has_error(function() provider():end_session_url("x") end)
      assert.has_error(function() provider():end_session_url { state = 5 } end)
    end)
  end)

  describe("p:logout", function()
    it("revokes both tokens, forgets, and returns the end-session URL with the ID token as hint", function()
      local p = provider { revocation_endpoint = s.url .. "/revoke", end_session_endpoint = s.url .. "/end" }
      s:script("/token", { json = { access_token = "at-L", refresh_token = "rt-L", id_token = "i.d.t",
        expires_in = 60 } })
      assert(p:client_credentials())
      s:script("/revoke", { status = 200, body = "" }, 2)
      local out = assert(p:logout { post_logout_redirect_uri = "https://app/bye", state = "s1" })
      assert.same({ "access_token", "refresh_token" }, out.revoked)
      assert.equal(s.url .. "/end?client_id=cid&id_token_hint=i.d.t&post_logout_redirect_uri=" ..
        "https%3A%2F%2Fapp%2Fbye&state=s1", out.end_session_url)
      assert.is_nil(p:stored())
    end)

    it("gives no URL without an end-session endpoint, and one without a hint when nothing is stored", function()
      local out = assert(provider():logout())
      assert.is_nil(out.end_session_url)
      out = assert(provider { end_session_endpoint = s.url .. "/end" }:logout())
      assert.equal(s.url .. "/end?client_id=cid", out.end_session_url)
      assert.has_error(function() provider():logout("x") end)
    end)

    it("checks its options before revoking anything", function()
      local p = provider { revocation_endpoint = s.url .. "/revoke", end_session_endpoint = s.url .. "/end" }
      assert(p:client_credentials())
      assert.has_error(function() p:logout { state = 5 } end)
      assert.equal(1, #s:requests())
      assert(p:stored())
    end)

    it("finds the endpoint by discovery, and asks a provider that is down only once", function()
      s:script("/d2/.well-known/openid-configuration", { json = { issuer = s.url .. "/d2",
        token_endpoint = s.url .. "/token", end_session_endpoint = s.url .. "/end" } })
      local p = provider { issuer = s.url .. "/d2", discovery_url = s.url .. "/d2/.well-known/openid-configuration" }
      assert.equal(s.url .. "/end?client_id=cid", assert(p:logout()).end_session_url)
      s:reset()
      s:script("/down/.well-known/openid-configuration", { status = 503 }, 0)
      p = provider { issuer = s.url .. "/down", discovery_url = s.url .. "/down/.well-known/openid-configuration",
        retry = false }
      assert(p:client_credentials())
      local out = assert(p:logout())
      assert.is_nil(out.end_session_url)
      assert.equal("http", out.failed.access_token.kind)
      local n = 0
      for _, r in ipairs(s:requests()) do if r.path:find("well%-known") then n = n + 1 end end
      assert.equal(1, n)
      assert.is_nil(p:stored())
    end)
  end)
end)
