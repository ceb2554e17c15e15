-- Every ```lua block of README.md runs, against the fake services on 127.0.0.1, so the
-- README cannot drift from the code. Each block runs in a child process
-- (spec/helpers/readme_runner.lua, which documents how hosts are mapped, what stands in
-- for the user and which scaffolding names a fragment may use) with a temporary HOME
-- and XDG directories and a value for every environment variable the block reads.
-- A block that is not Lua (a signature listing) fails here: fence it as ```text.
local compat = require "smartauth.compat"
local services = require "helpers.services"
local proc = require "helpers.proc"
local oidc = require "helpers.oidc"

local q = proc.shell_quote
local ROOT = oidc.root

-- The ```lua blocks of a Markdown text: { { line = N, code = "..." }, ... }.
local function lua_blocks(text)
  local blocks, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if current then
      if line:match("^%s*```%s*$") then
        blocks[#blocks + 1] = current
        current = nil
      else
        current.code = current.code .. line .. "\n"
      end
    elseif line:match("^%s*```%s*lua%s*$") then
      current = { line = n, code = "" }
    end
  end
  assert(current == nil, "README.md: a ```lua block is not closed")
  return blocks
end

local README = assert(proc.read_file(ROOT .. "/README.md"), "cannot read README.md")
local BLOCKS = lua_blocks(README)

-- Environment variables a block reads (os.getenv("X") or "${X}" in a config file):
-- each gets a value long enough to serve as a store encryption key.
local function env_vars(code)
  local vars = {}
  for name in code:gmatch("os%.getenv%(%s*[\"']([%w_]+)[\"']%s*%)") do vars[name] = true end
  for name in code:gmatch("%${([%w_]+)}") do vars[name] = true end
  return vars
end

describe("README.md", function()
  local fake, tmp

  setup(function()
    fake = services.start { any_client = true }
    tmp = proc.tmpdir("smartauth-readme.XXXXXX")
  end)
  teardown(function()
    if fake then fake:stop() end
    if tmp then proc.rmtree(tmp) end
  end)

  -- Runs Lua code as a README block: exit code, stdout, stderr.
  local count = 0
  local function run_block(code)
    count = count + 1
    local dir = tmp .. "/block" .. count
    os.execute("mkdir -p " .. q(dir .. "/home") .. " " .. q(dir .. "/config") .. " " .. q(dir .. "/state"))
    local file = dir .. "/block.lua"
    local f = assert(io.open(file, "w"))
    f:write(code)
    f:close()
    local env = { "env -u DISPLAY -u WAYLAND_DISPLAY -u BROWSER -u SMARTAUTH_CONFIG",
      "HOME=" .. q(dir .. "/home"), "XDG_CONFIG_HOME=" .. q(dir .. "/config"),
      "XDG_STATE_HOME=" .. q(dir .. "/state"), "XDG_CACHE_HOME=" .. q(dir .. "/cache") }
    for name in pairs(env_vars(code)) do
      env[#env + 1] = name .. "=" .. q("readme-" .. name:lower() .. "-0123456789abcdef0123456789")
    end
    env[#env + 1] = "LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/spec/?.lua;;")
    env[#env + 1] = "LUA_CPATH=" .. q(ROOT .. "/" .. proc.BUILD .. "/?.so;;")
    local cmd = "cd " .. q(dir) .. " && " .. table.concat(env, " ") .. " timeout 30 " .. proc.LUA .. " "
      .. q(ROOT .. "/spec/helpers/readme_runner.lua") .. " " .. q(file) .. " " .. q(fake.url)
      .. " </dev/null >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err")
    local _, _, code_ = compat.execute(cmd)
    return code_, proc.read_file(dir .. "/out") or "", proc.read_file(dir .. "/err") or ""
  end

  it("has Lua blocks to run", function()
    assert.is_true(#BLOCKS > 0)
  end)

  for i, block in ipairs(BLOCKS) do
    it(("block %d (line %d) runs against the fakes"):format(i, block.line), function()
      local code, out, err = run_block(block.code)
      assert(code == 0, ("README.md block %d (line %d) failed (exit %s):\n%s\n-- stdout:\n%s"):format(
        i, block.line, tostring(code), err, out))
      assert.matches("readme_runner: ok", out, 1, true)
    end)
  end

  describe("the block runner", function()
    local function fails(code, pattern)
      local status, out, err = run_block(code)
      assert.equal(1, status, out .. err)
      assert.matches(pattern, err, 1, true)
    end

    it("fails a block that is not Lua", function()
      fails("local p = smartauth.provider{ token_endpoint=, client_id= }\n", "not valid Lua")
    end)

    it("fails a block that reaches an unmapped host, before any traffic leaves", function()
      fails('local p = assert(smartauth.provider{ token_endpoint = "https://unmapped.example.org/token",\n' ..
        '  client_id = "a", client_secret = "b" })\nassert(p:client_credentials())\n',
        "tried to reach unmapped.example.org")
    end)

    it("fails a call written in the block that returns nil, err, unless its line says it may fail", function()
      fails('p:userinfo("not-a-token")\n', "line 1: p:userinfo() returned nil")
      local code = run_block('local info, err = p:userinfo("not-a-token") -- may fail: err.kind is "http"\n')
      assert.equal(0, code)
    end)

    it("fails an API call answered with an error status", function()
      fails('p:request{ url = "https://api.example.com/me", token = { access_token = "dead" } }\n', "got HTTP 401")
    end)

    it("fails a block whose spawned task fails", function()
      fails('smartauth.spawn(function() error("boom in a task") end)\n', "boom in a task")
    end)

    it("maps any customer's SmartFile domain and every SmartConnect region", function()
      local code, out, err = run_block([[
local smartauth = require "smartauth"
local sk = assert(smartauth.smartfile{ domain = "other.smartfile.com", api_key = "k", api_password = "p" })
assert(sk:request{ url = "ping/" })
local sc = assert(smartauth.smartconnect{ region = "AU", client_id = "i", client_secret = "s",
  username = "u@example.com", password = "pw" })
assert(sc:token())
]])
      assert.equal(0, code, out .. err)
    end)

    it("plays the user: io.read pastes the code of the last authorization URL", function()
      local code, out, err = run_block([[
local smartauth = require "smartauth"
local sf = assert(smartauth.smartfile{ domain = "acme.smartfile.com", client_id = "id", client_secret = "s" })
local url, session = sf:authorization_url()
assert(url:find("^http://127%.0%.0%.1:%d+/sf/oauth2/authorize/"), url)
assert(sf:exchange_code{ code = io.read("*l"), state = session.state, session = session })
if assert(sf:request{ url = "ping/" }).status ~= 200 then error("the API refused the token") end
]])
      assert.equal(0, code, out .. err)
    end)
  end)
end)
