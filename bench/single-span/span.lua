-- wrk script: every request POSTs one span, with a fresh id, to /v1/ingest.
--
--   wrk -t2 -c32 -d10s -s span.lua http://127.0.0.1:PORT -- RUN TENANT [TOKEN]
--
-- RUN makes the ids of this run unique (s_<RUN>_<thread>_<n>); TENANT is the
-- span's tenant; TOKEN, if given, is sent as a bearer token (a server run
-- without --dev). The span has the shape `logline bench ingest` posts (the
-- standard contract's members and a "data" object with a pad), about 300
-- bytes, as the PostgreSQL side's JSONB body (insert.sql).
--
-- done() prints one line for the run script to read:
--   RESULT requests=N seconds=S p50_us=N p99_us=N non2xx=N errors=N
-- (errors: connect, read, write and timeout errors added up).

local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local run, tenant, headers, prefix, suffix, stamp, pad
local n = 0

function init(args)
  run = args[1] or "run"
  tenant = args[2] or "t_bench"
  headers = { ["Content-Type"] = "application/x-ndjson" }
  if args[3] and args[3] ~= "" then
    headers["Authorization"] = "Bearer " .. args[3]
  end
  local when = os.date("!%Y-%m-%dT%H:%M:%SZ")
  prefix = '{"id":"s_' .. run .. '_' .. tostring(tid) .. '_'
  suffix = '","tenant":"' .. tenant .. '","who":"bench","did":"bench.post","this":"order:'
  pad = string.rep("x", 88)
  stamp = '","when":"' .. when .. '","status":"confirmed","confirmed_by":["bench://'
end

function request()
  n = n + 1
  local body = prefix .. n .. suffix .. (n % 100000) .. stamp .. (n % 7) ..
    '"],"data":{"n":' .. n .. ',"pad":"' .. pad .. '"}}\n'
  return wrk.format("POST", "/v1/ingest", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
