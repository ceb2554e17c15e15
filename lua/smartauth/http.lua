--- The engine's HTTP half under its documented name: engine() and
-- request(opts) (blocking). smartauth.engine holds the code.
return require("smartauth.engine").http
