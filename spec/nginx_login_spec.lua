-- #nginx The login example (examples/nginx/login) in a real nginx against oidc-provider:
-- a real login (authorization code, PKCE, state, nonce; the ID token verified), the
-- session's tokens in the shared dictionary under a random id, the access token refreshed
-- when due, RP-initiated logout; and hostile callbacks and cookies: tampered, replayed,
-- without state, with another login's state.
local socket = require "socket"
local nginx_lua = require "helpers.nginx_lua"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"
local server = require "helpers.server"
local smartauth = require "smartauth"

local available, why = nginx_lua.available()
local EXAMPLE = "examples/nginx/login/nginx.conf"
local EXAMPLE_PATH = (function()
  local _, _, cwd = proc.run("pwd")
  return cwd:gsub("%s+$", "") .. "/examples/nginx/login/?.lua"
end)()
local EXT = "spec/interop/ext/nginx.js"
local CLIENT, SECRET = "nginx-site", "nginx-site-secret"
local COOKIE_SECRET = "0123456789abcdef0123456789abcdef-test"

local function counts(op)
  local _, c = oidc.request_json(op.issuer .. "/test/counts")
  return c
end

-- GET url with the cookie (a "name=value" string or nil): status, location, the cookie
-- set (or false when cleared, nil when untouched), the Set-Cookie line, body
local function get(url, cookie)
  local st, h, body = oidc.request { url = url, headers = { cookie = cookie } }
  local sc = h["set-cookie"]
  local set
  if sc then
    local v = sc:match("^(smartauth_site=[^;]*)")
    set = v and v ~= "smartauth_site=" and v or false
  end
  return st, h.location, set, sc, body
end

