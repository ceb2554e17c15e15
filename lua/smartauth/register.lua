--- Dynamic client registration: RFC 7591 (and OpenID Connect Dynamic
-- Client Registration 1.0) to register, RFC 7592 to read, update and
-- delete the registration with its registration access token.
--
--     local reg = assert(smartauth.register("https://idp.example.com", {
--       client_name = "my tool", redirect_uris = { "http://127.0.0.1/callback" },
--       grant_types = { "authorization_code", "refresh_token" },
--       token_endpoint_auth_method = "none", application_type = "native",
--     }, { initial_access_token = os.getenv("IAT") }))
--     local p = assert(smartauth.provider(assert(reg:options())))
--
-- The registration's secrets (`client_secret`, `registration_access_token`,
-- the initial access token) are kept off the object, as a provider's are:
-- `reg.client_secret` reads them, `pairs(reg)` and `tostring(reg)` never
-- show them, and no error or `on_http` event carries them (wire.lua
-- redacts both fields in bodies, and the bearer credential).
-- @module smartauth.register
local metadata_mod = require "smartauth.client_metadata"
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local M = {}

-- registration -> { client_secret=, registration_access_token=, initial_access_token= }
local hidden = setmetatable({}, { __mode = "k" })
local SECRET = { client_secret = true, registration_access_token = true }

--- Seconds before `client_secret_expires_at` at which `reg:ensure()`
-- registers again.
M.DEFAULT_LEEWAY = 300

--- What a registration's HTTP calls (and `bare`) take from the caller's options.
M.TRANSPORT_OPTS = { "ca_file", "timeout", "connect_timeout", "allow_http", "on_http", "proxy",
  "no_proxy", "retry", "max_body", "client_cert", "client_key", "client_key_password" }
local TRANSPORT_OPTS = M.TRANSPORT_OPTS
local OWN_OPTS = { initial_access_token = "string", store = "any", key = "string", leeway = "number",
  discovery = "string" }

local AUTH_METHODS = metadata_mod.AUTH_METHODS

local function verr(msg, fields) return nil, errors.new("validation", msg, fields) end

--- A provider that only carries the transport settings of `opts` (CA file,
-- timeouts, allow_http, hook, proxy, retry): the registration, WebFinger and
-- resource-metadata requests go through it.
-- @param opts a table of options (other keys ignored)
-- @param where the caller's name, for messages
-- @param extra more provider options (issuer, discovery, ...)
-- @return a provider, or nil, err (`config`)
function M.bare(opts, where, extra)
  local o = {}
  for _, k in ipairs(TRANSPORT_OPTS) do o[k] = opts[k] end
  for k, v in pairs(extra or {}) do o[k] = v end
  return require("smartauth.provider").new(o, where)
end

local Registration = { __name = "smartauth.registration" }
M.Registration = Registration
Registration.__index = function(t, k)
  local m = Registration[k]
  if m ~= nil then return m end
  if SECRET[k] then
    local h = hidden[t]
    return h and h[k]
  end
  return nil
end

function Registration:__tostring()
  return "smartauth.registration(" .. tostring(rawget(self, "client_id")) .. ")"
end

