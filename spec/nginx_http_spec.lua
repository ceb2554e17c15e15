-- The HTTP/1.1 parser of the ngx transport (smartauth.ngx.http), fed by a
-- fake cosocket: every shape of answer, and hostile ones (malformed,
-- oversized, truncated, slow). Runs on any Lua; the same client inside
-- nginx is in nginx_transport_spec.lua.
local http = require "smartauth.ngx.http"
local url = require "smartauth.url"

-- A cosocket that hands out `chunks` one at a time (receiveany), or exactly
-- n bytes (receive); "TIMEOUT" in the list stands for a read that times out.
local function fake(chunks)
  local sock = { chunks = chunks, i = 1, buf = "", reads = 0 }
  local function next_chunk()
    local c = sock.chunks[sock.i]
    sock.i = sock.i + 1
    return c
  end
  function sock.receiveany(_, max)
    sock.reads = sock.reads + 1
    if sock.buf == "" then
      local c = next_chunk()
      if c == nil then return nil, "closed" end
      if c == "TIMEOUT" then return nil, "timeout" end
      sock.buf = c
    end
    local out = sock.buf:sub(1, max)
    sock.buf = sock.buf:sub(max + 1)
    return out
  end
  function sock.receive(_, n)
    sock.reads = sock.reads + 1
    while #sock.buf < n do
      local c = next_chunk()
      if c == nil then return nil, "closed", sock.buf end
      if c == "TIMEOUT" then return nil, "timeout", sock.buf end
      sock.buf = sock.buf .. c
    end
    local out = sock.buf:sub(1, n)
    sock.buf = sock.buf:sub(n + 1)
    return out
  end
  return sock
end

local function read(chunks, method, max_body, before)
  if type(chunks) == "string" then chunks = { chunks } end
  return http.read_response(fake(chunks), method or "GET", max_body, before)
end

local function fails(kind, pattern, chunks, method, max_body)
  local res, err = read(chunks, method, max_body)
  assert.is_nil(res)
  assert.are.equal(kind, err.kind)
  if pattern then assert.matches(pattern, err.description) end
  return err
end

