-- Replays a pool of pre-signed requests (wrk has no HMAC): one request per line of the file given
-- after `--`, as "METHOD<TAB>PATH?QUERY<TAB>BODY" (BODY may be empty); the API key is the second
-- argument. Prints one JSON line (prefixed WRKJSON) with the counts and latency percentiles in µs.
local lines = {}
local api_key = ""
local i = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local method, path, body = line:match("^([A-Z]+)\t([^\t]+)\t?(.*)$")
    if method then
      table.insert(lines, {method, path, body})
    end
  end
  f:close()
  api_key = args[2]
  i = math.random(#lines) - 1
end

function request()
  i = (i % #lines) + 1
  local r = lines[i]
  local headers = {["X-API-KEY"] = api_key}
  if r[3] ~= "" then
    headers["Content-Type"] = "application/json"
    return wrk.format(r[1], r[2], headers, r[3])
  end
  return wrk.format(r[1], r[2], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
