-- Meter definitions. A meter is answered by recounting the events of the queried range
-- (see metering_core::meter), so it needs no rollup of its own and applies to every stored
-- event as soon as it is defined. `spec` is `json`, kept as written.
CREATE TABLE meters (
    key TEXT COLLATE "C" PRIMARY KEY,
    spec JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
