-- Drops one counter.
--   ARGV[5] stream, ARGV[6] counter suffix
drop_counter(counters_key(ARGV[5]), ARGV[6])
return 1
