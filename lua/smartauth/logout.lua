--- Internal: OpenID Connect RP-Initiated Logout 1.0: the URL that ends the
-- person's session at the provider (`end_session_endpoint`, from the
-- options or discovery). The library never fetches it: a browser must, with
-- the provider's cookies (`smartauth logout --browser` opens it).
-- @module smartauth.logout
local discovery = require "smartauth.discovery"
local errors = require "smartauth.errors"
local url = require "smartauth.url"

local M = {}

local NAMED = {
  id_token_hint = true, post_logout_redirect_uri = true, state = true, logout_hint = true,
  client_id = true, ui_locales = true,
}

local function str_arg(v, name)
  if v ~= nil and (type(v) ~= "string" or v == "") then
    error("end_session_url: '" .. name .. "' must be a non-empty string", 4)
  end
  return v
end

-- The query of a logout request; raises on a wrong argument type.
local function params(self, opts)
  local idt = opts.id_token_hint
  if type(idt) == "table" then idt = idt.id_token end -- a token object
  local q = {
    id_token_hint = str_arg(idt, "id_token_hint"),
    post_logout_redirect_uri = str_arg(opts.post_logout_redirect_uri, "post_logout_redirect_uri"),
    state = str_arg(opts.state, "state"),
    logout_hint = str_arg(opts.logout_hint, "logout_hint"),
    ui_locales = str_arg(opts.ui_locales, "ui_locales"),
    -- §2: client_id lets the provider check post_logout_redirect_uri when
    -- there is no (or an expired) id_token_hint
    client_id = str_arg(opts.client_id, "client_id") or self.options.client_id,
  }
  for k, v in pairs(opts) do
    if not NAMED[k] then
      if type(k) ~= "string" then error("end_session_url: parameters must have string names", 4) end
      q[k] = str_arg(v, k)
    end
  end
  return q
end

-- p:logout checks its options before it revokes anything (a raise after
-- the revocation would leave the revoked token stored).
function M.check(self, opts)
  params(self, opts or {})
end

--- The RP-Initiated Logout URL (OpenID Connect RP-Initiated Logout 1.0
-- §2): `end_session_endpoint` with the parameters given. Discovers first
-- when the endpoint is unknown and the provider has an issuer.
-- @param self the provider (the method `p:end_session_url`)
-- @tparam[opt] table opts `id_token_hint` (an ID token, or a token object:
--   its `id_token`), `post_logout_redirect_uri`, `state`, `logout_hint`,
--   `ui_locales`, `client_id` (default the provider's); any other field is
--   sent as a parameter
-- @treturn string|nil the URL, or nil, err (`config` when the provider has
--   no end-session endpoint)
function M.end_session_url(self, opts)
  if opts ~= nil and type(opts) ~= "table" then
    errors.argerror(1, "end_session_url", "table expected", opts)
  end
  local q = params(self, opts or {})
  local ep, err = discovery.endpoint(self, "end_session_endpoint")
  if not ep then return nil, err end
  return url.add_query(ep, q)
end

-- For p:logout: the URL when the endpoint is known (an option, or what
-- discovery found), else nil; logout never fails for want of one.
-- discovered: logout tried discovery already (a provider that is down is
-- not asked twice).
function M.logout_url(self, tok, opts, discovered)
  if not self:endpoint("end_session_endpoint") then
    if discovered or self:metadata() or not (self:endpoint("issuer") or self.options.discovery_url) then
      return nil
    end
    -- one discovery attempt; a provider that is down does not stop a logout
    local ok = discovery.endpoint(self, "end_session_endpoint")
    if not ok then return nil end
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.id_token_hint == nil and tok and tok.id_token then o.id_token_hint = tok.id_token end
  return M.end_session_url(self, o)
end

return M
