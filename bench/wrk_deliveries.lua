-- wrk script: POST each delivery of a corpus file exactly once, then go quiet.
--
-- Corpus: one delivery per line, "<TikTok-Signature value>\t<JSON body>", written by
-- bench/corpus.py. Path from $BENCH_CORPUS, or the first argument after `--`.
-- All requests are formatted once, in init (each thread's own Lua state), from the
-- file: a huge Lua table literal breaks silently past some size and wrk then sends
-- plain GETs, so the data never goes into the script text.
--
-- Sending stops when the corpus is used up or, if $BENCH_SEND_SECONDS is set, that
-- many seconds after the first request. Connections that ask for a request after
-- that get an empty one: they send nothing and wait, so no delivery is ever sent
-- twice. Once every request sent was answered, the thread stops and prints
-- "BENCH_SENDING_DONE <corpus|time>" so the harness can end wrk at once (wrk itself
-- would sleep for the whole -d, which is only the hard bound). Stopping like this,
-- rather than by -d, leaves no request in flight, so every delivery sent has a
-- known answer.
--
-- done() prints one line "BENCH_RESULT <json>" with wrk's summary and latency
-- percentiles plus this script's counts (accepted/duplicate bodies, non-200 statuses
-- and the first few non-200 answers), gathered from each thread via thread:get.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- A tiny JSON encoder (numbers, strings, booleans, arrays, string-keyed maps).
local function encode(value)
   local kind = type(value)
   if kind == "number" then
      if value ~= value or value == math.huge or value == -math.huge then
         return "null"
      end
      if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
         return string.format("%d", value)
      end
      return string.format("%.6f", value)
   elseif kind == "string" then
      local escaped = value:gsub('[%c"\\]', function(c)
         return string.format("\\u%04x", string.byte(c))
      end)
      return '"' .. escaped .. '"'
   elseif kind == "boolean" then
      return tostring(value)
   elseif kind == "table" then
      if #value > 0 then
         local items = {}
         for _, item in ipairs(value) do
            table.insert(items, encode(item))
         end
         return "[" .. table.concat(items, ",") .. "]"
      end
      local items = {}
      for k, v in pairs(value) do
         table.insert(items, encode(tostring(k)) .. ":" .. encode(v))
      end
      return "{" .. table.concat(items, ",") .. "}"
   end
   return "null"
end

-- ---------------------------------------------------------------- thread state
-- Results live in number and string globals, read by done() with thread:get:
-- fetching a table that way crashed wrk 4.1.0 (segfault), so details of non-200
-- answers are kept as a JSON string.
bench_corpus = 0
bench_sent = 0
bench_answered = 0
bench_accepted = 0
bench_duplicate = 0
bench_other_200 = 0
bench_non_200 = 0
bench_first_send_us = -1
bench_last_answer_us = -1
bench_stop_reason = ""
bench_verify_calls = 0
bench_clock = 0
bench_non_200_detail = "{}"

local requests = {}
local total = 0
local send_limit_us = nil
local sending_over = false
local next_index = 0
local now_us = nil
local init_thread = nil
local pthread_self = nil
local non_200_statuses = {}
local non_200_samples = {}

local function init_ffi()
   local ok, ffi = pcall(require, "ffi")
   if not ok then
      return
   end
   local defined = pcall(ffi.cdef, [[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clk_id, bench_timespec *tp);
      unsigned long pthread_self(void);
   ]])
   if not defined then
      return
   end
   local ts = ffi.new("bench_timespec[1]")
   now_us = function()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts[0].tv_sec) * 1000000 + math.floor(tonumber(ts[0].tv_nsec) / 1000)
   end
   pthread_self = function()
      return tonumber(ffi.C.pthread_self())
   end
   bench_clock = 1
end

