-- Stores a rebuilt counter if the stream is idle, its version still equals the token and the
-- counter is absent. Returns 1 when stored, 0 otherwise.
--   ARGV[5] stream, ARGV[6] counter suffix, ARGV[7] token,
--   ARGV[8] units, ARGV[9] nanos (< 10^9), ARGV[10] window end in milliseconds
local stream, suffix, token = ARGV[5], ARGV[6], ARGV[7]
if busy(stream) then
  return 0
end
local key = counters_key(stream)
if redis.call('HGET', key, 'v') ~= token then
  return 0
end
if redis.call('HEXISTS', key, 'u|' .. suffix) == 1 then
  return 0
end
local this = parse_counter('u|' .. suffix)
-- Windows that ended a whole window length before this one starts are not asked for any
-- more (checks use the current window); dropping them bounds the hash.
for _, field in ipairs(redis.call('HKEYS', key)) do
  local c = parse_counter(field)
  if c and c.end_us + (c.end_us - c.start_us) <= this.start_us then
    drop_counter(key, c.suffix)
  end
end
redis.call('HSET', key, 'u|' .. suffix, ARGV[8], 'n|' .. suffix, ARGV[9])
-- The counter lives as long as its window (and the hash at least as long as its versions).
keep_until(key, math.max(tonumber(ARGV[10]), now_ms() + state_ttl_ms))
return 1
