-- Adds new events to the present counters they count towards, removes the ingest marks and
-- sets new versions.
--   KEYS: pairs (marks, counters), one per stream, in the order of the arguments.
--   ARGV[3..]: per stream: mark id ('' for none), version, event count, and per event:
--   timestamp in microseconds, resource, units, nanos (< 10^9). A count of -1 (no events
--   follow) drops the stream's counters: a correction took usage away.
local i = 3
for s = 1, #KEYS / 2 do
  local marks, key = KEYS[2 * s - 1], KEYS[2 * s]
  local mark, version, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local removed = 0
  if mark ~= '' then
    removed = redis.call('ZREM', marks, mark)
  end
  if count < 0 then
    redis.call('DEL', key)
  elseif removed == 0 then
    -- The mark expired or vanished, so a rebuild may have run during this ingest and already
    -- counted its events: drop the stream's counters (they are rebuilt from the store).
    redis.call('DEL', key)
    i = i + 4 * count
  else
    local counters = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local c = parse_counter(field)
      if c then
        counters[#counters + 1] = c
      end
    end
    for _ = 1, count do
      local ts, resource, units, nanos = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
      i = i + 4
      for _, c in ipairs(counters) do
        if not c.dropped and c.start_us <= ts and ts < c.end_us
            and (c.any or c.resource == resource) then
          if not add_to_counter(key, c.suffix, units, nanos) then
            drop_counter(key, c.suffix)
            c.dropped = true
          end
        end
      end
    end
  end
  set_version(key, version)
end
return 1
