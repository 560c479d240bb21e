-- Shared by every script (prepended to each one by the Rust side).
--
-- Common arguments:
--   ARGV[1] key prefix
--   ARGV[2] '1' to bump the namespace epoch first (this process missed an ingest), else '0'
--   ARGV[3] lifetime of an ingest mark, milliseconds
--   ARGV[4] minimum lifetime of a stream's counter hash, milliseconds
-- Script arguments start at ARGV[5].
--
-- Keys are built here, from the prefix and the epoch read in this very script, so no process
-- can ever use a stale epoch. (This is why the scripts need a standalone Redis, not a cluster.)
--
-- Lua numbers are doubles: every quantity is passed to and from Redis as text and added with
-- HINCRBY (64-bit integers in Redis itself); only timestamps (below 2^53) are compared here.

local prefix = ARGV[1]
local mark_ttl_ms = tonumber(ARGV[3])
local state_ttl_ms = tonumber(ARGV[4])

local epoch
if ARGV[2] == '1' then
  epoch = redis.call('INCR', prefix .. 'epoch')
else
  epoch = redis.call('GET', prefix .. 'epoch') or '0'
end
epoch = tostring(epoch)

local function int(n)
  return string.format('%.0f', n)
end

-- Counters and the version of a stream, in the current epoch.
local function counters_key(stream)
  return prefix .. 'c:' .. epoch .. ':' .. stream
end

-- Ingest marks of a stream; independent of the epoch, so a bump never hides an ingest in flight.
local function marks_key(stream)
  return prefix .. 'b:' .. stream
end

local now_cache
local function now_ms()
  if not now_cache then
    local t = redis.call('TIME')
    now_cache = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_cache
end

-- Whether an ingest of the stream is in flight (expired marks are dropped first).
local function busy(stream)
  local key = marks_key(stream)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now_ms()))
  return redis.call('ZCARD', key) > 0
end

-- Keeps `key` alive until at least `until_ms` (milliseconds since the epoch); never shortens it.
local function keep_until(key, until_ms)
  local want = until_ms - now_ms()
  if want < 1000 then
    want = 1000
  end
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < want) then
    redis.call('PEXPIRE', key, int(want))
  end
end

-- A version never handed out before: versions come from one sequence per prefix, which starts
-- at the server's clock in microseconds when it is (re)created, so a counter hash that was
-- deleted and recreated never repeats an old version.
local function next_version()
  local seq_key = prefix .. 'seq'
  local v = redis.call('INCR', seq_key)
  if v == 1 then
    local t = redis.call('TIME')
    v = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', seq_key, int(v))
  end
  return int(v)
end

local function bump_version(stream)
  local key = counters_key(stream)
  local v = next_version()
  redis.call('HSET', key, 'v', v)
  keep_until(key, now_ms() + state_ttl_ms)
  return v
end

-- Counter fields: 'u|<start>|<end>|<resource>' (whole units) and 'n|...' (nano-units), where
-- <start> and <end> are the window bounds in microseconds and <resource> is '*' (any) or
-- '=' followed by the resource name.
local function parse_counter(field)
  local start_us, end_us, res = string.match(field, '^u|(%-?%d+)|(%-?%d+)|(.*)$')
  if not start_us then
    return nil
  end
  return {
    suffix = string.sub(field, 3),
    start_us = tonumber(start_us),
    end_us = tonumber(end_us),
    any = res == '*',
    resource = string.sub(res, 2),
  }
end

local NANOS_PER_UNIT = 1000000000
-- Counters stop short of the i64 range so HINCRBY can never fail half way through a script.
local MAX_UNITS = 4.0e18

-- Adds (units, nanos) to a counter; false when it would grow too large (the caller drops it).
local function add_to_counter(key, suffix, units, nanos)
  local u_field = 'u|' .. suffix
  local current = tonumber(redis.call('HGET', key, u_field) or '0')
  if current + tonumber(units) + 1 > MAX_UNITS then
    return false
  end
  if units ~= '0' then
    redis.call('HINCRBY', key, u_field, units)
  end
  if nanos ~= '0' then
    local n_field = 'n|' .. suffix
    local n = redis.call('HINCRBY', key, n_field, nanos)
    if n >= NANOS_PER_UNIT then
      redis.call('HINCRBY', key, n_field, int(-NANOS_PER_UNIT))
      redis.call('HINCRBY', key, u_field, '1')
    end
  end
  return true
end

local function drop_counter(key, suffix)
  redis.call('HDEL', key, 'u|' .. suffix, 'n|' .. suffix)
end
