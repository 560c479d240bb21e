-- Schema version 7: meter rollups. Each meter's events are folded, in the background, into
-- exact cells per hour and per day and per series (tenant, resource, feature and the
-- meter's dimension values), so a query reads whole buckets instead of every event.
--
-- `seq` numbers inserted events in commit order (the writer assigns max + 1 in its write
-- transaction), so the folder knows which events it has not folded yet; events stored
-- before this version have none, and are folded by the backfill instead. Adding a nullable
-- column and a partial index on it rewrites nothing.
ALTER TABLE events ADD COLUMN seq INTEGER;
CREATE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;

-- How far each meter is folded. The backfill folds the events with no `seq` or a `seq`
-- below `below` in (ts, id) order up to (`backfill_ts`, `backfill_id`); once `backfilled`,
-- every event up to `folded_seq` is folded too.
CREATE TABLE meter_folds (
    meter       TEXT    NOT NULL PRIMARY KEY,
    below       INTEGER NOT NULL,
    backfill_ts INTEGER NOT NULL,
    backfill_id TEXT    NOT NULL,
    backfilled  INTEGER NOT NULL,
    folded_seq  INTEGER NOT NULL,
    -- Bumped by every void, so a batch folded from an older snapshot is not written.
    corrections INTEGER NOT NULL
);

-- One cell per meter, bucket size (`level`: 0 = hour, 1 = day), bucket start, tenant and
-- dimension values (`dims`, a JSON array); resource and feature are summed over and kept
-- as '' (the columns leave room for cells per full series). Sums and values are exact
-- decimal nano-units as text (they can exceed 64 bits).
CREATE TABLE meter_cells (
    meter       TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    tenant_id   TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    feature     TEXT    NOT NULL,
    dims        TEXT    NOT NULL,
    event_count INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    sum         TEXT    NOT NULL,
    min         TEXT,
    max         TEXT,
    latest_ts   INTEGER,
    latest_id   TEXT,
    latest      TEXT,
    -- How many rows of `meter_distinct` the cell has (`unique_count` meters).
    distinct_count INTEGER NOT NULL,
    PRIMARY KEY (meter, level, bucket, tenant_id, resource, feature, dims)
) WITHOUT ROWID;

-- The distinct values of each cell of a `unique_count` meter.
CREATE TABLE meter_distinct (
    meter     TEXT    NOT NULL,
    level     INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    tenant_id TEXT    NOT NULL,
    resource  TEXT    NOT NULL,
    feature   TEXT    NOT NULL,
    dims      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    PRIMARY KEY (meter, level, bucket, tenant_id, resource, feature, dims, value)
) WITHOUT ROWID;

-- Meters defined before this version: folded from scratch by the backfill (every stored
-- event has no `seq`, and new ones are numbered from 1).
INSERT INTO meter_folds (meter, below, backfill_ts, backfill_id, backfilled, folded_seq, corrections)
SELECT key, 1, -9223372036854775807 - 1, '', 0, 0, 0 FROM meters;