-- Every secret the registration knows, for vault.scrub (which adds what its
-- transport provider knows: proxy credentials, the client key password).
local function secret_list(self, extra)
  local h = hidden[self] or {}
  local list = {}
  local function add(v) if type(v) == "string" and v ~= "" then list[#list + 1] = v end end
  -- no ipairs over these: a missing secret must not hide the next
  add(h.client_secret); add(h.registration_access_token); add(h.initial_access_token)
  if extra then add(extra.client_secret); add(extra.registration_access_token) end
  return list
end

-- Keep a checked answer: client information on the object, secrets off it,
-- the rest of the registered metadata in reg.metadata.
local function apply(self, d)
  local h = hidden[self]
  if d.client_secret ~= nil or rawget(self, "client_id") ~= d.client_id then h.client_secret = d.client_secret end
  if d.registration_access_token ~= nil then h.registration_access_token = d.registration_access_token end
  rawset(self, "client_id", d.client_id)
  rawset(self, "client_id_issued_at", d.client_id_issued_at)
  if d.client_secret ~= nil then rawset(self, "client_secret_expires_at", d.client_secret_expires_at) end
  if d.registration_client_uri ~= nil then rawset(self, "registration_client_uri", d.registration_client_uri) end
  local md = {}
  for k, v in pairs(d) do if not SECRET[k] and v ~= json.null then md[k] = v end end
  rawset(self, "metadata", md)
end

-- An answer: JSON object checked, or an OAuth / HTTP error.
local function answer(self, res, what, ok_status, requested, old_id)
  local body = res.body or ""
  if not ok_status[res.status] then
    local d = json.object(body)
    if type(d) == "table" and type(d.error) == "string" then
      return nil, errors.new("oauth", what .. " refused: " .. errors.clean_text(d.error, 100) ..
        (type(d.error_description) == "string" and (": " .. errors.clean_text(d.error_description, 300)) or ""),
        { code = errors.clean_text(d.error, 100), status = res.status })
    end
    return nil, errors.new("http", what .. " failed (HTTP " .. tostring(res.status) .. ")", { status = res.status })
  end
  if res.status == 204 then return true end
  local d = json.object(body)
  if type(d) ~= "table" then return verr(what .. ": the answer is not a JSON object") end
  local ok, err = metadata_mod.check_answer(d, requested, self._allow_http, old_id)
  if not ok then return nil, err end
  return d
end

local function call(self, req, what, ok_status, requested, old_id)
  local res, err = transport.call(self._bp, req)
  if not res then return nil, vault.scrub(self._bp, err, secret_list(self)) end
  local d, aerr = answer(self, res, what, ok_status, requested, old_id)
  if not d then
    -- a hostile answer may quote a secret in its error text
    local dd = json.object(res.body or "")
    return nil, vault.scrub(self._bp, aerr, secret_list(self, type(dd) == "table" and dd or nil))
  end
  return d
end

-- POST the metadata to the registration endpoint (RFC 7591 §3.1).
local function post(self)
  local h = hidden[self]
  local body = metadata_mod.encode(self._requested)
  local headers = { "Content-Type: application/json", "Accept: application/json" }
  if h.initial_access_token then headers[3] = "Authorization: Bearer " .. h.initial_access_token end
  local d, err = call(self, { method = "POST", url = self._endpoint, headers = headers, body = body,
    no_retry = true }, "client registration", { [200] = true, [201] = true }, self._requested)
  if not d then return nil, err end
  rawset(self, "client_id", nil)
  h.client_secret, h.registration_access_token = nil, nil
  apply(self, d)
  return self
end

local function save_if_kept(self)
  local st, key = self._store, self._key
  if not st then return true end
  return self:save(st, key)
end

local function check_opts(opts, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then errors.argerror(3, where, "table expected", opts) end
  for k, v in pairs(opts) do
    local t = OWN_OPTS[k]
    if t then
      if t ~= "any" and type(v) ~= t then
        error(where .. ": option '" .. tostring(k) .. "' must be a " .. t, 3)
      end
    else
      local known = false
      for _, n in ipairs(TRANSPORT_OPTS) do if n == k then known = true end end
      if not known then error(where .. ": unknown option '" .. tostring(k) .. "'", 3) end
    end
  end
  return opts
end

local function new_object(server, requested, opts, bp)
  local self = setmetatable({}, Registration)
  hidden[self] = { initial_access_token = opts.initial_access_token }
  rawset(self, "_bp", bp)
  rawset(self, "_server", server)
  rawset(self, "_endpoint", server.registration_endpoint)
  rawset(self, "_requested", requested)
  rawset(self, "_allow_http", opts.allow_http)
  rawset(self, "_leeway", opts.leeway or M.DEFAULT_LEEWAY)
  -- what reg:options() hands on; a proxy URL may hold credentials: kept
  -- with the secrets, the client key and its password are not kept at all
  local tr = {}
  for _, k in ipairs(TRANSPORT_OPTS) do
    if k ~= "client_key" and k ~= "client_key_password" and k ~= "proxy" then tr[k] = opts[k] end
  end
  hidden[self].proxy = opts.proxy
  rawset(self, "_transport", tr)
  return self
end

--- Register a client (RFC 7591 §3): POST its metadata as JSON to the
-- server's `registration_endpoint`, check the answer, keep it.
-- @param server an issuer URL (its metadata is discovered, see the
--   provider option `discovery`), or an authorization server's metadata
--   table (`p:metadata()`) with `registration_endpoint`
-- @tparam table client_metadata the client's metadata (`redirect_uris`,
--   `grant_types`, `token_endpoint_auth_method`, `client_name`, `scope`, ...)
-- @tparam[opt] table opts `initial_access_token` (RFC 7591 §3: sent as a
--   bearer token; a secret), `store` and `key` (keep the registration:
--   `reg:save(store, key)`), `leeway` (seconds before the secret expires at
--   which `reg:ensure()` registers again, default 300), `discovery`, and the
--   transport options `ca_file`, `timeout`, `connect_timeout`, `allow_http`,
--   `on_http`, `proxy`, `no_proxy`, `retry`, `max_body`, `client_cert`,
--   `client_key`, `client_key_password`
-- @return a `Registration`, or nil, err (`config`, `http`, `oauth` with the
--   server's `code` such as `invalid_redirect_uri`, `validation`, ...)
function M.register(server, client_metadata, opts)
  local where = "smartauth.register"
  if type(server) ~= "string" and type(server) ~= "table" then
    errors.argerror(1, "register", "issuer URL or metadata table expected", server)
  end
  if type(client_metadata) ~= "table" then errors.argerror(2, "register", "table expected", client_metadata) end
  opts = check_opts(opts, where)
  local bp, err
  if type(server) == "string" then
    local p
    p, err = M.bare(opts, where, { issuer = server, discovery = opts.discovery })
    if not p then return nil, err end
    local ok, derr = p:discover()
    if not ok then return nil, derr end
    server, bp = p:metadata(), p
  else
    bp, err = M.bare(opts, where)
    if not bp then return nil, err end
  end
  local ep = server.registration_endpoint
  if type(ep) ~= "string" then
    return nil, errors.new("config", "the authorization server has no registration_endpoint")
  end
  local ok, msg = url.check_endpoint(ep, opts.allow_http)
  if not ok then return verr("registration_endpoint is not a usable URL: " .. msg) end
  local requested = {}
  for k, v in pairs(client_metadata) do requested[k] = v end
  local self = new_object(server, requested, opts, bp)
  local r, perr = post(self)
  if not r then return nil, perr end
  if opts.store then
    local sok, serr = self:save(opts.store, opts.key)
    if not sok then return nil, serr end
  end
  return self
end

--- A registration: the client information of RFC 7591 §3.2.1 as fields
-- (`client_id`, `client_id_issued_at`, `client_secret_expires_at`,
-- `registration_client_uri`; `client_secret` and
-- `registration_access_token` read through the object but kept off it),
-- `metadata` (everything the server registered, secrets left out), and
-- the methods below.
-- @type Registration

--- Options for `smartauth.provider{}` / `smartauth.discover`: `issuer`,
-- the endpoints of the server's metadata, `client_id`, `client_secret`,
-- `client_auth` (from `token_endpoint_auth_method`), `redirect_uri` (the
-- first registered), `scope`, `id_token_signed_response_alg` and
-- `authorization_signed_response_alg` (when registered), the transport options the
-- registration was made with, and `extra` on top. Registers again first
-- when the client secret is due (see `ensure`).
-- @tparam[opt] table extra more options (they win)
-- @return a new plain table, or nil, err
function Registration:options(extra)
  local ok, err = self:ensure()
  if not ok then return nil, err end
  local o = {}
  for k, v in pairs(self._transport) do o[k] = v end
  o.proxy = hidden[self].proxy
  local srv = self._server
  if type(srv.issuer) == "string" then o.issuer = srv.issuer end
  for _, k in ipairs(require("smartauth.provider").ENDPOINTS) do
    if type(srv[k]) == "string" then o[k] = srv[k] end
  end
  local md = self.metadata
  o.client_id = self.client_id
  o.client_secret = self.client_secret
  o.client_auth = AUTH_METHODS[md.token_endpoint_auth_method or "client_secret_basic"]
  if type(md.redirect_uris) == "table" and type(md.redirect_uris[1]) == "string" then
    o.redirect_uri = md.redirect_uris[1]
  end
  if type(md.scope) == "string" and md.scope ~= "" then o.scope = md.scope end
  -- the algs the server will sign with for this client: an HS* ID token or
  -- JARM response is verified only when the options name its alg
  for _, k in ipairs({ "id_token_signed_response_alg", "authorization_signed_response_alg" }) do
    if type(md[k]) == "string" then o[k] = md[k] end
  end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Whether the client secret expires within `leeway` seconds
-- (`client_secret_expires_at` other than 0).
-- @treturn boolean
function Registration:due()
  local at = rawget(self, "client_secret_expires_at")
  return self.client_secret ~= nil and type(at) == "number" and at ~= 0 and at - clock.now() <= self._leeway
end

--- Register again when the client secret is due (RFC 7591 has no way to
-- renew a secret): the same metadata (and initial access token) to the
-- registration endpoint, giving a new `client_id` and secret; saved again
-- when the registration is kept in a store. `reg:options()` calls it.
-- @return the registration, or nil, err
function Registration:ensure()
  if not self:due() then return self end
  local ok, err = post(self)
  if not ok then return nil, err end
  local sok, serr = save_if_kept(self)
  if not sok then return nil, serr end
  return self
end

local function managed(self, what)
  local u, rat = rawget(self, "registration_client_uri"), self.registration_access_token
  if not u or not rat then
    return nil, errors.new("config", what .. ": the server gave no registration_client_uri and " ..
      "registration_access_token (RFC 7592 management is not available)")
  end
  return u, { "Accept: application/json", "Authorization: Bearer " .. rat }
end

--- Read the registration (RFC 7592 §2.1); the answer replaces the fields
-- (a rotated secret or registration access token included).
-- @return the registration, or nil, err
function Registration:read()
  local u, headers = managed(self, "read")
  if not u then return nil, headers end
  local d, err = call(self, { url = u, headers = headers }, "client read", { [200] = true }, nil, self.client_id)
  if not d then return nil, err end
  apply(self, d)
  local sok, serr = save_if_kept(self)
  if not sok then return nil, serr end
  return self
end

--- Replace the registered metadata (RFC 7592 §2.2): `client_metadata` is
-- sent whole with `client_id` (the server may rotate the registration
-- access token; the new one is kept).
-- @tparam table client_metadata the new metadata
-- @return the registration, or nil, err
function Registration:update(client_metadata)
  if type(client_metadata) ~= "table" then errors.argerror(1, "update", "table expected", client_metadata) end
  local u, headers = managed(self, "update")
  if not u then return nil, headers end
  local body = {}
  for k, v in pairs(client_metadata) do body[k] = v end
  body.client_id = self.client_id
  for _, k in ipairs { "registration_access_token", "registration_client_uri", "client_secret_expires_at",
      "client_id_issued_at" } do body[k] = nil end
  headers[#headers + 1] = "Content-Type: application/json"
  local d, err = call(self, { method = "PUT", url = u, headers = headers, body = metadata_mod.encode(body),
    no_retry = true }, "client update", { [200] = true }, client_metadata, self.client_id)
  if not d then return nil, err end
  rawset(self, "_requested", body)
  body.client_id = nil
  apply(self, d)
  local sok, serr = save_if_kept(self)
  if not sok then return nil, serr end
  return self
end

--- Delete the registration (RFC 7592 §2.3); the secrets are forgotten and
-- a kept copy is deleted from its store.
-- @return true, or nil, err
function Registration:delete()
  local u, headers = managed(self, "delete")
  if not u then return nil, headers end
  local r, err = call(self, { method = "DELETE", url = u, headers = headers, no_retry = true },
    "client delete", { [204] = true, [200] = true })
  if not r then return nil, err end
  local h = hidden[self]
  h.client_secret, h.registration_access_token = nil, nil
  if self._store then
    local ok, serr = self._store:delete(self._key)
    if not ok then return nil, serr end
  end
  return true
end

--- A store key for a registration: "registration." and a digest of the
-- parts (short enough for any store, a file name included).
function M.key_for(...)
  local core = require "smartauth.core"
  return "registration." .. core.b64url_encode(core.sha2(256, table.concat({ ... }, "\n"))):sub(1, 22)
end

-- The store key of a registration: `key`, or one made from the
-- registration endpoint.
local function store_key(self, key)
  return key or M.key_for(self._endpoint)
end

--- Keep the registration in a store (the same contract as tokens'; the
-- secrets are in the entry, so use a store that encrypts, as for tokens:
-- `store.file{ key = }`, or Redis with a password on a trusted network).
-- Later `read`, `update` and `ensure` save again.
-- @tparam table store a store
-- @tparam[opt] string key the entry's key (default `register.key_for(registration_endpoint)`)
-- @return true, or nil, err (`storage`)
function Registration:save(store, key)
  local ok, msg = require("smartauth.store").check(store)
  if not ok then error("save: store " .. msg, 2) end
  key = store_key(self, key)
  local h = hidden[self]
  local entry = {
    v = 1, kind = "registration",
    client_id = self.client_id, client_secret = h.client_secret,
    registration_access_token = h.registration_access_token,
    initial_access_token = h.initial_access_token,
    client_id_issued_at = rawget(self, "client_id_issued_at"),
    client_secret_expires_at = rawget(self, "client_secret_expires_at"),
    registration_client_uri = rawget(self, "registration_client_uri"),
    metadata = self.metadata, requested = self._requested, server = self._server,
    transport = {}, proxy = h.proxy, leeway = self._leeway,
  }
  for k, v in pairs(self._transport) do
    if type(v) ~= "function" then entry.transport[k] = v end -- a hook is code, not data
  end
  local sok, err = store:set(key, entry, nil)
  if not sok then return nil, vault.scrub(self._bp, err, secret_list(self)) end
  rawset(self, "_store", store)
  rawset(self, "_key", key)
  return true
end

--- A registration kept by `reg:save(store, key)`, or nil when there is
-- none. `smartauth.registration` is this function.
-- @tparam table store the store
-- @tparam string key the key it was saved under
-- @tparam[opt] table opts transport options for its later calls (default
--   the ones it was registered with, without the hook and client key)
-- @return a `Registration`, or nil (none), or nil, err
function M.load(store, key, opts)
  local ok, msg = require("smartauth.store").check(store)
  if not ok then error("registration: store " .. msg, 2) end
  if type(key) ~= "string" then errors.argerror(2, "registration", "string expected", key) end
  opts = check_opts(opts, "smartauth.registration")
  local e, err = store:get(key)
  if err then return nil, err end
  if e == nil then return nil end
  if type(e) ~= "table" or e.kind ~= "registration" or e.v ~= 1 or type(e.server) ~= "table"
      or type(e.metadata) ~= "table" then
    return verr("store entry '" .. key .. "' is not a registration")
  end
  local merged = {}
  for k, v in pairs(type(e.transport) == "table" and e.transport or {}) do merged[k] = v end
  for k, v in pairs(opts) do merged[k] = v end
  merged.initial_access_token = e.initial_access_token
  if merged.proxy == nil and type(e.proxy) == "string" then merged.proxy = e.proxy end
  merged.leeway = merged.leeway or e.leeway
  local bp, berr = M.bare(merged, "smartauth.registration")
  if not bp then return nil, berr end
  local d = {}
  for k, v in pairs(e.metadata) do d[k] = v end
  d.client_id, d.client_secret = e.client_id, e.client_secret
  d.registration_access_token = e.registration_access_token
  d.client_id_issued_at, d.client_secret_expires_at = e.client_id_issued_at, e.client_secret_expires_at
  d.registration_client_uri = e.registration_client_uri
  local cok, cerr = metadata_mod.check_answer(d, nil, merged.allow_http)
  if not cok then return nil, cerr end
  local self = new_object(e.server, type(e.requested) == "table" and e.requested or {}, merged, bp)
  apply(self, d)
  rawset(self, "_store", store)
  rawset(self, "_key", key)
  return self
end

return M
