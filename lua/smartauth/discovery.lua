--- Internal: OpenID Connect / OAuth discovery: fetch the provider's configuration,
-- check its issuer, and fill in the endpoints the options did not set.
-- Documents are cached per process for DISCOVERY_TTL seconds.
-- @module smartauth.discovery
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local json = require "smartauth.json"
local transport = require "smartauth.transport"
local url = require "smartauth.url"

local M = {}

-- the endpoint options, listed once with the provider's option table
M.ENDPOINTS = require("smartauth.provider").ENDPOINTS

local discovery_cache = {} -- the URLs tried -> {doc=, at=}
M.DISCOVERY_TTL = 3600

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

--- A well-known URL with the suffix inserted between the host and the
-- path, as RFC 8414 §3.1 and RFC 9728 §3.1 do it (a terminating "/" of the
-- path removed first): `https://h/tenant` → `https://h/.well-known/NAME/tenant`.
-- @tparam string u an absolute URL (issuer or resource identifier)
-- @tparam string name the well-known name (`oauth-authorization-server`, ...)
-- @return the URL, or nil, message
function M.well_known(u, name)
  local scheme, authority, path, query = u:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)(%??[^#]*)")
  if not scheme or authority == "" then return nil, "not an absolute URL" end
  path = path:gsub("/+$", "")
  return scheme .. "://" .. authority .. "/.well-known/" .. name .. path .. query
end

-- The document URLs discovery tries, in order. "auto" (RFC 8414 §5): the
-- OpenID one first (what every OpenID provider serves), then RFC 8414's
-- with the path inserted, then the OpenID name inserted the RFC 8414 way
-- (servers that apply the rule to both names).
local function candidates(self)
  if self.options.discovery_url then return { self.options.discovery_url } end
  local iss = self:endpoint("issuer")
  local mode = self.options.discovery or "auto"
  local oidc = iss:gsub("/+$", "") .. "/.well-known/openid-configuration"
  local oauth = M.well_known(iss, "oauth-authorization-server")
  if mode == "oidc" then return { oidc } end
  if mode == "oauth" then return { oauth } end
  local list = { oidc, oauth }
  local inserted = M.well_known(iss, "openid-configuration")
  if inserted ~= oidc then list[3] = inserted end
  return list
end

--- A metadata document by GET through provider `p`: the decoded object,
-- or nil, err and whether it was merely absent (a status other than 200,
-- or not a JSON object: true; the network failing: false). Used for
-- discovery and RFC 9728 resource metadata (resource_meta.lua).
-- @param p the provider the request goes through
-- @tparam string u the document URL
-- @tparam string what the document's name, for messages
-- @tparam[opt] number max_body the largest body read
function M.get_json(p, u, what, max_body)
  local res, err = transport.call(p, { url = u, headers = { "Accept: application/json" }, max_body = max_body })
  if not res then return nil, err, false end
  if res.status ~= 200 then
    return nil, errors.new("http", what .. " request failed (HTTP " .. res.status ..
      " from " .. u .. ")", { status = res.status }), true
  end
  local d = json.object(res.body)
  if type(d) ~= "table" then
    return nil, errors.new("validation", what .. " at " .. u .. " is not a JSON object"), true
  end
  return d
end

--- Fetch and apply the authorization server's metadata (endpoints the
-- options did not set): `discovery_url` when set, else by the `discovery`
-- option, `"oidc"` (`issuer/.well-known/openid-configuration`), `"oauth"`
-- (RFC 8414: `/.well-known/oauth-authorization-server` inserted before the
-- issuer's path) or `"auto"` (default: the first, then the second, then
-- the OpenID name inserted before the path, RFC 8414 §5). A document is
-- used only when its `issuer` is the provider's (a mismatch is an error,
-- never a reason to try the next URL). Cached per process for
-- DISCOVERY_TTL seconds.
function M.discover(self)
  if not self:endpoint("issuer") and not self.options.discovery_url then
    return cfg_err("cannot discover: no 'issuer' or 'discovery_url'")
  end
  local list = candidates(self)
  local ckey = table.concat(list, " ")
  local cached = discovery_cache[ckey]
  local doc
  if cached and clock.now() - cached.at < M.DISCOVERY_TTL then
    doc = cached.doc
  else
    local first_err
    for _, durl in ipairs(list) do
      local d, err, next_ok = M.get_json(self, durl, "discovery document")
      if d then doc = d; break end
      first_err = first_err or err
      if not next_ok then return nil, err end
    end
    if not doc then return nil, first_err end
  end
  if self:endpoint("issuer") and doc.issuer ~= self:endpoint("issuer") then
    return nil, errors.new("validation", "discovery document issuer '" ..
      tostring(doc.issuer):sub(1, 200) .. "' does not match '" .. self:endpoint("issuer") .. "'", { check = "iss" })
  end
  -- RFC 8705 §5: a provider speaking mTLS calls the aliases instead of the
  -- endpoints discovery found (never instead of one set as an option)
  local aliases, aerr = require("smartauth.mtls").aliases(self, doc)
  if not aliases then return nil, aerr end
  -- a profile's rules before anything of the document is used (a
  -- validation error: the document breaks them)
  if self.options.profile then
    local ok, perr = require("smartauth.profile").check_document(self, doc, M.ENDPOINTS, aliases)
    if not ok then return nil, perr end
  end
  for _, k in ipairs(M.ENDPOINTS) do
    local v = doc[k]
    if self.options[k] == nil and v ~= nil then
      local ok, msg = false, "not a string"
      if type(v) == "string" then ok, msg = url.check_endpoint(v, self.options.allow_http) end
      if not ok then
        return nil, errors.new("validation", "discovery document field '" .. k ..
          "' is not a usable URL: " .. msg)
      end
      self._disc[k] = v
    end
  end
  for k, v in pairs(aliases) do
    if self.options[k] == nil then self._disc[k] = v end
  end
  if not self.options.issuer then self._disc.issuer = doc.issuer end
  self._metadata = doc
  discovery_cache[ckey] = { doc = doc, at = cached and cached.at or clock.now() }
  return self
end

-- An endpoint, discovering once if it is missing and an issuer is known.
function M.endpoint(self, name)
  local v = self:endpoint(name)
  if v == nil and (self:endpoint("issuer") or self.options.discovery_url) and not self._metadata then
    local ok, err = self:discover()
    if not ok then return nil, err end
    v = self:endpoint(name)
  end
  if v == nil then
    return cfg_err("provider has no " .. name .. " (set the option or an issuer to discover it)")
  end
  return v
end

return M
