//! SQLite backend: the default (`sqlite://capture.db`), no server needed. Times are stored
//! as RFC 3339 text in UTC (millisecond precision, `Z`), which sorts and groups correctly;
//! JSON as text, queried with SQLite's JSON functions.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    EventRow, FailedFile, FileRecord, FileStatus, KnownFile, Loaded, PartitionStatus, Status,
    Store, status_of,
};

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    r#"
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
"#,
)];

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &str) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the SQLite database {path}"))?;
        // WAL: readers (status, reports) never block a load; a crash leaves no half file.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        for (version, sql) in MIGRATIONS {
            let tx = self.conn.transaction()?;
            let applied: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()?;
            if applied.is_none() {
                tx.execute_batch(sql)
                    .with_context(|| format!("applying migration {version}"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, now()],
                )?;
                tracing::info!(version, "database migrated");
            }
            tx.commit()?;
        }
        Ok(())
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn upsert_file(
    tx: &rusqlite::Transaction<'_>,
    file: &FileRecord,
    status: FileStatus,
    error: Option<&str>,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT OR REPLACE INTO capture_files (source, size_bytes, etag, namespace, event_hub, partition_id, event_count, first_sequence_number, last_sequence_number, status, error, loaded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            file.source,
            file.size,
            file.etag,
            file.namespace,
            file.event_hub,
            file.partition_id,
            file.event_count,
            file.first_sequence_number,
            file.last_sequence_number,
            status.as_str(),
            error,
            now()
        ],
    )
}

impl Store for SqliteStore {
    fn known_file(&mut self, source: &str) -> anyhow::Result<Option<KnownFile>> {
        Ok(self
            .conn
            .query_row(
                "SELECT size_bytes, etag, status, event_count, first_sequence_number, last_sequence_number, error FROM capture_files WHERE source = ?1",
                [source],
                |r| {
                    Ok(KnownFile {
                        size: r.get(0)?,
                        etag: r.get(1)?,
                        status: FileStatus::parse(&r.get::<_, String>(2)?),
                        event_count: r.get(3)?,
                        first_sequence_number: r.get(4)?,
                        last_sequence_number: r.get(5)?,
                        error: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    fn load_file(&mut self, file: &FileRecord, events: &[EventRow]) -> anyhow::Result<Loaded> {
        let tx = self.conn.transaction()?;
        let mut inserted = 0u64;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO capture_events (namespace, event_hub, partition_id, sequence_number, \"offset\", enqueued_time, partition_key, system_properties, properties, body, body_json, source_file)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for e in events {
                inserted += insert.execute(params![
                    e.namespace,
                    e.event_hub,
                    e.partition_id,
                    e.sequence_number,
                    e.offset,
                    e.enqueued_time
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    e.partition_key,
                    e.system_properties,
                    e.properties,
                    e.body,
                    e.body_json,
                    file.source
                ])? as u64;
            }
        }
        upsert_file(&tx, file, status_of(file), None)?;
        tx.commit()?;
        Ok(Loaded {
            inserted,
            duplicates: events.len() as u64 - inserted,
        })
    }

    fn record_failure(&mut self, file: &FileRecord, error: &str) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        upsert_file(&tx, file, FileStatus::Failed, Some(error))?;
        tx.commit()?;
        Ok(())
    }

    fn status(&mut self) -> anyhow::Result<Status> {
        let mut stmt = self.conn.prepare(
            "SELECT f.namespace, f.event_hub, f.partition_id, count(*) AS files,
                    (SELECT count(*) FROM capture_events e WHERE e.namespace = f.namespace AND e.event_hub = f.event_hub AND e.partition_id = f.partition_id),
                    (SELECT max(sequence_number) FROM capture_events e WHERE e.namespace = f.namespace AND e.event_hub = f.event_hub AND e.partition_id = f.partition_id),
                    (SELECT max(enqueued_time) FROM capture_events e WHERE e.namespace = f.namespace AND e.event_hub = f.event_hub AND e.partition_id = f.partition_id)
             FROM capture_files f
             WHERE f.status != 'failed'
             GROUP BY f.namespace, f.event_hub, f.partition_id
             ORDER BY f.namespace, f.event_hub, CAST(f.partition_id AS INTEGER)",
        )?;
        let partitions = stmt
            .query_map([], |r| {
                Ok(PartitionStatus {
                    namespace: r.get(0)?,
                    event_hub: r.get(1)?,
                    partition_id: r.get(2)?,
                    files: r.get(3)?,
                    events: r.get(4)?,
                    last_sequence_number: r.get(5)?,
                    last_enqueued_time: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT source, coalesce(error, '') FROM capture_files WHERE status = 'failed' ORDER BY source",
        )?;
        let failed_files = stmt
            .query_map([], |r| {
                Ok(FailedFile {
                    source: r.get(0)?,
                    error: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Status {
            partitions,
            failed_files,
        })
    }
}
