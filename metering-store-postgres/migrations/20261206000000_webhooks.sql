-- Webhook endpoints and quota thresholds.
-- An endpoint keeps its signing secret (the server signs every message with it); the secret
-- is returned once, at registration, and never listed. `events` holds the subscribed message
-- types as their wire names joined by commas.
CREATE TABLE webhooks (
    id          UUID PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    description TEXT,
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ
);
-- A quota's thresholds as JSON text (`[{"percent": 80}, {"usage": 1000}]`, usages exact).
-- Null on quotas stored before this migration: their one threshold is `alert_threshold`
-- percent.
ALTER TABLE quotas ADD COLUMN thresholds TEXT;
-- Alert marks: each placed once per quota, tenant, period and mark (`percent:80`,
-- `usage:1000`, `exceeded`, `reset`), in the transaction of the write that reached it.
CREATE TABLE alert_marks (
    quota_id     UUID NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    mark         TEXT COLLATE "C" NOT NULL,
    period_end   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (quota_id, tenant_id, period_start, mark)
);
CREATE INDEX alert_marks_by_end ON alert_marks (period_end);
-- The outbox: one row per message and endpoint, written with its mark (`seq` is the
-- writing order).
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    webhook_id       UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id       TEXT NOT NULL,
    type             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq);
