-- Marks streams busy and bumps their versions.
--   ARGV[5..]: pairs (stream, mark id)
local expires = int(now_ms() + mark_ttl_ms)
for i = 5, #ARGV, 2 do
  local stream, mark = ARGV[i], ARGV[i + 1]
  local key = marks_key(stream)
  redis.call('ZADD', key, expires, mark)
  -- Every mark expires no later than this, so the key may too.
  redis.call('PEXPIRE', key, int(mark_ttl_ms))
  bump_version(stream)
end
return 1
