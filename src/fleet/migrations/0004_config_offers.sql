-- Config offers as published (`edgeid fleet offer`): the signed message exactly as devices
-- receive it (its files sealed), and, for the operator, which files it carries.
CREATE TABLE config_offers (
    version bigint PRIMARY KEY CHECK (version > 0),
    files text NOT NULL,
    bytes bigint NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL,
    message text NOT NULL
);

-- The offer each device runs (0: its own config alone), and the latest it refused and why.
ALTER TABLE devices
    ADD COLUMN config_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN config_refused_version bigint,
    ADD COLUMN config_refused text;

-- The devices' view, with the offers (new columns at the end, as OR REPLACE requires).
CREATE OR REPLACE VIEW edgeid_devices AS
SELECT d.device,
       d.last_contact,
       now() - d.last_contact AS since_contact,
       d.gallery_version,
       (SELECT coalesce(max(version), 0) FROM gallery_changes) AS gallery_published,
       d.decisions_head_id,
       d.decisions_head_id - coalesce(
           (SELECT max(id) FROM journal_records r WHERE r.device = d.device AND r.tbl = 'decisions'),
           0) AS decisions_lag,
       d.local_problem,
       d.verified_at,
       d.config_version,
       (SELECT coalesce(max(version), 0) FROM config_offers) AS config_published,
       d.config_refused_version,
       d.config_refused
FROM devices d;
