-- Meter rollups (see src/meter_rollup.rs).
--
-- Each event records the id of the transaction that wrote it (`xact`). Transactions commit
-- out of id order, so a folder that has read every event with `xact` below the oldest
-- transaction still running (the `xmin` of its snapshot) knows no event with a smaller
-- `xact` can appear later: it folds events in `xact` order up to that point. Ingest pays
-- for the column's default and one more index entry; it never touches a meter's cells.
-- Events stored before this migration have no `xact`: a meter's backfill folds them.
-- Adding a nullable column and then its default rewrites no partition.
ALTER TABLE events ADD COLUMN xact BIGINT;
ALTER TABLE events ALTER COLUMN xact SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_xact ON events (xact) WHERE xact IS NOT NULL;

-- How far each meter is folded (core's `FoldPoint`): events with `xact` below `below` (or
-- none) by a backfill in (ts, id) order, then events by `xact` up to `folded_seq`.
CREATE TABLE meter_folds (
    meter TEXT COLLATE "C" PRIMARY KEY REFERENCES meters (key) ON DELETE CASCADE,
    below BIGINT NOT NULL,
    backfill_ts BIGINT NOT NULL,
    backfill_id TEXT COLLATE "C" NOT NULL,
    backfilled BOOLEAN NOT NULL,
    folded_seq BIGINT NOT NULL,
    corrections BIGINT NOT NULL
);

-- Exact cells per meter, level (0: hour, 1: day), bucket (microseconds since the epoch),
-- tenant and dimension values (a JSON array). Amounts are integers of nanos, as decimal
-- text: cells are read and written whole by the store, never summed in SQL, and text
-- costs no conversion either way (a query reads tens of thousands of cells).
CREATE TABLE meter_cells (
    meter TEXT COLLATE "C" NOT NULL,
    level SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    dims TEXT COLLATE "C" NOT NULL,
    event_count BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    sum TEXT NOT NULL,
    min TEXT,
    max TEXT,
    latest_ts BIGINT,
    latest_id TEXT COLLATE "C",
    latest TEXT,
    distinct_count BIGINT NOT NULL,
    PRIMARY KEY (meter, level, bucket, tenant_id, dims)
) WITH (fillfactor = 80);

-- The distinct values of the cells of `unique_count` meters.
CREATE TABLE meter_distinct (
    meter TEXT COLLATE "C" NOT NULL,
    level SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    dims TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (meter, level, bucket, tenant_id, dims, value)
);

-- Meters defined before this migration are backfilled from scratch.
INSERT INTO meter_folds (meter, below, backfill_ts, backfill_id, backfilled, folded_seq, corrections)
SELECT key, x, -9223372036854775808, '', false, x - 1, 0
FROM meters, (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS x) AS s;
