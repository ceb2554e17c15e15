--- Internal: response modes (OAuth 2.0 Multiple Response Types, Form Post
-- Response Mode) and JARM, the JWT Secured Authorization Response Mode: the
-- authorization response is a signed JWT (`response=`), verified like an ID
-- token (the provider's key set, an alg allow-list that never holds `none`,
-- iss, aud, exp) before anything in it is used.
-- @module smartauth.jarm
local compat = require "smartauth.compat"
local clock = require "smartauth.clock"
local errors = require "smartauth.errors"
local jwt = require "smartauth.jwt"
local url = require "smartauth.url"
local vault = require "smartauth.vault"

local clean_text = errors.clean_text

local M = {}

--- The response modes `response_mode` takes.
M.MODES = { "query", "fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt" }
local KNOWN = {}
for _, m in ipairs(M.MODES) do KNOWN[m] = true end

M.MAX_RESPONSE = 32 * 1024 -- bytes of a JARM response: a code, a state and a few claims
M.MAX_CALLBACK = 65536      -- bytes of a redirect URL or a form_post body

local function refuse(check, msg)
  return nil, errors.new("validation", "JARM response rejected: " .. msg, { check = check })
end

--- Is `mode` a JARM mode?
function M.is_jwt(mode)
  return type(mode) == "string" and (mode == "jwt" or mode:find("%.jwt$") ~= nil)
end

--- Check a response mode's name: true, or nil and why.
function M.check_mode(mode)
  if KNOWN[mode] then return true end
  return nil, "'response_mode' must be one of " .. table.concat(M.MODES, ", ")
end

--- Does the response come in the fragment? `jwt` means the response
-- type's default: the fragment when an ID token or token comes back.
function M.in_fragment(mode, response_type)
  if mode == "fragment" or mode == "fragment.jwt" then return true end
  if mode == "jwt" then
    local rt = " " .. tostring(response_type) .. " "
    return rt:find(" id_token ", 1, true) ~= nil or rt:find(" token ", 1, true) ~= nil
  end
  return false
end

-- The algs a JARM response may be signed with: the option (one alg), else
-- the metadata's list within what we verify, else RS256 (JARM §3's
-- default). HS* only when the option names it (the client secret is the key).
local function allowed_algs(p, oidc)
  local alg = p.options.authorization_signed_response_alg
  if alg then return { [alg] = true }, alg:find("^HS") ~= nil end
  local md = p:metadata()
  local listed = type(md) == "table" and md.authorization_signing_alg_values_supported
  local ours = oidc.ASYMMETRIC_SET
  local allowed = {}
  if type(listed) == "table" then
    for _, a in ipairs(listed) do if ours[a] then allowed[a] = true end end
  end
  if next(allowed) == nil then allowed.RS256 = true end
  return allowed, false
end

-- An encrypted response (a JWE: five parts) decrypted with the client's
-- `decryption_keys`; the nested JWS (never accepted unsigned), or nil, err.
local function decrypt(p, token)
  return require("smartauth.jwe").maybe_decrypt(p, token, "the authorization response (JARM)")
end

