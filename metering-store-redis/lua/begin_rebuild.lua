-- A rebuild token (the stream's version), or nil while an ingest of the stream is in flight.
--   KEYS: the stream's marks and counters; ARGV[3] the version to set when there is none
if busy(KEYS[1], KEYS[2]) then
  return false
end
local v = redis.call('HGET', KEYS[2], 'v')
if not v then
  v = ARGV[3]
  set_version(KEYS[2], v)
end
return v
