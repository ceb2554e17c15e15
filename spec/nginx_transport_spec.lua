-- #nginx The ngx transport inside a real nginx (lua-nginx-module): the
-- same answers and error kinds as the libcurl engine on the same fake
-- server, kept-alive connections, TLS verified against
-- lua_ssl_trusted_certificate, the phases that cannot yield, a worker
-- that keeps serving while an upstream stalls, and the transport option.
-- The spec runs under Lua 5.4 and drives nginx from outside.
local cjson = require "cjson.safe"
local certs = require "helpers.certs"
local daemon = require "helpers.daemon"
local nginx_lua = require "helpers.nginx_lua"
local mtls_nginx = require "helpers.nginx"
local proc = require "helpers.proc"
local server = require "helpers.server"
local engine = require "smartauth.engine"
local smartauth = require "smartauth"

local available, why = nginx_lua.available()

-- What /req answers: engine.request's result inside nginx, as JSON.
local REQ = [[
    content_by_lua_block {
      local cjson = require "cjson.safe"
      local engine = require "smartauth.engine"
      ngx.req.read_body()
      local opts = cjson.decode(ngx.req.get_body_data())
      local res, err = engine.request(opts)
      ngx.say(cjson.encode(res and { status = res.status, body = res.body, headers = res.headers,
        connects = res.connects } or { kind = err.kind, description = err.description, option = err.option,
        retryable = err.retryable }))
    }
]]

local HTTP = [[
  lua_shared_dict results 1m;
  lua_shared_dict smartauth 1m;
  init_worker_by_lua_block {
    local _, err = require("smartauth.engine").request{ url = os.getenv("FAKE_URL") .. "/phase/init_worker" }
    ngx.shared.results:set("init_worker", err and err.kind or "sent")
  }
  server {
    listen 127.0.0.1:$PORT;
    lua_ssl_trusted_certificate %s;
    location = /req { %s }
    location = /req_other_ca { lua_ssl_trusted_certificate %s; %s }
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    location = /set {
      set_by_lua_block $k {
        local _, err = require("smartauth.engine").request{ url = os.getenv("FAKE_URL") .. "/phase/set" }
        return err and err.kind or "sent"
      }
      return 200 $k;
    }
    location = /filters {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block {
        local _, err = require("smartauth.engine").request{ url = os.getenv("FAKE_URL") .. "/phase/header" }
        ngx.header["X-Kind"] = err and err.kind or "sent"
      }
      log_by_lua_block {
        local _, err = require("smartauth.engine").request{ url = os.getenv("FAKE_URL") .. "/phase/log" }
        ngx.shared.results:set("log", err and err.kind or "sent")
      }
    }
    location = /results { content_by_lua_block { ngx.say(ngx.shared.results:get(ngx.var.arg_k)) } }
    location = /token {
      content_by_lua_block {
        local smartauth = require "smartauth"
        local p = assert(smartauth.provider { token_endpoint = os.getenv("FAKE_URL") .. "/token",
          client_id = "c", client_secret = "s", transport = ngx.var.arg_transport,
          ca_file = ngx.var.arg_ca_file, timeout = 5 })
        local t, err = p:token()
        ngx.say(t and t.access_token or (err.kind .. ": " .. err.description))
        ngx.say(package.loaded["smartauth.core_http"] and "core_http loaded" or "core_http not loaded")
      }
    }
  }
]]

-- One HTTP exchange with nginx from here (LuaSocket, not the library).
local function get(url, body)
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local out = {}
  local _, code, headers = http.request {
    url = url, method = body and "POST" or "GET", sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body), headers = body and { ["content-length"] = #body } or nil,
  }
  return table.concat(out), code, headers
end

local function inside(n, opts, where)
  local body = get(n.url .. (where or "/req"), cjson.encode(opts))
  return assert(cjson.decode(body), body)
end

