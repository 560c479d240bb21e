-- A rebuild token (the stream's version), or nil while an ingest of the stream is in flight.
--   ARGV[5] stream
local stream = ARGV[5]
if busy(stream) then
  return false
end
local key = counters_key(stream)
local v = redis.call('HGET', key, 'v')
if not v then
  v = bump_version(stream)
end
return v
