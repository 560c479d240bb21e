-- Schema version 2: pre-summed usage per tenant, resource, feature and UTC bucket.
--
-- Three bucket sizes nest exactly (level 0: 15 minutes, 1: one hour, 2: one UTC day), and
-- every event is counted once at each level, in the same transaction as its insert. A query
-- range is cut into whole days, whole hours and whole quarters, plus raw-event fragments at
-- edges that are not on a 15-minute boundary, so it reads few rows and stays exact.
--
-- The sum of a bucket, in nano-units, is sum_hi * 10^18 + sum_lo with 0 <= sum_lo < 10^18:
-- two integers that never overflow (SQLite would silently turn an overflowing integer into
-- a REAL).
CREATE TABLE rollups (
    level        INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    tenant_id    TEXT    NOT NULL,
    resource     TEXT    NOT NULL,
    feature      TEXT    NOT NULL,
    sum_hi       INTEGER NOT NULL,
    sum_lo       INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    PRIMARY KEY (level, bucket, tenant_id, resource, feature)
) WITHOUT ROWID;

-- Usage of one tenant's feature (quota checks), and tenant-filtered aggregates.
CREATE INDEX rollups_scope ON rollups (tenant_id, feature, level, bucket);

-- Existing events are summed into the new table by the Rust step of this migration.
