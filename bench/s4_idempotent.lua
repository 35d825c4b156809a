-- S4: S3 (POST /api/v1/summarise, 1 KB) with an Idempotency-Key per request,
-- unique across threads and runs: every request is a first request, so the
-- key is looked up, the answer stored with the effects and committed.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local tokens, body
local n = 0

setup = c.setup

function init(args)
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
   tokens = c.read_lines(os.getenv("BENCH_TOKENS"))
   body = c.read_file(os.getenv("BENCH_BODY"))
   prefix = string.format("%d-%d-%d", os.time(), thread_no or 0, math.random(1, 1e9))
end

function request()
   n = n + 1
   local h = {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
              ["Content-Type"] = "application/json",
              ["Idempotency-Key"] = prefix .. "-" .. n}
   return wrk.format("POST", "/api/v1/summarise", h, body)
end
