-- Schema version 4: meter definitions. A meter is answered by recounting the events of the
-- queried range (see metering_core::meter), so it needs no rollup of its own and applies
-- to every stored event as soon as it is defined.
CREATE TABLE meters (
    key        TEXT    NOT NULL PRIMARY KEY,
    spec       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
