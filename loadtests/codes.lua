-- wrk script for the trackedge / nginx comparisons: replays a request file.
--
-- Environment:
--   LT_REQUESTS    a request file written by bench.py (scenarios.py,
--                  postback.py), one request a line:
--                  `PATH<TAB>Name: value<TAB>...`, the format
--                  trackedge-loadgen reads too. Lines starting with `#` and
--                  empty lines are skipped. A `{seq}` in a line is replaced
--                  by a value no other request of the run carries (below).
--   LT_SEQ_PREFIX  what every `{seq}` starts with: bench.py passes a nonce
--                  unique to the run; then this thread's number, `-`, and a
--                  counter of the requests this thread built. So each
--                  postback carries an order id never seen before.
--   LT_EXPECT_BODY when set, responses are read by response() below and
--                  counted by status class and by whether the body holds
--                  this text (`"status":"approved"` for postbacks). Unset,
--                  wrk does not hand responses to Lua at all, which keeps
--                  its own cost per request as low as it can be.
--
-- The requests are built once in init() and replayed in order, so every
-- server gets exactly the same requests and the load generator spends its
-- time on I/O, not on Lua string building: a line with `{seq}` is kept as
-- the two halves around it and joined with the counter per request. What
-- the requests contain (Zipf codes, sub-ids, browser headers, bots,
-- postbacks) is decided in scenarios.py and postback.py.
--
-- done() prints one line `LTJSON {...}` with wrk's exact counters (and the
-- body counts, summed over the threads), which loadtests/bench.py parses
-- next to wrk's human-readable summary.

local pool = {}
local idx = 0
local seq = 0
local seq_prefix = ""
-- Counters read by done() through thread:get().
built, answered, expected, s2xx, s3xx, s4xx, s5xx = 0, 0, 0, 0, 0, 0, 0

local threads = {}

setup = function(thread)
   threads[#threads + 1] = thread
   -- A global of that thread's own Lua state, read in its init().
   thread:set("thread_no", #threads)
end

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
         local req = wrk.format("GET", p, headers)
         local at = req:find("{seq}", 1, true)
         if at then
            pool[#pool + 1] = { req:sub(1, at - 1), req:sub(at + 5) }
         else
            pool[#pool + 1] = req
         end
      end
   end
   f:close()
   assert(#pool > 0, "no requests in " .. path)
end

-- The plain replay: what the redirect scenarios use, as cheap as it gets.
local function replay()
   idx = idx + 1
   if idx > #pool then idx = 1 end
   return pool[idx]
end

-- The replay with `{seq}` filled in and every request counted.
local function replay_numbered()
   idx = idx + 1
   if idx > #pool then idx = 1 end
   built = built + 1
   local r = pool[idx]
   if type(r) == "table" then
      seq = seq + 1
      return r[1] .. seq_prefix .. seq .. r[2]
   end
   return r
end

request = replay

init = function(args)
   local reqs = os.getenv("LT_REQUESTS")
   assert(reqs and #reqs > 0, "LT_REQUESTS is not set")
   load_requests(reqs)
   seq_prefix = (os.getenv("LT_SEQ_PREFIX") or "") .. tostring(thread_no or 0) .. "-"
   local want = os.getenv("LT_EXPECT_BODY")
   for _, r in ipairs(pool) do
      if type(r) == "table" or (want and #want > 0) then
         request = replay_numbered
         break
      end
   end
   if want and #want > 0 then
      -- Defined only now: wrk looks for response() after init() and parses
      -- bodies only when it exists.
      response = function(status, headers, body)
         answered = answered + 1
         local class = math.floor(status / 100)
         if class == 2 then
            s2xx = s2xx + 1
            if body and body:find(want, 1, true) then expected = expected + 1 end
         elseif class == 3 then
            s3xx = s3xx + 1
         elseif class == 4 then
            s4xx = s4xx + 1
         elseif class == 5 then
            s5xx = s5xx + 1
         end
      end
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   local b = { built = 0, answered = 0, expected = 0, s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0 }
   for _, t in ipairs(threads) do
      for k, _ in pairs(b) do b[k] = b[k] + (t:get(k) or 0) end
   end
   local bodies = "null"
   if os.getenv("LT_EXPECT_BODY") and #os.getenv("LT_EXPECT_BODY") > 0 then
      bodies = string.format(
         '{"built":%d,"answered":%d,"expected":%d,"2xx":%d,"3xx":%d,"4xx":%d,"5xx":%d}',
         b.built, b.answered, b.expected, b.s2xx, b.s3xx, b.s4xx, b.s5xx)
   end
   io.write(string.format(
      'LTJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},"bodies":%s}\n',
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, bodies))
end
