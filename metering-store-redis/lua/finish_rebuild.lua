-- Stores a rebuilt counter if the stream is idle, its version still equals the token and the
-- counter is absent. Returns 1 when stored, 0 otherwise.
--   KEYS: the stream's marks and counters; ARGV[3] counter suffix, ARGV[4] token,
--   ARGV[5] units, ARGV[6] nanos (< 10^9), ARGV[7] window end in milliseconds
local key, suffix, token = KEYS[2], ARGV[3], ARGV[4]
if busy(KEYS[1], key) then
  return 0
end
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
redis.call('HSET', key, 'u|' .. suffix, ARGV[5], 'n|' .. suffix, ARGV[6])
-- The counter lives as long as its window (and the hash at least as long as its versions).
keep_until(key, math.max(tonumber(ARGV[7]), now_ms() + state_ttl_ms))
return 1
