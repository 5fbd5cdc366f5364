-- Drives one bench target. Arguments after `--`: a file of keys (one a line), and a mode:
--   header  GET with X-API-Key: <key>           (middleware targets, /v1/authz, bare baselines)
--   verify  POST {"key": <key>} with the admin key of the file named by the third argument
-- and an order (fourth argument): `random` (default) picks each key at random from the file;
-- `seq` walks the file in order from the line after the fifth argument (an offset), so a
-- warm-up in a few steps sees every key once. A sixth argument, status codes (`401` or
-- `401,429`), makes wrk read every answer's status and count the others (`unexpected` in the
-- summary): an invalid key must get exactly its denial (401, or 200 {valid:false} from
-- POST /v1/keys/verify), not a 429 or a 503 that would measure another path. Without it,
-- answers are not read (faster).
local keys = {}
local count = 0
local mode = "header"
local admin = nil
local sequential = false
local index = 0
local threads = {}
-- Read back from the thread's state by done() (global, for thread:get).
unexpected = 0

function setup(thread)
  table.insert(threads, thread)
end

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
  if args[6] then
    local expected = {}
    for code in string.gmatch(args[6], "%d+") do expected[tonumber(code)] = true end
    -- Defined only when asked: wrk parses answers only for a script that has response().
    response = function(status)
      if not expected[status] then unexpected = unexpected + 1 end
    end
  end
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
  local wrong = 0
  for _, thread in ipairs(threads) do wrong = wrong + (thread:get("unexpected") or 0) end
  io.write(string.format(
    'WRKJSON {"unexpected":%d,"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    wrong, summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
