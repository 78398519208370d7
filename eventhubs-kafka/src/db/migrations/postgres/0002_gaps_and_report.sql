-- Gaps and the report: each file's enqueue-time bounds, declared expected-missing ranges,
-- and humidity bounds in sensor_stats (new columns last, so queries by position still work).
ALTER TABLE capture_files ADD COLUMN first_enqueued_time TIMESTAMPTZ,
                          ADD COLUMN last_enqueued_time TIMESTAMPTZ;
UPDATE capture_files f SET first_enqueued_time = t.first_time, last_enqueued_time = t.last_time
FROM (SELECT source_file, min(enqueued_time) AS first_time, max(enqueued_time) AS last_time
      FROM capture_events GROUP BY source_file) t
WHERE f.source = t.source_file;
CREATE TABLE capture_expected_missing (
    namespace             TEXT NOT NULL,
    event_hub             TEXT NOT NULL,
    partition_id          TEXT NOT NULL,
    first_sequence_number BIGINT NOT NULL CHECK (first_sequence_number >= 0),
    last_sequence_number  BIGINT NOT NULL CHECK (last_sequence_number >= first_sequence_number),
    reason                TEXT NOT NULL,
    declared_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, event_hub, partition_id, first_sequence_number, last_sequence_number)
);
DROP VIEW sensor_stats;
CREATE VIEW sensor_stats AS
    SELECT body_json->>'sensor_id' AS sensor_id,
           count(*) AS events,
           min((body_json->>'temperature')::float8) AS min_temperature,
           avg((body_json->>'temperature')::float8) AS avg_temperature,
           max((body_json->>'temperature')::float8) AS max_temperature,
           avg((body_json->>'humidity')::float8) AS avg_humidity,
           min(enqueued_time) AS first_enqueued_time,
           max(enqueued_time) AS last_enqueued_time,
           min((body_json->>'humidity')::float8) AS min_humidity,
           max((body_json->>'humidity')::float8) AS max_humidity
    FROM capture_events
    WHERE jsonb_typeof(body_json) = 'object' AND body_json ? 'sensor_id'
      AND jsonb_typeof(body_json->'temperature') IN ('number', 'null')
      AND coalesce(jsonb_typeof(body_json->'humidity'), 'null') IN ('number', 'null')
    GROUP BY 1;
