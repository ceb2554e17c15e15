-- The loopback login (RFC 8252) in a real browser: Debian's headless Chromium,
-- driven by playwright-core (spec/helpers/browser.js), follows the authorization
-- URL to oidc-provider, logs in, consents, and is redirected to the flow's
-- listener on 127.0.0.1, which answers it; the flow returns a verified token.
-- Needs /usr/bin/chromium (.ci/setup installs it) and node_modules (npm ci).
local smartauth = require "smartauth"
local cjson = require "cjson"
local socket = require "socket"
local oidc = require "helpers.oidc"
local proc = require "helpers.proc"

local q = proc.shell_quote
local BROWSER_JS = oidc.root .. "/spec/helpers/browser.js"

-- The browser must not inherit the listener's socket (LuaSocket's sockets are
-- not close-on-exec): every descriptor above 2 is closed before node starts.
local CLOSE_FDS = [[for fd in /proc/$$/fd/*; do fd=${fd##*/}; ]]
  .. [[if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@"]]

describe("#interop #browser loopback login in headless Chromium", function()
  local op, tmp

  setup(function()
    assert(proc.run("test -x /usr/bin/chromium"), "/usr/bin/chromium is missing: run .ci/setup")
    assert(proc.read_file(oidc.root .. "/node_modules/playwright-core/package.json"),
      "node_modules/playwright-core is missing: run npm ci")
    tmp = proc.tmpdir("smartauth-browser.XXXXXX")
    op = oidc.start()
  end)

  teardown(function()
    if op then op:stop() end
    if tmp then proc.rmtree(tmp) end
  end)

  -- Starts the browser on `url` in the background; returns a function that waits
  -- for its JSON report.
  local function browse(url, extra)
    local args = { "node", BROWSER_JS, url, "--timeout-ms=45000" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    for i, a in ipairs(args) do args[i] = q(a) end
    local errfile = tmp .. "/browser.err"
    local h = assert(io.popen("exec bash -c " .. q(CLOSE_FDS) .. " bash " .. table.concat(args, " ") ..
      " 2>" .. q(errfile)))
    return function()
      local out = h:read("*a")
      h:close()
      local report = out:match("^%s*{") and cjson.decode(out)
      assert(report, "browser.js printed no report: " .. out .. "\n" .. (proc.read_file(errfile) or ""))
      return report
    end
  end

  it("logs in, consents, comes back to the listener, and the flow returns a verified token", function()
    local p = assert(smartauth.discover(op.issuer, { client_id = "public-client", scope = "openid email profile",
      redirect_uri = "http://127.0.0.1/cb" }))
    local report, shown
    local t0 = socket.gettime()
    local tok = assert(p:login {
      timeout = 60,
      show = function(info) shown = info end,
      open = function(url)
        report = browse(url, { "--login=alice", "--screenshot=" .. tmp .. "/done.png" })
        return true
      end,
    })
    report = report()
    local took = socket.gettime() - t0
    -- the verified ID token names the person who logged in in the browser
    assert.equal("alice", tok.claims.sub)
    assert.equal("alice@example.com", tok.claims.email)
    assert.equal(op.issuer, tok.claims.iss)
    assert.truthy(tok.refresh_token)
    assert.equal("alice", assert(p:userinfo(tok)).sub)
    -- what the browser went through and saw
    assert.is_true(report.ok, report.error)
    assert.same({ "login", "consent" }, report.steps)
    assert.matches("^" .. shown.redirect_uri:gsub("%p", "%%%0") .. "%?code=", report.url)
    assert.equal(200, report.status)
    assert.equal("Login complete", report.title)
    assert.matches("You may close this tab", report.text)
    assert.truthy(proc.read_file(tmp .. "/done.png"))
    assert.is_true(took < 60, "took " .. took .. " s")
    print(("\n  real-browser loopback login: %.1f s (browser %.1f s)"):format(took, report.ms / 1000))
  end)

  it("reports a refusal in the browser as access_denied, on the page and to the caller", function()
    local p = assert(smartauth.discover(op.issuer, { client_id = "public-client", scope = "openid",
      redirect_uri = "http://127.0.0.1/cb" }))
    local report
    local tok, err = p:login { timeout = 60, show = function() end, open = function(url)
      report = browse(url, { "--deny" })
      return true
    end }
    report = report()
    assert.is_nil(tok)
    assert.equal("oauth", err.kind)
    assert.equal("access_denied", err.code)
    assert.is_true(report.ok, report.error)
    assert.same({ "cancel" }, report.steps)
    assert.equal("Login failed", report.title)
  end)

  it("works from `smartauth login`, which opens the browser with xdg-open", function()
    -- a desktop's xdg-open that hands the URL to the real browser
    local bin = tmp .. "/bin"
    os.execute("mkdir -p " .. q(bin) .. " " .. q(tmp .. "/home"))
    local f = assert(io.open(bin .. "/xdg-open", "w"))
    f:write("#!/bin/sh\nexec node " .. q(BROWSER_JS) .. " \"$1\" --login=zoe > " .. q(tmp .. "/xdg.json") ..
      " 2>&1\n")
    f:close()
    os.execute("chmod +x " .. q(bin .. "/xdg-open"))
    local cfg = tmp .. "/config.lua"
    f = assert(io.open(cfg, "w"))
    f:write(([[return { profiles = { web = { issuer = %q, client_id = "public-client", scope = "openid email",
      redirect_uri = "http://127.0.0.1/cb", store = { kind = "file", dir = %q } } } }]]):format(
      op.issuer, tmp .. "/tokens"))
    f:close()
    local function smartauth_cmd(args)
      return "cd " .. q(oidc.root) .. " && env -u WAYLAND_DISPLAY DISPLAY=:99 PATH=" .. q(bin) .. ":\"$PATH\" HOME=" ..
        q(tmp .. "/home") .. " SMARTAUTH_CONFIG=" .. q(cfg) ..
        " LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/?.so;;' lua5.4 bin/smartauth " .. args ..
        " </dev/null 2>" .. q(tmp .. "/cli.err")
    end
    local ok, code, out = proc.run(smartauth_cmd("login web --timeout 60"))
    local err = proc.read_file(tmp .. "/cli.err") or ""
    assert.is_true(ok, "exit " .. tostring(code) .. ": " .. err)
    assert.matches("^logged in: profile 'web' as zoe@example.com", out)
    assert.matches("Your browser has been opened", err)
    -- the browser reports once it has closed, a moment after the command is done
    local deadline = socket.gettime() + 30
    while not (proc.read_file(tmp .. "/xdg.json") or ""):match("}%s*$") and socket.gettime() < deadline do
      socket.sleep(0.1)
    end
    local report = cjson.decode(proc.read_file(tmp .. "/xdg.json"):match("{.*}"))
    assert.is_true(report.ok, report.error)
    assert.equal("Login complete", report.title)
    ok, code, out = proc.run(smartauth_cmd("token web"))
    assert.is_true(ok, "exit " .. tostring(code) .. ": " .. (proc.read_file(tmp .. "/cli.err") or ""))
    assert.matches("^[%w_%-]+\n$", out)
  end)
end)
