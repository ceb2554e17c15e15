-- The smartauth command with DPoP profiles (issue 16 item 11), run from the
-- checkout against the recording server: `token` refuses a DPoP profile and
-- names `header`; `header` prints the Authorization and DPoP lines of one
-- request (the Bearer line for other profiles), and no secret goes to stderr.
local compat = require "smartauth.compat"
local core = require "smartauth.core"
local dpop = require "smartauth.dpop"
local proc = require "helpers.proc"
local server = require "helpers.server"

local q = proc.shell_quote

describe("smartauth command with DPoP", function()
  local s, tmp, cfg_path

  setup(function()
    s = server.start()
    tmp = proc.tmpdir()
    cfg_path = tmp .. "/config.lua"
    local key = assert(core.key_generate("EC", "P-256"))
    -- the key as a private JWK in the config (plain data)
    local jwk = key:private_jwk()
    local fh = assert(io.open(cfg_path, "w"))
    fh:write(([[
return { profiles = {
  bound = { token_endpoint = %q, client_id = "cid", client_secret = "cli-secret-77",
            dpop = true, retry = false, store = { kind = "file", key = "${STORE_KEY}" } },
  clear = { token_endpoint = %q, client_id = "cid", client_secret = "cli-secret-77", dpop = true },
  ownkey = { token_endpoint = %q, client_id = "cid", client_secret = "cli-secret-77",
             dpop_key = { kty = "EC", crv = "P-256", x = %q, y = %q, d = %q }, retry = false },
  plain = { token_endpoint = %q, client_id = "cid", client_secret = "cli-secret-77", retry = false },
} }
]]):format(s.url .. "/token", s.url .. "/token", s.url .. "/token", jwk.x, jwk.y, jwk.d, s.url .. "/token"))
    fh:close()
    os.execute("chmod 600 " .. q(cfg_path))
  end)
  teardown(function()
    s:stop()
    proc.rmtree(tmp)
  end)
  before_each(function() s:reset() end)

  local function run(args)
    local words = {}
    for i, a in ipairs(args) do words[i] = q(a) end
    local out, err = tmp .. "/out", tmp .. "/err"
    local cmd = "env -u SMARTAUTH_STORE_KEY -u XDG_STATE_HOME -u XDG_CONFIG_HOME" ..
      " STORE_KEY=k3y-0123456789abcdef HOME=" .. q(tmp) .. " SMARTAUTH_CONFIG=" .. q(cfg_path) ..
      " LUA_PATH=" .. q("./lua/?.lua;./lua/?/init.lua;;") ..
      " LUA_CPATH=" .. q("./" .. proc.BUILD .. "/?.so;;") .. " " .. proc.LUA .. " bin/smartauth " ..
      table.concat(words, " ") .. " </dev/null >" .. q(out) .. " 2>" .. q(err)
    local _, _, code = compat.execute(cmd)
    return { code = code, out = proc.read_file(out) or "", err = proc.read_file(err) or "" }
  end

  local function dpop_answer(at)
    return { json = { access_token = at, token_type = "DPoP", expires_in = 3600 } }
  end

  it("token refuses a DPoP profile and names the header command", function()
    for _, name in ipairs { "bound", "ownkey" } do
      local r = run { "token", name }
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("smartauth header " .. name .. " %-%-method M %-%-url U", r.err)
    end
    assert.equal(0, #s:requests())
  end)

  it("header prints the Authorization: DPoP and DPoP lines for one request", function()
    for _, name in ipairs { "bound", "ownkey" } do
      s:reset()
      s:script("/token", dpop_answer("at-cli-" .. name))
      local r = run { "header", name, "--method", "POST", "--url", "https://api.example/x?y=1" }
      assert.equal(0, r.code, r.err)
      local auth, proof = r.out:match("^Authorization: DPoP (%S+)\nDPoP: (%S+)\n$")
      assert.equal("at-cli-" .. name, auth)
      local claims = assert(dpop.verify_proof(proof, { method = "POST", url = "https://api.example/x",
        access_token = auth }))
      assert.equal("https://api.example/x", claims.htu)
      -- the token request carried a proof too
      assert.is_string(s:last_request().headers.dpop)
      assert.is_nil(r.err:find("cli-secret-77", 1, true))
    end
  end)

  it("refuses a generated key kept in a store that does not encrypt", function()
    local r = run { "header", "clear", "--method", "GET", "--url", "https://api.example/x" }
    assert.equal(1, r.code)
    assert.matches("option 'dpop'", r.err)
    assert.matches("dpop_key", r.err)
  end)

  it("header prints the Bearer line for a Bearer profile, and token still works there", function()
    local r = run { "header", "plain", "--method", "GET", "--url", "https://api.example/x" }
    assert.equal(0, r.code, r.err)
    assert.matches("^Authorization: Bearer at%-[%w]+\n$", r.out)
    r = run { "token", "plain" }
    assert.equal(0, r.code)
    assert.matches("^at%-", r.out)
  end)

  it("header needs --method and --url, well formed", function()
    for _, args in ipairs {
      { "header", "bound" },
      { "header", "bound", "--method", "GET" },
      { "header", "bound", "--url", "https://a.example/" },
      { "header", "bound", "--method", "G E", "--url", "https://a.example/" },
      { "header", "bound", "--method", "GET", "--url", "/relative" },
      { "header", "bound", "--method", "GET", "--url", "ftp://a.example/" },
    } do
      local r = run(args)
      assert.equal(2, r.code, table.concat(args, " "))
      assert.equal("", r.out)
    end
    assert.equal(0, #s:requests())
    local r = run { "header", "--help" }
    assert.equal(0, r.code)
    assert.matches("%-%-method M", r.out)
    r = run { "--help" }
    assert.matches("header PROFILE %-%-method M %-%-url U", r.out)
  end)
end)
