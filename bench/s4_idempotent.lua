-- S4: S3 (POST /api/v1/summarise, 1 KB) with an Idempotency-Key per request,
-- unique across threads and runs: every request is a first request, so the
-- key is looked up, the answer stored with the effects and committed.
-- Each token's request is formatted once, split where the key goes, so a
-- request costs the load generator what an S3 request does plus one concat.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local MARK = "@KEY@"
local heads, tails, prefix
local n = 0

setup = c.setup

function init(args)
   local body = c.read_file(os.getenv("BENCH_BODY"))
   local whole = c.init("POST", "/api/v1/summarise", body, "application/json",
                        {["Idempotency-Key"] = MARK})
   heads, tails = {}, {}
   for i, r in ipairs(whole) do
      local at = assert(r:find(MARK, 1, true), "no key mark in the request")
      heads[i], tails[i] = r:sub(1, at - 1), r:sub(at + #MARK)
   end
   prefix = string.format("%d-%d-%d-", os.time(), thread_no or 0, math.random(1, 1e9))
end

function request()
   n = n + 1
   local i = math.random(#heads)
   return heads[i] .. prefix .. n .. tails[i]
end
