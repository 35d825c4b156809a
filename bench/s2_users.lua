-- S2: GET /api/v1/users?limit=20 with a random organisation's token per request.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local reqs

setup = c.setup

function init(args)
   reqs = c.init("GET", "/api/v1/users?limit=20", nil, nil)
end

function request()
   return reqs[math.random(#reqs)]
end
