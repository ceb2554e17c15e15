--- Throw-away TLS material for the specs, made with the openssl CLI (EC P-256, fast).
--
--   local certs = require "helpers.certs"
--   local c = certs.make()      -- { dir, ca_file, cert, key, other_ca_file, ... }
--   ... server.start{ tls = { cert = c.cert, key = c.key } }, verify against c.ca_file ...
--   certs.cleanup(c)
--
-- Files made:
--   ca_file        the test CA (self-signed), ca_key its key
--   cert, key      server certificate for CN=127.0.0.1, SAN IP:127.0.0.1 and DNS:localhost,
--                  signed by the test CA
--   other_ca_file  an unrelated CA ("unknown CA"): verifying the server against it fails
--   wrong_host_cert, wrong_host_key  signed by the test CA but only for DNS:wrong.example
--                  (a hostname mismatch for 127.0.0.1 / localhost)
--   expired_cert, expired_key        signed by the test CA, valid names, already expired
--
-- Client certificates for mutual TLS, on demand (certs.client(c, name, password)):
--   cert, key      a client certificate (CN=name, clientAuth) signed by the test CA, its key
--   enc_key        the same key encrypted with `password` (PKCS#8, AES-256)
--   serial         its serial number as nginx's $ssl_client_serial prints it (hex)
local proc = require "helpers.proc"

local M = {}

local CONFIG = [[
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[v3_wrong_host]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
]]

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- Makes a fresh set of keys and certificates.
-- @param dir optional directory to write into (created if missing); by default a new
--   private directory from mktemp -d
-- @return table { dir, ca_file, ca_key, cert, key, other_ca_file, other_ca_key,
--   wrong_host_cert, wrong_host_key, expired_cert, expired_key }; raises with openssl's
--   stderr if a command fails
function M.make(dir)
  local owned = dir == nil
  local q = proc.shell_quote
  if owned then
    dir = proc.tmpdir("smartauth-certs.XXXXXX")
  else
    assert(proc.run("mkdir -p " .. q(dir)), "certs.make: cannot create " .. dir)
  end
  local function p(name) return dir .. "/" .. name end
  local log = p("openssl.log")
  local cnf = p("openssl.cnf")
  write_file(cnf, CONFIG)

  local function openssl(args)
    local ok, code = proc.run("openssl " .. args .. " >>" .. q(log) .. " 2>&1")
    if not ok then
      local out = proc.read_file(log) or ""
      if owned then proc.rmtree(dir) end
      error(("certs.make: openssl %s failed (exit %s):\n%s"):format(args, code, out), 3)
    end
  end
  local function genkey(name)
    openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(p(name)))
  end
  local function self_signed(name, key, cn)
    genkey(key)
    openssl(("req -new -x509 -config %s -extensions v3_ca -key %s -subj %s -days 3650 -sha256 -out %s")
      :format(q(cnf), q(p(key)), q("/CN=" .. cn), q(p(name))))
  end
  local serial = 4096
  local function signed(name, key, cn, ext, days)
    genkey(key)
    openssl(("req -new -config %s -key %s -subj %s -out %s")
      :format(q(cnf), q(p(key)), q("/CN=" .. cn), q(p(name .. ".csr"))))
    serial = serial + 1
    openssl(("x509 -req -in %s -CA %s -CAkey %s -set_serial %d -days %d -sha256 -extfile %s -extensions %s -out %s")
      :format(q(p(name .. ".csr")), q(p("ca.pem")), q(p("ca.key")), serial, days, q(cnf), ext, q(p(name))))
  end

  self_signed("ca.pem", "ca.key", "smartauth test CA")
  self_signed("other-ca.pem", "other-ca.key", "smartauth unknown CA")
  signed("server.pem", "server.key", "127.0.0.1", "v3_server", 825)
  signed("wrong-host.pem", "wrong-host.key", "wrong.example", "v3_wrong_host", 825)
  -- -days -1: notBefore is now, notAfter a day ago, so the certificate is expired
  signed("expired.pem", "expired.key", "127.0.0.1", "v3_server", -1)

  return {
    dir = dir,
    owned = owned,
    ca_file = p("ca.pem"), ca_key = p("ca.key"),
    cert = p("server.pem"), key = p("server.key"),
    other_ca_file = p("other-ca.pem"), other_ca_key = p("other-ca.key"),
    wrong_host_cert = p("wrong-host.pem"), wrong_host_key = p("wrong-host.key"),
    expired_cert = p("expired.pem"), expired_key = p("expired.key"),
  }
end

--- Adds a client certificate for mutual TLS to a set made by `make`: signed by its
-- test CA (or by its unknown CA with opts.other_ca), with its key in clear and
-- encrypted with `password`.
-- @return table { cert, key, enc_key, serial }; raises with openssl's output on failure
function M.client(c, name, password, opts)
  assert(c and c.dir, "certs.client: a set from certs.make expected")
  assert(type(password) == "string" and #password >= 4, "certs.client: a password expected")
  local q = proc.shell_quote
  local function p(f) return c.dir .. "/" .. f end
  local log = p("openssl.log")
  local function openssl(args)
    local ok, code = proc.run("openssl " .. args .. " >>" .. q(log) .. " 2>&1")
    if not ok then
      error(("certs.client: openssl %s failed (exit %s):\n%s"):format(args, code,
        proc.read_file(log) or ""), 2)
    end
  end
  c.next_serial = (c.next_serial or 8192) + 1
  local serial = c.next_serial
  local ca, ca_key = c.ca_file, c.ca_key
  if opts and opts.other_ca then ca, ca_key = c.other_ca_file, c.other_ca_key end
  local cert, key, enc = p(name .. ".pem"), p(name .. ".key"), p(name .. ".enc.key")
  local pwfile = p(name .. ".pass")
  local f = assert(io.open(pwfile, "wb"))
  f:write(password)
  f:close()
  openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(key))
  openssl(("req -new -config %s -key %s -subj %s -out %s")
    :format(q(p("openssl.cnf")), q(key), q("/CN=" .. name), q(cert .. ".csr")))
  openssl(("x509 -req -in %s -CA %s -CAkey %s -set_serial %d -days 825 -sha256 -extfile %s "
    .. "-extensions v3_client -out %s")
    :format(q(cert .. ".csr"), q(ca), q(ca_key), serial, q(p("openssl.cnf")), q(cert)))
  -- the password from a file: never on a command line (ps would show it)
  openssl(("pkey -in %s -aes256 -passout %s -out %s"):format(q(key), q("file:" .. pwfile), q(enc)))
  os.remove(pwfile)
  os.remove(cert .. ".csr")
  c.extra = c.extra or {}
  table.insert(c.extra, cert)
  table.insert(c.extra, key)
  table.insert(c.extra, enc)
  return { cert = cert, key = key, enc_key = enc, serial = ("%X"):format(serial) }
end

--- Removes what `make` created: the whole directory when `make` chose it, otherwise
-- only the files it wrote. Safe to call twice.
function M.cleanup(c)
  if not c or not c.dir then return end
  if c.owned then
    proc.rmtree(c.dir)
  else
    local files = { "openssl.log", "openssl.cnf", "ca.pem", "ca.key", "other-ca.pem",
      "other-ca.key", "server.pem", "server.key", "server.pem.csr", "wrong-host.pem",
      "wrong-host.key", "wrong-host.pem.csr", "expired.pem", "expired.key", "expired.pem.csr" }
    for _, name in ipairs(files) do os.remove(c.dir .. "/" .. name) end
    for _, path in ipairs(c.extra or {}) do os.remove(path) end
  end
  c.dir = nil
end

return M
