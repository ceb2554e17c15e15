--- Internal: Wall-clock seconds for expiry decisions. One place, so tests (and hosts
-- with their own notion of time) can shift it with `offset`.
-- @module smartauth.clock
local M = { offset = 0 }

function M.now()
  return os.time() + M.offset
end

return M
