--- Wall-clock seconds for expiry decisions. One place, so tests (and hosts
-- with their own notion of time) can shift it with `offset`.
local M = { offset = 0 }

function M.now()
  return os.time() + M.offset
end

return M
