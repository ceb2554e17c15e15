-- Retry policies against a server scripted to fail: what is retried, how
-- often, how long between attempts, and when the budget says stop.
local smartauth = require "smartauth"
local retry = require "smartauth.retry"
local socket = require "socket"
local server = require "helpers.server"

describe("retry", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() s:stop() end)
  before_each(function() s:reset() end)

  local function provider(policy)
    return assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "cid",
      client_secret = "sec", retry = policy or { attempts = 4, base = 0.01, max_delay = 0.05 } })
  end

  local function token_requests()
    local n = 0
    for _, r in ipairs(s:requests()) do if r.path == "/token" then n = n + 1 end end
    return n
  end

  for _, status in ipairs { 429, 502, 503, 504 } do
    it("retries HTTP " .. status .. " and then succeeds", function()
      s:script("/token", { status = status, body = "busy" }, 2)
      local tok = assert(provider():client_credentials())
      assert.matches("^at%-", tok.access_token)
      assert.equal(3, token_requests())
    end)
  end

  it("retries the OAuth error temporarily_unavailable", function()
    s:script("/token", { status = 400, json = { error = "temporarily_unavailable" } }, 1)
    assert(provider():client_credentials())
    assert.equal(2, token_requests())
  end)

  it("retries a connection closed by the server", function()
    s:script("/token", { close = true }, 2)
    assert(provider():client_credentials())
    assert.equal(3, token_requests())
  end)

  for _, case in ipairs {
    { status = 400, json = { error = "invalid_grant" } },
    { status = 401, json = { error = "invalid_client" } },
    { status = 400, json = { error = "invalid_request" } },
    { status = 403, body = "no" },
    { status = 500, body = "bug" },
  } do
    it("never retries HTTP " .. case.status .. " " .. (case.json and case.json.error or case.body), function()
      s:script("/token", case, 4)
      local tok, err = provider():client_credentials()
      assert.is_nil(tok)
      assert.is_false(err.retryable)
      assert.equal(1, token_requests())
    end)
  end

  it("gives up after `attempts` tries with the last error", function()
    s:script("/token", { status = 503, body = "down" }, 10)
    local tok, err = provider():client_credentials()
    assert.is_nil(tok)
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.equal(4, err.attempts)
    assert.equal(4, token_requests())
  end)

  it("waits as Retry-After says, in seconds", function()
    s:script("/token", { status = 429, headers = { ["Retry-After"] = "1" }, body = "" }, 1)
    local t0 = socket.gettime()
    assert(provider { attempts = 2, base = 0.01, max_delay = 5 }:client_credentials())
    local waited = socket.gettime() - t0
    assert.is_true(waited >= 0.95 and waited < 3, ("waited %.2f s"):format(waited))
  end)

  it("waits as Retry-After says, as an HTTP date", function()
    local when = os.time() + 2
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", when)
    assert.near(2, retry.parse_retry_after(date, os.time()), 1)
    s:script("/token", { status = 503, headers = { ["Retry-After"] = date }, body = "" }, 1)
    local t0 = socket.gettime()
    assert(provider { attempts = 2, base = 0.01, max_delay = 5 }:client_credentials())
    local waited = socket.gettime() - t0
    assert.is_true(waited >= 0.9 and waited < 3.5, ("waited %.2f s"):format(waited))
  end)

  it("stops when Retry-After is beyond the budget, saying so", function()
    s:script("/token", { status = 429, headers = { ["Retry-After"] = "120" }, body = "" }, 1)
    local t0 = socket.gettime()
    local tok, err = provider { attempts = 3, base = 0.01, budget = 60 }:client_credentials()
    assert.is_nil(tok)
    assert.equal(429, err.status)
    assert.equal(120, err.retry_after)
    assert.matches("beyond the retry budget", err.description)
    assert.is_true(socket.gettime() - t0 < 1)
    assert.equal(1, token_requests())
  end)

  it("backs off exponentially with full jitter within max_delay", function()
    local p = retry.policy { attempts = 5, base = 0.1, max_delay = 0.3, budget = 10 }
    assert.equal(0.1, p:backoff(1))
    assert.equal(0.2, p:backoff(2))
    assert.equal(0.3, p:backoff(3))
    local delays = {}
    p.random = function() return 1 end
    p:run(function() return nil, smartauth.errors.new("network", "down") end,
      function(d) delays[#delays + 1] = d end)
    assert.same({ 0.1, 0.2, 0.3, 0.3 }, delays)
    p.random = function() return 0.5 end
    delays = {}
    p:run(function() return { status = 503, headers = {} } end, function(d) delays[#delays + 1] = d end)
    assert.same({ 0.05, 0.1, 0.15, 0.15 }, delays)
  end)

  it("keeps the total of waits within the budget", function()
    local p = retry.policy { attempts = 10, base = 1, max_delay = 1, budget = 2.5 }
    p.random = function() return 1 end
    local total = 0
    p:run(function() return nil, smartauth.errors.new("timeout", "slow") end, function(d) total = total + d end)
    assert.near(2.5, total, 1e-9)
  end)

  it("rejects bad policy options", function()
    assert.has_error(function() retry.policy { attempt = 3 } end)
    assert.has_error(function() retry.policy { attempts = 0 } end)
    assert.has_error(function() retry.policy { base = -1 } end)
    local _, err = smartauth.provider { token_endpoint = s.url, retry = { tries = 2 } }
    assert.equal("config", err.kind)
  end)

  it("retries on the engine's timers inside a task without blocking others", function()
    s:script("/token", { status = 503, headers = { ["Retry-After"] = "1" }, body = "" }, 1)
    local p = provider { attempts = 2, base = 0.01, max_delay = 5 }
    local order = {}
    smartauth.spawn(function() assert(p:client_credentials()); order[#order + 1] = "retried" end)
    smartauth.spawn(function() order[#order + 1] = "other" end)
    local longest, t0 = 0, socket.gettime()
    while smartauth.step(0) > 0 do
      local dt = socket.gettime() - t0
      longest = math.max(longest, dt)
      socket.sleep(0.01)
      t0 = socket.gettime()
    end
    assert.same({ "other", "retried" }, order)
    assert.is_true(longest < 0.2)
  end)

  it("retries idempotent API calls, and POSTs only on 429", function()
    local p = provider()
    assert(p:token())
    s:reset()
    s:script("/api/x", { status = 503, body = "" }, 1)
    assert.equal(200, assert(p:request { url = s.url .. "/api/x" }).status)
    assert.equal(2, #s:requests())
    s:reset()
    s:script("/api/x", { status = 503, body = "" }, 1)
    assert.equal(503, assert(p:request { method = "POST", url = s.url .. "/api/x", body = "a=1" }).status)
    assert.equal(1, #s:requests())
    s:reset()
    s:script("/api/x", { status = 429, body = "" }, 1)
    assert.equal(200, assert(p:request { method = "POST", url = s.url .. "/api/x", body = "a=1" }).status)
    assert.equal(2, #s:requests())
  end)
end)

-- The store lock's ttl reads the default policy's numbers without loading
-- retry.lua (a CLI call with a stored token makes no request): they are one
-- table, and the lock ttl is the same either way.
describe("retry defaults", function()
  it("are one table, read by the lock ttl before and after retry.lua loads", function()
    local options = require "smartauth.options"
    local vault = require "smartauth.vault"
    assert.equal(options.RETRY_DEFAULTS, retry.DEFAULTS)
    assert.equal(retry.DEFAULTS.attempts, retry.default.attempts)
    assert.equal(retry.DEFAULTS.budget, retry.default.budget)
    local p = assert(smartauth.provider { token_endpoint = "http://127.0.0.1:9/t", client_id = "c", timeout = 7 })
    local source = vault.secrets[p].source
    local want = retry.default.budget + retry.default.attempts * 7 + 5
    assert.equal(want, source:lock_ttl())
    package.loaded["smartauth.retry"] = nil
    local ok, got = pcall(source.lock_ttl, source)
    package.loaded["smartauth.retry"] = retry
    assert.is_true(ok)
    assert.equal(want, got)
  end)
end)
