--- The four services end to end: one fake server (spec/helpers/services.js loaded into
-- spec/helpers/server.js) that speaks each service's documented wire format, and the
-- three ways the specs drive the library: a preset in this process, the `smartauth`
-- command as a child process with a config profile, and a task under smartauth.spawn.
--
--   local services = require "helpers.services"
--   local fake = services.start()          -- fake.url, fake.server (helpers.server)
--   fake:options("smartsense", { leeway = 0 })   -- preset options pointed at the fake
--   fake:requests("/ss/")                  -- recorded requests under a path prefix
--   fake:setup("sc", { expires_in = 2 })   -- change a service's behaviour
--   fake:revoke_all("sf", "empty400")      -- every token dies behind the client's back
--   fake:browse(authorization_url)         -- the user in the browser: "code", code (the
--                                          -- page shows it) or "redirect", location
--   local cli = services.cli(fake)         -- temp HOME, XDG dirs, config file, token dir
--   cli:config{ name = { preset = ..., ... } }   -- profiles (store: file in cli.tokens)
--   cli:run({ "token", "name" }, { stdin = "..." })  -> { code=, out=, err= }
--   services.in_task(fn, ...)              -- fn(...) inside smartauth.spawn, driven by
--                                          -- smartauth.run(); its results, or its error raised
--   fake:stop(); cli:cleanup()
local compat = require "smartauth.compat"
local cjson = require "cjson"
local socket = require "socket"
local server = require "helpers.server"
local proc = require "helpers.proc"
local jwt = require "helpers.jwt"
local oidc = require "helpers.oidc"

local M = {}

local q = proc.shell_quote
local ROOT = oidc.root

M.OOB = "urn:ietf:wg:oauth:2.0:oob"

-- The credentials each fake service knows (sent to it at start).
M.CREDS = {
  sf = { client_id = "sf-client-1", client_secret = "sf-secret-Zq8 +%&", api_key = "sf-api-key-1",
         api_password = "sf-api-pw-9%" },
  sc = { client_id = "sc-client-1", client_secret = "sc-secret-Kp3", username = "ada@example.com",
         password = "p@ss word&=1" },
  ss = { client_id = "ss-client-1", client_secret = "ss-secret: x/+=" },
  st = { client_id = "st-client-1", client_secret = "st-secret-Vv7" },
  idp = { client_id = "cli", client_secret = "idp-secret-4", public_clients = { "app" } },
}

local Fake = {}
Fake.__index = Fake

