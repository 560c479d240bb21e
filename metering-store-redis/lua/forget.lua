-- Drops one counter.
--   KEYS: the stream's marks and counters; ARGV[3] counter suffix
drop_counter(KEYS[2], ARGV[3])
return 1
