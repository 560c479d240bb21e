-- Marks streams busy and sets new versions.
--   KEYS: pairs (marks, counters), one per stream; ARGV[3..]: per stream, a mark id and a version
local expires = int(now_ms() + mark_ttl_ms)
for s = 1, #KEYS / 2 do
  local marks, counters = KEYS[2 * s - 1], KEYS[2 * s]
  local mark, version = ARGV[2 * s + 1], ARGV[2 * s + 2]
  -- Expired marks go first (dropping the counters they may have left short).
  busy(marks, counters)
  redis.call('ZADD', marks, expires, mark)
  -- Every mark expires no later than this, so the key may too.
  redis.call('PEXPIRE', marks, int(mark_ttl_ms))
  set_version(counters, version)
end
return 1
