std = "lua54"
max_line_length = 120
files["spec/**/*.lua"] = { std = "+busted" }
-- The library runs on 5.1-5.4 and LuaJIT: only what all of them have;
-- what differs goes through smartauth.compat (the one file that may name
-- the rest).
files["lua/**/*.lua"] = { std = "min" }
files["lua/smartauth/compat.lua"] = { std = "max" }
files["bin/smartauth"] = { std = "min" }
-- The LÖVE example runs under LuaJIT; `love` is LÖVE's global (the stand-in
-- defines it).
files["examples/love/**/*.lua"] = { std = "min", globals = { "love" } }
exclude_files = { "build/**", "node_modules/**", "tree/**" }
