--- The login example's Lua: a site that logs people in with OpenID Connect
-- (authorization code flow with PKCE, state and nonce; the ID token
-- verified), keeps their tokens in the shared dictionary under a random
-- session id, refreshes the access token when it is due, and logs out at
-- the provider too (RP-Initiated Logout).
--
-- The browser holds one cookie: the session id and, during a login, the
-- login state (state, nonce, PKCE verifier), sealed with AES-256-GCM
-- (smartauth's C core) under SMARTAUTH_COOKIE_SECRET with the cookie's
-- name as associated data, so it can be neither read nor changed. The
-- tokens never leave the server.
-- luacheck: globals ngx
local smartauth = require "smartauth"
local core = require "smartauth.core"
local json = require "cjson.safe"

local M = {}

local COOKIE = "smartauth_site"
local LOGIN_TTL = 600 -- seconds a started login may take
local provider, sessions, key, dict
local session_ttl, refresh_early

--- init_worker_by_lua: the provider (discovery happens over cosockets on the
-- first login), the session store, the cookie key.
function M.init()
  -- no store: the provider has no token of its own; each person's tokens
  -- are kept in `sessions` (exchange_code with keep = false, see callback)
  provider = assert(smartauth.provider {
    issuer = os.getenv("SMARTAUTH_ISSUER"),
    client_id = os.getenv("SMARTAUTH_CLIENT_ID"),
    client_secret = os.getenv("SMARTAUTH_CLIENT_SECRET"),
    scope = os.getenv("SMARTAUTH_SCOPE") or "openid profile",
  })
  sessions = assert(smartauth.store.shdict { dict = "smartauth", prefix = "site:" })
  dict = ngx.shared.smartauth
  key = assert(core.aead_key(assert(os.getenv("SMARTAUTH_COOKIE_SECRET"), "SMARTAUTH_COOKIE_SECRET is not set")))
  session_ttl = tonumber(os.getenv("SMARTAUTH_SESSION_TTL")) or 8 * 3600
  refresh_early = tonumber(os.getenv("SMARTAUTH_REFRESH_EARLY")) or 60
end

-- ----------------------------------------------------------------- the cookie

local function b64url_decode(s)
  if not s:find("^[%w%-_]+$") then return nil end
  return core.b64url_decode(s)
end

-- The cookie's content, or nil when there is none, or it was not sealed by
-- us, or it is too old. Never raises on what the browser sent.
local function read_cookie()
  local raw = ngx.var["cookie_" .. COOKIE]
  if not raw or #raw > 3000 then return nil end
  local sealed = b64url_decode(raw)
  local plain = sealed and key:open(COOKIE, sealed)
  local c = plain and json.decode(plain)
  if type(c) ~= "table" or type(c.sid) ~= "string" or not c.sid:find("^[%w%-_]+$") then return nil end
  if c.login ~= nil and (type(c.login) ~= "table" or type(c.login_exp) ~= "number"
      or c.login_exp < ngx.time()) then
    c.login = nil
  end
  return c
end

local function write_cookie(c, max_age)
  local value = core.b64url_encode(key:seal(COOKIE, assert(json.encode(c))))
  ngx.header["Set-Cookie"] = COOKIE .. "=" .. value .. "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" ..
    max_age .. (ngx.var.scheme == "https" and "; Secure" or "")
end

local function clear_cookie()
  ngx.header["Set-Cookie"] = COOKIE .. "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0" ..
    (ngx.var.scheme == "https" and "; Secure" or "")
end

local function new_sid()
  return core.b64url_encode(core.random(32))
end

-- A path on this site only (no scheme, no host, no "//" or "/\").
local function local_path(p)
  if type(p) ~= "string" or not p:find("^/") or p:find("^/[/\\]") or p:find("[%c]") then return "/" end
  return p
end

local function fail(status, why)
  ngx.log(ngx.WARN, "smartauth login: ", why)
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain"
  ngx.say(status == 400 and "bad request" or "service unavailable")
  return ngx.exit(status)
end

-- ------------------------------------------------------------------ the steps

--- content_by_lua for /login: start a login, then send the browser to the
-- provider.
function M.login()
  local url, login = provider:authorization_url { redirect_uri = ngx.var.site_url .. "/cb" }
  if not url then return fail(503, "no authorization URL: " .. tostring(login)) end
  write_cookie({ sid = new_sid(), login = login, login_exp = ngx.time() + LOGIN_TTL,
    return_to = local_path(ngx.var.arg_return_to and ngx.unescape_uri(ngx.var.arg_return_to)) }, LOGIN_TTL)
  return ngx.redirect(url)
end

--- content_by_lua for /cb: the provider's redirect. The login state must be
-- in this browser's cookie, unused; the code is exchanged (state, iss,
-- nonce and the ID token checked), and the session starts under a new id.
function M.callback()
  local c = read_cookie()
  if not c or not c.login then return fail(400, "a callback without a login in progress") end
  -- one callback per login: a replayed one is refused before anything is sent
  if not dict:add("used:" .. c.sid, true, LOGIN_TTL) then return fail(400, "a replayed callback") end
  -- keep = false: the tokens are this person's, not the site's provider's
  local tok, err = provider:exchange_code { url = ngx.var.site_url .. ngx.var.request_uri, session = c.login,
    keep = false }
  if not tok then return fail(400, "login failed: " .. tostring(err)) end
  if not tok.claims then return fail(400, "login failed: no ID token") end
  local sid = new_sid() -- a fresh id: the one the login ran under was in a cookie before
  local ok, serr = sessions:set(sid, {
    access_token = tok.access_token, refresh_token = tok.refresh_token, id_token = tok.id_token,
    expires_at = tok.expires_at, sub = tok.claims.sub, name = tok.claims.name,
  }, session_ttl)
  if not ok then return fail(503, "cannot keep the session: " .. tostring(serr)) end
  write_cookie({ sid = sid }, session_ttl)
  return ngx.redirect(c.return_to or "/")
end

-- A due access token renewed with the refresh token, once across the
-- workers (the store's lock); the session as it is then, or nil.
local function refreshed(sid, s)
  local unlock = sessions:lock(sid, 15)
  if unlock then
    local now = sessions:get(sid) -- another request may have renewed it meanwhile
    if now and now.expires_at and now.expires_at - ngx.time() > refresh_early then
      unlock()
      return now
    end
    s = now or s
  end
  local tok, err
  if s.refresh_token then
    tok, err = provider:grant("refresh_token", { refresh_token = s.refresh_token })
  end
  if not tok then
    ngx.log(ngx.WARN, "smartauth login: refresh failed: ", tostring(err or "no refresh token"))
    sessions:delete(sid)
    if unlock then unlock() end
    return nil
  end
  s.access_token, s.expires_at = tok.access_token, tok.expires_at
  s.refresh_token = tok.refresh_token or s.refresh_token -- rotated by the provider, or kept
  s.id_token = tok.id_token or s.id_token
  sessions:set(sid, s, session_ttl)
  if unlock then unlock() end
  return s
end

--- access_by_lua for the site: a logged-in person's request goes upstream
-- with their access token and subject; anyone else is sent to log in.
function M.access()
  local c = read_cookie()
  local s = c and sessions:get(c.sid)
  if s and s.expires_at and s.expires_at - ngx.time() <= refresh_early then
    s = refreshed(c.sid, s)
  end
  if not s then
    return ngx.redirect("/login?return_to=" .. ngx.escape_uri(ngx.var.request_uri))
  end
  ngx.req.set_header("Authorization", "Bearer " .. s.access_token)
  ngx.req.set_header("X-Auth-Sub", s.sub)
end

--- content_by_lua for /logout: the session ends here, then at the
-- provider (its end-session endpoint, with the ID token as hint).
function M.logout()
  local c = read_cookie()
  local s = c and sessions:get(c.sid)
  if c then sessions:delete(c.sid) end
  clear_cookie()
  local post = os.getenv("SMARTAUTH_POST_LOGOUT_URI")
  local url = s and provider:end_session_url { id_token_hint = s.id_token, post_logout_redirect_uri = post }
  return ngx.redirect(url or "/")
end

return M
