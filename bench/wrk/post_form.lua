-- wrk script for bench/suite.py: POST one fixed form body, over and over, and check every reply.
--
--   WRK_BODY_FILE=body.txt WRK_EXPECT='"code":0' [WRK_AUTH='AWS4-HMAC-SHA256 ...'] \
--     wrk -t1 -c32 -d5s -s bench/wrk/post_form.lua http://127.0.0.1:PORT/v2/index.php
--
-- WRK_BODY_FILE  the request body (application/x-www-form-urlencoded), read once at start-up
-- WRK_EXPECT     a plain substring every good reply contains ('"code":0' for CMQ, which is never
--                a prefix of another code, or '<MessageId>' for SQS); a 200 without it, or any
--                other status, counts as a bad reply
-- WRK_AUTH       an Authorization header to send, if set (moto routes a request to SQS by the
--                service named in a SigV4 credential scope)
--
-- When wrk is done it prints one line for the caller to parse:
--   WRK_RESULT {"requests":N,"seconds":S,"bad":B,"errors":E,"p50_us":X,"p99_us":Y,...}
-- where bad counts the replies that failed the check, and errors wrk's socket errors.

local body_file = os.getenv("WRK_BODY_FILE")
local expect = os.getenv("WRK_EXPECT") or ""
local auth = os.getenv("WRK_AUTH")

local f = assert(io.open(body_file, "rb"), "cannot open WRK_BODY_FILE")
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = ""
end

function response(status, headers, reply)
  if status ~= 200 or (expect ~= "" and not string.find(reply, expect, 1, true)) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(reply or "", 1, 160)
    end
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + (thread:get("bad") or 0)
    if first == "" then first = thread:get("first_bad") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"seconds":%.6f,"bad":%d,"errors":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"first_bad":%s}\n',
    summary.requests, summary.duration / 1e6, bad_total, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, json_string(first)))
end
