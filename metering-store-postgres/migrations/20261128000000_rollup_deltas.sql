-- Rollup deltas. Ingest no longer upserts `rollups_15m` and `rollups_1d` row by row: each
-- batch appends its 15-minute sums (pre-aggregated, one row per tenant, feature, resource
-- and bucket of the batch) here, a plain insert into a table without indexes, in the same
-- transaction as its events. Compaction (`PostgresStore::compact_rollups`, run in the
-- background every second) moves the deltas into both rollup tables in one statement, so a
-- hot rollup row is updated once per compaction instead of once per batch. Reads add the
-- deltas not yet compacted to the rollups; every read sees each event exactly once.
CREATE TABLE rollup_deltas (
    tenant_id TEXT COLLATE "C" NOT NULL,
    feature TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    quantity NUMERIC NOT NULL,
    events BIGINT NOT NULL
) WITH (
    -- Rows live about a second: vacuum after a few thousand dead ones, not a fifth of the
    -- table, so reads that scan it stay short.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000
);
