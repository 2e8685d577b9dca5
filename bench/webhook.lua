-- wrk script: POST pre-signed, distinct Zoom webhook bodies, and count the answers.
-- Each thread reads its own file of "timestamp<TAB>signature<TAB>body" lines (bench/run.py
-- writes them), pre-formats every request once, and cycles through them.
-- BENCH_DELAY_MS, when set, makes each connection pause that long before each request: with
-- many connections that turns wrk into a fixed-rate source (the overload run).

local thread_count = 0
local threads = {}

function setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1] .. "/bodies-" .. id .. ".txt"
   requests = {}
   for line in io.lines(path) do
      local ts, sig, body = line:match("^(%d+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/api/zoom/webhook", {
         ["Content-Type"] = "application/json",
         ["x-zm-request-timestamp"] = ts,
         ["x-zm-signature"] = sig,
      }, body)
   end
   io.write("BENCH_READY\n")
   io.flush()
   position = 0
   wrapped = 0
   ok = 0
   stored = 0
   duplicate = 0
   unavailable = 0
   retry_after = 0
   other = 0
end

function request()
   position = position + 1
   if position > #requests then
      position = 1
      wrapped = wrapped + 1
   end
   return requests[position]
end

function response(status, headers, body)
   if status == 200 then
      ok = ok + 1
      if body:find('"stored"', 1, true) then
         stored = stored + 1
      elseif body:find('"duplicate"', 1, true) then
         duplicate = duplicate + 1
      end
   elseif status == 503 then
      unavailable = unavailable + 1
      if headers["Retry-After"] then
         retry_after = retry_after + 1
      end
   else
      other = other + 1
   end
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms then
   function delay()
      return delay_ms
   end
end

function done(summary, latency, requests)
   local counts = {ok = 0, stored = 0, duplicate = 0, unavailable = 0, retry_after = 0,
                   other = 0, wrapped = 0}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(counts) do
         counts[name] = counts[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
      '"status_errors": %d, "timeouts": %d, "ok": %d, "stored": %d, "duplicate": %d, ' ..
      '"unavailable": %d, "retry_after": %d, "other": %d, "wrapped": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, e.connect, e.read, e.write, e.status, e.timeout, counts.ok, counts.stored,
      counts.duplicate, counts.unavailable, counts.retry_after, counts.other, counts.wrapped))
end
