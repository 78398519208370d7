CREATE TABLE capture_files (
    source                TEXT PRIMARY KEY,
    size_bytes            INTEGER NOT NULL,
    etag                  TEXT NOT NULL,
    namespace             TEXT,
    event_hub             TEXT,
    partition_id          TEXT,
    event_count           INTEGER NOT NULL,
    first_sequence_number INTEGER,
    last_sequence_number  INTEGER,
    status                TEXT NOT NULL CHECK (status IN ('loaded', 'empty', 'failed')),
    error                 TEXT,
    loaded_at             TEXT NOT NULL
);
CREATE TABLE capture_events (
    namespace         TEXT NOT NULL,
    event_hub         TEXT NOT NULL,
    partition_id      TEXT NOT NULL,
    sequence_number   INTEGER NOT NULL,
    "offset"          TEXT NOT NULL,
    enqueued_time     TEXT NOT NULL,
    partition_key     TEXT,
    system_properties TEXT NOT NULL,
    properties        TEXT NOT NULL,
    body              BLOB,
    body_json         TEXT,
    source_file       TEXT NOT NULL,
    PRIMARY KEY (namespace, event_hub, partition_id, sequence_number)
);
CREATE INDEX capture_events_enqueued_time ON capture_events (enqueued_time);
CREATE VIEW events_per_minute AS
    SELECT namespace, event_hub, partition_id, substr(enqueued_time, 1, 16) || ':00Z' AS minute,
           count(*) AS events
    FROM capture_events
    GROUP BY namespace, event_hub, partition_id, substr(enqueued_time, 1, 16);
CREATE VIEW sensor_stats AS
    SELECT json_extract(body_json, '$.sensor_id') AS sensor_id,
           count(*) AS events,
           min(json_extract(body_json, '$.temperature')) AS min_temperature,
           avg(json_extract(body_json, '$.temperature')) AS avg_temperature,
           max(json_extract(body_json, '$.temperature')) AS max_temperature,
           avg(json_extract(body_json, '$.humidity')) AS avg_humidity,
           min(enqueued_time) AS first_enqueued_time,
           max(enqueued_time) AS last_enqueued_time
    FROM capture_events
    WHERE json_valid(body_json) AND json_extract(body_json, '$.sensor_id') IS NOT NULL
    GROUP BY json_extract(body_json, '$.sensor_id');
