--- The engine's HTTP half under its documented name: engine() and
-- request(opts) (blocking). smartauth.engine holds the code.
-- @module smartauth.http
return require("smartauth.engine").http
