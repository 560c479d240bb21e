-- Schema version 5: quotas may limit a meter's value instead of a feature's usage.
--
-- A meter quota has `feature = ''`, `resource = ''` and the meter's key in `meter`; a
-- feature quota has `meter = ''`. SQLite cannot change a table's UNIQUE constraint in
-- place, so the table is rebuilt with identity `(tenant_id, feature, resource, meter)`.
CREATE TABLE quotas_v5 (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    feature         TEXT    NOT NULL,
    meter           TEXT    NOT NULL DEFAULT '',
    limit_quantity  TEXT    NOT NULL,
    period          TEXT    NOT NULL,
    alert_threshold INTEGER NOT NULL,
    tz              TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, feature, resource, meter)
);
INSERT INTO quotas_v5 (id, tenant_id, resource, feature, limit_quantity, period,
                       alert_threshold, tz, created_at, updated_at)
    SELECT id, tenant_id, resource, feature, limit_quantity, period, alert_threshold, tz,
           created_at, updated_at
    FROM quotas;
DROP TABLE quotas;
ALTER TABLE quotas_v5 RENAME TO quotas;
-- Deleting or redefining a meter looks up the quotas that name it.
CREATE INDEX quotas_by_meter ON quotas (meter) WHERE meter <> '';
