-- The metering schema: events partitioned by month, a global id table that keeps event ids
-- unique across partitions, rollups at three bucket sizes, quotas and API keys.
-- Everything is created in the first schema of the search path, so one database can hold
-- several isolated stores (one per schema).

-- Every event id ever stored (and still retained). PostgreSQL cannot enforce a unique index
-- that leaves out the partition key, so ingest claims ids here first; `ts` lets retention
-- forget the ids of dropped partitions (a rare job that may scan; no index on `ts`, so
-- ingest maintains one index here, not two).
CREATE TABLE event_ids (
    id TEXT COLLATE "C" PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL
);

-- The raw events. `metadata` is `json` (kept as sent), not `jsonb`, so it comes back verbatim.
-- Text columns use the "C" collation so that ordering is bytewise, as in Rust.
CREATE TABLE events (
    id TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    feature TEXT COLLATE "C" NOT NULL,
    quantity NUMERIC(39, 9) NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    metadata JSON,
    created_at TIMESTAMPTZ NOT NULL
) PARTITION BY RANGE (ts);
-- Listing order (newest first, ties by id) and keyset paging.
CREATE INDEX events_ts_id ON events (ts DESC, id DESC);
-- One tenant's events, and the raw fragments of usage sums.
CREATE INDEX events_tenant_ts ON events (tenant_id, ts DESC, id DESC);

-- Rollups: exact sums and counts per (tenant, feature, resource) and UTC bucket, at two
-- bucket sizes (15 minutes and one day), maintained in the ingest transaction. Aggregates
-- read the coarsest size on which every window boundary falls and raw events only for the
-- fragments off a 15-minute boundary. The primary key serves the upserts and usage sums of
-- one tenant; a BRIN index on `bucket` (cheap to maintain, as buckets arrive roughly in time
-- order) serves aggregates across tenants. Pages keep free space so that the upserts' updates
-- stay HOT (no index writes).
CREATE TABLE rollups_15m (
    tenant_id TEXT COLLATE "C" NOT NULL,
    feature TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    bucket TIMESTAMPTZ NOT NULL,
    quantity NUMERIC NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, feature, resource, bucket)
) WITH (fillfactor = 80);
CREATE INDEX rollups_15m_bucket ON rollups_15m USING brin (bucket) WITH (pages_per_range = 16);

CREATE TABLE rollups_1d (LIKE rollups_15m INCLUDING ALL) WITH (fillfactor = 80);

-- Creates the monthly partition of `events` holding `at`, unless it exists; returns its name.
-- Safe when several sessions call it at once.
CREATE FUNCTION metering_ensure_partition(at TIMESTAMPTZ) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    lo_local TIMESTAMP := date_trunc('month', at AT TIME ZONE 'UTC');
    lo TIMESTAMPTZ := lo_local AT TIME ZONE 'UTC';
    hi TIMESTAMPTZ := (lo_local + INTERVAL '1 month') AT TIME ZONE 'UTC';
    part TEXT := 'events_p' || to_char(lo_local, 'YYYYMM');
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    -- One lock per schema, not per month: creating a partition locks the parent table, so
    -- two sessions creating two months each could otherwise deadlock.
    PERFORM pg_advisory_xact_lock(hashtextextended('metering:partition:' || current_schema(), 0));
    IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.events FOR VALUES FROM (%L) TO (%L)',
                current_schema(), part, current_schema(), lo, hi);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            -- Another session created it between our check and our CREATE.
            NULL;
        END;
    END IF;
    RETURN part;
END
$$;

CREATE TABLE quotas (
    id UUID PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C",
    feature TEXT COLLATE "C" NOT NULL,
    quota_limit NUMERIC(39, 9) NOT NULL,
    period TEXT NOT NULL,
    alert_threshold SMALLINT NOT NULL,
    tz TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT quotas_identity UNIQUE NULLS NOT DISTINCT (tenant_id, resource, feature)
);
CREATE INDEX quotas_feature ON quotas (feature, tenant_id);

CREATE TABLE api_keys (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant_id TEXT COLLATE "C",
    prefix TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
