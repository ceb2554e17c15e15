-- Mutual TLS: client_cert, client_key (PEM files or PEM text) and
-- client_key_password against a real nginx that requires a client
-- certificate from a CA made in the test; the right certificate on every
-- request (idle handles included); the key password kept secret.
local smartauth = require "smartauth"
local http = require "smartauth.http"
local core_http = require "smartauth.core_http"
local vault = require "smartauth.vault"
local certs = require "helpers.certs"
local nginx = require "helpers.nginx"
local proc = require "helpers.proc"

local KEY_PW = "k3y-Passw0rd-for-tests"

local function no_secret(err, key_text)
  local text = tostring(err) .. " " .. tostring(err.description)
  assert.is_nil(text:find(KEY_PW, 1, true), "the key password shows: " .. text)
  if key_text then
    local body = key_text:match("%-%-%-%-%-\n(.-)\n") -- the first line of the key's base64
    assert.is_nil(text:find(body, 1, true), "the key shows: " .. text)
  end
end

describe("mutual TLS", function()
  local c, a, b, stranger, n

  setup(function()
    c = certs.make()
    a = certs.client(c, "client-a", KEY_PW)
    b = certs.client(c, "client-b", KEY_PW)
    stranger = certs.client(c, "stranger", KEY_PW, { other_ca = true })
    n = nginx.start { cert = c.cert, key = c.key, client_ca = c.ca_file }
  end)
  teardown(function()
    if n then n:stop() end
    certs.cleanup(c)
  end)

  local function token_req(extra)
    local req = { method = "POST", url = n.url .. "/token", ca_file = c.ca_file,
      headers = { "Content-Type: application/x-www-form-urlencoded" }, body = "grant_type=client_credentials" }
    for k, v in pairs(extra or {}) do req[k] = v end
    return req
  end
  local function access_token(res)
    assert.equal(200, res.status, res.body)
    return res.body:match('"access_token":"([^"]*)"')
  end

  describe("in the engine", function()
    it("presents the certificate from PEM files", function()
      local res = assert(http.request(token_req { client_cert = a.cert, client_key = a.key }))
      assert.equal("at-" .. a.serial, access_token(res))
    end)

    it("presents the certificate from PEM text", function()
      local res = assert(http.request(token_req { client_cert = proc.read_file(a.cert),
        client_key = proc.read_file(a.key) }))
      assert.equal("at-" .. a.serial, access_token(res))
    end)

    it("takes the key from the certificate's file when there is no client_key", function()
      local both = c.dir .. "/client-a.both.pem"
      local f = assert(io.open(both, "wb"))
      f:write(proc.read_file(a.cert), proc.read_file(a.key))
      f:close()
      local res = assert(http.request(token_req { client_cert = both }))
      os.remove(both)
      assert.equal("at-" .. a.serial, access_token(res))
    end)

    it("decrypts an encrypted key with client_key_password, from a file or text", function()
      local res = assert(http.request(token_req { client_cert = a.cert, client_key = a.enc_key,
        client_key_password = KEY_PW }))
      assert.equal("at-" .. a.serial, access_token(res))
      res = assert(http.request(token_req { client_cert = a.cert, client_key = proc.read_file(a.enc_key),
        client_key_password = KEY_PW }))
      assert.equal("at-" .. a.serial, access_token(res))
    end)

    it("gets nginx's 400 without a certificate, or with one another CA signed", function()
      local res = assert(http.request(token_req()))
      assert.equal(400, res.status)
      assert.matches("No required SSL certificate", res.body, 1, true)
      res = assert(http.request(token_req { client_cert = stranger.cert, client_key = stranger.key }))
      assert.equal(400, res.status)
    end)

    it("fails a wrong key password without showing it or the key", function()
      for _, key in ipairs { a.enc_key, proc.read_file(a.enc_key) } do
        local res, err = http.request(token_req { client_cert = a.cert, client_key = key,
          client_key_password = "wrong-" .. KEY_PW })
        assert.is_nil(res)
        assert.equal("config", err.kind)
        assert.matches("client_key_password", err.description, 1, true)
        assert.is_nil(tostring(err):find("wrong-", 1, true))
        no_secret(err, proc.read_file(a.enc_key))
      end
    end)

    it("fails an encrypted key without a password, never asking on a terminal", function()
      local res, err = http.request(token_req { client_cert = a.cert, client_key = a.enc_key })
      assert.is_nil(res)
      assert.equal("config", err.kind)
      assert.matches("encrypted", err.description, 1, true)
    end)

    it("fails a key that is not one, or a file that is not there", function()
      local _, err = http.request(token_req { client_cert = a.cert,
        client_key = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n" })
      assert.equal("config", err.kind)
      _, err = http.request(token_req { client_cert = a.cert, client_key = c.dir .. "/absent.key" })
      assert.equal("config", err.kind)
      assert.matches("absent.key", err.description, 1, true)
    end)

    it("fails a key that does not match the certificate as tls", function()
      -- a new engine: libcurl would reuse a connection made with the same
      -- certificate (and its own key) for this request
      local engine = core_http.engine()
      local res, kind = engine:request(token_req { client_cert = a.cert, client_key = b.key })
      engine:close()
      assert.is_nil(res)
      assert.equal("tls", kind)
    end)

    -- an idle handle stays set up for its last request: a request with
    -- another certificate (or none) must never go out with the old one
    it("never reuses a handle set up for another certificate", function()
      local engine = core_http.engine()
      local seq = {
        { client_cert = a.cert, client_key = a.key, want = "at-" .. a.serial },
        { want = 400 },
        { client_cert = a.cert, client_key = a.key, want = "at-" .. a.serial },
        { client_cert = b.cert, client_key = b.key, want = "at-" .. b.serial },
        { client_cert = b.cert, client_key = b.enc_key, client_key_password = KEY_PW, want = "at-" .. b.serial },
        { client_cert = a.cert, client_key = a.key, want = "at-" .. a.serial },
        { client_cert = a.cert, client_key = a.key, want = "at-" .. a.serial },
        { want = 400 },
      }
      for i, step in ipairs(seq) do
        local want = step.want
        step.want = nil
        local res = assert(engine:request(token_req(step)))
        if want == 400 then
          assert.equal(400, res.status, "request " .. i)
        else
          assert.equal(want, access_token(res), "request " .. i)
        end
      end
      engine:close()
    end)
  end)

  describe("for a provider", function()
    local function provider(extra)
      local o = { token_endpoint = n.url .. "/token", client_id = "cid", ca_file = c.ca_file, retry = false }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(smartauth.provider(o))
    end

    it("gets a token and calls an API with its certificate", function()
      local p = provider { client_cert = a.cert, client_key = a.enc_key, client_key_password = KEY_PW }
      local tok = assert(p:client_credentials())
      assert.equal("at-" .. a.serial, tok.access_token)
      local res = assert(p:request { url = n.url .. "/api" })
      assert.equal(200, res.status)
      assert.matches("CN=client-a", res.body, 1, true)
    end)

    -- libcurl keeps connections in the engine's pool, shared by every
    -- provider of the process: a provider without a certificate must never
    -- get a connection another one opened with its certificate, nor the
    -- other way round (nor resume its TLS session)
    it("never shares a connection between providers with and without a certificate", function()
      local with = provider { client_cert = a.cert, client_key = a.key }
      local without = provider()
      local other = provider { client_cert = b.cert, client_key = b.key }
      for round = 1, 3 do
        local res = assert(with:request { url = n.url .. "/api", token = "t" })
        assert.equal(200, res.status, "round " .. round)
        assert.matches("CN=client-a", res.body, 1, true)
        res = assert(without:request { url = n.url .. "/api", token = "t" })
        assert.equal(400, res.status, "round " .. round .. ": a connection with a certificate was reused")
        res = assert(other:request { url = n.url .. "/api", token = "t" })
        assert.equal(200, res.status, "round " .. round)
        assert.matches("CN=client-b", res.body, 1, true)
      end
    end)

    it("keeps them apart inside tasks running at the same time", function()
      local with = provider { client_cert = a.cert, client_key = a.key }
      local without = provider()
      local got = {}
      for i = 1, 6 do
        smartauth.spawn(function()
          local p = i % 2 == 0 and with or without
          local res = assert(p:request { url = n.url .. "/api", token = "t" })
          got[i] = res.status .. (res.body:match("CN=[%w-]+") or "")
        end)
      end
      smartauth.run()
      for i = 1, 6 do
        assert.equal(i % 2 == 0 and "200CN=client-a" or "400", got[i], "task " .. i)
      end
    end)

    it("reports nginx's 400 without a certificate as an http error", function()
      local tok, err = provider():client_credentials()
      assert.is_nil(tok)
      assert.equal("http", err.kind)
      assert.equal(400, err.status)
    end)

    it("reports a wrong key password as a config error that never shows it", function()
      local p = provider { client_cert = a.cert, client_key = proc.read_file(a.enc_key),
        client_key_password = "wrong-" .. KEY_PW }
      local tok, err = p:client_credentials()
      assert.is_nil(tok)
      assert.equal("config", err.kind)
      assert.is_nil(tostring(err):find("wrong-", 1, true))
      no_secret(err, proc.read_file(a.enc_key))
    end)

    it("keeps the key and its password in the vault, not in the options", function()
      local key_text = proc.read_file(a.key)
      local p = provider { client_cert = a.cert, client_key = key_text, client_key_password = KEY_PW }
      assert.equal(a.cert, p.options.client_cert)
      assert.is_nil(p.options.client_key)
      assert.is_nil(p.options.client_key_password)
      local list = vault.secrets_of(p)
      local has = {}
      for _, v in ipairs(list) do has[v] = true end
      assert.is_true(has[KEY_PW])
      assert.is_true(has[key_text])
    end)

    it("checks the options", function()
      local function bad(o, option)
        local p, err = smartauth.provider(o)
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.equal(option, err.option)
        assert.is_nil(tostring(err):find(KEY_PW, 1, true))
      end
      bad({ client_cert = 1 }, "client_cert")
      bad({ client_cert = a.cert, client_key = {} }, "client_key")
      bad({ client_key = a.key }, "client_key")
      bad({ client_key_password = KEY_PW }, "client_key_password")
      bad({ client_cert = a.cert, client_key_password = 5 }, "client_key_password")
    end)
  end)
end)
