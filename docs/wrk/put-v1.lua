-- wrk -s docs/wrk/put-v1.lua: PUT /v1/kv/<random key> with a raw 100-byte body.
-- Keys load:0 .. load:(KEYS-1), uniformly at random; each wrk thread seeds its own generator.
-- KEYS defaults to 100000 (the preloaded key space); values are 100 bytes.
local keys = tonumber(os.getenv("KEYS") or "100000")
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(42 + (id or 0))
end

local value = string.rep("v", 100)
local headers = {["Content-Type"] = "application/octet-stream"}
function request()
  return wrk.format("PUT", "/v1/kv/load:" .. math.random(0, keys - 1), headers, value)
end
