-- p:exchange_code{ keep = false } (authcode.lua): the token of one person's
-- login, returned to a web application that serves many people, neither kept
-- as the provider's own token (memory and store) nor replacing it; the
-- callback's checks are the same.
local smartauth = require "smartauth"
local server = require "helpers.server"

describe("exchange_code keep = false", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  -- a store that counts what is written
  local function counting_store()
    local inner = smartauth.store.memory()
    local st = { sets = 0 }
    function st.get(_, k) return inner:get(k) end
    function st.set(_, k, v, ttl)
      st.sets = st.sets + 1
      return inner:set(k, v, ttl)
    end
    function st.delete(_, k) return inner:delete(k) end
    function st.lock(_, k, ttl) return inner:lock(k, ttl) end
    return st
  end

  local function provider(extra)
    local o = { token_endpoint = s.url .. "/token", authorization_endpoint = "https://idp.example/authorize",
      client_id = "cid", client_secret = "csecret", redirect_uri = "http://127.0.0.1:8765/cb", scope = "files" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(smartauth.provider(o))
  end

  local function exchange(p, opts)
    local _, session = assert(p:authorization_url())
    local o = { code = "the-code", state = session.state, session = session, iss = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    return p:exchange_code(o)
  end

  it("returns the token without keeping it in memory or in the store", function()
    local st = counting_store()
    local p = provider { store = st }
    s:script("/token", { json = { access_token = "person-at", token_type = "Bearer", expires_in = 300,
      refresh_token = "person-rt" } })
    local tok = assert(exchange(p, { keep = false }))
    assert.are.equal("person-at", tok.access_token)
    assert.are.equal("person-rt", tok.refresh_token)
    assert.are.equal("authorization_code", s:last_request().form.grant_type)
    assert.are.equal(0, st.sets)
    assert.is_nil(st:get(p:store_key()))
    assert.is_nil(p:stored())
  end)

  it("leaves the provider's own token as it was", function()
    local p = provider()
    s:script("/token", { json = { access_token = "own-at", token_type = "Bearer", expires_in = 300 } })
    assert(p:client_credentials())
    assert.are.equal("own-at", p:stored().access_token)
    s:script("/token", { json = { access_token = "person-at", token_type = "Bearer", expires_in = 300 } })
    assert.are.equal("person-at", assert(exchange(p, { keep = false })).access_token)
    local n = #s:requests()
    assert.are.equal("own-at", assert(p:token()).access_token)
    assert.are.equal(n, #s:requests())
  end)

  it("keeps the token as before without keep, or with keep = true", function()
    for _, keep in ipairs { "absent", true } do
      local st = counting_store()
      local p = provider { store = st }
      s:script("/token", { json = { access_token = "kept-at", token_type = "Bearer", expires_in = 300 } })
      assert(exchange(p, { keep = keep ~= "absent" and keep or nil }))
      assert.are.equal(1, st.sets)
      assert.are.equal("kept-at", p:stored().access_token)
    end
  end)

  it("checks the callback all the same", function()
    local p = provider()
    local _, session = assert(p:authorization_url())
    local tok, err = p:exchange_code { code = "c", state = "not-the-state", session = session, iss = false,
      keep = false }
    assert.is_nil(tok)
    assert.are.equal("state", err.check)
    assert.are.equal(0, #s:requests())
    s:script("/token", { status = 400, json = { error = "invalid_grant" } })
    tok, err = exchange(p, { keep = false })
    assert.is_nil(tok)
    assert.are.equal("invalid_grant", err.code)
  end)

  it("refuses a keep that is not a boolean (a programming mistake)", function()
    local p = provider()
    local _, session = assert(p:authorization_url())
    assert.has_error(function()
      p:exchange_code { code = "c", state = session.state, session = session, iss = false, keep = "no" }
    end)
    assert.are.equal(0, #s:requests())
  end)

  it("works inside smartauth.spawn", function()
    local p = provider()
    s:script("/token", { json = { access_token = "spawned-at", token_type = "Bearer", expires_in = 300 } })
    local got, gerr
    smartauth.spawn(function() got, gerr = exchange(p, { keep = false }) end)
    smartauth.run()
    assert.is_nil(gerr)
    assert.are.equal("spawned-at", got.access_token)
    assert.is_nil(p:stored())
  end)
end)
