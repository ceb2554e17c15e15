-- Aggregated and distributed claims (OIDC Core §5.6.2, lua/smartauth/claims.lua):
-- p:userinfo(tok, { resolve_claims = true }) and p:resolve_claims(claims). Two
-- recording servers: the OpenID provider (UserInfo, its JWKS) and a claims provider
-- (its discovery document, JWKS and a distributed claims endpoint), both signing
-- with the test keys of spec/helpers/idp.lua.
local smartauth = require "smartauth"
local cjson = require "cjson"
local server = require "helpers.server"
local J = require "helpers.jwt"
local idp = require "helpers.idp"

describe("aggregated and distributed claims", function()
  local s, cs
  local OP, CP = idp.new(), idp.new()
  local AT = "distributed-access-token-ksj3n283dke"

  setup(function()
    s, cs = server.start(), server.start()
    OP.s, CP.s = s, cs
  end)
  teardown(function()
    s:stop()
    cs:stop()
    J.cleanup()
  end)
  before_each(function()
    s:reset()
    cs:reset()
    OP.serve_jwks()
    CP.serve_jwks()
    cs:script("/.well-known/openid-configuration", { json = { issuer = cs.url, jwks_uri = cs.url .. "/jwks" } }, 0)
  end)

  local function provider(extra)
    return OP.provider(idp.merge({ userinfo_endpoint = s.url .. "/userinfo", allow_http = true,
      claims_issuers = { cs.url }, retry = false }, extra))
  end

  -- a claims JWT signed by the claims provider (no sub, aud: per §5.6.2 they are optional)
  local function cp_jwt(claims, alg)
    local c = { sub = idp.NONE, aud = idp.NONE }
    for k, v in pairs(claims) do c[k] = v end
    return CP.token(alg or "ES256", c)
  end

  local function userinfo(names, sources)
    s:script("/userinfo", { json = { sub = "alice", name = "Alice", _claim_names = names,
      _claim_sources = sources } })
  end

  local function aggregated(jwt)
    userinfo({ address = "src1", phone_number = "src1" }, { src1 = { JWT = jwt } })
  end

  local function fails(kind, check, info, err)
    assert.is_nil(info)
    assert.is_table(err)
    assert.equal(kind, err.kind)
    if check then assert.equal(check, err.check) end
    assert.not_matches(AT, tostring(err), 1, true)
  end

  it("verifies an aggregated source with its issuer's discovered keys and puts its claims in place", function()
    aggregated(cp_jwt { address = { country = "NZ" }, phone_number = "+64 1", other = "not named" })
    local info = assert(provider():userinfo("at-1", { resolve_claims = true }))
    assert.equal("alice", info.sub)
    assert.equal("Alice", info.name)
    assert.same({ country = "NZ" }, info.address)
    assert.equal("+64 1", info.phone_number)
    assert.is_nil(info.other)
    assert.is_nil(info._claim_names)
    assert.is_nil(info._claim_sources)
    assert.equal(1, CP.fetches("/.well-known/openid-configuration"))
    assert.equal(1, CP.fetches("/jwks"))
  end)

  it("leaves _claim_names and _claim_sources as they are without resolve_claims", function()
    local jwt = cp_jwt { address = "x" }
    aggregated(jwt)
    local info = assert(provider():userinfo("at-1"))
    assert.equal(jwt, info._claim_sources.src1.JWT)
    assert.is_nil(info.address)
    assert.equal(0, CP.fetches("/jwks"))
  end)

  it("takes the OpenID provider's own signed claims without claims_issuers", function()
    aggregated(OP.token("RS256", { sub = idp.NONE, aud = idp.NONE, address = "own" }))
    local info = assert(provider { claims_issuers = idp.NONE }:userinfo("at-1", { resolve_claims = true }))
    assert.equal("own", info.address)
  end)

  it("fetches a distributed source with its own access token, never the provider's", function()
    userinfo({ credit_score = "src2" }, { src2 = { endpoint = cs.url .. "/claims", access_token = AT } })
    cs:script("/claims", { headers = { ["Content-Type"] = "application/jwt" }, body = cp_jwt { credit_score = 650 } })
    local events = {}
    local p = provider { on_http = function(e) events[#events + 1] = cjson.encode(e) end }
    local info = assert(p:userinfo("at-1", { resolve_claims = true }))
    assert.equal(650, info.credit_score)
    local req
    for _, r in ipairs(cs:requests()) do if r.path == "/claims" then req = r end end
    assert.equal("Bearer " .. AT, req.headers.authorization)
    for _, e in ipairs(events) do assert.not_matches(AT, e, 1, true) end
  end)

  it("works inside smartauth.spawn", function()
    userinfo({ credit_score = "src2" }, { src2 = { endpoint = cs.url .. "/claims", access_token = AT } })
    cs:script("/claims", { delay_ms = 200, body = cp_jwt { credit_score = 700 } })
    local p = provider()
    local task = smartauth.spawn(function() return p:userinfo("at-1", { resolve_claims = true }) end)
    local t0 = os.clock()
    smartauth.step(0)
    assert.is_true(os.clock() - t0 < 0.15)
    smartauth.run()
    local ok, info = task:result()
    assert.is_true(ok)
    assert.equal(700, info.credit_score)
  end)

  it("resolves an ID token's claims through p:resolve_claims", function()
    local claims = { sub = "alice", _claim_names = { address = "a" }, _claim_sources = { a = { JWT =
      cp_jwt { address = "from the ID token" } } } }
    local out = assert(provider():resolve_claims(claims))
    assert.equal("from the ID token", out.address)
    assert.same({ sub = "alice" }, provider():resolve_claims({ sub = "alice" }))
  end)

  describe("hostile sources make the call fail, never return unverified claims", function()
    it("a bad signature", function()
      local h, c = idp.segments(cp_jwt { address = "forged" })
      local other = cp_jwt { address = "real" }
      aggregated(h .. "." .. c .. "." .. select(3, idp.segments(other)))
      fails("validation", "signature", provider():userinfo("at-1", { resolve_claims = true }))
    end)

    it("an issuer not in claims_issuers: nothing is fetched from it", function()
      aggregated(cp_jwt { address = "x" })
      fails("validation", "iss", provider { claims_issuers = { "https://other.example" } }:userinfo("at-1",
        { resolve_claims = true }))
      assert.equal(0, #cs:requests())
      -- the call's own list counts too
      aggregated(cp_jwt { address = "x" })
      local info = assert(provider { claims_issuers = idp.NONE }:userinfo("at-1",
        { resolve_claims = true, claims_issuers = { cs.url } }))
      assert.equal("x", info.address)
    end)

    it("a plain-http issuer without allow_http", function()
      aggregated(cp_jwt { address = "x" })
      local p = OP.provider { userinfo_endpoint = s.url .. "/userinfo", claims_issuers = { cs.url }, retry = false }
      fails("validation", "iss", p:userinfo("at-1", { resolve_claims = true }))
      assert.equal(0, #cs:requests())
    end)

    it("alg none, an expired source, a source for another audience", function()
      local unsigned = J.compact({ alg = "none" }, { iss = cs.url, address = "x" }, "")
      aggregated(unsigned)
      fails("validation", "alg", provider():userinfo("at-1", { resolve_claims = true }))
      aggregated(cp_jwt { address = "x", exp = os.time() - 3600 })
      fails("validation", "exp", provider():userinfo("at-1", { resolve_claims = true }))
      aggregated(cp_jwt { address = "x", aud = "another-client" })
      fails("validation", "aud", provider():userinfo("at-1", { resolve_claims = true }))
    end)

    it("an exp that decodes to infinity never makes a source valid forever", function()
      local c = CP.claims { sub = idp.NONE, aud = idp.NONE, address = "x", exp = 4242424242 }
      local text = require("cjson").encode(c):gsub("4242424242", "1e999")
      aggregated(J.sign({ alg = "ES256", typ = "JWT", kid = idp.KID["P-256"] }, text, J.key("P-256"), "ES256"))
      fails("validation", "exp", provider():userinfo("at-1", { resolve_claims = true }))
    end)

    it("a source endpoint that answers 500, or more than the size limit", function()
      userinfo({ credit_score = "src2" }, { src2 = { endpoint = cs.url .. "/claims", access_token = AT } })
      cs:script("/claims", { status = 500, body = "oops " .. AT })
      fails("http", nil, provider():userinfo("at-1", { resolve_claims = true }))
      userinfo({ credit_score = "src2" }, { src2 = { endpoint = cs.url .. "/claims", access_token = AT } })
      cs:script("/claims", { body_size = 70000 })
      local info, err = provider():userinfo("at-1", { resolve_claims = true })
      assert.is_nil(info)
      assert.is_table(err)
      assert.matches("exceeds the limit", tostring(err))
    end)

    it("a source that claims sub, too many sources, a name without a source, a garbage JWT", function()
      userinfo({ sub = "src1" }, { src1 = { JWT = cp_jwt { sub = "mallory" } } })
      fails("validation", "format", provider():userinfo("at-1", { resolve_claims = true }))
      local names, sources = {}, {}
      for i = 1, 17 do
        names["c" .. i], sources["s" .. i] = "s" .. i, { JWT = cp_jwt { ["c" .. i] = i } }
      end
      userinfo(names, sources)
      fails("validation", "format", provider():userinfo("at-1", { resolve_claims = true }))
      userinfo({ address = "missing" }, { src1 = { JWT = cp_jwt { address = "x" } } })
      fails("validation", "format", provider():userinfo("at-1", { resolve_claims = true }))
      userinfo({ address = "src1" }, { src1 = { JWT = "not.a.jwt" } })
      fails("validation", nil, provider():userinfo("at-1", { resolve_claims = true }))
      userinfo({ address = "src1" }, { src1 = { JWT = ("x"):rep(70000) } })
      fails("validation", "format", provider():userinfo("at-1", { resolve_claims = true }))
    end)

    it("a distributed endpoint that is not https", function()
      userinfo({ credit_score = "src2" }, { src2 = { endpoint = "http://example.com/claims", access_token = AT } })
      fails("validation", "endpoint", provider():userinfo("at-1", { resolve_claims = true }))
    end)
  end)
end)
