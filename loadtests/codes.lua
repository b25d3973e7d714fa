-- wrk script for the trackedge / nginx redirect comparison.
--
-- Environment:
--   LT_REQUESTS  a request file written by bench.py (one request a line:
--             `PATH<TAB>Name: value<TAB>...`, the format trackedge-loadgen
--             reads too): the pool is exactly these requests, in order, and
--             LT_CODES, LT_SEED, LT_POOL and LT_XFF are ignored
--   LT_CODES  file with one link code per line (required without LT_REQUESTS)
--   LT_SEED   seed for the request mix (default 1); the same seed gives the
--             same request sequence against every server
--   LT_POOL   number of distinct pre-built requests to cycle through
--             (default 8192)
--   LT_XFF    1 (default): every request carries `X-Forwarded-For: <client>`,
--             drawn from 762 IPv4 documentation addresses (192.0.2.0/24,
--             198.51.100.0/24, 203.0.113.0/24) and, for a fifth, IPv6 ones
--             (2001:db8::/32), as from a load balancer on 127.0.0.1 (a trusted
--             proxy by default); 0: no such header, every click comes from
--             127.0.0.1
--
-- Each request is `GET /{code}` with a code drawn Zipf-like from the list
-- (index = floor(N * r^3): a few hot links take most of the traffic, as on a
-- real affiliate network), `?sub1=...&sub2=...` on about half of them, and a
-- realistic browser User-Agent (never a bot string, so trackedge's bot flag
-- stays off). Requests are built once in init() and replayed, so the load
-- generator spends its time on I/O, not on Lua string building.
--
-- done() prints one line `LTJSON {...}` with wrk's exact counters, which
-- loadtests/bench.py parses next to wrk's human-readable summary.

local pool = {}
local idx = 0

local user_agents = {
   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
   "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
   "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
   "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
}

local function client_addr()
   if math.random() < 0.2 then
      return string.format("2001:db8:%x:%x::%x", math.random(0, 65535), math.random(0, 65535), math.random(1, 65535))
   end
   local nets = { "192.0.2.", "198.51.100.", "203.0.113." }
   return nets[math.random(#nets)] .. math.random(1, 254)
end

local referers = {
   "https://blog.example.org/best-running-shoes-2024",
   "https://www.example.net/deals?page=2",
   "https://news.example.com/reviews/headphones",
}

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
   if reqs and #reqs > 0 then
      load_requests(reqs)
      return
   end
   local path = os.getenv("LT_CODES")
   assert(path and #path > 0, "LT_CODES is not set")
   local f = assert(io.open(path, "r"))
   local codes = {}
   for line in f:lines() do
      line = line:gsub("%s+$", "")
      if #line > 0 then codes[#codes + 1] = line end
   end
   f:close()
   assert(#codes > 0, "no codes in " .. path)

   math.randomseed(tonumber(os.getenv("LT_SEED") or "1"))
   local n = #codes
   local xff = (os.getenv("LT_XFF") or "1") ~= "0"
   local size = tonumber(os.getenv("LT_POOL") or "8192")
   for i = 1, size do
      local r = math.random()
      local code = codes[math.floor(n * r * r * r) + 1]
      local p = "/" .. code
      if math.random() < 0.5 then
         p = p .. "?sub1=abc" .. math.random(0, 999) .. "&sub2=camp" .. math.random(0, 49)
      end
      local headers = {
         ["User-Agent"] = user_agents[math.random(#user_agents)],
         ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
         ["Accept-Language"] = "en-US,en;q=0.9",
      }
      if xff then
         headers["X-Forwarded-For"] = client_addr()
      end
      if math.random() < 0.5 then
         headers["Referer"] = referers[math.random(#referers)]
      end
      pool[i] = wrk.format("GET", p, headers)
   end
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
