-- The value of one counter, or nil.
--   ARGV[5] stream, ARGV[6] counter suffix '<start>|<end>|<resource>'
local key = counters_key(ARGV[5])
local parts = redis.call('HMGET', key, 'u|' .. ARGV[6], 'n|' .. ARGV[6])
if not parts[1] then
  return false
end
return { parts[1], parts[2] or '0' }
