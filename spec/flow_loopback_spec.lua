-- The loopback redirect listener (RFC 8252, smartauth.flow.loopback), driven
-- through p:login: real HTTP requests to it from a child process, localhost
-- on both 127.0.0.1 and ::1, and whole logins against oidc-provider. The
-- real-browser run is in spec/interop/browser_spec.lua.
local compat = require "smartauth.compat"
local smartauth = require "smartauth"
local cjson = require "cjson"
local socket = require "socket"
local server = require "helpers.server"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local spawn = proc.spawn

-- A child Lua process that makes requests to the loopback listener, in order,
-- and prints what it got as JSON: { {status=, body=}, {idle=true}, ... }.
local REQUESTER = [[
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local out, keep = {}, {}
for _, r in ipairs(cjson.decode(arg[1])) do
  if r.delay then socket.sleep(r.delay) end
  if r.idle then
    -- a silent connection, as browsers open ahead of time
    local c = socket.connect(r.host, ("%d"):format(r.port))
    keep[#keep + 1] = c
    out[#out + 1] = { idle = c ~= nil }
  else
    local chunks = {}
    local _, code, headers = http.request { url = r.url, method = r.method or "GET",
      sink = ltn12.sink.table(chunks) }
    out[#out + 1] = { status = code, body = table.concat(chunks),
      ctype = headers and headers["content-type"] or "" }
  end
end
io.write(cjson.encode(out))
]]

describe("loopback login", function()
  local tmp, requester

  setup(function()
    tmp = proc.tmpdir("smartauth-flow.XXXXXX")
    requester = tmp .. "/requester.lua"
    local f = assert(io.open(requester, "w"))
    f:write(REQUESTER)
    f:close()
  end)
  teardown(function() proc.rmtree(tmp) end)

  local function requests(list)
    return spawn({ proc.LUA, requester, cjson.encode(list) }, tmp .. "/requester.err")
  end
  describe("loopback redirect to localhost", function()
    local s
    setup(function() s = server.start() end)
    teardown(function() s:stop() end)
    before_each(function() s:reset() end)

    local function provider(redirect)
      return assert(smartauth.provider { authorization_endpoint = s.url .. "/authorize",
        token_endpoint = s.url .. "/token", client_id = "loop-client", redirect_uri = redirect, retry = false })
    end

    local function free_dual_port()
      for _ = 1, 20 do
        local a = assert(socket.bind("127.0.0.1", 0))
        local _, port = a:getsockname()
        local b = socket.tcp6()
        local ok = b:bind("::1", port)
        a:close()
        b:close()
        if ok then return compat.tointeger(tonumber(port)) end
      end
      error("no port free on both 127.0.0.1 and ::1")
    end

    it("refuses to log in when another socket holds [::1]:PORT", function()
      local port = free_dual_port()
      local squatter = socket.tcp6()
      assert(squatter:bind("::1", port))
      assert(squatter:listen(8))
      local opened = false
      local tok, err = provider("http://localhost:" .. port .. "/cb"):login { flow = "loopback", timeout = 1,
        show = function() end, open = function() opened = true return true end }
      squatter:close()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("::1", err.description, 1, true)
      assert.is_false(opened)
    end)

    it("listens on 127.0.0.1 and ::1 on the same port, and takes the callback on either", function()
      s:script("/token", { json = { access_token = "AT-L", token_type = "Bearer" } })
      local child, port
      local tok, err = provider("http://localhost/cb"):login { flow = "loopback", timeout = 30,
        show = function() end, open = function(u, ctx)
          assert.equal(2, #ctx.fds)
          local redirect = assert(oidc.parse_query(u).redirect_uri)
          port = tonumber(redirect:match("^http://localhost:(%d+)/cb$"))
          assert.truthy(port, redirect)
          local state = oidc.parse_query(u).state
          child = requests { { url = "http://[::1]:" .. port .. "/cb?code=c1&state=" .. state } }
          return true
        end }
      local got = cjson.decode(child:read("*a"))
      child:close()
      assert(tok, tostring(err))
      assert.equal("AT-L", tok.access_token)
      assert.equal(200, got[1].status)
      assert.equal("http://localhost:" .. port .. "/cb", s:last_request().form.redirect_uri)
      -- both listeners are gone
      assert.is_nil(socket.connect("127.0.0.1", port))
      local c6 = socket.tcp6()
      c6:settimeout(1)
      assert.is_nil(c6:connect("::1", port))
      c6:close()
    end)
  end)

  describe("#interop against oidc-provider", function()
    local op

    setup(function() op = oidc.start() end)
    teardown(function() if op then op:stop() end end)

    local function discover(client_id, extra)
      local o = { client_id = client_id, scope = "openid email" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.discover(op.issuer, o))
    end

    describe("loopback redirect", function()
      it("answers stray requests, accepts the one valid callback, and returns a verified token", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local child, shown, port
        local tok = assert(p:login {
          timeout = 30,
          show = function(info) shown = info end,
          open = function(url, ctx)
            assert.is_table(ctx.fds)
            local redirect = op:login(url, { login = "bob" })
            local base = redirect:match("^(http://127%.0%.0%.1:%d+)/cb%?")
            assert.truthy(base)
            port = tonumber(base:match(":(%d+)$"))
            child = requests {
              { idle = true, host = "127.0.0.1", port = port },
              { url = base .. "/favicon.ico" },
              { url = base .. "/" },
              { url = redirect, method = "POST" },
              { url = base .. "/cb?code=stolen&state=forged" },
              { url = base .. "/cb?code=nostate" },
              { url = redirect },
            }
            return true
          end,
        })
        local got = cjson.decode(child:read("*a"))
        child:close()
        assert.equal("bob", tok.claims.sub)
        assert.equal("loopback", shown.flow)
        assert.equal("http://127.0.0.1:" .. port .. "/cb", shown.redirect_uri)
        assert.is_true(got[1].idle)
        assert.equal(404, got[2].status)
        assert.equal(404, got[3].status)
        assert.equal(405, got[4].status)
        assert.equal(400, got[5].status)
        assert.equal(400, got[6].status)
        assert.equal(200, got[7].status)
        assert.matches("text/html", got[7].ctype)
        assert.matches("You may close this tab", got[7].body)
        -- exactly one callback: the listener is gone
        assert.is_nil(socket.connect("127.0.0.1", port))
      end)

      it("listens on the port of a configured redirect URI", function()
        local probe = assert(socket.bind("127.0.0.1", 0))
        local _, free = probe:getsockname()
        probe:close()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1:" .. free .. "/cb" })
        local child
        local tok = assert(p:login { timeout = 30, show = function() end, open = function(url)
          assert.equal("http://127.0.0.1:" .. free .. "/cb", oidc.parse_query(url).redirect_uri)
          child = requests { { url = op:login(url) } }
          return true
        end })
        child:read("*a")
        child:close()
        assert.equal("alice", tok.claims.sub)
      end)

      it("waits for the callback without blocking other tasks inside smartauth.spawn", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local ticks, child, tok, err = 0, nil, nil, nil
        local login = smartauth.spawn(function()
          tok, err = p:login { timeout = 30, show = function() end, open = function(url)
            -- the browser comes back half a second later
            child = requests { { url = op:login(url), delay = 0.5 } }
            return true
          end }
        end)
        smartauth.spawn(function()
          while login.status == "running" do
            ticks = ticks + 1
            smartauth.sleep(0.01)
          end
        end)
        smartauth.run()
        if child then child:read("*a"); child:close() end
        assert.is_nil(err)
        assert.equal("alice", tok.claims.sub)
        -- the other task kept running while the listener waited
        -- ~25 ticks of 10 ms in the half second; a blocking wait allows 1
        assert.is_true(ticks >= 10, "ticks: " .. ticks)
      end)

      it("reports a refusal on the page and as an oauth error", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local child
        local tok, err = p:login { timeout = 30, show = function() end, open = function(url)
          child = requests { { url = op:login(url, { deny = true }) } }
          return true
        end }
        local got = cjson.decode(child:read("*a"))
        child:close()
        assert.is_nil(tok)
        assert.equal("oauth", err.kind)
        assert.equal("access_denied", err.code)
        assert.matches("Login failed", got[1].body)
      end)

      it("gives up after the timeout with a clear error, and prints the URL when no browser opened", function()
        local p = discover("public-client", { redirect_uri = "http://127.0.0.1/cb" })
        local shown
        local t0 = socket.gettime()
        local tok, err = p:login { flow = "loopback", timeout = 1, open = function() return false end,
          show = function(info) shown = info end }
        local took = socket.gettime() - t0
        assert.is_nil(tok)
        assert.equal("timeout", err.kind)
        assert.matches("no login arrived at http://127%.0%.0%.1:%d+/cb within 1 s", err.description)
        assert.is_true(took >= 1 and took < 4, "took " .. took .. " s")
        assert.is_false(shown.opened)
        assert.matches("open this address", shown.message)
        assert.matches(op.issuer .. "/auth?", shown.message, 1, true)
      end)

    end)
  end)
end)
