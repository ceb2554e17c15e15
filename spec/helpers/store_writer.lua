--- Child process of the kill spec: rewrites one file-store entry in a loop
-- until it is killed. Entry n has access_token "at-<n>" and an id_token of
-- a length and letter that both follow from n, so a torn or mixed file
-- cannot pass for a complete one.
--
--   lua5.4 spec/helpers/store_writer.lua DIR KEY_OR_- START
local compat = require "smartauth.compat"
local store_mod = require "smartauth.store"

local M = {}

--- The entry number n (shared with the spec that checks it).
function M.entry(i)
  local len = 100 + (i * 7919) % 60000
  local letter = string.char(97 + i % 26)
  return {
    v = 1, access_token = "at-" .. i, token_type = "Bearer", refresh_token = "rt-" .. i,
    expires_at = 2000000000 + i, issued_at = 1700000000, scope = "a b",
    id_token = letter:rep(len), n = i,
  }
end

-- Required by a spec, `...` is the module name; run as a script, the arguments.
if (...) ~= "helpers.store_writer" then
  local dir, key, n = arg[1], arg[2], compat.tointeger(tonumber(arg[3]))
  local store = assert(store_mod.file { dir = dir, key = key ~= "-" and key or false })
  io.write("writing\n")
  io.flush()
  while true do
    assert(store:set("kill.test", M.entry(n)))
    n = n + 1
  end
end

return M
