--- Mutual TLS (RFC 8705): which endpoints a provider that speaks mTLS
-- calls (the `mtls_endpoint_aliases` of its metadata, §5) and the
-- `x5t#S256` thumbprint of a certificate (§3.1), which a certificate-bound
-- access token carries in its `cnf` claim.
--
-- The client certificate itself is the transport's (options `client_cert`,
-- `client_key`, `client_key_password`): it goes with every request of the
-- provider, so a certificate-bound token reaches APIs (`p:request`) over
-- the certificate it is bound to. libcurl never hands a connection opened
-- with one certificate (or none) to a request with another.
-- @module smartauth.mtls
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local url = require "smartauth.url"

local M = {}

--- The endpoints an alias may replace (RFC 8705 §5: those the client calls
-- itself with its certificate). Others named in `mtls_endpoint_aliases`
-- (the authorization endpoint a browser visits, `jwks_uri`, ...) are ignored.
M.ALIASED = {
  "token_endpoint", "revocation_endpoint", "introspection_endpoint", "userinfo_endpoint",
  "device_authorization_endpoint", "pushed_authorization_request_endpoint",
}

--- The client authentication methods of RFC 8705 §2: the TLS layer
-- authenticates, the form carries only `client_id`.
M.CLIENT_AUTH = { tls_client_auth = true, self_signed_tls_client_auth = true }

--- Whether the provider uses the aliases of a discovery document: the
-- option `use_mtls_endpoint_aliases` when set; else yes for an mTLS client
-- authentication, or a `client_cert` with a server that binds access tokens
-- to certificates (`tls_client_certificate_bound_access_tokens`).
-- @param p the provider
-- @tparam table doc the discovery document
-- @treturn boolean
function M.uses_aliases(p, doc)
  local o = p.options
  if o.use_mtls_endpoint_aliases ~= nil then return o.use_mtls_endpoint_aliases end
  if M.CLIENT_AUTH[o.client_auth] then return true end
  return o.client_cert ~= nil and doc.tls_client_certificate_bound_access_tokens == true
end

--- The aliases of a discovery document the provider uses: `{ [endpoint
-- name] = url }` (empty when it does not use them), or nil, err
-- (`validation`) when it uses them and they are not an object of absolute
-- URLs it may call (https, or plain http to a loopback host or with
-- `allow_http`): a server that names a broken alias must not get the
-- request at its conventional endpoint instead.
function M.aliases(p, doc)
  local out = {}
  local a = doc.mtls_endpoint_aliases
  -- a JSON null means absent, as everywhere in a server's answers
  if a == nil or a == json.null or not M.uses_aliases(p, doc) then return out end
  if type(a) ~= "table" or a[1] ~= nil then
    return nil, errors.new("validation", "discovery document field 'mtls_endpoint_aliases' is not a JSON object")
  end
  for _, k in ipairs(M.ALIASED) do
    local v = a[k]
    if v ~= nil then
      local ok, msg = false, "not a string"
      if type(v) == "string" then ok, msg = url.check_endpoint(v, p.options.allow_http) end
      if not ok then
        return nil, errors.new("validation", "discovery document field 'mtls_endpoint_aliases." .. k ..
          "' is not a usable URL: " .. msg)
      end
      out[k] = v
    end
  end
  return out
end

-- The length of a DER element at position i of s (its header included),
-- or nil when the bytes do not hold a well-formed definite length.
local function der_length(s, i)
  local b = s:byte(i + 1)
  if not b then return nil end
  if b < 0x80 then return 2 + b end
  local n = b - 0x80
  if n == 0 or n > 4 or i + 1 + n > #s then return nil end
  local len = 0
  for j = 1, n do len = len * 256 + s:byte(i + 1 + j) end
  if len < 0x80 or (n > 1 and s:byte(i + 2) == 0) then return nil end -- DER: shortest form
  return 2 + n + len
end

local MAX_PEM = 1048576 -- a certificate chain is a few KB; anything near this is not one

--- The `x5t#S256` thumbprint of a certificate: the base64url SHA-256 of its
-- DER bytes (RFC 8705 §3.1), as a certificate-bound access token's
-- `cnf["x5t#S256"]` names it. The first certificate of a PEM text or file
-- (a chain's leaf) counts.
-- @tparam string pem PEM text (`-----BEGIN CERTIFICATE-----`) or the path of a PEM file
-- @treturn string the thumbprint, or nil, err (`validation`: not a PEM
--   certificate; `config`: the file cannot be read)
function M.cert_thumbprint(pem)
  if type(pem) ~= "string" then errors.argerror(1, "cert_thumbprint", "string expected", pem) end
  if not pem:find("-----BEGIN", 1, true) then
    local f, ferr = io.open(pem, "rb")
    if not f then return nil, errors.new("config", "cert_thumbprint: cannot read " .. tostring(ferr)) end
    pem = f:read(MAX_PEM + 1) or ""
    f:close()
  end
  if #pem > MAX_PEM then
    return nil, errors.new("validation", "cert_thumbprint: the PEM text is larger than " .. MAX_PEM .. " bytes")
  end
  local b64 = pem:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-\r?\n(.-)%-%-%-%-%-END CERTIFICATE%-%-%-%-%-")
  if not b64 then
    return nil, errors.new("validation", "cert_thumbprint: no PEM CERTIFICATE block")
  end
  b64 = b64:gsub("[\r\n]", "")
  local der = core.b64_decode(b64)
  -- one DER SEQUENCE filling the block exactly: a truncated or padded
  -- block would give the thumbprint of bytes no server hashes
  if not der or der:byte(1) ~= 0x30 or der_length(der, 1) ~= #der then
    return nil, errors.new("validation", "cert_thumbprint: the CERTIFICATE block is not one DER certificate")
  end
  return core.b64url_encode(core.sha2(256, der))
end

return M
