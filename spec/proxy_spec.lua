-- Proxies: the `proxy` and `no_proxy` options through a real forward proxy
-- (tinyproxy) on loopback, for HTTP (forwarded) and HTTPS (CONNECT), token
-- requests and API calls; credentials in the proxy URL kept in the vault and
-- out of every error; a refusing proxy named in the error.
local smartauth = require "smartauth"
local http = require "smartauth.http"
local core_http = require "smartauth.core_http"
local vault = require "smartauth.vault"
local server = require "helpers.server"
local certs = require "helpers.certs"
local tinyproxy = require "helpers.tinyproxy"
local daemon = require "helpers.daemon"
local proc = require "helpers.proc"

local USER, PASS = "proxyuser", "pr0xy-Pa55word"

local function via(req)
  return req.headers.via ~= nil and req.headers.via:find(tinyproxy.VIA_NAME, 1, true) ~= nil
end

local function count(list, text)
  local n = 0
  for _, l in ipairs(list) do if l:find(text, 1, true) then n = n + 1 end end
  return n
end

local function no_secret(err)
  local text = tostring(err) .. " " .. tostring(err.description)
  assert.is_nil(text:find(PASS, 1, true), "the proxy password shows: " .. text)
  assert.is_nil(text:find(USER .. ":", 1, true), "the proxy credentials show: " .. text)
end

