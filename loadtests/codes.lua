-- wrk script for the trackedge / nginx redirect comparison: replays a
-- request file.
--
-- Environment:
--   LT_REQUESTS  a request file written by bench.py (scenarios.py), one
--                request a line: `PATH<TAB>Name: value<TAB>...`, the format
--                trackedge-loadgen reads too. Lines starting with `#` and
--                empty lines are skipped.
--
-- The requests are built once in init() and replayed in order, so every
-- server gets exactly the same requests and the load generator spends its
-- time on I/O, not on Lua string building. What the requests contain (Zipf
-- codes, sub-ids, browser headers, bots) is decided in scenarios.py.
--
-- done() prints one line `LTJSON {...}` with wrk's exact counters, which
-- loadtests/bench.py parses next to wrk's human-readable summary.

local pool = {}
local idx = 0

local function load_requests(path)
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      if #line > 0 and line:sub(1, 1) ~= "#" then
         local p
         local headers = {}
         for field in (line .. "\t"):gmatch("([^\t]*)\t") do
            if p == nil then
               p = field
            elseif #field > 0 then
               local k, v = field:match("^([^:]+):%s*(.*)$")
               if k then headers[k] = v end
            end
         end
         pool[#pool + 1] = wrk.format("GET", p, headers)
      end
   end
   f:close()
   assert(#pool > 0, "no requests in " .. path)
end

init = function(args)
   local reqs = os.getenv("LT_REQUESTS")
   assert(reqs and #reqs > 0, "LT_REQUESTS is not set")
   load_requests(reqs)
end

request = function()
   idx = idx + 1
   if idx > #pool then idx = 1 end
   return pool[idx]
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'LTJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
