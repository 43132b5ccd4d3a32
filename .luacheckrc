-- luacheck settings for the Lua runtime, its specs and the example apps.
std = "luajit"
redefined = false
max_line_length = 100
-- Controllers and hooks take (client, data, msg) whether they use them or not.
unused_args = false

files["spec/**/*.lua"] = { std = "+busted" }
files["examples/*/spec/**/*.lua"] = { std = "+busted" }
files[".busted"] = { std = "lua51" }
files["examples/*/.busted"] = { std = "lua51" }

exclude_files = { "build/**" }
