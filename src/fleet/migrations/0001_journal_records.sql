-- The devices of the fleet, as each last reported itself, and their journals' chained
-- records as shipped: one row per device, table and record id, with the record's chain hash.
CREATE TABLE devices (
    device text PRIMARY KEY,
    first_contact timestamptz NOT NULL DEFAULT now(),
    last_contact timestamptz NOT NULL DEFAULT now(),
    edgeid_version text NOT NULL,
    -- The version of the gallery changes the device holds.
    gallery_version bigint NOT NULL DEFAULT 0,
    -- The last record of each chained table as the device's journal holds it now.
    decisions_head_id bigint NOT NULL DEFAULT 0,
    decisions_head text NOT NULL DEFAULT '',
    audits_head_id bigint NOT NULL DEFAULT 0,
    audits_head text NOT NULL DEFAULT '',
    -- What the device's own verification of its journal found (NULL: sound), and when.
    local_problem text,
    verified_at timestamptz
);

CREATE TABLE journal_records (
    device text NOT NULL REFERENCES devices (device),
    tbl text NOT NULL CHECK (tbl IN ('decisions', 'audits')),
    id bigint NOT NULL,
    time_ms bigint NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    record jsonb NOT NULL,
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device, tbl, id)
);
CREATE INDEX journal_records_time ON journal_records (tbl, time_ms);
