--- Internal: Calling an API with the token attached (after golang/oauth2's
-- Transport): in the Authorization header, as a query parameter where the
-- provider needs it, or SmartFile's HTTP Basic API key; a DPoP-bound token
-- with a fresh proof (dpop.lua) and the resource server's nonce; a 401 retires the
-- token everywhere and the call is sent once more with a renewed one.
-- @module smartauth.api
local compat = require "smartauth.compat"
local json = require "smartauth.json"
local core = require "smartauth.core"
local errors = require "smartauth.errors"
local transport = require "smartauth.transport"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local secrets = vault.secrets

local M = {}

local function cfg_err(msg, fields)
  return nil, errors.new("config", msg, fields)
end


local function header_lines(h, out)
  if h == nil then return out end
  if type(h) ~= "table" then error("'headers' must be a table", 3) end
  for k, v in pairs(h) do
    local line
    if type(k) == "number" then line = v else line = k .. ": " .. tostring(v) end
    if type(line) ~= "string" or line:find("[\r\n]") then
      error("header lines must be strings without CR or LF", 3)
    end
    out[#out + 1] = line
  end
  return out
end

local function has_header(lines, name)
  name = name:lower() .. ":"
  for _, l in ipairs(lines) do
    if l:sub(1, #name):lower() == name then return true end
  end
  return false
end

--- Call an API with the token attached (header, or query parameter where the
-- provider needs it). On 401 the token is refreshed once and the call
-- retried. Any HTTP status is returned as a response.
-- @param self the provider (the method `p:request`)
-- @param opts { method=, url=, headers=, body= (string or form table), json=, query=, token=, timeout= }
-- @return { status=, headers=, body= } or nil, err
function M.request(self, opts)
  if type(opts) ~= "table" then errors.argerror(1, "request", "table expected", opts) end
  if type(opts.url) ~= "string" then error("'url' must be a string", 2) end
  local target = url.join(self.options.api_base, opts.url)
  local ok, msg = url.check_endpoint(target, self.options.allow_http)
  if not ok then return cfg_err("request url: " .. msg) end
  if opts.query then target = url.add_query(target, opts.query) end
  local headers = header_lines(opts.headers, {})
  local body = opts.body
  if type(body) == "table" then
    body = url.encode(body)
    if not has_header(headers, "content-type") then
      headers[#headers + 1] = "Content-Type: application/x-www-form-urlencoded"
    end
  elseif opts.json ~= nil then
    body = json.encode(opts.json)
    headers[#headers + 1] = "Content-Type: application/json"
  end
  local method = opts.method or (body and "POST" or "GET")

  local dp = secrets[self].dpop
  local dpop = dp and require "smartauth.dpop"
  local fresh_nonce -- a new DPoP-Nonce came with the last answer

  local function send(tok)
    local h, u = { compat.unpack(headers) }, target
    local s = secrets[self]
    if s.api_key then
      -- plain HTTP Basic (RFC 7617) with an API key, as SmartFile documents
      h[#h + 1] = "Authorization: Basic " .. core.b64_encode(s.api_key .. ":" .. (s.api_password or ""))
    elseif tok then
      if tok.token_type == "DPoP" then
        -- RFC 9449 §7.1: the DPoP scheme and a fresh proof bound to this token
        if not dp then
          return cfg_err("a DPoP-bound token needs the provider's DPoP key (option 'dpop' or 'dpop_key')")
        end
        local line, perr = dpop.header(self, method, target, tok.access_token)
        if not line then return nil, perr end
        h[#h + 1] = "Authorization: DPoP " .. tok.access_token
        h[#h + 1] = line
      elseif self.options.token_placement == "query" then
        u = url.add_query(target, { [self.options.token_param] = tok.access_token })
      else
        h[#h + 1] = "Authorization: Bearer " .. tok.access_token
      end
    end
    local res, err = transport.call(self, { method = method, url = u, headers = h, body = body,
      timeout = opts.timeout, api = true })
    if not res then return nil, vault.scrub(self, err, tok and { tok.access_token }) end
    if dp then fresh_nonce = dpop.remember_nonce(self, target, res.headers) end
    return res
  end

  -- A resource server's nonce (RFC 9449 §9): a 401 with error
  -- "use_dpop_nonce" and a new DPoP-Nonce is sent again with it, once per
  -- call: a server that keeps asking gets its 401 back.
  -- (a Bearer request makes no second closure: this is p:request's hot path)
  local send_once = send
  if dp then
    local nonce_retried = false
    send_once = function(tok)
      local res, err = send(tok)
      if res and res.status == 401 and not nonce_retried and tok and tok.token_type == "DPoP" then
        local wa = res.headers["www-authenticate"]
        if fresh_nonce and type(wa) == "string" and wa:lower():find("dpop", 1, true)
            and wa:find('error%s*=%s*"?use_dpop_nonce') then
          nonce_retried = true
          res, err = send(tok)
        end
      end
      return res, err
    end
  end

  if self.api_key_auth then return send(nil) end
  local tok = opts.token
  if type(tok) == "string" then
    tok = { access_token = tok, token_type = dp and "DPoP" or "Bearer" }
  elseif tok ~= nil and (type(tok) ~= "table" or type(tok.access_token) ~= "string") then
    errors.argerror(1, "request", "'token' must be a token or an access token string", tok)
  end
  if tok == nil then
    local err
    tok, err = self:token()
    if not tok then return nil, err end
  end
  local res, rerr = send_once(tok)
  if res and self._rm and (res.status == 401 or res.status == 403) and opts.token == nil then
    -- a resource found by smartauth.for_resource: step-up scope, moved metadata (RFC 9728 §5)
    local handled, r2, e2 = require("smartauth.resource_meta").follow(self, res, tok, send_once)
    if handled then return r2, e2 end
  end
  if res and res.status == 401 and opts.token == nil then
    -- the server ended this token: retire it everywhere, renew once
    secrets[self].source:retire(tok.access_token)
    local nt, terr = self:token()
    if not nt then return nil, terr end
    res, rerr = send_once(nt)
  end
  return res, rerr
end

return M
