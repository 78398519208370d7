-- Gaps and the report: each file's enqueue-time bounds, declared expected-missing ranges,
-- and humidity bounds in sensor_stats (new columns last, so queries by position still work).
ALTER TABLE capture_files ADD COLUMN first_enqueued_time TEXT;
ALTER TABLE capture_files ADD COLUMN last_enqueued_time TEXT;
UPDATE capture_files SET first_enqueued_time = t.first_time, last_enqueued_time = t.last_time
FROM (SELECT source_file, min(enqueued_time) AS first_time, max(enqueued_time) AS last_time
      FROM capture_events GROUP BY source_file) AS t
WHERE capture_files.source = t.source_file;
CREATE TABLE capture_expected_missing (
    namespace             TEXT NOT NULL,
    event_hub             TEXT NOT NULL,
    partition_id          TEXT NOT NULL,
    first_sequence_number INTEGER NOT NULL CHECK (first_sequence_number >= 0),
    last_sequence_number  INTEGER NOT NULL CHECK (last_sequence_number >= first_sequence_number),
    reason                TEXT NOT NULL,
    declared_at           TEXT NOT NULL,
    PRIMARY KEY (namespace, event_hub, partition_id, first_sequence_number, last_sequence_number)
);
DROP VIEW sensor_stats;
CREATE VIEW sensor_stats AS
    SELECT json_extract(body_json, '$.sensor_id') AS sensor_id,
           count(*) AS events,
           min(json_extract(body_json, '$.temperature')) AS min_temperature,
           avg(json_extract(body_json, '$.temperature')) AS avg_temperature,
           max(json_extract(body_json, '$.temperature')) AS max_temperature,
           avg(json_extract(body_json, '$.humidity')) AS avg_humidity,
           min(enqueued_time) AS first_enqueued_time,
           max(enqueued_time) AS last_enqueued_time,
           min(json_extract(body_json, '$.humidity')) AS min_humidity,
           max(json_extract(body_json, '$.humidity')) AS max_humidity
    FROM capture_events
    WHERE json_valid(body_json) AND json_extract(body_json, '$.sensor_id') IS NOT NULL
    GROUP BY json_extract(body_json, '$.sensor_id');