describe("ngx.http parser", function()
  it("reads a Content-Length answer, header names in lower case", function()
    local res = assert(read { "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
      "Content-Length: 11\r\n\r\n{\"a\":", "\"bcd\"}" })
    assert.are.equal(200, res.status)
    assert.are.equal('{"a":"bcd"}', res.body)
    assert.are.equal("application/json", res.headers["content-type"])
    assert.is_true(res.keepalive)
  end)

  it("reads a chunked answer, with chunk extensions and trailers, byte by byte", function()
    local raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n"
      .. "E\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n"
    local chunks = {}
    for i = 1, #raw do chunks[i] = raw:sub(i, i) end
    local res = assert(read(chunks))
    assert.are.equal("Wikipedia in\r\n\r\nchunks.", res.body)
    assert.is_true(res.keepalive)
  end)

  it("reads a body that ends when the server closes, and does not keep that connection", function()
    local res = assert(read { "HTTP/1.1 200 OK\r\n\r\nhello ", "world" })
    assert.are.equal("hello world", res.body)
    assert.is_false(res.keepalive)
  end)

  it("joins repeated headers and accepts a bare LF", function()
    local res = assert(read "HTTP/1.1 200 OK\nSet-Cookie: a=1\nSet-Cookie: b=2\nContent-Length: 0\n\n")
    assert.are.equal("a=1, b=2", res.headers["set-cookie"])
  end)

  it("skips 1xx answers and reads no body for HEAD, 204 and 304", function()
    local res = assert(read "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert.are.equal(204, res.status)
    assert.are.equal("", res.body)
    res = assert(read("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD"))
    assert.are.equal("", res.body)
  end)

  it("does not keep HTTP/1.0 connections, nor those the server closes, nor those with extra bytes", function()
    assert.is_false(assert(read "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keepalive)
    assert.is_true(assert(read "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keepalive)
    assert.is_false(assert(read "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n")
      .keepalive)
    assert.is_false(assert(read "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n").keepalive)
  end)

  it("gives a redirect back as an answer (it follows none)", function()
    local res = assert(read "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n")
    assert.are.equal(302, res.status)
  end)

  describe("refuses malformed answers as http errors:", function()
    for _, line in ipairs {
      "HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "ICY 200 OK", "HTTP/1.1 200OK",
      "HTTP/1.1 200 O\1K", "HTTP/1.1 099 Low", "HTTP/1.1 600 High", "http/1.1 200 OK", "",
      "HTTP/3.0 200 OK", " HTTP/1.1 200 OK",
    } do
      it(("status line %q"):format(line), function()
        fails("http", "^malformed response: bad status", line .. "\r\nContent-Length: 0\r\n\r\n")
      end)
    end
    for _, h in ipairs { "No colon here", "Bad Name: x", ": empty name", "X-A: a\1b", "X-\0: v" } do
      it(("header line %q"):format(h), function()
        fails("http", "^malformed response: bad header line", "HTTP/1.1 200 OK\r\n" .. h .. "\r\n\r\n")
      end)
    end
    it("obsolete line folding", function()
      fails("http", "folding", "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 0\r\n\r\n")
    end)
    for _, cl in ipairs { "abc", "-5", "1, 2", "12345678901234567890", "" } do
      it(("Content-Length %q"):format(cl), function()
        fails("http", "Content%-Length", "HTTP/1.1 200 OK\r\nContent-Length: " .. cl .. "\r\n\r\nx")
      end)
    end
    for _, size in ipairs { "zz", "-1", "123456789", "", " 5", "0x5" } do
      it(("chunk size %q"):format(size), function()
        fails("http", "chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. size ..
          "\r\nhello\r\n0\r\n\r\n")
      end)
    end
    it("a chunk not followed by CRLF", function()
      fails("http", "CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
    end)
    it("a transfer encoding other than chunked", function()
      fails("http", "transfer encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
    end)
  end)

  describe("keeps the libcurl engine's limits:", function()
    it("201 headers", function()
      local t = { "HTTP/1.1 200 OK\r\n" }
      for i = 1, 201 do t[#t + 1] = "X-" .. i .. ": v\r\n" end
      t[#t + 1] = "\r\n"
      fails("http", "^response has more than 200 headers$", table.concat(t))
    end)
    it("headers over 192 KiB in all", function()
      local t = { "HTTP/1.1 200 OK\r\n" }
      for i = 1, 100 do t[#t + 1] = "X-" .. i .. ": " .. ("v"):rep(2000) .. "\r\n" end
      t[#t + 1] = "\r\n"
      fails("http", "^response headers exceed the limit of 196608 bytes$", table.concat(t))
    end)
    it("one endless header line, without reading it all", function()
      local chunks = { "HTTP/1.1 200 OK\r\nX-Long: " }
      for i = 2, 1000 do chunks[i] = ("v"):rep(16384) end
      local sock = fake(chunks)
      local res, err = http.read_response(sock, "GET")
      assert.is_nil(res)
      assert.matches("^response headers exceed", err.description)
      assert.is_true(sock.reads < 20)
    end)
    it("a Content-Length over max_body, before reading the body", function()
      local sock = fake { "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", ("x"):rep(1001) }
      local res, err = http.read_response(sock, "GET", 1000)
      assert.is_nil(res)
      assert.are.equal("response body exceeds the limit of 1000 bytes", err.description)
      assert.are.equal(1, sock.reads)
    end)
    it("chunks adding up to more than max_body", function()
      local body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      for _ = 1, 3 do body = body .. "190\r\n" .. ("x"):rep(400) .. "\r\n" end
      fails("http", "exceeds the limit of 1000 bytes", body .. "0\r\n\r\n", "GET", 1000)
    end)
    it("a body until close longer than max_body", function()
      fails("http", "exceeds the limit of 10 bytes", { "HTTP/1.1 200 OK\r\n\r\n", ("x"):rep(11) }, "GET", 10)
    end)
    it("exactly max_body is accepted", function()
      assert.are.equal(("x"):rep(10), assert(read({ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        ("x"):rep(10) }, "GET", 10)).body)
    end)
  end)

  describe("truncated and slow answers", function()
    it("nothing at all: a network error", function()
      local err = fails("network", "closed", {})
      assert.is_true(err.empty)
      assert.is_true(err.retryable)
    end)
    it("a body cut short: a network error", function()
      fails("network", "closed reading the response body", { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" })
    end)
    it("headers cut short", function()
      fails("network", "closed reading the response headers", { "HTTP/1.1 200 OK\r\nX-A: 1" })
    end)
    it("chunks cut short", function()
      fails("network", "closed", { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel" })
    end)
    it("a read that times out: a timeout error", function()
      local err = fails("timeout", "timed out reading the response body",
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "TIMEOUT" })
      assert.is_true(err.retryable)
    end)
    it("a server sending one byte at a time past the deadline", function()
      local chunks = {}
      for i = 1, 100 do chunks[i] = "H" end
      local calls = 0
      local res, err = read(chunks, "GET", nil, function(what)
        calls = calls + 1
        if calls > 10 then return nil, require("smartauth.errors").new("timeout", "timed out " .. what) end
        return true, 1
      end)
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
    end)
  end)

  describe("the request bytes", function()
    local u = url.parse("https://id.example:8443/token?x=1")
    it("has the Host with a non-default port, Accept, and Content-Length for a POST", function()
      local b = assert(http.build("POST", u, { "Content-Type: application/x-www-form-urlencoded" }, "a=1"))
      assert.are.equal("POST /token?x=1 HTTP/1.1\r\nHost: id.example:8443\r\n" ..
        "Content-Type: application/x-www-form-urlencoded\r\nAccept: */*\r\nContent-Length: 3\r\n\r\na=1", b)
      b = assert(http.build("GET", url.parse("http://127.0.0.1/"), { "Accept: application/json" }))
      assert.are.equal("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n", b)
    end)
    it("refuses a header that would split the request", function()
      for _, h in ipairs { "X-A: 1\r\nX-B: 2", "X-A: 1\n", "X-A: \0", "no colon", 42 } do
        local b, err = http.build("GET", u, { h })
        assert.is_nil(b)
        assert.are.equal("config", err.kind)
      end
    end)
    it("does not let a caller's Host, Content-Length or Transfer-Encoding through", function()
      local b = assert(http.build("POST", u, { "Host: evil", "Content-Length: 99", "Transfer-Encoding: chunked" }, "x"))
      assert.is_nil(b:find("evil", 1, true))
      assert.is_nil(b:find("99", 1, true))
      assert.is_nil(b:find("chunked", 1, true))
    end)
  end)
end)
