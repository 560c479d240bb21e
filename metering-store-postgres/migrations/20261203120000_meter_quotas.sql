-- Quotas may limit a meter's value instead of a feature's usage: a meter quota has no
-- feature and no resource, and names its meter, which cannot be deleted while it does.
ALTER TABLE quotas ALTER COLUMN feature DROP NOT NULL;
ALTER TABLE quotas ADD COLUMN meter TEXT COLLATE "C" REFERENCES meters (key);
ALTER TABLE quotas DROP CONSTRAINT quotas_identity;
ALTER TABLE quotas ADD CONSTRAINT quotas_identity
    UNIQUE NULLS NOT DISTINCT (tenant_id, resource, feature, meter);
ALTER TABLE quotas ADD CONSTRAINT quotas_target
    CHECK ((feature IS NULL) <> (meter IS NULL) AND (meter IS NULL OR resource IS NULL));
CREATE INDEX quotas_meter ON quotas (meter) WHERE meter IS NOT NULL;