--- The callback's parameters from a redirect URL (or its query); the
-- fragment only when use_fragment (a response in the query never has one,
-- and a fragment is what page script or an attacker's link can add). A name
-- given twice, also once in the query and once in the fragment, is refused
-- (RFC 6749 §3.1).
-- @return the parameters, or nil, err (validation)
function M.parse_callback(s, use_fragment)
  s = s:match("^%s*(.-)%s*$")
  if #s > M.MAX_CALLBACK then return nil, errors.new("validation", "redirect URL is too long") end
  local query, fragment
  if s:find("^%a[%w+.-]*:") then
    query, fragment = s:match("^[^?#]*%??([^#]*)#?(.*)$")
  else
    query, fragment = s:gsub("^%?", ""), ""
  end
  local out, err = url.decode(query)
  if not out then return nil, errors.new("validation", "redirect URL: " .. err) end
  if use_fragment and fragment ~= "" then
    local f, ferr = url.decode(fragment)
    if not f then return nil, errors.new("validation", "redirect URL fragment: " .. ferr) end
    for k, v in pairs(f) do
      if out[k] ~= nil then
        return nil, errors.new("validation", "redirect URL: parameter '" .. clean_text(k, 40) ..
          "' is repeated in the query and the fragment")
      end
      out[k] = v
    end
  end
  return out
end

--- A form_post response's body (`application/x-www-form-urlencoded`, as
-- the browser POSTed it): its parameters, or nil, err (validation: too
-- long, badly encoded, a name given twice).
function M.parse_form(body)
  if #body > M.MAX_CALLBACK then return nil, errors.new("validation", "form_post body is too long") end
  local out, err = url.decode(body)
  if not out then return nil, errors.new("validation", "form_post body: " .. err) end
  return out
end

--- Verify a JARM response and return its parameters (code, state, iss,
-- error, error_description, ...), or nil, err (`validation`, `err.check`
-- naming the failed check). Nothing in it is read before the signature,
-- iss, aud and exp are checked.
-- @param p the provider
-- @param token the `response` parameter
-- @return the parameters, or nil, err
function M.verify(p, token)
  if type(token) ~= "string" or token == "" then return refuse("response", "no response parameter") end
  if #token > M.MAX_RESPONSE then
    return refuse("format", "the response is longer than " .. M.MAX_RESPONSE .. " bytes")
  end
  local issuer = p:endpoint("issuer")
  if not issuer then return refuse("iss", "a JARM response needs the provider's issuer to be checked") end
  local _, dots = token:gsub("%.", "")
  if dots == 4 then
    local inner, derr = decrypt(p, token)
    if not inner then return nil, vault.scrub(p, derr) end
    token = inner
  elseif dots ~= 2 then
    return refuse("format", "the response is not a compact JWS")
  end
  local oidc = require "smartauth.oidc"
  local kok, kerr = oidc.need_keys(p)
  if not kok then return nil, kerr end
  local h, c, sig, input_len = jwt.parse(token)
  if not h then return nil, c end
  local now = clock.now()
  local allowed, hmac = allowed_algs(p, oidc)
  local ok, serr = oidc.check_signature(p, token, h, sig, input_len, now, refuse, hmac, allowed)
  if not ok then return nil, vault.scrub(p, serr) end
  if type(c.iss) ~= "string" or c.iss ~= issuer then return refuse("iss", "iss does not match the issuer") end
  if not jwt.aud_has(c.aud, p.options.client_id) then return refuse("aud", "aud is not this client") end
  local leeway = p.options.leeway or 0
  if not compat.is_finite(c.exp) then return refuse("exp", "no finite exp claim") end
  if now - leeway >= c.exp then return refuse("exp", "expired") end
  -- the authorization response's parameters are strings (JARM §2.1);
  -- the JWT's own claims are not parameters
  local out = {}
  for k, v in pairs(c) do
    if k ~= "aud" and k ~= "exp" and k ~= "iat" and k ~= "nbf" and k ~= "jti" then
      if type(v) ~= "string" then
        return refuse("format", "parameter '" .. clean_text(tostring(k), 40) .. "' is not a string")
      end
      out[k] = v
    end
  end
  return out
end

--- The authorization response a callback holds for a session's mode: the
-- callback's parameters as they are, or, for a JARM mode, the verified
-- `response`'s (no other parameter is looked at).
-- @param p the provider
-- @param cb the callback's decoded parameters
-- @param mode the session's response_mode
-- @return the parameters, or nil, err
function M.response(p, cb, mode)
  if not M.is_jwt(mode) then return cb end
  if cb.response == nil then
    return refuse("response", "the callback has no response parameter (response_mode " .. mode .. ")")
  end
  return M.verify(p, cb.response)
end

return M
