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

local discovery_cache = {} -- url -> {doc=, at=}
M.DISCOVERY_TTL = 3600

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end

--- Fetch and apply the OpenID configuration (endpoints the options did not
-- set). Cached per process for DISCOVERY_TTL seconds.
function M.discover(self)
  if not self:endpoint("issuer") and not self.options.discovery_url then
    return cfg_err("cannot discover: no 'issuer' or 'discovery_url'")
  end
  local durl = self.options.discovery_url or
    (self:endpoint("issuer"):gsub("/+$", "") .. "/.well-known/openid-configuration")
  local cached = discovery_cache[durl]
  local doc
  if cached and clock.now() - cached.at < M.DISCOVERY_TTL then
    doc = cached.doc
  else
    local res, err = transport.call(self, { url = durl, headers = { "Accept: application/json" } })
    if not res then return nil, err end
    if res.status ~= 200 then
      return nil, errors.new("http", "discovery document request failed", { status = res.status })
    end
    local d = json.object(res.body)
    if type(d) ~= "table" then
      return nil, errors.new("validation", "discovery document is not a JSON object")
    end
    doc = d
  end
  if self:endpoint("issuer") and doc.issuer ~= self:endpoint("issuer") then
    return nil, errors.new("validation", "discovery document issuer '" ..
      tostring(doc.issuer):sub(1, 200) .. "' does not match '" .. self:endpoint("issuer") .. "'", { check = "iss" })
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
  -- RFC 8705 §5: a provider speaking mTLS calls the aliases instead of the
  -- endpoints discovery found (never instead of one set as an option)
  local aliases, aerr = require("smartauth.mtls").aliases(self, doc)
  if not aliases then return nil, aerr end
  for k, v in pairs(aliases) do
    if self.options[k] == nil then self._disc[k] = v end
  end
  if not self.options.issuer then self._disc.issuer = doc.issuer end
  self._metadata = doc
  discovery_cache[durl] = { doc = doc, at = cached and cached.at or clock.now() }
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