describe("proxy", function()
  local c, s, tls, px, authpx

  setup(function()
    c = certs.make()
    s = server.start()
    tls = server.start { tls = { cert = c.cert, key = c.key } }
    px = tinyproxy.start { connect_ports = { tls.port } }
    authpx = tinyproxy.start { connect_ports = { tls.port }, user = USER, password = PASS }
  end)
  teardown(function()
    if authpx then authpx:stop() end
    if px then px:stop() end
    if tls then tls:stop() end
    if s then s:stop() end
    certs.cleanup(c)
  end)
  before_each(function()
    s:reset()
    tls:reset()
  end)

  describe("in the engine", function()
    it("forwards an HTTP request through the proxy", function()
      local before = #px:requests()
      local res = assert(http.request { url = s.url .. "/nothing?x=1", proxy = px.url })
      assert.equal(404, res.status)
      assert.is_true(via(s:last_request()))
      local reqs = px:requests()
      assert.equal(before + 1, #reqs)
      assert.equal("GET " .. s.url .. "/nothing?x=1", reqs[#reqs])
    end)

    it("tunnels an HTTPS request through CONNECT, the server's certificate checked end to end", function()
      local before = count(px:requests(), "CONNECT 127.0.0.1:" .. tls.port)
      local res = assert(http.request { url = tls.url .. "/nothing", proxy = px.url, ca_file = c.ca_file })
      assert.equal(404, res.status)
      assert.equal(before + 1, count(px:requests(), "CONNECT 127.0.0.1:" .. tls.port))
      -- a tunnel: the proxy sees no request inside it, so adds no Via
      assert.is_false(via(tls:last_request()))
      local _, err = http.request { url = tls.url .. "/nothing", proxy = px.url, ca_file = c.other_ca_file }
      assert.equal("tls", err.kind)
    end)

    it("goes direct to the hosts no_proxy names", function()
      local before = #px:requests()
      assert(http.request { url = s.url .. "/nothing", proxy = px.url, no_proxy = "example.org,127.0.0.1" })
      assert.is_false(via(s:last_request()))
      assert.equal(before, #px:requests())
    end)

    -- an idle handle set up for one proxy must not carry a request that
    -- names another, or none
    it("never reuses a handle set up for another proxy", function()
      local engine = core_http.engine()
      local seq = { px.url, false, px.url, authpx.url:gsub("//", "//" .. USER .. ":" .. PASS .. "@"), false }
      for i, proxy in ipairs(seq) do
        local res = assert(engine:request { url = s.url .. "/nothing", proxy = proxy or nil })
        assert.equal(404, res.status)
        assert.equal(proxy and true or false, via(s:last_request()), "request " .. i)
      end
      engine:close()
    end)

    it("authenticates to the proxy with the credentials in its URL", function()
      local res = assert(http.request { url = s.url .. "/nothing",
        proxy = "http://" .. USER .. ":" .. PASS .. "@127.0.0.1:" .. authpx.port })
      assert.equal(404, res.status)
      assert.is_true(via(s:last_request()))
      assert.is_nil(s:last_request().headers["proxy-authorization"])
    end)

    it("keeps to libcurl's environment variables without the option", function()
      -- a child process: the environment is read per transfer
      local code = [[
        local http = require "smartauth.http"
        local res, err = http.request { url = os.getenv("SMARTAUTH_TEST_URL") }
        io.write(res and res.status or tostring(err))
      ]]
      local env = "SMARTAUTH_TEST_URL=" .. proc.shell_quote(s.url .. "/nothing") .. " " .. proc.LUA_ENV
      local ok, _, out = proc.run("http_proxy=" .. proc.shell_quote(px.url) .. " " .. env ..
        proc.LUA .. " -e " .. proc.shell_quote(code))
      assert.is_true(ok)
      assert.equal("404", out)
      assert.is_true(via(s:last_request()))
      ok, _, out = proc.run("http_proxy=" .. proc.shell_quote(px.url) .. " NO_PROXY=127.0.0.1 " .. env ..
        proc.LUA .. " -e " .. proc.shell_quote(code))
      assert.is_true(ok)
      assert.equal("404", out)
      assert.is_false(via(s:last_request()))
    end)
  end)

  describe("for a provider", function()
    local function provider(extra)
      local o = { token_endpoint = s.url .. "/token", client_id = "cid", client_secret = "csecret" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end
    local function auth_url(port, pass)
      return "http://" .. USER .. ":" .. (pass or PASS) .. "@127.0.0.1:" .. (port or authpx.port)
    end

    it("sends token requests and API calls over HTTP through the proxy", function()
      local p = provider { proxy = auth_url() }
      assert(p:client_credentials())
      local r = s:last_request()
      assert.equal("/token", r.path)
      assert.is_true(via(r))
      assert.equal("csecret", r.basic.pass)
      local res = assert(p:request { url = s.url .. "/api/items" })
      assert.equal(200, res.status)
      r = s:last_request()
      assert.equal("/api/items", r.path)
      assert.is_true(via(r))
      local reqs = authpx:requests()
      assert.equal("GET " .. s.url .. "/api/items", reqs[#reqs])
      assert.equal("POST " .. s.url .. "/token", reqs[#reqs - 1])
    end)

    it("sends token requests and API calls over HTTPS through CONNECT", function()
      local before = count(authpx:requests(), "CONNECT 127.0.0.1:" .. tls.port)
      local p = provider { token_endpoint = tls.url .. "/token", ca_file = c.ca_file, proxy = auth_url() }
      assert(p:client_credentials())
      assert.equal("/token", tls:last_request().path)
      local res = assert(p:request { url = tls.url .. "/api" })
      assert.equal(200, res.status)
      assert.equal("/api", tls:last_request().path)
      -- one tunnel, kept alive for both requests
      assert.equal(before + 1, count(authpx:requests(), "CONNECT 127.0.0.1:" .. tls.port))
    end)

    it("shows the debug hook neither the proxy's credentials nor a refusal's", function()
      local seen = {}
      local function dump(v, depth)
        if type(v) == "table" and depth < 5 then
          for k, x in pairs(v) do dump(k, depth + 1); dump(x, depth + 1) end
        else
          seen[#seen + 1] = tostring(v)
        end
      end
      local function hook(ev) dump(ev, 0) end
      assert(provider { proxy = auth_url(), on_http = hook }):client_credentials()
      provider { token_endpoint = tls.url .. "/token", ca_file = c.ca_file, retry = false,
        proxy = auth_url(nil, "wr0ng-" .. PASS), on_http = hook }:client_credentials()
      assert.is_true(#seen > 10)
      local all = table.concat(seen, "\n")
      assert.is_nil(all:find(PASS, 1, true))
      assert.is_nil(all:find(USER .. ":", 1, true))
    end)

    it("keeps the proxy credentials in the vault, not in the options", function()
      local p = provider { proxy = auth_url(), no_proxy = "example.org" }
      assert.equal("http://127.0.0.1:" .. authpx.port, p.options.proxy)
      assert.equal("example.org", p.options.no_proxy)
      for _, v in pairs(p.options) do
        assert.is_nil(tostring(v):find(PASS, 1, true))
      end
      assert.is_nil(tostring(p):find(PASS, 1, true))
      local found = false
      for _, v in ipairs(vault.secrets_of(p)) do if v == PASS then found = true end end
      assert.is_true(found)
    end)

    it("names the proxy that asks for credentials it was not given (HTTP 407)", function()
      local p = assert(smartauth.provider { issuer = s.url, proxy = authpx.url })
      local ok, err = p:discover()
      assert.is_nil(ok)
      assert.equal("http", err.kind)
      assert.equal(407, err.status)
      assert.matches("proxy http://127.0.0.1:" .. authpx.port .. " requires authentication",
        err.description, 1, true)
      assert.equal(0, #s:requests())
    end)

    -- tinyproxy answers wrong credentials with 401 and drops the connection
    -- before reading a request body: libcurl reports the connection reset
    it("names the proxy, not its credentials, when it refuses them (HTTP)", function()
      local p = provider { proxy = auth_url(nil, "wr0ng-" .. PASS), retry = false }
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("proxy http://127.0.0.1:" .. authpx.port, err.description, 1, true)
      no_secret(err)
      assert.is_nil(tostring(err):find("wr0ng-", 1, true))
      assert.equal(0, #s:requests())
    end)

    it("names the proxy, not its credentials, when it refuses them (HTTPS: CONNECT)", function()
      local p = provider { token_endpoint = tls.url .. "/token", ca_file = c.ca_file,
        proxy = auth_url(nil, "wr0ng-" .. PASS), retry = false }
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("CONNECT tunnel failed", err.description, 1, true)
      assert.matches("proxy http://127.0.0.1:" .. authpx.port, err.description, 1, true)
      no_secret(err)
      assert.is_nil(tostring(err):find("wr0ng-", 1, true))
      assert.equal(0, #tls:requests())
    end)

    it("names the proxy when it refuses the tunnel (CONNECT to a port it does not allow)", function()
      local other = server.start { tls = { cert = c.cert, key = c.key } }
      local p = provider { token_endpoint = other.url .. "/token", ca_file = c.ca_file,
        proxy = auth_url(), retry = false }
      local tok, err = p:client_credentials()
      other:stop()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("403", err.description, 1, true)
      assert.matches("proxy http://127.0.0.1:" .. authpx.port, err.description, 1, true)
      no_secret(err)
    end)

    it("names the proxy when nothing listens there", function()
      local port = daemon.free_port()
      local p = provider { proxy = auth_url(port), retry = false }
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("network", err.kind)
      assert.matches("proxy http://127.0.0.1:" .. port, err.description, 1, true)
      no_secret(err)
      assert.equal(0, #s:requests())
    end)

    it("does not name the proxy for a host no_proxy sends direct", function()
      local p = provider { token_endpoint = "http://127.0.0.1:" .. daemon.free_port() .. "/token",
        proxy = auth_url(), no_proxy = "localhost, 127.0.0.1", retry = false }
      local _, err = p:client_credentials()
      assert.equal("network", err.kind)
      assert.is_nil(err.description:find("proxy", 1, true))
    end)

    it("checks the options", function()
      local function bad(o, option, text)
        local p, err = smartauth.provider(o)
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.equal(option, err.option)
        if text then assert.matches(text, err.description, 1, true) end
        assert.is_nil(tostring(err):find(PASS, 1, true))
      end
      bad({ proxy = 8080 }, "proxy")
      bad({ proxy = "ftp://" .. USER .. ":" .. PASS .. "@127.0.0.1:21" }, "proxy", "http:// or https://")
      bad({ proxy = "127.0.0.1:3128" }, "proxy", "http:// or https://")
      bad({ proxy = "http://" .. USER .. ":" .. PASS .. "@" }, "proxy", "host")
      bad({ no_proxy = { "a" } }, "no_proxy")
      assert(smartauth.provider { proxy = "https://proxy.example:3129" })
      assert(smartauth.provider { proxy = "http://[::1]:3128", no_proxy = "*" })
    end)
  end)
end)