describe("#nginx the ngx transport", function()
  if not available then
    -- CI installs nginx's Lua module: there a missing one is a failure
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end
  local s, tls_s, n, c

  setup(function()
    c = certs.make()
    s = server.start()
    local cert, key = nginx_lua.loopback_cert(c)
    tls_s = server.start { tls = { cert = cert, key = key } }
    n = nginx_lua.start { workers = 1, env = { FAKE_URL = s.url },
      http = HTTP:format(c.ca_file, REQ, c.other_ca_file, REQ) }
  end)

  teardown(function()
    if n then n:stop() end
    if s then s:stop() end
    if tls_s then tls_s:stop() end
    if c then certs.cleanup(c) end
  end)

  before_each(function() s:reset() end)

  describe("answers and fails as the libcurl engine does on the same server:", function()
    local many = {}
    for i = 1, 250 do many["x-h" .. i] = "v" end
    local cases = {
      { "a JSON answer", "/ok", { status = 200, json = { a = 1 } } },
      { "a 404", "/missing", { status = 404, body = "nope" } },
      { "a redirect, not followed", "/redirect", { status = 302, headers = { location = "/ok" } } },
      { "a malformed status line", "/bad", { raw = "HTTP/1.1 2000 OK\r\n\r\n" } },
      { "a body cut short", "/trunc", { truncate = true, body = "0123456789" } },
      { "a dropped connection", "/close", { close = true } },
      { "a body over max_body", "/big", { body_size = 2000 }, { max_body = 1000 } },
      { "chunks over max_body", "/chunked", { chunked_size = 2000 }, { max_body = 1000 } },
      { "a chunked answer within max_body", "/chunked_ok", { chunked_size = 500 }, { max_body = 1000 } },
      { "250 headers", "/many", { headers = many } },
      { "an answer that never comes", "/hang", { hang = true }, { timeout = 0.5 } },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        s:script(case[2], case[3])
        local opts = { url = s.url .. case[2], method = "GET" }
        for k, v in pairs(case[4] or {}) do opts[k] = v end
        local want, werr = engine.request(opts)
        s:script(case[2], case[3])
        local got = inside(n, opts)
        if want then
          assert.are.equal(want.status, got.status, got.description)
          assert.are.equal(want.body, got.body)
          assert.are.equal(want.headers["content-type"], got.headers["content-type"])
        else
          assert.is_nil(got.status, "answered " .. tostring(got.status))
          assert.are.equal(werr.kind, got.kind, got.description)
          assert.are.equal(werr.retryable, got.retryable)
        end
      end)
    end
    it("a refused connection", function()
      local opts = { url = "http://127.0.0.1:" .. daemon.free_port() .. "/x" }
      local _, werr = engine.request(opts)
      local got = inside(n, opts)
      assert.are.equal(werr.kind, got.kind)
      assert.are.equal("network", got.kind)
    end)
  end)

  it("resolves names only through nginx's resolver directive, and says so", function()
    local got = inside(n, { url = "http://localhost:" .. s.port .. "/ok" })
    assert.are.equal("network", got.kind)
    assert.matches("resolver", got.description)
    assert.are.equal(0, #s:requests())
  end)

  it("sends the form and headers as given, and reuses the connection", function()
    s:script("/ok", { json = { a = 1 } }, 3)
    local first = inside(n, { url = s.url .. "/ok", method = "POST", body = "a=1&b=2",
      headers = { "Content-Type: application/x-www-form-urlencoded", "Authorization: Basic eDp5" } })
    assert.are.equal(1, first.connects)
    assert.are.equal(0, inside(n, { url = s.url .. "/ok" }).connects)
    assert.are.equal(0, inside(n, { url = s.url .. "/ok" }).connects)
    assert.are.equal(1, s:connections())
    local r = s:requests()[1]
    assert.are.equal("POST", r.method)
    assert.are.equal("a=1&b=2", r.body_raw)
    assert.are.equal("Basic eDp5", r.headers.authorization)
    assert.are.equal("127.0.0.1:" .. s.port, r.headers.host)
    assert.are.equal("7", r.headers["content-length"])
  end)

  it("refuses a certificate whose DNS names do not name the host", function()
    local other = server.start { tls = { cert = c.cert, key = c.key } } -- IP:127.0.0.1 and DNS:localhost only
    local ok, got = pcall(inside, n, { url = other.url .. "/ok" })
    other:stop()
    assert(ok, got)
    assert.are.equal("tls", got.kind)
    assert.matches("host mismatch", got.description)
  end)

  it("verifies TLS against lua_ssl_trusted_certificate and refuses an unknown CA", function()
    -- refused first: a verified connection is pooled per host and port (one
    -- trust per nginx: set the directive at http level)
    tls_s:script("/ok", { json = { tls = true } }, 2)
    local refused = inside(n, { url = tls_s.url .. "/ok" }, "/req_other_ca")
    assert.are.equal("tls", refused.kind)
    assert.matches("certificate", refused.description)
    assert.are.equal(0, #tls_s:requests()) -- nothing was sent
    local ok = inside(n, { url = tls_s.url .. "/ok" })
    assert.are.equal(200, ok.status, ok.description)
    assert.are.equal('{"tls":true}', ok.body)
  end)
  it("sends a client certificate (setclientcert), one pool per certificate", function()
    local cert, key = nginx_lua.loopback_cert(c)
    local m = mtls_nginx.start { cert = cert, key = key, client_ca = c.ca_file }
    local ok, err = pcall(function()
      local a = certs.client(c, "ngx-a", "ngx-password")
      local b = certs.client(c, "ngx-b", "ngx-password")
      local function token(opts)
        opts.url, opts.method, opts.body = m.url .. "/token", "POST", "grant_type=client_credentials"
        return inside(n, opts)
      end
      -- PEM text: the workers (user nobody) cannot read the spec's private directory
      local read = proc.read_file
      local got = token { client_cert = read(a.cert), client_key = read(a.key) }
      assert.are.equal(200, got.status, got.description)
      assert.matches('"at%-' .. a.serial .. '"', got.body)
      got = token { client_cert = read(b.cert), client_key = read(b.key) } -- not a's kept-alive connection
      assert.matches('"at%-' .. b.serial .. '"', got.body)
      got = token {} -- nor a connection with a certificate for a request without one
      assert.are.equal(400, got.status)
      got = token { client_cert = read(a.cert), client_key = read(a.enc_key), client_key_password = "ngx-password" }
      assert.are.equal("config", got.kind)
      assert.are.equal("client_key_password", got.option)
    end)
    m:stop()
    assert(ok, err)
  end)

  it("returns a config error, sending nothing, in the phases that cannot yield", function()
    assert.are.equal("config", (get(n.url .. "/set")))
    local _, code, headers = get(n.url .. "/filters")
    assert.are.equal(200, code)
    assert.are.equal("config", headers["x-kind"])
    assert.are.equal("config\n", (get(n.url .. "/results?k=log")))
    assert.are.equal("config\n", (get(n.url .. "/results?k=init_worker")))
    assert.are.equal(0, #s:requests())
  end)

  describe("through a provider", function()
    it("goes over cosockets without loading libcurl, or over libcurl with transport = \"curl\"", function()
      s:script("/token", { json = { access_token = "at-ngx", token_type = "Bearer", expires_in = 60 } })
      assert.are.equal("at-ngx\ncore_http not loaded\n", (get(n.url .. "/token")))
      s:script("/token", { json = { access_token = "at-curl", token_type = "Bearer", expires_in = 60 } })
      assert.are.equal("at-curl\ncore_http loaded\n", (get(n.url .. "/token?transport=curl")))
    end)

    it("refuses ca_file under transport ngx, naming lua_ssl_trusted_certificate", function()
      local body = get(n.url .. "/token?ca_file=" .. c.ca_file)
      assert.matches("^config: option 'ca_file' is not supported under transport ngx: .*lua_ssl_trusted_certificate",
        body)
      assert.are.equal(0, #s:requests())
    end)

    it("refuses transport = \"ngx\" outside nginx", function()
      local p = assert(smartauth.provider { token_endpoint = s.url .. "/token", client_id = "c",
        client_secret = "s", transport = "ngx" })
      local t, err = p:token()
      assert.is_nil(t)
      assert.are.equal("config", err.kind)
      assert.are.equal("transport", err.option)
      assert.are.equal(0, #s:requests())
    end)
  end)
end)
