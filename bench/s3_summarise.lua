-- S3: POST /api/v1/summarise {"text": <1 KB>} with a random organisation's token
-- per request. BENCH_BODY: file holding the JSON body (written by bench/lib/bench.py).
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local reqs

setup = c.setup

function init(args)
   local body = c.read_file(os.getenv("BENCH_BODY"))
   reqs = c.init("POST", "/api/v1/summarise", body, "application/json")
end

function request()
   return reqs[math.random(#reqs)]
end
