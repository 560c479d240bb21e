-- Schema version 8: webhook endpoints and quota thresholds.
-- An endpoint keeps its signing secret (the server signs every message with it); the secret
-- is returned once, at registration, and never listed. `events` holds the subscribed message
-- types as their wire names joined by commas.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    description TEXT,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);
-- A quota's thresholds as JSON (`[{"percent": 80}, {"usage": 1000}]`, usages exact). Null on
-- quotas stored before this version: their one threshold is `alert_threshold` percent.
ALTER TABLE quotas ADD COLUMN thresholds TEXT;
