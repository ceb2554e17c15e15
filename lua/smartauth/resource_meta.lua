--- Finding the authorization server of a protected resource or a person:
-- RFC 9728 protected resource metadata (`smartauth.for_resource`), the
-- `WWW-Authenticate` challenges a resource answers with (RFC 9110 §11.6.1,
-- RFC 6750 §3, RFC 9728 §5.1), and OpenID Connect Discovery §2 WebFinger
-- (`smartauth.webfinger`). The flow of `for_resource` is the Model Context
-- Protocol's: resource metadata → authorization server metadata (RFC 8414 or
-- OpenID) → dynamic registration (RFC 7591) when no `client_id` is given →
-- a provider whose tokens are asked for with `resource = url` (RFC 8707).
-- @module smartauth.resource_meta
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local register = require "smartauth.register"
local transport = require "smartauth.transport"
local url = require "smartauth.url"

local M = {}

--- The WebFinger relation of an OpenID Connect issuer.
M.ISSUER_REL = "http://openid.net/specs/connect/1.0/issuer"
--- The default redirect URI of a client `for_resource` registers (RFC 8252
-- §7.3: the port is chosen when the login listens).
M.DEFAULT_REDIRECT_URI = "http://127.0.0.1/callback"

-- Limits on a WWW-Authenticate value: longer or busier ones are refused.
local MAX_HEADER, MAX_CHALLENGES, MAX_PARAMS = 8192, 32, 32
-- Largest metadata document read (bytes).
local MAX_METADATA = 262144

local function verr(msg, fields) return nil, errors.new("validation", msg, fields) end
local function cfg_err(msg, fields) return nil, errors.new("config", msg, fields) end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+"

