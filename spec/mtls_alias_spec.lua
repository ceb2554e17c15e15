-- RFC 8705 without TLS in the way: the mTLS client authentication methods
-- (the form names the client, nothing else), which endpoints a provider
-- that speaks mTLS calls (mtls_endpoint_aliases, §5), hostile aliases, and
-- the x5t#S256 thumbprint of a certificate (§3.1) against openssl's.
-- The handshake itself is in mtls_spec.lua (nginx) and
-- interop/mtls_interop_spec.lua (oidc-provider).
local smartauth = require "smartauth"
local server = require "helpers.server"
local certs = require "helpers.certs"
local proc = require "helpers.proc"

local q = proc.shell_quote

describe("mutual TLS endpoints and client authentication", function()
  local s, c, a, n

  setup(function()
    s = server.start()
    c = certs.make()
    a = certs.client(c, "client-a", "pw-for-tests")
  end)
  teardown(function()
    if s then s:stop() end
    certs.cleanup(c)
  end)
  before_each(function() s:reset() end)

  local PATHS = {
    token_endpoint = "/token", revocation_endpoint = "/revoke", introspection_endpoint = "/introspect",
    userinfo_endpoint = "/userinfo", device_authorization_endpoint = "/device",
  }

  -- A discovery document under a fresh issuer path, with the aliases under
  -- /mtls/...; fields in `extra` replace or add to it.
  local function discovered(opts, extra, aliases)
    n = (n or 0) + 1
    local issuer = s.url .. "/idp" .. n
    local doc = { issuer = issuer, authorization_endpoint = issuer .. "/authorize" }
    local al = {}
    for k, path in pairs(PATHS) do
      doc[k] = s.url .. path
      al[k] = s.url .. "/mtls" .. path
    end
    al.authorization_endpoint = s.url .. "/mtls/authorize" -- never an alias (a browser visits it)
    al.jwks_uri = s.url .. "/mtls/jwks"
    doc.mtls_endpoint_aliases = aliases == nil and al or aliases
    for k, v in pairs(extra or {}) do doc[k] = v end
    s:script("/idp" .. n .. "/.well-known/openid-configuration", { json = doc }, 0)
    local o = { issuer = issuer, client_id = "cid", retry = false }
    for k, v in pairs(opts) do o[k] = v end
    return smartauth.provider(o)
  end

  local TOKEN = { json = { access_token = "at-1", token_type = "Bearer", expires_in = 3600 } }
  local function token_paths()
    s:script("/token", TOKEN, 0)
    s:script("/mtls/token", TOKEN, 0)
  end
  local function paths()
    local out = {}
    for _, r in ipairs(s:requests()) do
      if not r.path:find("well-known", 1, true) then out[#out + 1] = r.path end
    end
    return table.concat(out, " ")
  end

  describe("client_auth tls_client_auth and self_signed_tls_client_auth", function()
    for _, method in ipairs { "tls_client_auth", "self_signed_tls_client_auth" } do
      it(method .. " sends client_id only, to the token endpoint's alias", function()
        token_paths()
        local p = assert(discovered { client_auth = method, client_cert = a.cert, client_key = a.key })
        local tok = assert(p:client_credentials { scope = "api" })
        assert.equal("at-1", tok.access_token)
        local r = s:last_request()
        assert.equal("/mtls/token", r.path)
        assert.same({ client_id = "cid", grant_type = "client_credentials", scope = "api" }, r.form)
        assert.is_nil(r.headers.authorization)
        assert.is_nil(r.basic)
        -- fixed bytes: a second grant is the prepared request, still right
        assert(p:client_credentials { scope = "api" })
        assert.same({ client_id = "cid", grant_type = "client_credentials", scope = "api" }, s:last_request().form)
      end)

      it(method .. " without client_cert is a config error naming it", function()
        local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "cid",
          client_auth = method }
        assert.is_nil(p)
        assert.equal("config", err.kind)
        assert.equal("client_cert", err.option)
        assert.matches(method, err.description, 1, true)
        -- a key alone is not a certificate
        p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "cid",
          client_auth = method, client_key = a.key }
        assert.is_nil(p)
        assert.equal("config", err.kind)
      end)
    end

    it("is checked against the enum like every other method", function()
      local p, err = smartauth.provider { token_endpoint = s.url .. "/token", client_id = "cid",
        client_auth = "tls_client_auth_x", client_cert = a.cert }
      assert.is_nil(p)
      assert.equal("config", err.kind)
      assert.equal("client_auth", err.option)
    end)
  end)

  describe("mtls_endpoint_aliases", function()
    it("sends every aliased request of an mTLS client to its alias", function()
      for _, path in pairs(PATHS) do s:script("/mtls" .. path, { json = {} }, 0) end
      s:script("/mtls/token", TOKEN, 0)
      s:script("/mtls/introspect", { json = { active = true } }, 0)
      s:script("/mtls/userinfo", { json = { sub = "u1" } }, 0)
      s:script("/mtls/device", { json = { device_code = "dc", user_code = "UC", verification_uri =
        s.url .. "/verify", expires_in = 600, interval = 5 } }, 0)
      local p = assert(discovered { client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key })
      local tok = assert(p:client_credentials())
      assert(p:introspect(tok))
      assert(p:revoke(tok))
      assert(p:userinfo(tok))
      assert(p:device_authorization())
      assert.equal("/mtls/token /mtls/introspect /mtls/revoke /mtls/userinfo /mtls/device", paths())
      assert.equal(s.url .. "/mtls/token", p:endpoint("token_endpoint"))
      -- the browser's endpoint and the key set are never aliased
      assert.equal(s.url .. "/idp" .. n .. "/authorize", p:endpoint("authorization_endpoint"))
      assert.is_nil(p:endpoint("jwks_uri"))
    end)

    it("are used with a client certificate when the server binds tokens to it", function()
      token_paths()
      local p = assert(discovered({ client_secret = "sec", client_cert = a.cert, client_key = a.key },
        { tls_client_certificate_bound_access_tokens = true }))
      assert(p:client_credentials())
      assert.equal("/mtls/token", paths())
      assert.equal("cid", s:last_request().basic.user)
    end)

    it("are not used with a certificate the server does not bind tokens to, nor without one", function()
      token_paths()
      local p = assert(discovered { client_secret = "sec", client_cert = a.cert, client_key = a.key })
      assert(p:client_credentials())
      p = assert(discovered({ client_secret = "sec" }, { tls_client_certificate_bound_access_tokens = true }))
      assert(p:client_credentials())
      assert.equal("/token /token", paths())
    end)

    it("follow use_mtls_endpoint_aliases when it is set", function()
      token_paths()
      local p = assert(discovered { client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key,
        use_mtls_endpoint_aliases = false })
      assert(p:client_credentials())
      p = assert(discovered { client_secret = "sec", client_cert = a.cert, client_key = a.key,
        use_mtls_endpoint_aliases = true })
      assert(p:client_credentials())
      assert.equal("/token /mtls/token", paths())
      local bad, err = smartauth.provider { issuer = s.url, client_id = "cid", use_mtls_endpoint_aliases = true }
      assert.is_nil(bad)
      assert.equal("config", err.kind)
      assert.equal("use_mtls_endpoint_aliases", err.option)
      bad, err = smartauth.provider { issuer = s.url, client_id = "cid", use_mtls_endpoint_aliases = "yes" }
      assert.is_nil(bad)
      assert.equal("use_mtls_endpoint_aliases", err.option)
    end)

    it("never replace an endpoint set as an option", function()
      token_paths()
      local p = assert(discovered { client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key,
        token_endpoint = s.url .. "/token" })
      assert(p:client_credentials())
      assert.equal("/token", paths())
    end)

    it("may name the conventional endpoint itself, or only some endpoints", function()
      token_paths()
      local p = assert(discovered({ client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key },
        nil, { token_endpoint = s.url .. "/token" }))
      assert(p:client_credentials())
      assert.equal("/token", paths())
      assert.equal(s.url .. "/revoke", p:endpoint("revocation_endpoint"))
    end)

    describe("hostile", function()
      local function refused(aliases, field)
        local p = assert(discovered({ client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key },
          nil, aliases))
        local tok, err = p:client_credentials()
        assert.is_nil(tok)
        assert.equal("validation", err.kind)
        assert.matches("'" .. field .. "'", err.description, 1, true)
        -- nothing reached the conventional endpoint instead
        assert.equal("", paths())
      end

      it("refuses aliases that are not absolute URLs it may call", function()
        token_paths()
        refused({ token_endpoint = "/mtls/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = "mtls/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = "ftp://127.0.0.1/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = "http://idp.example.com/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ userinfo_endpoint = "javascript:alert(1)" }, "mtls_endpoint_aliases.userinfo_endpoint")
        refused({ revocation_endpoint = 42 }, "mtls_endpoint_aliases.revocation_endpoint")
        refused({ introspection_endpoint = { "x" } }, "mtls_endpoint_aliases.introspection_endpoint")
        refused({ token_endpoint = "https:///token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = "https://127.0.0.1:99999/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = "https://user:pw@127.0.0.1/token" }, "mtls_endpoint_aliases.token_endpoint")
        refused({ token_endpoint = s.url .. "/mtls/token\r\nX-Evil: 1" }, "mtls_endpoint_aliases.token_endpoint")
      end)

      it("refuses aliases that are not an object", function()
        token_paths()
        refused("https://127.0.0.1/mtls", "mtls_endpoint_aliases")
        refused(17, "mtls_endpoint_aliases")
        refused({ s.url .. "/mtls/token" }, "mtls_endpoint_aliases")
      end)

      it("ignores broken aliases a provider that does not speak mTLS would not use", function()
        token_paths()
        local p = assert(discovered({ client_secret = "sec" }, nil, { token_endpoint = "/relative" }))
        assert(p:client_credentials())
        p = assert(discovered({ client_secret = "sec" }, nil, "not an object"))
        assert(p:client_credentials())
        assert.equal("/token /token", paths())
      end)

      it("ignores a JSON null and aliases for endpoints it does not call with its certificate", function()
        token_paths()
        local p = assert(discovered({ client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key },
          { mtls_endpoint_aliases = require("cjson").null }))
        assert(p:client_credentials())
        p = assert(discovered({ client_auth = "tls_client_auth", client_cert = a.cert, client_key = a.key },
          nil, { end_session_endpoint = "/x", registration_endpoint = 5 }))
        assert(p:client_credentials())
        assert.equal("/token /token", paths())
      end)
    end)
  end)
end)

describe("smartauth.cert_thumbprint", function()
  local c, a

  setup(function()
    c = certs.make()
    a = certs.client(c, "client-a", "pw-for-tests")
  end)
  teardown(function() certs.cleanup(c) end)

  -- openssl's own: SHA-256 of the DER, base64url without padding
  local function openssl_thumbprint(path)
    local ok, _, out = proc.run("openssl x509 -in " .. q(path) ..
      " -outform DER | openssl dgst -sha256 -binary | base64 -w0")
    assert(ok)
    return (out:gsub("%s+$", ""):gsub("+", "-"):gsub("/", "_"):gsub("=+$", ""))
  end

  it("is the base64url SHA-256 of the DER, from a file or PEM text", function()
    for _, path in ipairs { a.cert, c.cert, c.ca_file } do
      local want = openssl_thumbprint(path)
      assert.equal(43, #want)
      assert.equal(want, smartauth.cert_thumbprint(path))
      assert.equal(want, smartauth.cert_thumbprint(proc.read_file(path)))
    end
  end)

  it("takes the first certificate of a chain, after a key or text, with CRLF lines", function()
    local leaf, ca = proc.read_file(a.cert), proc.read_file(c.ca_file)
    local want = openssl_thumbprint(a.cert)
    assert.equal(want, smartauth.cert_thumbprint(leaf .. ca))
    assert.equal(want, smartauth.cert_thumbprint("subject=CN = x\n" .. proc.read_file(a.key) .. leaf))
    assert.equal(want, smartauth.cert_thumbprint((leaf:gsub("\n", "\r\n"))))
  end)

  it("refuses what is not one PEM certificate", function()
    local leaf = proc.read_file(a.cert)
    local body = leaf:match("%-\n(.-)\n%-")
    local function bad(text, kind)
      local t, err = smartauth.cert_thumbprint(text)
      assert.is_nil(t)
      assert.equal(kind or "validation", err.kind)
    end
    bad(proc.read_file(a.key))                                    -- a key, no certificate
    bad("-----BEGIN CERTIFICATE-----\n")                           -- no end
    bad("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n") -- empty
    bad("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    -- truncated: whole base64 lines dropped, the DER length says more
    bad("-----BEGIN CERTIFICATE-----\n" .. body:sub(1, 128) .. "\n-----END CERTIFICATE-----\n")
    -- bytes after the certificate inside the block
    bad("-----BEGIN CERTIFICATE-----\n" .. body .. "AAAA\n-----END CERTIFICATE-----\n")
    -- not a SEQUENCE
    bad("-----BEGIN CERTIFICATE-----\nAgEB\n-----END CERTIFICATE-----\n")
    -- a length in four bytes that claims 4 GB
    bad("-----BEGIN CERTIFICATE-----\nMIT/////\n-----END CERTIFICATE-----\n")
    -- too large to be one
    bad("-----BEGIN CERTIFICATE-----\n" .. string.rep("A", 1100000) .. "\n-----END CERTIFICATE-----\n")
    bad(c.dir .. "/absent.pem", "config")
    assert.has_error(function() smartauth.cert_thumbprint(nil) end)
    assert.has_error(function() smartauth.cert_thumbprint({}) end)
  end)
end)
