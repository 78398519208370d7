CREATE TABLE capture_files (
    source                TEXT PRIMARY KEY,
    size_bytes            BIGINT NOT NULL,
    etag                  TEXT NOT NULL,
    namespace             TEXT,
    event_hub             TEXT,
    partition_id          TEXT,
    event_count           BIGINT NOT NULL,
    first_sequence_number BIGINT,
    last_sequence_number  BIGINT,
    status                TEXT NOT NULL CHECK (status IN ('loaded', 'empty', 'failed')),
    error                 TEXT,
    loaded_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE capture_events (
    namespace         TEXT NOT NULL,
    event_hub         TEXT NOT NULL,
    partition_id      TEXT NOT NULL,
    sequence_number   BIGINT NOT NULL,
    "offset"          TEXT NOT NULL,
    enqueued_time     TIMESTAMPTZ NOT NULL,
    partition_key     TEXT,
    system_properties JSONB NOT NULL,
    properties        JSONB NOT NULL,
    body              BYTEA,
    body_json         JSONB,
    source_file       TEXT NOT NULL,
    PRIMARY KEY (namespace, event_hub, partition_id, sequence_number)
);
CREATE INDEX capture_events_enqueued_time ON capture_events (enqueued_time);
CREATE VIEW events_per_minute AS
    SELECT namespace, event_hub, partition_id, date_trunc('minute', enqueued_time) AS minute,
           count(*) AS events
    FROM capture_events
    GROUP BY 1, 2, 3, 4;
CREATE VIEW sensor_stats AS
    SELECT body_json->>'sensor_id' AS sensor_id,
           count(*) AS events,
           min((body_json->>'temperature')::float8) AS min_temperature,
           avg((body_json->>'temperature')::float8) AS avg_temperature,
           max((body_json->>'temperature')::float8) AS max_temperature,
           avg((body_json->>'humidity')::float8) AS avg_humidity,
           min(enqueued_time) AS first_enqueued_time,
           max(enqueued_time) AS last_enqueued_time
    FROM capture_events
    WHERE jsonb_typeof(body_json) = 'object' AND body_json ? 'sensor_id'
      AND jsonb_typeof(body_json->'temperature') IN ('number', 'null')
    GROUP BY 1;