function init(args)
   local path = os.getenv("BENCH_CORPUS") or (args and args[1])
   if not path or path == "" then
      error("set BENCH_CORPUS to the corpus file (or pass it after --)")
   end
   local file = assert(io.open(path, "rb"))
   for line in file:lines() do
      local header, body = line:match("^([^\t]+)\t(.+)$")
      if header then
         total = total + 1
         requests[total] = wrk.format("POST", nil, {
            ["TikTok-Signature"] = header,
            ["Content-Type"] = "application/json",
         }, body)
      end
   end
   file:close()
   if total == 0 then
      error("corpus " .. path .. " holds no deliveries")
   end
   bench_corpus = total
   init_ffi()
   if pthread_self then
      init_thread = pthread_self()
   end
   local seconds = tonumber(os.getenv("BENCH_SEND_SECONDS") or "")
   if seconds and seconds > 0 then
      send_limit_us = seconds * 1000000
   end
end

local function clock_us()
   if now_us then
      return now_us()
   end
   return os.time() * 1000000 -- one-second resolution without LuaJIT's ffi
end

local function finish_if_done()
   if sending_over and bench_answered >= bench_sent and bench_stop_reason == "" then
      bench_stop_reason = next_index >= total and "corpus" or "time"
      io.stdout:write("BENCH_SENDING_DONE " .. bench_stop_reason .. "\n")
      io.stdout:flush()
      wrk.thread:stop()
   end
end

function request()
   -- wrk calls request() once on the main thread right after init, only to check
   -- that the request parses; that one is never sent, so it must not use up a
   -- delivery. Without ffi, assume the first call is that check (wrk 4.x does it).
   if pthread_self then
      if pthread_self() == init_thread then
         bench_verify_calls = bench_verify_calls + 1
         return requests[1]
      end
   elseif bench_verify_calls == 0 then
      bench_verify_calls = 1
      return requests[1]
   end
   if not sending_over then
      if next_index >= total then
         sending_over = true
      elseif send_limit_us and bench_sent > 0 and clock_us() - bench_first_send_us >= send_limit_us then
         sending_over = true
      end
   end
   if sending_over then
      -- Nothing more to send: this connection sends nothing and idles until the
      -- answers still outstanding on the others arrive.
      finish_if_done()
      return ""
   end
   next_index = next_index + 1
   bench_sent = next_index
   if bench_first_send_us < 0 then
      bench_first_send_us = clock_us()
   end
   return requests[next_index]
end

function response(status, headers, body)
   bench_answered = bench_answered + 1
   bench_last_answer_us = clock_us()
   if status == 200 then
      if body and body:find("accepted", 1, true) then
         bench_accepted = bench_accepted + 1
      elseif body and body:find("duplicate", 1, true) then
         bench_duplicate = bench_duplicate + 1
      else
         bench_other_200 = bench_other_200 + 1
      end
   else
      bench_non_200 = bench_non_200 + 1
      local key = tostring(status)
      non_200_statuses[key] = (non_200_statuses[key] or 0) + 1
      if #non_200_samples < 5 then
         table.insert(non_200_samples, key .. " " .. string.sub(body or "", 1, 200))
      end
      bench_non_200_detail = encode({ statuses = non_200_statuses, samples = non_200_samples })
   end
   finish_if_done()
end

-- ---------------------------------------------------------------- main state
local THREAD_VALUES = {
   "corpus", "sent", "answered", "accepted", "duplicate", "other_200", "non_200",
   "first_send_us", "last_answer_us", "stop_reason", "verify_calls", "clock",
   "non_200_detail",
}

function done(summary, latency, _requests)
   local per_thread = {}
   for _, thread in ipairs(threads) do
      local counts = {}
      for _, name in ipairs(THREAD_VALUES) do
         counts[name] = thread:get("bench_" .. name)
      end
      table.insert(per_thread, counts)
   end
   local result = {
      duration_us = summary.duration,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = {
         connect = summary.errors.connect,
         read = summary.errors.read,
         write = summary.errors.write,
         status = summary.errors.status,
         timeout = summary.errors.timeout,
      },
      latency_us = {
         min = latency.min,
         mean = latency.mean,
         stdev = latency.stdev,
         max = latency.max,
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
      },
      threads = per_thread,
   }
   io.stdout:write("BENCH_RESULT " .. encode(result) .. "\n")
   io.stdout:flush()
end
