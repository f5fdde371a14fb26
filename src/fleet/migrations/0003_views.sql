-- Views for dashboards (Grafana's PostgreSQL source takes them as they are).

-- Every shipped decision with its fields as columns.
CREATE VIEW edgeid_decisions AS
SELECT device,
       id,
       to_timestamp(time_ms / 1000.0) AS time,
       record ->> 'camera' AS camera,
       record ->> 'outcome' AS outcome,
       record ->> 'identity' AS identity,
       (record ->> 'similarity')::real AS similarity,
       record -> 'reasons' AS reasons,
       record
FROM journal_records
WHERE tbl = 'decisions';

-- Decisions per door (device and camera) and hour.
CREATE VIEW edgeid_decisions_per_door_hour AS
SELECT device,
       camera,
       date_trunc('hour', time) AS hour,
       count(*) AS decisions,
       count(*) FILTER (WHERE outcome = 'granted') AS granted,
       count(*) FILTER (WHERE outcome = 'denied') AS denied,
       count(*) FILTER (WHERE reasons ? 'presentation_attack') AS attacks
FROM edgeid_decisions
GROUP BY device, camera, date_trunc('hour', time);

-- The whole fleet per hour.
CREATE VIEW edgeid_decisions_per_hour AS
SELECT date_trunc('hour', time) AS hour,
       count(DISTINCT device) AS devices,
       count(*) AS decisions,
       count(*) FILTER (WHERE outcome = 'granted') AS granted,
       count(*) FILTER (WHERE outcome = 'denied') AS denied
FROM edgeid_decisions
GROUP BY date_trunc('hour', time);

-- Each device: last contact, gallery version held against the latest published, and how
-- far the central copy of its decisions is behind its journal.
CREATE VIEW edgeid_devices AS
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
       d.verified_at
FROM devices d;
