--- The non-blocking engine: coroutines spawned here make their network
-- calls and waits without blocking the host; smartauth.step drives
-- transfers and timers and resumes whoever is ready. Outside a spawned
-- coroutine every call blocks, as before.
-- @module smartauth.engine
local compat = require "smartauth.compat"
local errors = require "smartauth.errors"
local core = require "smartauth.core"

local M = {}

local now = core.monotonic -- timers must not jump with the wall clock

-- --------------------------------------------------------- the HTTP engine

-- One C engine per Lua state, so every provider shares one connection
-- cache. smartauth.core_http (libcurl) is loaded when the first engine is
-- made: a program that never makes a transfer never maps libcurl.
local engine

local function http_engine()
  if not engine then
    local e, _, msg = require("smartauth.core_http").engine()
    if not e then error("smartauth: cannot create HTTP engine: " .. tostring(msg), 2) end
    engine = e
  end
  return engine
end

-- Blocking: one request, any HTTP status a response, transport failures
-- error objects.
local function blocking_request(opts)
  local res, kind, msg, code = http_engine():request(opts)
  if not res then return nil, errors.from_core(kind, msg, code) end
  return res
end

-- Inside nginx the transport is smartauth.ngx.transport (cosockets,
-- ngx.sleep, ngx.semaphore), loaded once the ngx table is seen; false
-- elsewhere. A request's `transport` ("ngx"|"curl") forces one.
local ngx_transport

local function inside_ngx()
  if ngx_transport == nil then
    local n = rawget(_G, "ngx") -- looked at first: elsewhere the module is never loaded
    ngx_transport = type(n) == "table" and type(n.get_phase) == "function" and type(n.socket) == "table"
      and require "smartauth.ngx.transport" or false
  end
  return ngx_transport
end

