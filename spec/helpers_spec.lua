-- Proves the spec helpers (helpers.server + server.js, helpers.certs, helpers.proc) with
-- real traffic. Clients here are LuaSocket, raw sockets and LuaSec, never smartauth.
local compat = require "smartauth.compat"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local mime = require "mime"
local cjson = require "cjson.safe"
local server = require "helpers.server"
local certs = require "helpers.certs"
local proc = require "helpers.proc"

-- application/x-www-form-urlencoded encoding of one component (RFC 6749 §2.3.1, Appendix B).
local function form_encode(s)
  return (s:gsub("[^%w%-%._%*~ ]", function(c) return ("%%%02X"):format(c:byte()) end)
           :gsub(" ", "+"))
end

-- HTTP request with LuaSocket; returns status, headers, body (or nil, err).
local function request(url, opts)
  opts = opts or {}
  local out = {}
  local headers = opts.headers or {}
  if opts.body then headers["content-length"] = tostring(#opts.body) end
  local ok, code, rheaders = http.request{
    url = url,
    method = opts.method or "GET",
    headers = headers,
    source = opts.body and ltn12.source.string(opts.body) or nil,
    sink = ltn12.sink.table(out),
  }
  if not ok then return nil, code end
  return code, rheaders, table.concat(out)
end

-- Reads one HTTP/1.1 response from a raw socket: status, headers (lower-cased), body.
-- The body is read by Content-Length, chunked coding, or to the end of the stream.
local function read_response(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  while true do
    local h = assert(sock:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  local body, berr, partial
  if headers["content-length"] == "0" then
    body = ""
  elseif headers["content-length"] then
    body, berr, partial = sock:receive(tonumber(headers["content-length"]))
  elseif (headers["transfer-encoding"] or ""):lower() == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(sock:receive("*l")):match("^%x+"), 16)
      if size == 0 then assert(sock:receive("*l")); break end
      parts[#parts + 1] = assert(sock:receive(size))
      assert(sock:receive("*l"))
    end
    body = table.concat(parts)
  else
    body, berr, partial = sock:receive("*a")
  end
  if not body then return nil, berr, status, headers, partial end
  return status, headers, body
end

local function connect(port)
  local sock = assert(socket.tcp())
  sock:settimeout(5)
  assert(sock:connect("127.0.0.1", port))
  return sock
end

local function get_request(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. (extra or "") .. "\r\n"
end

describe("helpers.proc", function()
  it("runs commands and captures stdout and the exit code", function()
    local ok, code, out = proc.run("printf 'a b'; exit 3")
    assert.is_false(ok)
    assert.equal(3, code)
    assert.equal("a b", out)
    assert.same({ true, 0, "x\n" }, { proc.run("echo x") })
  end)

  it("quotes for the shell", function()
    local s = "it's $HOME `x` \"q\" \\ ; |"
    local _, _, out = proc.run("printf %s " .. proc.shell_quote(s))
    assert.equal(s, out)
  end)

  it("makes and removes private temporary directories", function()
    local dir = proc.tmpdir()
    local _, _, mode = proc.run("stat -c %a " .. proc.shell_quote(dir))
    assert.equal("700\n", mode)
    proc.rmtree(dir)
    assert.is_false((proc.run("test -e " .. proc.shell_quote(dir))))
    assert.has_error(function() proc.rmtree("/etc") end)
  end)

  it("sleeps", function()
    local t0 = proc.now()
    proc.sleep(0.05)
    assert.is_true(proc.now() - t0 >= 0.045)
  end)
end)

describe("helpers.server", function()
  local s

  setup(function() s = server.start() end)
  teardown(function() if s then s:stop() end end)
  before_each(function() s:reset() end)

  describe("lifetime", function()
    it("starts on 127.0.0.1 and stops, leaving no process behind", function()
      local t = server.start()
      assert.is_true(compat.math_type(t.port) == "integer" and t.port > 0)
      assert.is_true(t.admin_port > 0 and t.admin_port ~= t.port)
      assert.equal("http://127.0.0.1:" .. t.port, t.url)
      assert.is_true(proc.alive(t.pid))
      assert.equal(404, (request(t.url .. "/nothing")))
      t:stop()
      assert.is_false(proc.alive(t.pid))
      assert.is_false((proc.run("kill -0 " .. t.pid .. " 2>/dev/null")))
      assert.is_nil(io.open(t.dir))
      t:stop() -- second stop is harmless
      local ok, err = pcall(t.requests, t)
      assert.is_false(ok)
      assert.matches("already stopped", err)
    end)

    it("is stopped by a to-be-closed variable (its __close; lua54_spec uses the syntax)", function()
      local t = server.start()
      getmetatable(t).__close(t)
      assert.is_false(proc.alive(t.pid))
    end)

    it("exits by itself when its parent process dies", function()
      -- a child Lua starts a server and exits without stopping it
      local spec_dir = server.SERVER_JS:match("^(.*)/helpers/server%.js$")
      local script = ([[
        package.path = %q .. package.path
        local s = require("helpers.server").start()
        io.write(s.pid, " ", s.dir, "\n"); io.flush()
        os.exit(0, false)]]):format(spec_dir .. "/?.lua;")
      local ok, _, out = proc.run(proc.LUA_ENV .. proc.LUA .. " -e " .. proc.shell_quote(script))
      assert.is_true(ok)
      local pid, dir = out:match("^(%d+) (%S+)")
      pid = assert(tonumber(pid))
      finally(function() proc.rmtree(dir) end)
      assert.is_true(proc.wait_gone(pid, 3), "server outlived its parent")
    end)

    it("fails clearly when node cannot start", function()
      assert.has_error(function() server.start{ tls = { cert = "/nonexistent", key = "/nonexistent" } } end)
      local ok, err = pcall(server.start, { tls = { cert = "/nonexistent", key = "/nonexistent" } })
      assert.is_false(ok)
      assert.matches("did not start", err)
      assert.matches("ENOENT", err) -- node's stderr is part of the message
    end)

    it("does not hand the spec's open sockets to node", function()
      -- a socket open while another server starts must not be inherited by that node,
      -- or closing it here would never reach its peer
      local sock = connect(s.port)
      finally(function() sock:close() end)
      local _, _, inode = proc.run(("readlink /proc/$PPID/fd/%d"):format(sock:getfd())) -- $PPID: us
      assert.matches("^socket:%[%d+%]", inode)
      local t = server.start()
      finally(function() t:stop() end)
      local _, _, fds = proc.run("for f in /proc/" .. t.pid .. "/fd/*; do readlink $f; done")
      assert.is_nil(fds:find(inode, 1, true))
      assert.is_nil(fds:find("smartauth-server", 1, true) and fds:find(s.dir, 1, true))
    end)
  end)

  describe("records requests", function()
    it("with method, path, query, headers and the exact body", function()
      local body = "a=1&b=x+y%20z&a=2&utf=%C3%A9%E2%88%82&plus=%2B&empty=&novalue"
      local code = request(s.url .. "/rec/path?x=1&y=%20a+b", {
        method = "POST",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8",
                    ["X-Custom-Header"] = "Value With Case" },
        body = body,
      })
      assert.equal(404, code)
      local reqs = s:requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal(1, r.seq)
      assert.equal("POST", r.method)
      assert.equal("/rec/path", r.path)
      assert.equal("x=1&y=%20a+b", r.query)
      assert.same({ x = "1", y = " a b" }, r.args)
      assert.equal("Value With Case", r.headers["x-custom-header"])
      assert.equal(tostring(#body), r.headers["content-length"])
      assert.equal(body, r.body)
      assert.equal(body, r.body_raw)
      assert.equal(mime.b64(body), r.body_b64)
      assert.same({ a = "2", b = "x y z", utf = "é∂", plus = "+", empty = "", novalue = "" }, r.form)
      assert.same({ "a", "1" }, r.form_pairs[1])
      assert.same({ "a", "2" }, r.form_pairs[3])
      assert.is_nil(r.basic)
    end)

    it("with raw headers in the case and order they were sent", function()
      local sock = connect(s.port)
      sock:send("GET /h HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mixed-Case: A\r\nx-mixed-case: B\r\n"
        .. "aCCept: */*\r\n\r\n")
      assert.equal(404, (read_response(sock)))
      sock:close()
      local r = s:last_request()
      assert.same({ { "Host", "127.0.0.1" }, { "X-Mixed-Case", "A" }, { "x-mixed-case", "B" },
                    { "aCCept", "*/*" } }, r.raw_headers)
      assert.equal("A, B", r.headers["x-mixed-case"]) -- repeats joined, none dropped
      assert.equal("*/*", r.headers.accept)
      assert.equal("1.1", r.http_version)
    end)

    it("without form when the content type is not a form", function()
      request(s.url .. "/j", { method = "POST", body = '{"a=b":1}',
                               headers = { ["content-type"] = "application/json" } })
      local r = s:last_request()
      assert.is_nil(r.form)
      assert.equal('{"a=b":1}', r.body)
    end)

    it("keeps non-UTF-8 body bytes exactly in body_raw", function()
      local bytes = "\0\255\254abc\128"
      request(s.url .. "/bin", { method = "PUT", body = bytes,
                                 headers = { ["content-type"] = "application/octet-stream" } })
      assert.equal(bytes, s:last_request().body_raw)
    end)

    it("decodes HTTP Basic credentials as RFC 6749 2.3.1 says", function()
      local id = "my:client id%+é/?&"
      local secret = "s3:cr%t + ü∂ :x=y"
      local cred = mime.b64(form_encode(id) .. ":" .. form_encode(secret))
      -- the encoded id has no ':' left, so the first ':' separates id from secret
      assert.is_nil(form_encode(id):find(":", 1, true))
      request(s.url .. "/token", {
        method = "POST",
        headers = { authorization = "Basic " .. cred,
                    ["content-type"] = "application/x-www-form-urlencoded" },
        body = "grant_type=client_credentials",
      })
      local r = s:last_request()
      assert.equal(id, r.basic.user)
      assert.equal(secret, r.basic.pass)
      assert.equal(form_encode(id) .. ":" .. form_encode(secret), r.basic.raw)
      assert.equal("Basic " .. cred, r.headers.authorization)
    end)

    it("numbers requests and resets", function()
      request(s.url .. "/a")
      request(s.url .. "/b")
      local reqs = s:requests()
      assert.same({ 1, 2 }, { reqs[1].seq, reqs[2].seq })
      assert.equal("/b", s:last_request().path)
      s:reset()
      assert.same({}, s:requests())
      assert.is_nil(s:last_request())
      assert.equal(0, s:connections())
    end)
  end)

  describe("counts connections", function()
    it("as one for two requests on one keep-alive connection", function()
      local sock = connect(s.port)
      sock:send(get_request("/one"))
      assert.equal(404, (read_response(sock)))
      sock:send(get_request("/two"))
      assert.equal(404, (read_response(sock)))
      sock:close()
      assert.equal(1, s:connections())
      local reqs = s:requests()
      assert.equal(2, #reqs)
      assert.equal(reqs[1].conn, reqs[2].conn)
    end)

    it("as two for two sockets", function()
      local a, b = connect(s.port), connect(s.port)
      a:send(get_request("/a"))
      b:send(get_request("/b"))
      assert.equal(404, (read_response(a)))
      assert.equal(404, (read_response(b)))
      a:close()
      b:close()
      assert.equal(2, s:connections())
      local reqs = s:requests()
      assert.are_not.equal(reqs[1].conn, reqs[2].conn)
    end)
  end)

  describe("scripted responses", function()
    it("send status, headers and json", function()
      s:script("/s", { status = 418, headers = { ["X-A"] = "1", ["Set-Cookie"] = { "a=1", "b=2" } },
                       json = { error = "teapot", n = 3 } })
      local code, h, body = request(s.url .. "/s")
      assert.equal(418, code)
      assert.equal("1", h["x-a"])
      assert.equal("application/json", h["content-type"])
      assert.same({ error = "teapot", n = 3 }, cjson.decode(body))
      -- one-shot: the next request falls back to the built-in 404
      assert.equal(404, (request(s.url .. "/s")))
    end)

    it("send a body as is, binary included", function()
      s:script("/b", { body = "plain \0\255 text", headers = { ["Content-Type"] = "text/plain" } })
      local code, h, body = request(s.url .. "/b")
      assert.equal(200, code)
      assert.equal("text/plain", h["content-type"])
      assert.equal("plain \0\255 text", body)
    end)

    it("queue a response several times, and set a default", function()
      s:script("/q", { status = 503 }, 2)
      s:script("/q", { status = 204 }, "default")
      s:script("/q2", { status = 202 }, 0)
      assert.equal(503, (request(s.url .. "/q")))
      assert.equal(503, (request(s.url .. "/q")))
      assert.equal(204, (request(s.url .. "/q")))
      assert.equal(204, (request(s.url .. "/q")))
      assert.equal(202, (request(s.url .. "/q2?x=1")))
    end)

    it("override the built-in token endpoint", function()
      s:script("/token", { status = 400, json = { error = "invalid_grant" } })
      local code, _, body = request(s.url .. "/token", { method = "POST", body = "grant_type=password",
        headers = { ["content-type"] = "application/x-www-form-urlencoded" } })
      assert.equal(400, code)
      assert.equal("invalid_grant", cjson.decode(body).error)
    end)

    it("wait delay_ms before answering", function()
      s:script("/slow", { delay_ms = 200, body = "late" })
      local t0 = proc.now()
      local code, _, body = request(s.url .. "/slow")
      assert.equal(200, code)
      assert.equal("late", body)
      assert.is_true(proc.now() - t0 >= 0.19)
    end)

    it("close the connection without answering", function()
      s:script("/close", { close = true })
      local code, err = request(s.url .. "/close")
      assert.is_nil(code)
      assert.equal("closed", err)
      assert.equal(1, #s:requests()) -- still recorded
    end)

    it("hang until the client gives up", function()
      s:script("/hang", { hang = true })
      local sock = connect(s.port)
      sock:settimeout(0.3)
      sock:send(get_request("/hang"))
      local t0 = proc.now()
      local line, err = sock:receive("*l")
      assert.is_nil(line)
      assert.equal("timeout", err)
      assert.is_true(proc.now() - t0 >= 0.25)
      sock:close()
    end)

    it("send body_size bytes with Content-Length", function()
      s:script("/big", { body_size = 100000 })
      local code, h, body = request(s.url .. "/big")
      assert.equal(200, code)
      assert.equal("100000", h["content-length"])
      assert.equal(string.rep("x", 100000), body)
    end)

    it("send chunked_size bytes chunked, without Content-Length", function()
      s:script("/chunked", { chunked_size = 40000 })
      local sock = connect(s.port)
      sock:send(get_request("/chunked"))
      local status, h, body = read_response(sock)
      sock:close()
      assert.equal(200, status)
      assert.is_nil(h["content-length"])
      assert.equal("chunked", h["transfer-encoding"])
      assert.equal(string.rep("x", 40000), body)
    end)

    it("truncate: announce more bytes than are sent, then close", function()
      s:script("/trunc", { body = "0123456789", truncate = 5 })
      local sock = connect(s.port)
      sock:send(get_request("/trunc"))
      local ok, err, status, h, partial = read_response(sock)
      sock:close()
      assert.is_nil(ok)
      assert.equal("closed", err)
      assert.equal(200, status)
      assert.equal("15", h["content-length"])
      assert.equal("0123456789", partial)
    end)

    it("write raw bytes for malformed answers", function()
      s:script("/raw", { raw = "HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nhi" })
      local sock = connect(s.port)
      sock:send(get_request("/raw"))
      local all = sock:receive("*a")
      sock:close()
      assert.equal("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nhi", all)
    end)

    it("reject a bad script", function()
      assert.has_error(function() s:script("no-slash", {}) end)
      assert.has_error(function() s:script("/x", {}, -1) end)
    end)
  end)

  describe("built-in OAuth endpoints", function()
    local function token(body)
      local code, h, rbody = request(s.url .. "/token", { method = "POST", body = body,
        headers = { ["content-type"] = "application/x-www-form-urlencoded" } })
      return code, cjson.decode(rbody), h
    end

    it("issue tokens per grant type", function()
      local code, t, h = token("grant_type=authorization_code&code=abc&redirect_uri=x")
      assert.equal(200, code)
      assert.equal("application/json", h["content-type"])
      assert.equal("no-store", h["cache-control"])
      assert.matches("^at%-%x+$", t.access_token)
      assert.matches("^rt%-%x+$", t.refresh_token)
      assert.equal("Bearer", t.token_type)
      assert.equal(3600, t.expires_in)
      assert.is_nil(t.scope)

      local _, t2 = token("grant_type=password&username=u&password=p&scope=read+write")
      assert.are_not.equal(t.access_token, t2.access_token)
      assert.equal("read write", t2.scope)
      assert.is_string(t2.refresh_token)

      local _, t3 = token("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
      assert.is_string(t3.refresh_token)

      local _, t4 = token("grant_type=client_credentials")
      assert.is_string(t4.access_token)
      assert.is_nil(t4.refresh_token)
    end)

    it("refuse unknown and incomplete grants", function()
      local code, e = token("grant_type=urn:example:nope")
      assert.equal(400, code)
      assert.same({ error = "unsupported_grant_type" }, e)
      code, e = token("code=abc")
      assert.equal(400, code)
      assert.equal("invalid_request", e.error)
      code, e = token("grant_type=authorization_code")
      assert.equal(400, code)
      assert.equal("invalid_request", e.error)
    end)

    it("protect /api with issued tokens, by header or query", function()
      local t = s:issue()
      local bearer = { authorization = "Bearer " .. t.access_token }
      local code, _, body = request(s.url .. "/api/items/1", { headers = bearer })
      assert.equal(200, code)
      assert.same({ ok = true, path = "/api/items/1", method = "GET" }, cjson.decode(body))
      assert.equal(200, (request(s.url .. "/api?access_token=" .. t.access_token)))

      local h
      code, h = request(s.url .. "/api", { headers = { authorization = "Bearer at-forged" } })
      assert.equal(401, code)
      assert.equal('Bearer error="invalid_token"', h["www-authenticate"])
      assert.equal(401, (request(s.url .. "/api")))

      s:revoke_all()
      assert.equal(401, (request(s.url .. "/api", { headers = bearer })))
    end)

    it("redirect /redirect to /token and answer 404 elsewhere", function()
      local sock = connect(s.port)
      sock:send(get_request("/redirect"))
      local status, h = read_response(sock)
      sock:close()
      assert.equal(302, status)
      assert.equal("/token", h.location)
      local code, _, body = request(s.url .. "/elsewhere")
      assert.equal(404, code)
      assert.same({ error = "not_found" }, cjson.decode(body))
      assert.equal(404, (request(s.url .. "/token"))) -- GET /token is not the endpoint
    end)

    it("issue a token through the admin API", function()
      local t = s:issue("openid email")
      assert.matches("^at%-", t.access_token)
      assert.equal("openid email", t.scope)
      assert.equal(0, #s:requests()) -- admin calls are not recorded
    end)
  end)
end)

describe("TLS", function()
  local ssl = require "ssl"
  local c, s

  setup(function()
    c = certs.make()
    s = server.start{ tls = { cert = c.cert, key = c.key } }
  end)
  teardown(function()
    if s then s:stop() end
    certs.cleanup(c)
  end)

  local function tls_connect(cafile)
    local tcp = connect(s.port)
    local conn = assert(ssl.wrap(tcp, { mode = "client", protocol = "any", verify = "peer",
                                        cafile = cafile, options = "all" }))
    conn:settimeout(5)
    local ok, err = conn:dohandshake()
    if not ok then conn:close(); return nil, err end
    return conn
  end

  it("made the certificates", function()
    for _, k in ipairs{ "ca_file", "cert", "key", "other_ca_file" } do
      assert.is_string(proc.read_file(c[k]), k)
    end
    local _, _, text = proc.run("openssl x509 -noout -text -in " .. proc.shell_quote(c.cert))
    assert.matches("IP Address:127.0.0.1", text, 1, true)
    assert.matches("DNS:localhost", text, 1, true)
  end)

  it("serves HTTPS verified against ca_file", function()
    assert.equal("https://127.0.0.1:" .. s.port, s.url)
    local conn = assert(tls_connect(c.ca_file))
    local t = s:issue()
    conn:send(get_request("/api/x", "Authorization: Bearer " .. t.access_token .. "\r\n"))
    local status, _, body = read_response(conn)
    conn:close()
    assert.equal(200, status)
    assert.equal("/api/x", cjson.decode(body).path)
    local r = s:last_request()
    assert.is_number(r.conn) -- found through the TLS socket's TCP parent
    assert.equal("Bearer " .. t.access_token, r.headers.authorization)
  end)

  it("fails verification against other_ca_file", function()
    local conn, err = tls_connect(c.other_ca_file)
    assert.is_nil(conn)
    assert.matches("certificate verify failed", err)
  end)

  it("counts TLS connections like plain ones", function()
    s:reset()
    local conn = assert(tls_connect(c.ca_file))
    conn:send(get_request("/a"))
    assert.equal(404, (read_response(conn)))
    conn:send(get_request("/b"))
    assert.equal(404, (read_response(conn)))
    conn:close()
    assert.equal(1, s:connections())
  end)

  it("cleans up its directory", function()
    local c2 = certs.make()
    certs.cleanup(c2)
    assert.is_nil(proc.read_file(c2.ca_file))
    certs.cleanup(c2) -- twice is fine
  end)
end)
