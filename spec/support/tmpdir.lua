-- spec/support/tmpdir.lua: throwaway app folders for specs. Made from
-- os.tmpname() (a unique name), removed with rm -rf when the spec is done.

local _M = {}


local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end


local function sh(cmd)
    local rc = os.execute(cmd)
    assert(rc == 0 or rc == true, "command failed: " .. cmd)
end


-- A new, empty directory.
function _M.new()
    local path = os.tmpname()
    os.remove(path)
    sh("mkdir -p " .. quote(path))
    return path
end


-- Writes `content` to dir/rel, creating parent directories.
function _M.write(dir, rel, content)
    local path = dir .. "/" .. rel
    sh("mkdir -p " .. quote(path:match("^(.*)/[^/]*$")))
    local f = assert(io.open(path, "wb"))
    assert(f:write(content))
    f:close()
    return path
end


function _M.remove(dir)
    assert(dir:match("^/tmp/"), "refusing to remove " .. dir)
    sh("rm -rf " .. quote(dir))
end


return _M
