-- common.lua - shared by the wrk scripts: one pre-formatted request per token,
-- a random one per request (so every request may belong to another tenant).
-- BENCH_TOKENS: file with one access token per line (minted by `nexusapi token`).
local M = {}

function M.read_lines(path)
   local t = {}
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   for line in f:lines() do
      if #line > 0 then t[#t + 1] = line end
   end
   f:close()
   return t
end

function M.read_file(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local s = f:read("*a")
   f:close()
   return s
end

local counter = 0
function M.setup(thread)
   counter = counter + 1
   thread:set("thread_no", counter)
end

-- builds requests[] in the thread's own Lua state; extra: more headers
function M.init(method, path, body, content_type, extra)
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
   local tokens = M.read_lines(os.getenv("BENCH_TOKENS"))
   assert(#tokens > 0, "no tokens in BENCH_TOKENS")
   local reqs = {}
   for i, tok in ipairs(tokens) do
      local h = {["Authorization"] = "Bearer " .. tok}
      if content_type then h["Content-Type"] = content_type end
      for k, v in pairs(extra or {}) do h[k] = v end
      reqs[i] = wrk.format(method, path, h, body)
   end
   return reqs
end

return M
