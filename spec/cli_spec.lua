-- The smartauth command, installed by `luarocks make` into a temporary tree and
-- run as a user would, against oidc-provider: every command, every login flow
-- (loopback with the listener reached over real HTTP, device code, paste on
-- stdin), and no secret in any output. The same command from the checkout too.
local compat = require "smartauth.compat"
local cjson = require "cjson"
local socket = require "socket"
local config = require "smartauth.config"
local store = require "smartauth.store"
local token_mod = require "smartauth.token"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local q = proc.shell_quote
local ROOT = oidc.root

local CC_SECRET = "s3cret: %+ x"          -- basic-client's, given through the environment
local WRONG_SECRET = "wrong-secret-4f9a7c" -- literally in the config file

-- Every inherited descriptor above 2 closed in the child (see spec/flow_spec.lua).
local CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]

local function wait_for(what, fn, timeout)
  local deadline = socket.gettime() + (timeout or 15)
  while true do
    local v = fn()
    if v then return v end
    if socket.gettime() > deadline then error("timed out waiting for " .. what, 2) end
    socket.sleep(0.05)
  end
end

describe("#interop smartauth command", function()
  local tmp, tree, op, cfg_path, tokens_dir
  local has_file_store = type(store.file) == "function"
  local transcript = {} -- everything the command printed, except the tokens `token` prints by design

  local function env_prefix(extra)
    local vars = {
      "env -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u DISPLAY -u WAYLAND_DISPLAY -u SMARTAUTH_STORE_KEY",
      "HOME=" .. q(tmp .. "/home"),
      "SMARTAUTH_CONFIG=" .. q(cfg_path),
      "CC_SECRET=" .. q(CC_SECRET),
    }
    for k, v in pairs(extra or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
    return table.concat(vars, " ")
  end

  local function command(opts)
    if opts and opts.checkout then
      return "LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;") ..
        " LUA_CPATH=" .. q(ROOT .. "/" .. proc.BUILD .. "/?.so;;") .. " " .. proc.LUA .. " "
        .. q(ROOT .. "/bin/smartauth")
    end
    return "LUA_PATH=" .. q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;") ..
      " LUA_CPATH=" .. q(tree .. "/lib/lua/5.4/?.so;;") .. " " .. q(tree .. "/bin/smartauth")
  end

  -- Runs `smartauth ARGS...`; returns { code=, out=, err= }.
  local function run(args, opts)
    opts = opts or {}
    local words = {}
    for i, a in ipairs(args) do words[i] = q(a) end
    local out, err = tmp .. "/out", tmp .. "/err"
    local cmd = "cd " .. q(opts.cwd or tmp) .. " && " .. env_prefix(opts.env) .. " " .. command(opts) .. " " ..
      table.concat(words, " ") .. " </dev/null >" .. q(out) .. " 2>" .. q(err)
    local _, _, code = compat.execute(cmd)
    local r = { code = code, out = proc.read_file(out) or "", err = proc.read_file(err) or "" }
    transcript[#transcript + 1] = r.err
    if args[1] ~= "token" then transcript[#transcript + 1] = r.out end
    return r
  end

  -- Starts `smartauth ARGS...` in the background. mode "w": the returned handle is
  -- its stdin. Returns handle, stdout file, stderr file.
  local started = {} -- pids of commands running in the background, killed after each test
  local function start(args, mode)
    local words = {}
    for i, a in ipairs(args) do words[i] = q(a) end
    local n = #transcript + 1
    local out, err, pidfile = tmp .. "/bg" .. n .. ".out", tmp .. "/bg" .. n .. ".err", tmp .. "/bg" .. n .. ".pid"
    -- the shell's pid is the command's: every step execs
    local inner = "echo $$ > " .. q(pidfile) .. "; exec " .. env_prefix() .. " " .. command() .. " " ..
      table.concat(words, " ") .. " >" .. q(out) .. " 2>" .. q(err) .. (mode == "w" and "" or " </dev/null")
    local h = proc.popen("cd " .. q(tmp) .. " && exec bash -c " .. q(CLOSE_FDS) .. " bash sh -c " .. q(inner),
      mode or "r")
    local pid = wait_for("the command to start", function()
      return compat.tointeger(tonumber(proc.read_file(pidfile) or ""))
    end)
    started[#started + 1] = { pid = pid, h = h }
    return h, out, err
  end

  after_each(function()
    for _, s in ipairs(started) do
      if proc.alive(s.pid) then os.execute("kill -TERM " .. s.pid) end
      pcall(s.h.close, s.h)
    end
    started = {}
  end)

  local function finish(h, out, err)
    local _, _, code = h:close()
    for i, s in ipairs(started) do
      if s.h == h then table.remove(started, i) break end
    end
    local r = { code = code, out = proc.read_file(out) or "", err = proc.read_file(err) or "" }
    transcript[#transcript + 1] = r.out
    transcript[#transcript + 1] = r.err
    return r
  end

  -- The token a profile has stored (read with the library, as the command would).
  local function stored(name)
    local cfg = assert(config.load(cfg_path, { warn = false }))
    local p = assert(config.provider(cfg, name, function(k) return k == "CC_SECRET" and CC_SECRET or nil end))
    local e = p.options.store:get(p:store_key())
    return e and assert(token_mod.from_entry(e))
  end

  local function introspect(tok)
    local status, body = oidc.request_json { method = "POST", url = op.issuer .. "/token/introspection",
      body = { token = tok }, headers = { authorization = "Basic " ..
        require("mime").b64(oidc.url_encode("basic-client") .. ":" .. oidc.url_encode(CC_SECRET)) } }
    assert.equal(200, status)
    return body.active
  end

  setup(function()
    tmp = proc.tmpdir("smartauth-cli.XXXXXX")
    tree = tmp .. "/tree"
    tokens_dir = tmp .. "/tokens"
    os.execute("mkdir -p " .. q(tmp .. "/home"))
    local ok, code, out = proc.run("cd " .. q(ROOT) .. " && luarocks --lua-version=5.4 make --deps-mode=none --tree " ..
      q(tree) .. " smartauth-scm-1.rockspec 2>&1")
    assert(ok, "luarocks make failed (exit " .. tostring(code) .. "):\n" .. out)
    op = oidc.start { access_token_ttl = 4 }
    local file_store = has_file_store and ("{ kind = 'file', dir = %q }"):format(tokens_dir) or "{ kind = 'memory' }"
    cfg_path = tmp .. "/config.lua"
    local f = assert(io.open(cfg_path, "w"))
    f:write(([[
return {
  profiles = {
    cc = { issuer = %q, client_id = "basic-client", client_secret = "${CC_SECRET}",
           grant = "client_credentials", scope = "api:read", store = { kind = "memory" } },
    web = { issuer = %q, client_id = "public-client", scope = "openid email",
            redirect_uri = "http://127.0.0.1/cb", store = %s },
    dev = { issuer = %q, client_id = "device-client", scope = "openid email", grant = "device", store = %s },
    paste = { issuer = %q, client_id = "public-client", scope = "openid", grant = "oob",
              redirect_uri = "http://127.0.0.1/cb", store = %s },
    wrong = { issuer = %q, client_id = "basic-client", client_secret = %q, grant = "client_credentials",
              store = { kind = "memory" } },
    noenv = { issuer = %q, client_id = "basic-client", client_secret = "${SMARTAUTH_SPEC_UNSET}" },
  },
}
]]):format(op.issuer, op.issuer, file_store, op.issuer, file_store, op.issuer, file_store, op.issuer,
      WRONG_SECRET, op.issuer))
    f:close()
    os.execute("chmod 600 " .. q(cfg_path))
  end)

  teardown(function()
    if op then op:stop() end
    if tmp then proc.rmtree(tmp) end
  end)

  -- tests that need tokens to outlive one run of the command
  local persistent = has_file_store and it or pending

  it("is installed by the rockspec", function()
    local r = run { "--version" }
    assert.equal(0, r.code)
    assert.matches("^smartauth %d+%.%d+%.%d+\n$", r.out)
    assert.truthy(proc.read_file(tree .. "/bin/smartauth"))
  end)

  it("has --help for itself and each command", function()
    local r = run { "--help" }
    assert.equal(0, r.code)
    assert.matches("^usage: smartauth %[%-%-config PATH%] COMMAND", r.out)
    for _, cmd in ipairs { "login", "token", "userinfo", "list", "logout" } do
      r = run { cmd, "--help" }
      assert.equal(0, r.code)
      assert.matches("^usage: smartauth " .. cmd, r.out)
      assert.equal("", r.err)
      local r2 = run { "help", cmd }
      assert.equal(r.out, r2.out)
    end
  end)

  it("shows a config example in --help that is a valid config file", function()
    local r = run { "--help" }
    local example = r.out:match("\nconfig file[^\n]*\n(.-\n  } }\n)")
    assert.truthy(example, "no config example in --help")
    local path = tmp .. "/example-config.lua"
    local f = assert(io.open(path, "w"))
    f:write((example:gsub("\n  ", "\n")))
    f:close()
    os.execute("chmod 600 " .. q(path))
    local cfg = assert(config.load(path, { warn = false }))
    assert.truthy(cfg.profiles.work)
    assert.truthy(cfg.profiles.sense)
    local p = assert(config.provider(cfg, "work"))
    assert.equal("cli", p.options.client_id)
  end)

  it("lists every profile option in `help config`, from the tables the checks use", function()
    local r = run { "help", "config" }
    assert.equal(0, r.code)
    assert.equal("", r.err)
    assert.matches("^usage: smartauth help config\n", r.out)
    local provider = require "smartauth.provider"
    local described = 0
    for k in pairs(provider.SCHEMA) do
      -- each option on a line of its own; all but `store` (a table in a
      -- config file, described at the top) with what it does below it
      assert.matches("\n  " .. k .. " ", r.out, 1, true)
      if k ~= "store" then
        local text = r.out:match("\n  " .. k .. " [^\n]*\n      (%S[^\n]*)")
        assert.truthy(text, "option '" .. k .. "' has no description (its @tfield in schema.lua)")
        described = described + 1
      end
    end
    assert.truthy(described > 40)
    for _, name in ipairs(require("smartauth.presets").NAMES) do
      for k in pairs(require("smartauth.providers." .. name).extra_options or {}) do
        assert.matches("\n  " .. k .. " [^\n]*%(preset " .. name .. "%)", r.out)
      end
    end
    -- the store kinds a config accepts, as its error names them
    local path = tmp .. "/bad-store.lua"
    local f = assert(io.open(path, "w"))
    f:write('return { profiles = { x = { issuer = "https://idp.example.com", store = { kind = "nope" } } } }')
    f:close()
    os.execute("chmod 600 " .. q(path))
    local _, err = config.load(path, { warn = false })
    local kinds = assert(tostring(err):match("kind = ([%w, ]+)"), tostring(err))
    local n = 0
    for kind in kinds:gmatch("%w+") do
      n = n + 1
      assert.matches("\n  " .. kind .. " ", r.out, 1, true)
      local schema = kind ~= "memory" and require("smartauth.store." .. kind).SCHEMA or {}
      -- the kind's entry: its line and the continuation lines below it
      local entry = r.out:match("\n  " .. kind .. " .-\n  %S") or r.out:match("\n  " .. kind .. " .*$")
      for k in pairs(schema) do
        assert.matches("%s" .. k .. "%s+%(", entry)
      end
    end
    assert.equal(3, n)
  end)

  it("has an API reference that LDoc builds without a warning, committed up to date", function()
    local ok, code, out = proc.run("cd " .. q(ROOT) .. " && make -s docs-check 2>&1")
    assert.is_true(ok, "make docs-check failed (" .. tostring(code) .. "):\n" .. out)
    assert.matches("no warnings", out)
  end)

  it("exits 2 on usage errors, with the reason on stderr", function()
    for _, args in ipairs { {}, { "frobnicate" }, { "token" }, { "token", "a", "b" }, { "list", "x" },
      { "token", "cc", "--flow", "device" }, { "login", "web", "--port" } } do
      local r = run(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.equal("", r.out)
      assert.truthy(#r.err > 0)
    end
  end)

  describe("token", function()
    it("prints a valid access token on stdout and nothing else", function()
      local r = run { "token", "cc" }
      assert.equal(0, r.code, r.err)
      assert.equal("", r.err)
      local tok = r.out:match("^([%w_%-]+)\n$")
      assert.truthy(tok, "stdout: " .. r.out)
      assert.is_true(introspect(tok))
    end)

    it("fails with status 1 and the reason on stderr, never the secret", function()
      local r = run { "token", "wrong" }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("^smartauth: token for profile 'wrong': .*invalid_client", r.err)
      assert.is_nil(r.err:find(WRONG_SECRET, 1, true))

      r = run { "token", "noenv" }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("refers to ${SMARTAUTH_SPEC_UNSET}, which is not set", r.err, 1, true)

      r = run { "token", "nosuch" }
      assert.equal(1, r.code)
      assert.matches("no profile 'nosuch' %(profiles: cc, dev, noenv, paste, web, wrong%)", r.err)
    end)

    it("tells a person to log in first", function()
      local r = run { "token", "web" }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("no valid token for profile 'web': run 'smartauth login web'", r.err, 1, true)
    end)
  end)

  describe("login", function()
    it("checks the credentials of a profile that needs no person", function()
      local r = run { "login", "cc" }
      assert.equal(0, r.code, r.err)
      assert.matches("^logged in: profile 'cc', token valid for %d+s\n$", r.out)
      r = run { "login", "wrong" }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("login to profile 'wrong' failed: .*invalid_client", r.err)
    end)

    persistent("with the loopback redirect, then token, userinfo, list and logout", function()
      local h, out, err = start { "login", "web", "--flow", "loopback", "--no-browser", "--timeout", "30" }
      local url = wait_for("the URL on stderr", function()
        return (proc.read_file(err) or ""):match("(http://127%.0%.0%.1:%d+/auth%?%S+)")
      end)
      local redirect = op:login(url, { login = "alice" })
      -- the browser's last step, over real HTTP to the command's listener
      local status, _, body = oidc.request(redirect)
      local r = finish(h, out, err)
      assert.equal(200, status)
      assert.matches("You may close this tab", body)
      assert.equal(0, r.code, r.err)
      assert.matches("open this address in a browser on this computer", r.err)
      assert.matches("^logged in: profile 'web' as alice@example.com", r.out)

      r = run { "token", "web" }
      assert.equal(0, r.code, r.err)
      local at = r.out:match("^([%w_%-]+)\n$")
      assert.truthy(at)
      assert.is_true(introspect(at))

      r = run { "userinfo", "web" }
      assert.equal(0, r.code, r.err)
      local info = cjson.decode(r.out)
      assert.equal("alice", info.sub)
      assert.equal("alice@example.com", info.email)

      r = run { "list" }
      assert.equal(0, r.code, r.err)
      assert.matches("\nweb%s+" .. op.issuer:gsub("%p", "%%%0") .. "%s+public%-client%s+valid, expires in %d+s, " ..
        "refreshable, scope openid email\n", r.out)
      assert.matches("\ncc%s+.-%s+basic%-client%s+none\n", r.out)
      assert.matches("\nnoenv%s+.-error: option 'client_secret' refers to ${SMARTAUTH_SPEC_UNSET}", r.out)
      local t = stored("web")
      assert.is_nil(r.out:find(t.access_token, 1, true))
      assert.is_nil(r.out:find(t.refresh_token, 1, true))

      r = run { "logout", "web" }
      assert.equal(0, r.code, r.err)
      assert.matches("logged out: profile 'web': token forgotten; access token and refresh token revoked",
        r.out, 1, true)
      assert.is_false(introspect(at))
      assert.is_nil(stored("web"))
      r = run { "token", "web" }
      assert.equal(1, r.code)
      r = run { "logout", "web" }
      assert.equal(0, r.code)
      assert.matches("not logged in", r.out)
    end)

    persistent("with the device flow, and token refreshes when the token is about to expire", function()
      local h, out, err = start { "login", "dev" }
      local uri = wait_for("the code on stderr", function()
        return (proc.read_file(err) or ""):match("%(or open (http://127%.0%.0%.1:%d+/device%?user_code=%S+)%)")
      end)
      assert.matches("enter the code: %u%u%u%u%-%u%u%u%u", proc.read_file(err))
      assert.is_true(op:device_login(uri, { login = "dave" }))
      local r = finish(h, out, err)
      assert.equal(0, r.code, r.err)
      assert.matches("^logged in: profile 'dev' as dave@example.com", r.out)

      r = run { "token", "dev" }
      assert.equal(0, r.code, r.err)
      local first = r.out:match("^([%w_%-]+)\n$")
      -- tokens live 4 s here and are refreshed in the second half of their life
      socket.sleep(2.2)
      r = run { "token", "dev" }
      assert.equal(0, r.code, r.err)
      local second = r.out:match("^([%w_%-]+)\n$")
      assert.truthy(second)
      assert.not_equal(first, second)
      assert.is_true(introspect(second))
    end)

    persistent("with the code pasted on stdin", function()
      local h, out, err = start({ "login", "paste" }, "w")
      local url = wait_for("the URL on stderr", function()
        return (proc.read_file(err) or ""):match("(http://127%.0%.0%.1:%d+/auth%?%S+)")
      end)
      wait_for("the prompt", function() return (proc.read_file(err) or ""):find("Code: ", 1, true) end)
      local redirect = op:login(url, { login = "erin" })
      h:write(redirect, "\n")
      local r = finish(h, out, err)
      assert.equal(0, r.code, r.err)
      assert.matches("^logged in: profile 'paste'", r.out)
      r = run { "token", "paste" }
      assert.equal(0, r.code, r.err)
      assert.is_true(introspect(r.out:match("^([%w_%-]+)\n$")))
    end)

    it("fails with status 1 when nobody comes back", function()
      local r = run { "login", "web", "--flow", "loopback", "--no-browser", "--timeout", "1" }
      assert.equal(1, r.code)
      assert.matches("login to profile 'web' failed: no login arrived at http://127%.0%.0%.1:%d+/cb within 1 s", r.err)
    end)
  end)

  it("runs from the checkout too", function()
    local r = run({ "token", "cc" }, { checkout = true, cwd = ROOT })
    assert.equal(0, r.code, r.err)
    assert.matches("^[%w_%-]+\n$", r.out)
    r = run({ "list" }, { checkout = true })
    assert.equal(0, r.code, r.err)
    assert.matches("^PROFILE%s+PROVIDER%s+CLIENT%s+TOKEN\n", r.out)
  end)

  it("warns when the config holding secrets is readable by others", function()
    os.execute("chmod 644 " .. q(cfg_path))
    local r = run { "token", "cc" }
    os.execute("chmod 600 " .. q(cfg_path))
    assert.equal(0, r.code, r.err)
    assert.matches("^[%w_%-]+\n$", r.out)
    assert.matches("smartauth: warning: .*holds secrets %(wrong.client_secret%) and can be read by group or others",
      r.err)
    assert.is_nil(r.err:find(WRONG_SECRET, 1, true))
  end)

  it("never printed a secret", function()
    local all = table.concat(transcript, "\n")
    assert.truthy(#all > 0)
    for _, secret in ipairs { CC_SECRET, WRONG_SECRET } do
      assert.is_nil(all:find(secret, 1, true), "a client secret was printed")
    end
    for _, name in ipairs { "dev", "paste" } do
      local t = has_file_store and stored(name)
      if t then
        assert.is_nil(all:find(t.access_token, 1, true), name .. "'s access token was printed")
        if t.refresh_token then
          assert.is_nil(all:find(t.refresh_token, 1, true), name .. "'s refresh token was printed")
        end
      end
    end
  end)
end)
