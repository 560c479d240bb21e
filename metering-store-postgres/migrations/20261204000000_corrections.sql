-- Corrections. A voided event stays stored (for audit) with the time and reason of its void,
-- and counts nowhere: every read of events skips it, and the void appends a negative rollup
-- delta in the same transaction. An amend's replacement names the event it replaces in
-- `amends`; the partial index finds the replacement of an event for its history. Adding
-- nullable columns rewrites no partition, so this is instant on any store.
ALTER TABLE events
    ADD COLUMN amends TEXT COLLATE "C",
    ADD COLUMN voided_at TIMESTAMPTZ,
    ADD COLUMN void_reason TEXT;
CREATE INDEX events_amends ON events (amends) WHERE amends IS NOT NULL;
