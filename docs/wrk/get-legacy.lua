-- wrk -s docs/wrk/get-legacy.lua: GET /get?key=<random key> (the documented API).
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

function request()
  return wrk.format("GET", "/get?key=load:" .. math.random(0, keys - 1))
end
