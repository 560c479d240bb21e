-- Schema version 3: the tenant index of the rollups leads with the level and the bucket
-- after the tenant, so a tenant's buckets over a range are one index range whatever the
-- feature: a listing's `total` (counted from the rollups) and a tenant's aggregates read
-- only that tenant's rows. A feature filter (quota usage) is checked inside the same range.
DROP INDEX rollups_scope;
CREATE INDEX rollups_scope ON rollups (tenant_id, level, bucket, feature);
