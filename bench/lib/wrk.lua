-- Drives one bench target. Arguments after `--`: a file of keys (one a line), and a mode:
--   header  GET with X-API-Key: <key>           (middleware targets, /v1/authz, bare baselines)
--   verify  POST {"key": <key>} with the admin key of the file named by the third argument
-- and an order (fourth argument): `random` (default) picks each key at random from the file;
-- `seq` walks the file in order from the line after the fifth argument (an offset), so a
-- warm-up in a few steps sees every key once.
local keys = {}
local count = 0
local mode = "header"
local admin = nil
local sequential = false
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      keys[count] = line
    end
  end
  mode = args[2] or "header"
  if mode == "verify" then
    for line in io.lines(args[3]) do
      if #line > 0 then admin = line break end
    end
  end
  sequential = args[4] == "seq"
  index = tonumber(args[5] or "0") % count
  math.randomseed(os.time() + count)
end

function request()
  local key
  if sequential then
    index = index % count + 1
    key = keys[index]
  else
    key = keys[math.random(count)]
  end
  if mode == "verify" then
    return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. admin, ["Content-Type"] = "application/json" },
      '{"key":"' .. key .. '"}')
  end
  return wrk.format("GET", nil, { ["X-API-Key"] = key })
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
