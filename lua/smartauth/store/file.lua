--- The file store (smartauth.store.file): a facade over the C file store,
-- which keeps one private directory (0700), one file per entry (0600),
-- writes every entry atomically (temporary file, fsync, rename, fsync of
-- the directory), encrypts with AES-256-GCM when it has a key, and takes a
-- lock file per entry for refresh coordination. A directory or file open
-- to others, or owned by another user, is refused.
-- @module smartauth.store.file
local core = require "smartauth.core"
local envelope = require "smartauth.store.envelope"
local errors = require "smartauth.errors"
local lock = require "smartauth.store.lock"
local options = require "smartauth.options"
local store = require "smartauth.store"

local M = {}

--- Options of `store.file` (options.check specs; config.lua checks config
-- files against them too). `key` may also be false: no encryption, and the
-- environment is not read.
M.SCHEMA = { dir = "string", key = "string" }

local File = { __name = "smartauth.store.file" }
File.__index = File

local failure, got, stored = envelope.failure, envelope.got, envelope.stored

-- How often a task looks whether its write is durable (seconds): a host
-- stepping once a frame sees it at the next frame.
local WRITE_POLL = 0.001

--- Where the file store keeps tokens by default:
-- $XDG_STATE_HOME/smartauth, else ~/.local/state/smartauth.
-- @return path or nil, err (config) when neither is set
function M.default_dir()
  local xdg = os.getenv("XDG_STATE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return (xdg:gsub("/+$", "")) .. "/smartauth" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return (home:gsub("/+$", "")) .. "/.local/state/smartauth" end
  return nil, errors.new("config", "smartauth.store.file: no 'dir' given and neither XDG_STATE_HOME nor HOME is set",
    { option = "dir" })
end

-- An encryption key from the option, else the environment; false turns the
-- environment off. Returns the key, false for none, or nil, err.
local function resolve_key(where, key)
  if key == nil then
    key = os.getenv(store.KEY_ENV)
    if key == "" then key = nil end
  elseif key == false then
    key = nil
  elseif type(key) ~= "string" then
    return nil, errors.new("config", where .. ": option 'key' must be a string or false (got " .. type(key) .. ")",
      { option = "key" })
  end
  if key then
    local ok, err = store.check_secret(where, key)
    if not ok then return nil, err end
  end
  return key or false
end

--- Open the file store (`smartauth.store.file{}`).
-- @tparam[opt] table opts
-- @tparam[opt] string opts.dir the directory (default `default_dir()`:
--   `$XDG_STATE_HOME/smartauth`, else `~/.local/state/smartauth`); made 0700
-- @tparam[opt] string|boolean opts.key a secret of at least 16 bytes
--   encrypting each entry with AES-256-GCM, the entry's key as associated
--   data (default the `SMARTAUTH_STORE_KEY` environment variable; `false`:
--   no encryption, the environment is not read)
-- @return store or nil, err (config, storage)
function M.new(opts)
  local where = "smartauth.store.file"
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    errors.argerror(1, "store.file", "table expected", opts)
  end
  -- key is checked by resolve_key, which also takes false
  local rest = {}
  for k, v in pairs(opts) do if k ~= "key" then rest[k] = v end end
  local o, err = options.check(where, rest, M.SCHEMA)
  if not o then return nil, err end
  local dir = o.dir
  if dir == nil then
    dir, err = M.default_dir()
    if not dir then return nil, err end
  elseif dir == "" then
    return nil, errors.new("config", where .. ": option 'dir' is empty", { option = "dir" })
  end
  local key
  key, err = resolve_key(where, opts.key)
  if key == nil then return nil, err end
  local fs, kind, msg = core.fstore_open(dir, key or nil)
  if not fs then return nil, failure(kind, msg) end
  return setmetatable({ dir = dir, encrypted = key ~= false, _fs = fs }, File)
end

function File:get(key)
  store.check_key(key, "get")
  return got(key, "stored", self._fs:get(key))
end

function File:set(key, entry, ttl)
  local s, err = envelope.for_set(key, entry, ttl) -- the ttl lives in the envelope
  if not s then return nil, err end
  -- Inside a task the write and its fsyncs run on a thread while the task
  -- yields (a host's frame goes on); the task resumes once the entry is
  -- durable. No engine loaded means no task: the write blocks, as before.
  local engine = package.loaded["smartauth.engine"]
  if engine and engine.current() then
    local job, kind, msg, code = self._fs:set_start(key, s)
    if not job then return stored(nil, kind, msg, code) end
    while not job:done() do engine.sleep(WRITE_POLL) end
    return stored(job:result())
  end
  return stored(self._fs:set(key, s))
end

function File:delete(key)
  store.check_key(key, "delete")
  return stored(self._fs:delete(key))
end

--- Exclusive lock on one key across processes (flock on `<key>.lock`); it
-- is released by the returned function or when the process dies.
function File:lock(key, ttl, stop)
  store.check_key(key, "lock")
  local fs = self._fs
  local unlock, err, stopped = lock.take(self, key, ttl or store.DEFAULT_LOCK_TTL, function(k)
    local lk, kind, msg = fs:try_lock(k)
    if lk then
      return function() lk:unlock() return true end
    end
    if lk == false then return false end
    return nil, failure(kind, msg)
  end, stop)
  return unlock, err, stopped
end

--- Close the directory (also on `<close>`). Further calls raise.
function File:close()
  self._fs:close()
end
File.__close = File.close

function File:__tostring()
  return "smartauth.store.file (" .. self.dir .. (self.encrypted and ", encrypted)" or ")")
end

return M
