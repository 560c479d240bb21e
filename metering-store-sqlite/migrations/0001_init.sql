-- Schema version 1: events, quotas and API keys.
--
-- Times are integer microseconds since the Unix epoch (UTC). Quantities are split into whole
-- units and a nano-unit fraction (0..10^9), both integers: never REAL, so sums stay exact.

-- Clustered by id (WITHOUT ROWID): the idempotency check and the row are one b-tree, and
-- each secondary index carries the id, which is exactly the tie-breaker of the listing order.
CREATE TABLE events (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    feature     TEXT    NOT NULL,
    qty_units   INTEGER NOT NULL CHECK (qty_units >= 0),
    qty_nanos   INTEGER NOT NULL CHECK (qty_nanos BETWEEN 0 AND 999999999),
    ts          INTEGER NOT NULL,
    metadata    TEXT,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Listing order (ts DESC, id DESC), time ranges and raw-event fragments of aggregates.
CREATE INDEX events_ts ON events (ts, id);
-- The same per tenant: tenant listings, usage sums and tenant-filtered fragments.
CREATE INDEX events_tenant_ts ON events (tenant_id, ts, id);

-- A quota's identity is (tenant_id, resource, feature). `*` is the default for every tenant
-- and '' means any resource, so the unique constraint sees no NULLs (NULLs never collide).
CREATE TABLE quotas (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    feature         TEXT    NOT NULL,
    limit_quantity  TEXT    NOT NULL,
    period          TEXT    NOT NULL,
    alert_threshold INTEGER NOT NULL,
    tz              TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, feature, resource)
);

-- Listed oldest first: the rowid is the insertion order.
CREATE TABLE api_keys (
    id            TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    tenant_id     TEXT,
    prefix        TEXT    NOT NULL,
    hash          BLOB    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