--- Starts the fake services on 127.0.0.1 (one Node process).
-- opts.any_client: every service accepts any non-empty credentials sent the documented
-- way (for the README's examples, whose credentials are placeholders).
function M.start(opts)
  local s = server.start { fake = ROOT .. "/spec/helpers/services.js" }
  local self = setmetatable({ server = s, url = s.url }, Fake)
  local key = jwt.key("RSA")
  local jwks = jwt.jwks(jwt.public_jwk(key, { kid = "fake-1", use = "sig", alg = "RS256" }))
  for svc, c in pairs(M.CREDS) do
    local cfg = {}
    for k, v in pairs(c) do cfg[k] = v end
    if svc == "st" or svc == "idp" then
      cfg.key_pem, cfg.kid, cfg.jwks = key.pem, "fake-1", jwks
    end
    cfg.any_client = opts and opts.any_client or false
    self:setup(svc, cfg)
  end
  return self
end

function Fake:setup(svc, cfg)
  return self.server:fake { op = "setup", svc = svc, config = cfg }
end

--- Every token of a service dies; a refresh then gets invalid_grant, or an
-- empty-bodied 400 ("empty400") or 401 ("empty401").
function Fake:revoke_all(svc, dead_refresh)
  return self.server:fake { op = "revoke_all", svc = svc, dead_refresh = dead_refresh }
end

--- Live (unexpired, unrevoked) access and refresh tokens of a service.
function Fake:live(svc)
  return self.server:fake { op = "live", svc = svc }
end

function Fake:reset() self.server:reset() end
function Fake:stop()
  self.server:stop()
  jwt.cleanup() -- the key files; the key itself stays cached in memory (as oidc_spec does)
end

--- Recorded requests whose path starts with prefix (all when nil).
function Fake:requests(prefix)
  local out = {}
  for _, r in ipairs(self.server:requests()) do
    if not prefix or r.path:sub(1, #prefix) == prefix then out[#out + 1] = r end
  end
  return out
end

--- The base URL of a service on the fake ("sf", "sc", "ss", "st", "idp", "ex").
function Fake:base(svc) return self.url .. "/" .. svc end

--- Preset options pointed at the fake: the documented options of each service plus
-- the endpoint overrides. kind: "smartfile" (OAuth), "smartfile_key" (API key),
-- "smartconnect", "smartsense", "smarttask". extra is merged last (false removes).
function Fake:options(kind, extra)
  local c, o
  if kind == "smartfile" then
    c = M.CREDS.sf
    o = { domain = "acme.smartfile.com", client_id = c.client_id, client_secret = c.client_secret,
          redirect_uri = "https://app.example.com/smartfile/callback",
          authorization_endpoint = self:base("sf") .. "/oauth2/authorize/",
          token_endpoint = self:base("sf") .. "/oauth2/token/", api_base = self:base("sf") .. "/api/2/" }
  elseif kind == "smartfile_key" then
    c = M.CREDS.sf
    o = { domain = "acme.smartfile.com", api_key = c.api_key, api_password = c.api_password,
          api_base = self:base("sf") .. "/api/2/" }
  elseif kind == "smartconnect" then
    c = M.CREDS.sc
    o = { region = "EU", client_id = c.client_id, client_secret = c.client_secret, username = c.username,
          password = c.password, token_endpoint = self:base("sc") .. "/token", api_base = self:base("sc") .. "/api/" }
  elseif kind == "smartsense" then
    c = M.CREDS.ss
    o = { client_id = c.client_id, client_secret = c.client_secret, token_endpoint = self:base("ss") .. "/auth/oauth",
          api_base = self:base("ss") .. "/v1/" }
  elseif kind == "smarttask" then
    c = M.CREDS.st
    o = { client_id = c.client_id, client_secret = c.client_secret, redirect_uri = M.OOB,
          scope = "openid email", issuer = self:base("st") }
  else
    error("unknown kind " .. tostring(kind), 2)
  end
  for k, v in pairs(extra or {}) do
    if v == false then o[k] = nil else o[k] = v end
  end
  return o
end

--- The user at the authorization endpoint: "code", code when the page shows the code
-- (out of band), "redirect", location when the browser is sent back to the client.
function Fake:browse(auth_url)
  assert(auth_url:sub(1, #self.url) == self.url, "authorization URL not on the fake: " .. auth_url)
  local status, headers, body = oidc.request { url = auth_url }
  if status == 302 then return "redirect", headers.location end
  assert(status == 200, "authorize answered " .. tostring(status) .. ": " .. tostring(body))
  return "code", assert(body:match('<code id="code">([^<]+)</code>'), body)
end

--- Names of the form fields of a recorded request, sorted.
function M.form_names(req)
  local names = {}
  for _, p in ipairs(req.form_pairs or {}) do names[#names + 1] = p[1] end
  table.sort(names)
  return names
end

------------------------------------------------------------------------ the CLI

local Cli = {}
Cli.__index = Cli

-- Every inherited descriptor above 2 closed in the child (see spec/cli_spec.lua).
local CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]

function M.cli(fake)
  local tmp = proc.tmpdir("smartauth-svc-cli.XXXXXX")
  local self = setmetatable({ fake = fake, tmp = tmp, tokens = tmp .. "/tokens", n = 0,
    config_path = tmp .. "/config/smartauth/config.lua" }, Cli)
  os.execute("mkdir -p " .. q(tmp .. "/home") .. " " .. q(tmp .. "/config/smartauth") .. " " .. q(tmp .. "/state")
    .. " " .. q(tmp .. "/cache"))
  return self
end

function Cli:cleanup() proc.rmtree(self.tmp) end

local function lua_value(v, indent)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = indent .. "  [" .. lua_value(k, "") .. "] = " .. lua_value(v[k], indent .. "  ") .. ","
  end
  return "{\n" .. table.concat(parts, "\n") .. "\n" .. indent .. "}"
end

--- Writes the config file: profiles as given, each with a file store in cli.tokens
-- unless it names its own.
function Cli:config(profiles)
  local ps = {}
  for name, prof in pairs(profiles) do
    local p = {}
    for k, v in pairs(prof) do p[k] = v end
    if p.store == nil then p.store = { kind = "file", dir = self.tokens } end
    ps[name] = p
  end
  local f = assert(io.open(self.config_path, "w"))
  f:write("return ", lua_value({ profiles = ps }, ""), "\n")
  f:close()
  os.execute("chmod 600 " .. q(self.config_path))
end

function Cli:_command(args)
  local words = {}
  for i, a in ipairs(args) do words[i] = q(a) end
  return "env -u DISPLAY -u WAYLAND_DISPLAY -u SMARTAUTH_STORE_KEY -u BROWSER"
    .. " HOME=" .. q(self.tmp .. "/home") .. " XDG_CONFIG_HOME=" .. q(self.tmp .. "/config")
    .. " XDG_STATE_HOME=" .. q(self.tmp .. "/state") .. " XDG_CACHE_HOME=" .. q(self.tmp .. "/cache")
    .. " SMARTAUTH_CONFIG=" .. q(self.config_path)
    .. " LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;")
    .. " LUA_CPATH=" .. q(ROOT .. "/" .. proc.BUILD .. "/?.so;;")
    .. " " .. proc.LUA .. " " .. q(ROOT .. "/bin/smartauth") .. " " .. table.concat(words, " ")
end

--- Runs `smartauth ARGS...` to the end; opts.stdin: text on its standard input.
-- @return { code=, out=, err= }
function Cli:run(args, opts)
  opts = opts or {}
  self.n = self.n + 1
  local out, err, inp = self.tmp .. "/out" .. self.n, self.tmp .. "/err" .. self.n, self.tmp .. "/in" .. self.n
  local f = assert(io.open(inp, "w"))
  f:write(opts.stdin or "")
  f:close()
  local cmd = "cd " .. q(self.tmp) .. " && exec bash -c " .. q(CLOSE_FDS) .. " bash " .. self:_command(args)
    .. " <" .. q(inp) .. " >" .. q(out) .. " 2>" .. q(err)
  local _, _, code = compat.execute(cmd)
  return { code = code, out = proc.read_file(out) or "", err = proc.read_file(err) or "" }
end

--- Starts `smartauth ARGS...` with its stdin a pipe from here; returns a handle:
-- h:stderr() (text so far), h:wait_stderr(pattern) (the first capture, waiting up to
-- 10 s), h:send(line), h:finish() -> { code=, out=, err= }.
function Cli:start(args)
  self.n = self.n + 1
  local out, err, pidfile = self.tmp .. "/out" .. self.n, self.tmp .. "/err" .. self.n, self.tmp .. "/pid" .. self.n
  -- every step execs, so the pid written is the command's
  local cmd = "cd " .. q(self.tmp) .. " && exec bash -c " .. q(CLOSE_FDS) .. " bash sh -c "
    .. q("echo $$ > " .. q(pidfile) .. "; exec " .. self:_command(args) .. " >" .. q(out) .. " 2>" .. q(err))
  local pipe = proc.popen(cmd, "w")
  local h = {}
  function h.stderr() return proc.read_file(err) or "" end
  function h.wait_stderr(pattern)
    local deadline = socket.gettime() + 10
    while true do
      local m = h.stderr():match(pattern)
      if m then return m end
      local pid = compat.tointeger(tonumber(proc.read_file(pidfile) or ""))
      if socket.gettime() > deadline or (pid and not proc.alive(pid)) then
        error("no " .. pattern .. " on stderr (the command ended, or 10 s passed); got: " .. h.stderr(), 2)
      end
      socket.sleep(0.02)
    end
  end
  function h.send(line)
    pipe:write(line, "\n")
    pipe:flush()
  end
  function h.finish()
    local _, _, code = pipe:close()
    return { code = code, out = proc.read_file(out) or "", err = proc.read_file(err) or "" }
  end
  return h
end

------------------------------------------------------------------ the engine

--- Runs fn(...) as a task under smartauth.spawn and drives it with smartauth.run().
-- Returns what fn returned; raises fn's error. services.yielded tells afterwards
-- whether the task was still running when spawn returned (it waited on the network).
function M.in_task(fn, ...)
  local smartauth = require "smartauth"
  local task = smartauth.spawn(fn, ...)
  M.yielded = task.status == "running"
  smartauth.run()
  local r = compat.pack(task:result())
  if r[1] == nil then error("task still running after smartauth.run()", 2) end
  if r[1] == false then error(r[2], 0) end
  return compat.unpack(r, 2, r.n)
end

M.sleep = proc.sleep

--- A one-line JSON parse of the CLI's --json output.
function M.json(s) return cjson.decode(s) end
M.null = cjson.null

return M
