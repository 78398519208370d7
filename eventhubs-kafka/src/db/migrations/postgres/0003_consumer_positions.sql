-- The consumer's --sink-db: a group's next offset per partition, written in the same
-- transaction as the rows.
CREATE TABLE consumer_positions (
    consumer_group TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    event_hub      TEXT NOT NULL,
    partition_id   TEXT NOT NULL,
    next_offset    BIGINT NOT NULL CHECK (next_offset >= 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, namespace, event_hub, partition_id)
);
