--- Internal: the engine's transport inside nginx (OpenResty's
-- lua-nginx-module): requests over cosockets (smartauth.ngx.http), sleeps
-- with `ngx.sleep`, single flights with `ngx.semaphore`. engine.lua picks
-- it when the `ngx` table is there, unless a request says `transport =
-- "curl"`. In a phase where cosockets cannot yield (init, init_worker,
-- set, header and body filters, log) a request returns `nil, err` (kind
-- `config`) and sends nothing.
-- @module smartauth.ngx.transport
local compat = require "smartauth.compat"
local errors = require "smartauth.errors"
local http = require "smartauth.ngx.http"

local M = {}

-- The phases whose handlers run in a coroutine that cosockets and
-- ngx.sleep may yield (lua-nginx-module's documentation of each API).
local YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local function ngx_api() return rawget(_G, "ngx") end

--- true when this Lua state runs inside nginx with lua-nginx-module.
function M.present()
  local n = ngx_api()
  return type(n) == "table" and type(n.get_phase) == "function" and type(n.socket) == "table"
end

--- nil when the current phase can yield, else the `config` error to return.
function M.phase_error()
  local phase = ngx_api().get_phase()
  if YIELDABLE[phase] then return nil end
  return errors.new("config", "smartauth cannot make HTTP requests or wait in nginx's '" .. tostring(phase) ..
    "' phase (cosockets cannot yield there): call it from the rewrite, access or content phase, " ..
    "or from a timer (ngx.timer.at)", { phase = phase })
end

-- Options the cosocket transport has no way to honour: trust and proxies
-- are nginx's configuration.
local function unsupported(req)
  if req.ca_file then
    return errors.new("config", "option 'ca_file' is not supported under transport ngx: nginx verifies " ..
      "servers against the lua_ssl_trusted_certificate directive (set lua_ssl_verify_depth too)",
      { option = "ca_file" })
  end
  if req.proxy then
    return errors.new("config", "option 'proxy' is not supported under transport ngx: cosockets connect " ..
      "directly (see lua_ssl_trusted_certificate for trust; use transport = \"curl\" for a proxy)",
      { option = "proxy" })
  end
end

--- engine.request inside nginx. now: a monotonic clock (seconds).
function M.request(req, now)
  local err = M.phase_error() or unsupported(req)
  if err then return nil, err end
  return http.request(req, now)
end

--- ngx.sleep where the phase allows it; elsewhere nothing can wait.
function M.sleep(seconds)
  if seconds > 0 and not M.phase_error() then ngx_api().sleep(seconds) end
end

-- A single flight of this worker: waiters sleep on a semaphore that
-- resolve posts once per waiter.
local Flight = { __name = "smartauth.ngx.flight" }
Flight.__index = Flight

function M.flight()
  local sema = assert(require("ngx.semaphore").new(0))
  return setmetatable({ sema = sema, n = 0, done = false }, Flight)
end

function Flight:resolve(...)
  self.done = true
  self.values = compat.pack(...)
  if self.n > 0 then self.sema:post(self.n) end
end

function Flight:wait()
  while not self.done do
    local err = M.phase_error()
    if err then return nil, err end
    self.n = self.n + 1
    self.sema:wait(1) -- a second at a time: done is what counts
    self.n = self.n - 1
  end
  return compat.unpack(self.values, 1, self.values.n)
end

return M
