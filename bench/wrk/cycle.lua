-- wrk script for bench/suite.py: drain a CMQ queue by BatchReceiveMessage + BatchDeleteMessage.
--
--   WRK_QUEUE=suite-cycle-1 [WRK_BATCH=16] \
--     wrk -t1 -c32 -d5s -s bench/wrk/cycle.lua http://127.0.0.1:PORT/v2/index.php
--
-- WRK_QUEUE  the queue to drain (filled beforehand; the script sends nothing into it)
-- WRK_BATCH  numOfMsg of each BatchReceiveMessage (default 16)
--
-- request() sends the oldest pending BatchDeleteMessage if there is one, else a
-- BatchReceiveMessage (pollingWaitSeconds=0). response() takes every "receiptHandle":"..." out of
-- a receive reply (one whose body holds "msgInfoList") and queues one BatchDeleteMessage for them.
-- A connection's next request is built right after its reply is handled, so the delete of a batch
-- usually goes out on the connection that received it, as the next request.
--
-- Replies are classified by body, since wrk does not say which request a reply answers:
--   "msgInfoList"         a receive that returned messages
--   "code":7000           a receive that found the queue empty (counted as empty, not bad)
--   "code":0 otherwise    a delete that deleted every handle it named
--   anything else         bad (a failed or partial delete counts the handles in its errorList)
--
-- When wrk is done it prints one line for the caller to parse:
--   WRK_RESULT {"requests":N,"seconds":S,"msgs":M,"msgs_per_s":R,"received":H,"deletes_ok":D,
--               "bad":B,"errors":E,"empty":Z,"pending":P,...}
-- msgs estimates the messages deleted: handles received, minus those still pending at the end
-- (never sent), minus those of deletes still in flight when wrk stopped (deletes sent but not
-- answered, times the mean handles per delete), minus those a bad delete reply named as failed.
-- With a full queue every batch holds WRK_BATCH handles, and msgs is exact to within that.

local queue = assert(os.getenv("WRK_QUEUE"), "set WRK_QUEUE")
local batch = tonumber(os.getenv("WRK_BATCH") or "16")

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local path = wrk.path
local receive_body = "Action=BatchReceiveMessage&queueName=" .. queue ..
  "&numOfMsg=" .. batch .. "&pollingWaitSeconds=0"
local delete_prefix = "Action=BatchDeleteMessage&queueName=" .. queue

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  receive_req = wrk.format("POST", path, headers, receive_body)
  -- FIFO of pending delete requests, and the handle count of each
  fifo, counts, head, tail = {}, {}, 1, 0
  pending = 0          -- handles in the FIFO
  received = 0         -- handles received
  receives = 0         -- receive replies with messages
  receives_sent = 0
  deletes_sent = 0
  delete_handles_sent = 0
  deletes_ok = 0
  empty = 0
  bad = 0
  bad_deletes = 0      -- bad replies that are delete replies (hold an errorList)
  failed_handles = 0   -- handles a bad delete reply named
  first_bad = ""
end

function request()
  if head <= tail then
    local req, n = fifo[head], counts[head]
    fifo[head], counts[head] = nil, nil
    head = head + 1
    pending = pending - n
    deletes_sent = deletes_sent + 1
    delete_handles_sent = delete_handles_sent + n
    return req
  end
  receives_sent = receives_sent + 1
  return receive_req
end

function response(status, hdrs, body)
  if status == 200 and string.find(body, '"msgInfoList"', 1, true) then
    local parts, n = { delete_prefix }, 0
    for h in string.gmatch(body, '"receiptHandle":"(%d+)"') do
      n = n + 1
      parts[#parts + 1] = "&receiptHandle." .. n .. "=" .. h
    end
    receives = receives + 1
    if n > 0 then
      tail = tail + 1
      fifo[tail] = wrk.format("POST", path, headers, table.concat(parts))
      counts[tail] = n
      pending = pending + n
      received = received + n
    end
    return
  end
  if string.find(body, '"code":0', 1, true) then
    deletes_ok = deletes_ok + 1
    return
  end
  if string.find(body, '"code":7000', 1, true) then
    empty = empty + 1
    return
  end
  bad = bad + 1
  if string.find(body, '"errorList"', 1, true) then
    bad_deletes = bad_deletes + 1
    for _ in string.gmatch(body, '"receiptHandle"') do
      failed_handles = failed_handles + 1
    end
  end
  if first_bad == "" then
    first_bad = status .. " " .. string.sub(body or "", 1, 160)
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local t = {received = 0, pending = 0, receives = 0, receives_sent = 0, deletes_sent = 0,
             delete_handles_sent = 0, deletes_ok = 0, empty = 0, bad = 0, bad_deletes = 0, failed_handles = 0}
  local first = ""
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
    if first == "" then first = thread:get("first_bad") or "" end
  end
  local mean = t.deletes_sent > 0 and t.delete_handles_sent / t.deletes_sent or 0
  local in_flight = math.max(0, t.deletes_sent - t.deletes_ok - t.bad_deletes)
  local msgs = math.max(0, t.received - t.pending - math.floor(in_flight * mean + 0.5) - t.failed_handles)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"seconds":%.6f,"msgs":%d,"msgs_per_s":%.1f,"received":%d,"pending":%d,' ..
    '"receives":%d,"receives_sent":%d,"deletes_sent":%d,"deletes_ok":%d,"deletes_in_flight":%d,' ..
    '"empty":%d,"bad":%d,"failed_handles":%d,"errors":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"first_bad":%s}\n',
    summary.requests, seconds, msgs, seconds > 0 and msgs / seconds or 0, t.received, t.pending,
    t.receives, t.receives_sent, t.deletes_sent, t.deletes_ok, in_flight,
    t.empty, t.bad, t.failed_handles, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, json_string(first)))
end