local function flip(cookie)
  local name, v = cookie:match("^([^=]+)=(.*)$")
  local i = math.floor(#v / 2)
  local c = v:sub(i, i) == "A" and "B" or "A"
  return name .. "=" .. v:sub(1, i - 1) .. c .. v:sub(i + 1)
end

describe("#nginx the login example", function()
  if not available then
    if os.getenv("CI") then error(why) end
    pending(why)
    return
  end

  local op, up, n
  setup(function()
    op = oidc.start { extend = EXT, access_token_ttl = 8 }
    up = server.start()
    n = nginx_lua.start { conf = EXAMPLE, path = EXAMPLE_PATH, env = {
      SMARTAUTH_ISSUER = op.issuer, SMARTAUTH_CLIENT_ID = CLIENT, SMARTAUTH_CLIENT_SECRET = SECRET,
      SMARTAUTH_COOKIE_SECRET = COOKIE_SECRET, SMARTAUTH_REFRESH_EARLY = "4",
      SMARTAUTH_POST_LOGOUT_URI = "http://127.0.0.1/bye",
    }, subs = {
      { "server 127%.0%.0%.1:9000;", "server 127.0.0.1:" .. up.port .. ";" },
      { "http://127%.0%.0%.1:8080", "http://127.0.0.1:$PORT" },
    } }
  end)
  teardown(function()
    if n then n:stop() end
    if up then up:stop() end
    if op then op:stop() end
  end)
  before_each(function() up:reset() end)

  -- /login: the provider's URL and the login cookie
  local function start_login(return_to)
    local st, loc, cookie, line = get(n.url .. "/login" .. (return_to and "?return_to=" ..
      oidc.url_encode(return_to) or ""))
    assert.are.equal(302, st, n:error_log())
    assert.are.equal(op.issuer .. "/auth", loc:match("^[^?]+"))
    assert.truthy(cookie)
    return loc, cookie, line
  end

  -- a whole login: the session cookie
  local function log_in(return_to)
    local auth, cookie = start_login(return_to)
    local cb = op:login(auth, { login = "alice" })
    local st, loc, session = get(cb, cookie)
    assert.are.equal(302, st, n:error_log())
    assert.truthy(session)
    return session, loc
  end

  it("logs a person in, passes their token upstream, refreshes it when due, and logs out", function()
    up:script("/app/page", { body = "hello" }, 4)
    local st, loc = get(n.url .. "/app/page?x=1")
    assert.are.equal(302, st)
    assert.are.equal("/login?return_to=%2Fapp%2Fpage%3Fx%3D1", loc)
    local auth, login_cookie, line = start_login("/app/page?x=1")
    assert.matches("; HttpOnly", line, 1, true)
    assert.matches("; SameSite=Lax", line, 1, true)
    assert.is_nil(line:find("Secure", 1, true)) -- plain http here
    local q = oidc.parse_query(auth:match("%?(.*)$"))
    assert.are.equal("S256", q.code_challenge_method)
    assert.truthy(q.state and q.nonce and q.code_challenge)
    assert.are.equal(n.url .. "/cb", q.redirect_uri)
    -- the state, nonce and verifier are sealed: not readable in the cookie
    for _, v in ipairs { q.state, q.nonce } do assert.is_nil(login_cookie:find(v, 1, true)) end
    local tokens0 = counts(op).token

    local cb = op:login(auth, { login = "alice" })
    local session
    st, loc, session = get(cb, login_cookie)
    assert.are.equal(302, st, n:error_log())
    assert.are.equal("/app/page?x=1", loc)
    assert.truthy(session)
    assert.are_not.equal(login_cookie, session) -- a new session id after login
    assert.are.equal(tokens0 + 1, counts(op).token)

    local _, body
    st, _, _, _, body = get(n.url .. "/app/page?x=1", session)
    assert.are.equal(200, st, n:error_log())
    assert.are.equal("hello", body)
    local r = up:requests()[1]
    assert.are.equal("alice", r.headers["x-auth-sub"])
    local at1 = r.headers.authorization:match("^Bearer (%S+)$")
    local cc = assert(smartauth.discover(op.issuer, { client_id = CLIENT, client_secret = SECRET }))
    local info = assert(cc:introspect(at1))
    assert.is_true(info.active)
    assert.are.equal("alice", info.sub)

    -- 8 s tokens renewed 4 s before they expire
    socket.sleep(4.3)
    st = get(n.url .. "/app/page", session)
    assert.are.equal(200, st, n:error_log())
    assert.are.equal(tokens0 + 2, counts(op).token)
    local at2 = up:requests()[2].headers.authorization:match("^Bearer (%S+)$")
    assert.are_not.equal(at1, at2)
    assert.is_true(assert(cc:introspect(at2)).active)
    st = get(n.url .. "/app/page", session)
    assert.are.equal(200, st)
    assert.are.equal(tokens0 + 2, counts(op).token) -- fresh again: no more refreshes
    assert.are.equal("Bearer " .. at2, up:requests()[3].headers.authorization)

    -- logout: the session is gone here, and the provider's end-session URL is next
    local cleared
    st, loc, cleared = get(n.url .. "/logout", session)
    assert.are.equal(302, st)
    assert.is_false(cleared)
    assert.are.equal(op.issuer .. "/session/end", loc:match("^[^?]+"))
    local lq = oidc.parse_query(loc:match("%?(.*)$"))
    assert.are.equal("http://127.0.0.1/bye", lq.post_logout_redirect_uri)
    local _, idt = oidc.jwt_decode(lq.id_token_hint)
    assert.are.equal("alice", idt.sub)
    assert.are.equal(CLIENT, idt.aud)
    st = oidc.request { url = loc }
    assert.are.equal(200, st) -- the provider's logout confirmation page
    st, loc = get(n.url .. "/app/page", session)
    assert.are.equal(302, st)
    assert.matches("^/login", loc)
    assert.are.equal(3, #up:requests())
  end)

  it("refuses a tampered cookie", function()
    local auth, cookie = start_login()
    local cb = op:login(auth, { login = "alice" })
    local tokens0 = counts(op).token
    local st = get(cb, flip(cookie))
    assert.are.equal(400, st)
    st = get(cb, nil)
    assert.are.equal(400, st)
    assert.are.equal(tokens0, counts(op).token)
    -- a tampered session cookie is no session
    local session = log_in()
    local loc
    st, loc = get(n.url .. "/app/x", flip(session))
    assert.are.equal(302, st)
    assert.matches("^/login", loc)
    st = get(n.url .. "/app/x", "smartauth_site=" .. ("A"):rep(2000))
    assert.are.equal(302, st)
    assert.are.equal(0, #up:requests())
  end)

  it("refuses a replayed callback without sending the code again", function()
    local auth, cookie = start_login()
    local cb = op:login(auth, { login = "alice" })
    local st = get(cb, cookie)
    assert.are.equal(302, st)
    local tokens0 = counts(op).token
    st = get(cb, cookie)
    assert.are.equal(400, st)
    assert.are.equal(tokens0, counts(op).token)
  end)

  it("refuses a callback without state, or with another login's state", function()
    local auth_a, cookie_a = start_login()
    local auth_b, cookie_b = start_login()
    local cb_b = op:login(auth_b, { login = "bob" })
    local tokens0 = counts(op).token
    -- no state: refused before the code is sent
    local st = get((cb_b:gsub("([?&])state=[^&]*&?", "%1")), cookie_b)
    assert.are.equal(400, st)
    -- B's callback in A's browser
    local cb_a_state = oidc.parse_query(auth_a:match("%?(.*)$")).state
    st = get(cb_b, cookie_a)
    assert.are.equal(400, st)
    assert.are.equal(tokens0, counts(op).token)
    assert.matches("state mismatch", n:error_log())
    assert.is_nil(n:error_log():find(cb_a_state, 1, true))
    -- the first try at B used B's login: the code cannot be taken again
    st = get(cb_b, cookie_b)
    assert.are.equal(400, st)
  end)

  it("sends a person back to a path of this site only", function()
    local _, loc = log_in("//evil.example/x")
    assert.are.equal("/", loc)
    _, loc = log_in("https://evil.example/")
    assert.are.equal("/", loc)
    _, loc = log_in("/\\evil.example")
    assert.are.equal("/", loc)
  end)
end)
