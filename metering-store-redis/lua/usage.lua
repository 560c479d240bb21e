-- The value of one counter, or nil.
--   KEYS: the stream's marks and counters; ARGV[3] counter suffix '<start>|<end>|<resource>'
busy(KEYS[1], KEYS[2])
local parts = redis.call('HMGET', KEYS[2], 'u|' .. ARGV[3], 'n|' .. ARGV[3])
if not parts[1] then
  return false
end
return { parts[1], parts[2] or '0' }
