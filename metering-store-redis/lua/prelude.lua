-- Shared by every script (prepended to each one by the Rust side).
--
-- Common arguments:
--   ARGV[1] lifetime of an ingest mark, milliseconds
--   ARGV[2] minimum lifetime of a stream's counter hash, milliseconds
-- Script arguments start at ARGV[3].
--
-- Keys: for each stream the script touches, its marks key then its counters key
-- (KEYS[2i - 1], KEYS[2i]). Both carry the stream in a hash tag, so on a Redis Cluster a
-- script that touches one stream touches one hash slot; the Rust side sends one call per
-- stream there, and one call for all streams on a standalone server.
--
-- Lua numbers are doubles: every quantity is passed to and from Redis as text and added with
-- HINCRBY (64-bit integers in Redis itself); only timestamps (below 2^53) are compared here.

local mark_ttl_ms = tonumber(ARGV[1])
local state_ttl_ms = tonumber(ARGV[2])

local function int(n)
  return string.format('%.0f', n)
end

local now_cache
local function now_ms()
  if not now_cache then
    local t = redis.call('TIME')
    now_cache = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_cache
end

-- Drops the stream's expired marks. A mark that expired belongs to an ingest that did not end
-- in time (its process crashed, or it outlived the mark): its events may be committed without
-- being counted, so the stream's counters are dropped with it (they are rebuilt from the
-- store). Returns whether an ingest of the stream is still in flight.
local function busy(marks, counters)
  if redis.call('ZREMRANGEBYSCORE', marks, '-inf', int(now_ms())) > 0 then
    redis.call('DEL', counters)
  end
  return redis.call('ZCARD', marks) > 0
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

-- Sets the stream's version. Versions are random 64-bit numbers chosen by the caller, so a
-- counter hash that was deleted (eviction, FLUSHALL, a restart, a failover that lost writes)
-- and recreated never hands a stale rebuild token a matching version.
local function set_version(counters, version)
  redis.call('HSET', counters, 'v', version)
  keep_until(counters, now_ms() + state_ttl_ms)
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