-- A quoted-string starting at i (the opening quote): its value and the
-- index after the closing quote, or nil.
local function quoted(h, i)
  local out, j, n = {}, i + 1, #h
  while j <= n do
    local c = h:sub(j, j)
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      j = j + 1
      if j > n then return nil end
      c = h:sub(j, j)
    end
    if c:find("%c") and c ~= "\t" then return nil end
    out[#out + 1] = c
    j = j + 1
  end
  return nil
end

--- Parse a `WWW-Authenticate` value (RFC 9110 §11.6.1): several challenges,
-- each a scheme and either a token68 or comma-separated parameters whose
-- values are tokens or quoted strings (escapes undone). Parameter names
-- are lower-cased; a repeated one is refused (RFC 9110 says each appears
-- once, and two `resource_metadata` values are an attack, not a choice).
-- @tparam string h the header value (repeated headers joined with ", ")
-- @return a list of `{ scheme = lower-case, params = { [name] = value }, token68 = }`,
--   or nil, message
function M.parse_challenges(h)
  if type(h) ~= "string" then return nil, "not a string" end
  if #h > MAX_HEADER then return nil, "longer than " .. MAX_HEADER .. " bytes" end
  local out, i, n, cur = {}, 1, #h, nil
  while true do
    i = select(2, h:find("^[ \t,]*", i)) + 1
    if i > n then break end
    local s, e = h:find(TOKEN, i)
    if not s then return nil, "unexpected character at byte " .. i end
    local name = h:sub(s, e)
    local _, eq = h:find("^[ \t]*=[ \t]*", e + 1)
    if eq and cur and not cur.token68 then
      -- a parameter of the current challenge
      local v, after
      if h:sub(eq + 1, eq + 1) == '"' then
        v, after = quoted(h, eq + 1)
        if not v then return nil, "unterminated or invalid quoted string at byte " .. (eq + 1) end
      else
        local vs, ve = h:find(TOKEN, eq + 1)
        if not vs then return nil, "parameter '" .. errors.clean_text(name, 40) .. "' has no value" end
        v, after = h:sub(vs, ve), ve + 1
      end
      local lname = name:lower()
      if cur.params[lname] ~= nil then
        return nil, "parameter '" .. errors.clean_text(lname, 40) .. "' appears twice in one challenge"
      end
      cur.nparams = cur.nparams + 1
      if cur.nparams > MAX_PARAMS then return nil, "more than " .. MAX_PARAMS .. " parameters" end
      cur.params[lname] = v
      local _, sep = h:find("^[ \t]*", after)
      i = sep + 1
      if i <= n and h:sub(i, i) ~= "," then return nil, "expected ',' at byte " .. i end
    elseif eq and not cur then
      return nil, "a parameter before any scheme"
    else
      -- a new challenge: scheme, then perhaps a token68
      if #out >= MAX_CHALLENGES then return nil, "more than " .. MAX_CHALLENGES .. " challenges" end
      cur = { scheme = name:lower(), params = {}, nparams = 0 }
      out[#out + 1] = cur
      i = e + 1
      local ts, te = h:find("^[ \t]+[%w%-._~+/]+=*", i)
      if ts then
        local rest = select(2, h:find("^[ \t]*", te + 1)) + 1
        if rest > n or h:sub(rest, rest) == "," then
          cur.token68 = h:sub(ts, te):match("^[ \t]+(.*)$")
          i = rest
        end
      end
    end
  end
  for _, c in ipairs(out) do c.nparams = nil end
  return out
end

--- The parameters of a response's Bearer (or DPoP) challenge, or nil.
-- @param res a response (`{ headers = { ["www-authenticate"] = ... } }`)
-- @return the params table, or nil (none, or a value that does not parse)
function M.bearer_params(res)
  local h = res and res.headers and res.headers["www-authenticate"]
  if type(h) ~= "string" then return nil end
  local list = M.parse_challenges(h)
  if not list then return nil end
  for _, c in ipairs(list) do
    if c.scheme == "bearer" or c.scheme == "dpop" then return c.params end
  end
  return nil
end

-- The words of a space-separated scope, in order, without repeats.
local function words(s, out, seen)
  for w in (s or ""):gmatch("%S+") do
    if not seen[w] then seen[w] = true; out[#out + 1] = w end
  end
  return out
end

--- The union of two space-separated scopes (a's words first).
function M.scope_union(a, b)
  local seen = {}
  return table.concat(words(b, words(a, {}, seen), seen), " ")
end

local function string_list(v, name, check_url, allow_http)
  if v == nil then return true end
  if type(v) ~= "table" then return verr("resource metadata: '" .. name .. "' must be a list") end
  for i, x in ipairs(v) do
    if type(x) ~= "string" or x == "" then
      return verr("resource metadata: '" .. name .. "' entry " .. i .. " must be a non-empty string")
    end
    if check_url then
      local ok, msg = url.check_endpoint(x, allow_http)
      if not ok then
        return verr("resource metadata: '" .. name .. "' entry " .. i .. " is not a usable URL: " .. msg)
      end
    end
  end
  return true
end

--- Read protected resource metadata (RFC 9728 §3) at `u` and check it: a
-- JSON object whose `resource` is exactly `resource` (§3.3), whose
-- `authorization_servers` are usable URLs and `scopes_supported` strings.
-- @param bp the provider the request goes through (its transport options)
-- @tparam string u the metadata URL
-- @tparam string resource the resource identifier it must name
-- @return the metadata, or nil, err, absent (true when the URL had none)
function M.fetch_metadata(bp, u, resource)
  local ok, msg = url.check_endpoint(u, bp.options.allow_http)
  if not ok then return verr("resource metadata URL is not usable: " .. msg) end
  local d, err, absent = discovery.get_json(bp, u, "protected resource metadata", MAX_METADATA)
  if not d then return nil, err, absent end
  if d.resource ~= resource then
    return verr("protected resource metadata at " .. u .. " names resource '" ..
      tostring(errors.clean_text(type(d.resource) == "string" and d.resource or tostring(d.resource), 200)) ..
      "', not '" .. resource .. "' (RFC 9728 §3.3)")
  end
  local lok, lerr = string_list(d.authorization_servers, "authorization_servers", true, bp.options.allow_http)
  if not lok then return nil, lerr end
  lok, lerr = string_list(d.scopes_supported, "scopes_supported")
  if not lok then return nil, lerr end
  return d
end

-- for_resource's own options; every other key is a provider option.
local OWN = { authorization_server = "string", client_metadata = "table", client_name = "string",
  initial_access_token = "string", resource_metadata = "string" }

-- Find the resource's metadata: the URL given, else the well-known one
-- (path inserted), else the `resource_metadata` of the 401 the resource
-- answers a call without a token with. Returns the metadata, its URL and
-- the challenge's scope, or nil, err.
local function find_metadata(bp, resource, given)
  if given then
    local d, err = M.fetch_metadata(bp, given, resource)
    if not d then return nil, err end
    return d, given
  end
  local wk = discovery.well_known(resource, "oauth-protected-resource")
  local d, err, absent = M.fetch_metadata(bp, wk, resource)
  if d then return d, wk end
  if not absent then return nil, err end
  local res, perr = transport.call(bp, { url = resource, headers = { "Accept: application/json" } })
  if not res then return nil, perr end
  local params = (res.status == 401 or res.status == 403) and M.bearer_params(res)
  if not params or not params.resource_metadata then
    return nil, errors.new("config", "no protected resource metadata for " .. resource ..
      " (none at " .. wk .. ", and the resource answered HTTP " .. res.status ..
      " without a resource_metadata challenge)", { status = res.status })
  end
  local md, merr = M.fetch_metadata(bp, params.resource_metadata, resource)
  if not md then return nil, merr end
  return md, params.resource_metadata, params.scope
end

--- A provider for a protected resource found from its URL alone (RFC 9728):
-- its metadata, then its authorization server's (discovered with the
-- `discovery` option, `"auto"` by default), then, without a `client_id`, a
-- client registered for it (RFC 7591: by default a public native client,
-- `token_endpoint_auth_method = "none"`, PKCE, redirect URI
-- `http://127.0.0.1/callback`, the login's port chosen when it listens;
-- kept in `store` and reused when there is one). Its tokens are asked for
-- with `resource = url` (RFC 8707) and its `p:request` follows the
-- resource's challenges (see `Provider:request`).
-- @tparam string resource the resource identifier (the metadata's `resource` must be it exactly)
-- @tparam[opt] table opts any provider option (`client_id` skips the
--   registration; `scope` default: the challenge's `scope`, else the
--   metadata's `scopes_supported`), and `authorization_server` (one the
--   metadata lists; default the first), `resource_metadata` (the metadata
--   URL, when known), `client_metadata` (what is registered instead of the
--   default), `client_name`, `initial_access_token`
-- @return a provider and the `smartauth.register.Registration` (or nil when
--   `client_id` was given), or nil, err
function M.for_resource(resource, opts)
  local where = "smartauth.for_resource"
  if type(resource) ~= "string" then errors.argerror(1, "for_resource", "string expected", resource) end
  if opts ~= nil and type(opts) ~= "table" then errors.argerror(2, "for_resource", "table expected", opts) end
  local own, po = {}, {}
  for k, v in pairs(opts or {}) do
    if OWN[k] then
      if type(v) ~= OWN[k] then error(where .. ": option '" .. k .. "' must be a " .. OWN[k], 2) end
      own[k] = v
    else
      po[k] = v
    end
  end
  local ok, msg = url.check_endpoint(resource, po.allow_http)
  if ok then ok, msg = url.check_resource(resource) end
  if not ok then return cfg_err(where .. ": the resource " .. msg) end
  local bp, berr = register.bare(po, where)
  if not bp then return nil, berr end
  local rm, mu, challenge_scope = find_metadata(bp, resource, own.resource_metadata)
  if not rm then return nil, mu end
  local servers = rm.authorization_servers or {}
  local as = own.authorization_server or servers[1]
  if not as then return cfg_err("the resource metadata of " .. resource .. " names no authorization server") end
  local listed = false
  for _, s in ipairs(servers) do if s == as then listed = true end end
  if not listed then
    return cfg_err(where .. ": authorization server " .. as .. " is not one the resource names",
      { option = "authorization_server" })
  end
  if po.scope == nil then
    po.scope = challenge_scope or (rm.scopes_supported and #rm.scopes_supported > 0 and
      table.concat(rm.scopes_supported, " ")) or nil
  end
  po.resource = resource
  local reg
  if po.client_id == nil then
    local ap, aerr = register.bare(po, where, { issuer = as, discovery = po.discovery })
    if not ap then return nil, aerr end
    local dok, derr = ap:discover()
    if not dok then return nil, derr end
    local asm = ap:metadata()
    local methods = asm.code_challenge_methods_supported
    if type(methods) == "table" and #methods > 0 then
      local s256 = false
      for _, m in ipairs(methods) do if m == "S256" then s256 = true end end
      if not s256 then return cfg_err("authorization server " .. as .. " does not support PKCE S256") end
    end
    local cm = own.client_metadata or {
      client_name = own.client_name or "smartauth", application_type = "native",
      redirect_uris = { po.redirect_uri or M.DEFAULT_REDIRECT_URI },
      grant_types = { "authorization_code", "refresh_token" }, response_types = { "code" },
      token_endpoint_auth_method = "none",
    }
    local ropts = { initial_access_token = own.initial_access_token }
    for _, k in ipairs(register.TRANSPORT_OPTS) do ropts[k] = po[k] end
    -- a client registered before for this resource and server is reused
    local key = register.key_for(as, resource, require("smartauth.client_metadata").encode(cm))
    if po.store then
      local r, lerr = register.load(po.store, key)
      if lerr then return nil, lerr end
      reg = r
    end
    if not reg then
      local rerr
      reg, rerr = register.register(asm, cm, ropts)
      if not reg then return nil, rerr end
      if po.store then
        local sok, serr = reg:save(po.store, key)
        if not sok then return nil, serr end
      end
    end
    local ro, oerr = reg:options()
    if not ro then return nil, oerr end
    for _, k in ipairs { "client_id", "client_secret", "client_auth", "redirect_uri" } do
      if po[k] == nil then po[k] = ro[k] end
    end
  end
  local p, perr = require("smartauth").discover(as, po)
  if not p then return nil, perr end
  p._rm = { resource = resource, metadata_url = mu, authorization_server = as, metadata = rm }
  return p, reg
end

--- What `p:request` does with a 401 or 403 from a resource found by
-- `for_resource` (api.lua calls it before its own 401 handling):
-- `insufficient_scope` with a `scope` asks for the union of the scopes:
-- a client-credentials provider gets that token and sends again; any
-- other returns an `oauth` error with `reauth = true` and `scope` (log
-- in with it: `p:login{ scope = err.scope }`). A 401 naming other
-- resource metadata is read: when its authorization servers no longer
-- include the provider's, a `config` error says so (call `for_resource`
-- again); else the usual renewal goes on.
-- @return handled (boolean), then the response or nil, err when handled
function M.follow(p, res, tok, send)
  local params = M.bearer_params(res)
  if not params then return false end
  local rm = p._rm
  if params.error == "insufficient_scope" and params.scope then
    local current = tok.scope or p.options.scope
    local union = M.scope_union(current, params.scope)
    if union == M.scope_union(current, nil) then return false end -- no new scope: the answer stands
    if p:default_grant() == "client_credentials" then
      local nt, err = p:client_credentials { scope = union }
      if not nt then return true, nil, err end
      return true, send(nt)
    end
    return true, nil, errors.new("oauth", "the resource needs scope '" .. union .. "': log in again with it",
      { code = "insufficient_scope", reauth = true, scope = union, status = res.status })
  end
  if res.status == 401 and params.resource_metadata and params.resource_metadata ~= rm.metadata_url then
    local d, err = M.fetch_metadata(p, params.resource_metadata, rm.resource)
    if not d then return true, nil, err end
    for _, s in ipairs(d.authorization_servers or {}) do
      if s == rm.authorization_server then rm.metadata_url = params.resource_metadata; return false end
    end
    return true, nil, errors.new("config", "the resource " .. rm.resource .. " now names other authorization " ..
      "servers: call smartauth.for_resource again", { authorization_servers = d.authorization_servers })
  end
  return false
end

--- OpenID Connect issuer discovery by WebFinger (OIDC Discovery §2, RFC
-- 7033): the input is normalized (`user@host` and `acct:` URIs: an
-- account, the host after the last `@`; anything else a URL, `https://`
-- assumed, the fragment dropped), then
-- `https://HOST/.well-known/webfinger?resource=...&rel=http://openid.net/specs/connect/1.0/issuer`
-- is read and the first link with that relation names the issuer.
-- @tparam string input `acct:user@host`, `user@host`, `host`, `host:port`,
--   or an `https://` URL
-- @tparam[opt] table opts `ca_file`, `timeout`, `connect_timeout`,
--   `on_http`, `proxy`, `no_proxy`, `retry`, `allow_http` (ask over plain
--   `http://`, for tests on loopback hosts; the issuer may then be `http://` too)
-- @return the issuer URL, or nil, err (`config` for an input that names no
--   host, `http`, `validation`)
function M.webfinger(input, opts)
  if type(input) ~= "string" then errors.argerror(1, "webfinger", "string expected", input) end
  if opts ~= nil and type(opts) ~= "table" then errors.argerror(2, "webfinger", "table expected", opts) end
  opts = opts or {}
  if #input > 2048 or input:find("[%s%c]") or input == "" then
    return cfg_err("webfinger: the input is empty, too long, or has whitespace or control characters")
  end
  local resource, host
  local scheme = input:match("^(%a[%w+.-]*):")
  if scheme and scheme:lower() == "acct" then
    resource, host = input, input:match("@([^@]*)$")
  elseif not scheme or input:find("^[^:/]+:%d+$") then
    -- no scheme: user@host is an account, anything else a host (and path)
    if input:find("@", 1, true) and not input:find("[/?#]") then
      resource, host = "acct:" .. input, input:match("@([^@]*)$")
    else
      resource = "https://" .. input
    end
  else
    resource = input
  end
  resource = resource:gsub("#.*$", "")
  if not host then
    local u = url.parse(resource)
    if not u or (u.scheme ~= "https" and u.scheme ~= "http") then
      return cfg_err("webfinger: '" .. errors.clean_text(input, 200) .. "' names no host")
    end
    host = resource:match("^%a[%w+.-]*://([^/?#]*)")
  end
  if not host or host == "" or not host:find("^[%w%.%-:%[%]]+$") then
    return cfg_err("webfinger: '" .. errors.clean_text(input, 200) .. "' names no usable host")
  end
  host = host:lower()
  local bp, berr = register.bare(opts, "smartauth.webfinger")
  if not bp then return nil, berr end
  local wf = (opts.allow_http and "http" or "https") .. "://" .. host .. "/.well-known/webfinger?" ..
    url.encode { resource = resource, rel = M.ISSUER_REL }
  local ok, msg = url.check_endpoint(wf, opts.allow_http)
  if not ok then return cfg_err("webfinger: " .. msg) end
  local res, err = transport.call(bp, { url = wf, headers = { "Accept: application/jrd+json, application/json" },
    max_body = MAX_METADATA })
  if not res then return nil, err end
  if res.status ~= 200 then
    return nil, errors.new("http", "webfinger request failed (HTTP " .. res.status .. ")", { status = res.status })
  end
  local d = json.object(res.body)
  if type(d) ~= "table" then return verr("webfinger answer is not a JSON object") end
  if type(d.links) ~= "table" then return verr("webfinger answer has no 'links' list") end
  for _, l in ipairs(d.links) do
    if type(l) == "table" and l.rel == M.ISSUER_REL then
      local ok2, msg2 = false, "not a string"
      if type(l.href) == "string" then ok2, msg2 = url.check_endpoint(l.href, opts.allow_http) end
      if not ok2 then return verr("webfinger issuer link is not a usable URL: " .. msg2) end
      local u = url.parse(l.href)
      if u.query ~= "" or u.fragment ~= "" then return verr("webfinger issuer has a query or fragment") end
      return l.href
    end
  end
  return verr("webfinger answer has no issuer link")
end

return M