--- smartauth.http, the engine's HTTP half under its documented name:
-- engine() (the state's C engine, made on first use) and request(opts)
-- (blocking; opts: method, url, headers (list of "Name: value"), body,
-- timeout, connect_timeout (seconds), max_body, ca_file, proxy, no_proxy,
-- client_cert, client_key, client_key_password; returns {status, headers,
-- body} or nil, err).
M.http = { engine = http_engine, request = blocking_request }

local tasks = {}        -- coroutine -> task
local ntasks = 0
local waiting = {}      -- request userdata -> task (transfer in flight)
local timers = {}       -- sorted list of {at=, task=, seq=}
local ready = {}        -- tasks to resume on the next step (yielded cooperatively)
local timer_seq = 0
local current           -- task being resumed, if any
local unreported = {}   -- failed tasks whose error nobody has taken yet

local Task = { __name = "smartauth.task" }
Task.__index = Task

-- A failure nobody handled or took goes to stderr: silence would hide it.
local function report(task)
  if task.taken or task.reported then return end
  task.reported = true
  local msg = task.error
  if type(msg) == "table" and msg.kind then msg = tostring(msg) end
  pcall(io.stderr.write, io.stderr, "smartauth: task failed: ", tostring(msg), "\n")
end

local function report_unreported()
  if #unreported == 0 then return end
  local list = unreported
  unreported = {}
  for _, task in ipairs(list) do report(task) end
end

-- The last chance, for a task that failed right before the program ended.
Task.__gc = function(task)
  if task.status == "failed" then report(task) end
end

local WAIT = setmetatable({}, { __name = "smartauth.wait" }) -- what our yields carry

local function add_timer(at, task)
  timer_seq = timer_seq + 1
  local t = { at = at, task = task, seq = timer_seq }
  local i = #timers
  while i > 0 and timers[i].at > at do i = i - 1 end
  table.insert(timers, i + 1, t)
  return t
end

local function remove_timer(t)
  for i, v in ipairs(timers) do
    if v == t then table.remove(timers, i) return end
  end
end

-- What on_cancel registered, last first: fn() for a cancelled task,
-- fn(err) for one that failed (calls in a task put things right here, not
-- with a pcall that a yield would have to cross: 5.1 cannot).
local function run_cleanups(task, err)
  local list = task.cleanups
  task.cleanups = nil
  if not list then return end
  for i = #list, 1, -1 do
    local ok, cerr = pcall(list[i], err)
    if not ok then io.stderr:write("smartauth: cleanup of a task failed: ", tostring(cerr), "\n") end
  end
end

local function finish(task, ok, ...)
  tasks[task.co] = nil
  ntasks = ntasks - 1
  task.status = ok and "done" or "failed"
  task.cleanups = nil
  if ok then
    task.results = compat.pack(...)
  else
    task.error = ...
    if task.on_error then
      task.taken = true
      local hok, herr = pcall(task.on_error, task.error, task)
      if not hok then io.stderr:write("smartauth: task error handler failed: ", tostring(herr), "\n") end
    elseif #task.joiners > 0 then
      task.taken = true -- wait() raises it in the joiner
    else
      unreported[#unreported + 1] = task
    end
  end
  for _, w in ipairs(task.joiners) do M._wake(w, task) end
  task.joiners = {}
end

local function resume(task, ...)
  local prev = current
  current = task
  local r = compat.pack(coroutine.resume(task.co, ...))
  current = prev
  if coroutine.status(task.co) == "dead" then
    if r[1] then
      finish(task, true, compat.unpack(r, 2, r.n))
    else
      -- keep the traceback: the error happened on the task's own stack
      local msg = r[2]
      run_cleanups(task, msg) -- the error as raised, without the traceback
      if type(msg) == "string" then msg = debug.traceback(task.co, msg) end
      finish(task, false, msg)
    end
  elseif r[2] ~= WAIT then
    -- the task yielded on its own account: run it again next step
    ready[#ready + 1] = task
  end
end

function M._wake(task, ...)
  task.wake_args = compat.pack(...)
  ready[#ready + 1] = task
end

--- The task running now, or nil outside spawned coroutines.
function M.current()
  local co, main = coroutine.running()
  if main then return nil end
  return tasks[co]
end

local function spawn(opts, fn, ...)
  if type(fn) ~= "function" then
    errors.argerror(opts and 2 or 1, "spawn", "function expected", fn, 3)
  end
  local on_error = opts and opts.on_error
  if on_error ~= nil and type(on_error) ~= "function" then
    errors.argerror(1, "spawn", "on_error must be a function", on_error, 3)
  end
  local task = compat.table_gc(setmetatable({ co = coroutine.create(fn), status = "running", joiners = {},
    on_error = on_error }, Task))
  tasks[task.co] = task
  ntasks = ntasks + 1
  resume(task, ...)
  return task
end

--- Run fn(...) in a coroutine whose network calls and waits yield.
-- `smartauth.spawn({ on_error = h }, fn, ...)`: h(err, task) gets every
-- failure of the task, a synchronous one too. A task that fails with no
-- handler is reported on stderr ("smartauth: task failed: ...") at the
-- next step, unless task:wait() or task:result() has taken its error.
-- @param fn the function to run, or an options table `{ on_error =
--   function(err, task) }` followed by the function
-- @param ... fn's arguments
-- @return a `Task`
function M.spawn(fn, ...)
  if type(fn) == "table" and getmetatable(fn) == nil then return spawn(fn, ...) end
  return spawn(nil, fn, ...)
end

--- A task: what `spawn` returns. `task.status` is `"running"`, `"done"` or
-- `"failed"` (a cancelled task too, its error `"cancelled"`).
-- @type Task

--- true, results... when done; false, err when it failed; nil while running.
function Task:result()
  if self.status == "done" then return true, compat.unpack(self.results, 1, self.results.n) end
  if self.status == "failed" then
    self.taken = true
    return false, self.error
  end
  return nil
end

--- Wait for the task: yields inside another task, else drives the engine
-- until it ends. Returns its results, or raises its error.
function Task:wait()
  self.taken = true -- raised here if it fails, so never reported
  if self.status == "running" then
    local me = M.current()
    if me then
      self.joiners[#self.joiners + 1] = me
      coroutine.yield(WAIT)
    else
      while self.status == "running" do M.step(0.05) end
    end
  end
  if self.status == "failed" then
    self.taken = true
    error(self.error, 0)
  end
  return compat.unpack(self.results, 1, self.results.n)
end

function Task:__tostring()
  return "smartauth.task (" .. self.status .. ")"
end

--- Cancel a running task: its transfer is dropped and it never resumes;
-- a lock it held is released and a single flight it led is resolved.
-- @return true, or false when it was not running
function Task:cancel()
  if self.status ~= "running" then return false end
  for req, t in pairs(waiting) do
    if t == self then waiting[req] = nil; req:close() end
  end
  if self.timer then remove_timer(self.timer) end
  for i = #ready, 1, -1 do if ready[i] == self then table.remove(ready, i) end end
  tasks[self.co] = nil
  ntasks = ntasks - 1
  self.status = "failed"
  self.error = "cancelled"
  self.taken = true -- nothing to report: whoever cancelled it knows
  run_cleanups(self)
  for _, w in ipairs(self.joiners) do M._wake(w, self) end
  return true
end

--- The engine's functions (after `Task`).
-- @section engine

local function noop() end

--- Have fn() run if the current task is cancelled, or fn(err) if it fails,
-- before the returned release function is called: how a call that holds a
-- lock or leads a single flight puts things right when its task never
-- resumes. Outside a task (nothing can cancel a blocking call) it does
-- nothing.
-- @return release function
function M.on_cancel(fn)
  local task = M.current()
  if not task then return noop end
  local list = task.cleanups
  if not list then
    list = {}
    task.cleanups = list
  end
  list[#list + 1] = fn
  return function()
    for i = #list, 1, -1 do
      if list[i] == fn then table.remove(list, i) return end
    end
  end
end

--- Perform an HTTP request (see smartauth.http): yields inside a task.
-- Inside nginx it goes over cosockets unless opts.transport is "curl".
function M.request(opts)
  if opts.transport ~= "curl" then
    local nt = inside_ngx()
    if nt then return nt.request(opts, now) end
    if opts.transport == "ngx" then
      return nil, errors.new("config", "option 'transport' is \"ngx\" but this Lua does not run inside nginx " ..
        "(lua-nginx-module)", { option = "transport" })
    end
  end
  local task = M.current()
  if not task then return blocking_request(opts) end
  local req, kind, msg, code = http_engine():start(opts)
  if not req then return nil, errors.from_core(kind, msg, code) end
  waiting[req] = task
  task.req = req
  coroutine.yield(WAIT)
  task.req = nil
  local res, k2, m2, c2 = req:result()
  req:close()
  if not res then return nil, errors.from_core(k2, m2, c2) end
  return res
end

--- Wait `seconds`: a timer inside a task, a plain sleep outside.
function M.sleep(seconds)
  if seconds <= 0 then return end
  if inside_ngx() then return ngx_transport.sleep(seconds) end
  local task = M.current()
  if not task then
    -- the engine's poll sleeps (and moves other transfers along meanwhile)
    local deadline = now() + seconds
    local e = http_engine()
    repeat e:step(math.max(0, deadline - now())) until now() >= deadline
    return
  end
  task.timer = add_timer(now() + seconds, task)
  coroutine.yield(WAIT)
  task.timer = nil
end

--- A value many tasks can wait for (used for single flight).
local Flight = {}
Flight.__index = Flight

function M.flight()
  if inside_ngx() then return ngx_transport.flight() end
  return setmetatable({ waiters = {}, done = false }, Flight)
end

function Flight:resolve(...)
  self.done = true
  self.values = compat.pack(...)
  for _, w in ipairs(self.waiters) do M._wake(w) end
  self.waiters = {}
end

--- Wait for resolve (inside a task); returns what resolve was given.
function Flight:wait()
  if not self.done then
    local me = M.current()
    if me then
      self.waiters[#self.waiters + 1] = me
      repeat coroutine.yield(WAIT) until self.done
    else
      -- a blocking caller drives the engine until the task in flight is done
      while not self.done do M.step(0.05) end
    end
  end
  return compat.unpack(self.values, 1, self.values.n)
end

local function run_ready()
  local n = 0
  while #ready > 0 do
    local batch = ready
    ready = {}
    for _, task in ipairs(batch) do
      if task.status == "running" and tasks[task.co] then
        local args = task.wake_args
        task.wake_args = nil
        if args then resume(task, compat.unpack(args, 1, args.n)) else resume(task) end
        n = n + 1
      end
    end
  end
  return n
end

local function run_timers()
  local t = now()
  while timers[1] and timers[1].at <= t do
    local tm = table.remove(timers, 1)
    if tm.task.status == "running" then resume(tm.task) end
  end
end

--- Drive transfers and timers, resume what is ready. Waits at most
-- `timeout` seconds (0: never blocks). Returns the number of tasks alive.
function M.step(timeout)
  timeout = timeout or 0
  if current then error("smartauth.step called from inside a task", 2) end
  report_unreported() -- failures before this step: the host had a frame to take them
  run_timers()
  run_ready()
  local wait = timeout
  if #ready > 0 then wait = 0 end
  if timers[1] then wait = math.min(wait, math.max(0, timers[1].at - now())) end
  -- a host stepping before any transfer does not need libcurl yet, unless
  -- it asks to wait (the engine's poll is the sleep)
  local e = engine
  if not e and wait > 0 then
    if inside_ngx() then ngx_transport.sleep(wait) else e = http_engine() end
  end
  if e and (next(waiting) or wait > 0) then
    local _, kind, msg = e:step(wait)
    if kind then error("smartauth engine: " .. tostring(msg), 2) end
  end
  local req = e and e:next_done()
  while req do
    local task = waiting[req]
    waiting[req] = nil
    if task and task.status == "running" then resume(task) else req:close() end
    req = e:next_done()
  end
  run_timers()
  run_ready()
  return ntasks
end

--- Step until no task is left.
function M.run()
  while ntasks > 0 do M.step(0.1) end
end

--- The sockets the engine waits on: { {fd=, read=, write=}, ... }, so a
-- host can add them to its own poll/epoll/libuv loop and call step(0) when
-- one is ready or when pending()'s timeout expires.
function M.fds()
  if not engine then return {} end -- no transfer yet: no socket
  return engine:fds()
end

--- Number of tasks alive, and seconds until the engine needs a step (nil:
-- only when something happens on a socket), for hosts with their own loop.
function M.pending()
  local t = engine and engine:timeout()
  if #ready > 0 then t = 0 end
  if timers[1] then
    local d = math.max(0, timers[1].at - now())
    t = t and math.min(t, d) or d
  end
  return ntasks, t
end

return M
