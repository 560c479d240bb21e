-- Reads across tenants (aggregates, the dashboard's totals) find a range of buckets through a
-- B-tree on `bucket`. The BRIN indexes this replaces assumed buckets arrive in time order:
-- events backfilled over weeks break that, the planner then scanned all of `rollups_15m`
-- for the few hours at a range's edges (80 ms of a 30-day aggregate on a million events).
-- Only new rollup rows write the index; compaction's updates of existing rows leave
-- `bucket` alone and stay HOT.
DROP INDEX IF EXISTS rollups_15m_bucket;
DROP INDEX IF EXISTS rollups_1d_bucket_idx;
CREATE INDEX rollups_15m_bucket ON rollups_15m (bucket);
CREATE INDEX rollups_1d_bucket ON rollups_1d (bucket);
