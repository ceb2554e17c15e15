--- The engine's HTTP half under its documented name: engine() and
-- request(opts) (blocking). smartauth.engine holds the code.
-- @module smartauth.http

--- The Lua state's HTTP engine (libcurl's multi handle, one per state,
-- shared by every provider), made on first use. `engine:spin([seconds])`
-- sets the longest busy poll of a blocking request (0 to 0.01 s; default
-- 100 µs, used while servers answer that fast; 0: always sleep) and
-- returns the setting.
-- @function engine
-- @return the engine

--- One blocking HTTP request (providers call it through their own
-- settings; this is the bare engine). Any HTTP status is an answer.
-- @function request
-- @tparam table opts `url`, `method`, `headers` (a list of `"Name: value"`),
--   `body`, `timeout`, `connect_timeout` (seconds), `max_body` (bytes),
--   `ca_file`, `proxy`, `no_proxy`, `client_cert`, `client_key`,
--   `client_key_password`
-- @return `{ status =, headers = { [lower-case name] = value }, body = }`, or nil, err
return require("smartauth.engine").http
