//! Where captured events go: SQLite (the default, no server) or PostgreSQL (production).
//! Shared by the capture-loader (events from Capture files) and the consumer's `--sink-db`
//! (events straight from the topic), behind the `db` feature.
//!
//! Exactly once: a file's events and its `capture_files` row are written in one
//! transaction; an event already present (same namespace, event hub, partition and sequence
//! number) is counted as a duplicate and never written twice. Each backend creates and
//! migrates its own schema (versioned, in `schema_migrations`).

mod migrations;
pub mod pgconnect;
mod pgcopy;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use crate::identity::{TokenCache, default_credential};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One loaded (non-empty) file of a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRange {
    pub source: String,
    pub first_sequence_number: i64,
    pub last_sequence_number: i64,
    pub first_enqueued_time: Option<DateTime<Utc>>,
    pub last_enqueued_time: Option<DateTime<Utc>>,
}

/// A range declared expected-missing, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedMissing {
    pub first_sequence_number: i64,
    pub last_sequence_number: i64,
    pub reason: String,
}

/// One row of `capture_events`.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub namespace: String,
    pub event_hub: String,
    pub partition_id: String,
    pub sequence_number: i64,
    pub offset: String,
    pub enqueued_time: DateTime<Utc>,
    pub partition_key: Option<String>,
    /// JSON text.
    pub system_properties: String,
    /// JSON text.
    pub properties: String,
    pub body: Option<Vec<u8>>,
    /// JSON text, when the body is JSON or decoded Avro.
    pub body_json: Option<String>,
}

/// What is known about a file (one row of `capture_files`).
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub source: String,
    pub size: i64,
    pub etag: String,
    pub namespace: Option<String>,
    pub event_hub: Option<String>,
    pub partition_id: Option<String>,
    pub event_count: i64,
    pub first_sequence_number: Option<i64>,
    pub last_sequence_number: Option<i64>,
    /// Enqueue times of the first and the last event (by sequence number): the time
    /// window around a gap next to this file.
    pub first_enqueued_time: Option<DateTime<Utc>>,
    pub last_enqueued_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Loaded,
    Empty,
    Failed,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Empty => "empty",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "loaded" => Self::Loaded,
            "empty" => Self::Empty,
            _ => Self::Failed,
        }
    }
}

/// A file seen before.
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub size: i64,
    pub etag: String,
    pub status: FileStatus,
    pub event_count: i64,
    pub first_sequence_number: Option<i64>,
    pub last_sequence_number: Option<i64>,
    pub error: Option<String>,
    /// When its row was last written (the database's clock).
    pub loaded_at: Option<DateTime<Utc>>,
}

/// Events of a file whose key (namespace, event hub, partition, sequence number) is taken
/// by an event with other content: an event hub re-created under the same name, or two
/// clusters capturing under one namespace. Nothing of the file is loaded.
#[derive(Debug, thiserror::Error)]
#[error(
    "{count} event(s) conflict with events already loaded under the same namespace, event hub, partition and sequence number but with a different offset, enqueue time or body (first: sequence number {first}); an event hub re-created under the same name, or two clusters capturing under one namespace, does this. Nothing of this file was loaded: load it under another --namespace, or remove the old rows first"
)]
pub struct Conflict {
    pub count: u64,
    pub first: i64,
}

/// Where rows written by the consumer's `--sink-db` say they came from: `kafka:<group>`
/// in `source_file`. Such rows carry the Kafka offset (the sequence number) as their offset
/// and the record's timestamp as enqueue time, neither of which Capture writes the same way,
/// so a Capture file holding the same events is matched on key and body alone.
pub const STREAM_SOURCE_PREFIX: &str = "kafka:";

/// The next offset of a consumer group in one partition, kept with the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    pub partition_id: String,
    pub next_offset: i64,
}

/// Events straight from a topic with the group's positions after them: one transaction.
#[derive(Debug, Clone)]
pub struct StreamBatch<'a> {
    pub group: &'a str,
    pub namespace: &'a str,
    pub event_hub: &'a str,
    pub rows: &'a [EventRow],
    pub positions: &'a [StreamPosition],
}

impl StreamBatch<'_> {
    /// `source_file` of its rows.
    pub fn source(&self) -> String {
        format!("{STREAM_SOURCE_PREFIX}{}", self.group)
    }
}

/// Result of loading one file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub inserted: u64,
    pub duplicates: u64,
    /// Another process loaded the file first (found inside the transaction, so nothing was
    /// written): SQLite, where there are no claims, finds out this way.
    pub elsewhere: bool,
}

/// `status`: per namespace/event hub/partition, and the failed files.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub namespace: String,
    pub event_hub: String,
    pub partition_id: String,
    pub files: i64,
    pub events: i64,
    pub last_sequence_number: Option<i64>,
    pub last_enqueued_time: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedFile {
    pub source: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub partitions: Vec<PartitionStatus>,
    pub failed_files: Vec<FailedFile>,
}

/// Which partition a file or a declaration belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PartitionKey {
    pub namespace: String,
    pub event_hub: String,
    pub partition_id: String,
}

/// A loaded file's sequence range, for gap analysis.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub partition: PartitionKey,
    pub range: FileRange,
}

/// A range declared expected-missing (`status --expect-missing`).
#[derive(Debug, Clone)]
pub struct DeclaredMissing {
    pub partition: PartitionKey,
    pub range: ExpectedMissing,
}

/// Events of one partition enqueued in one minute (the `events_per_minute` view).
#[derive(Debug, Clone)]
pub struct MinuteCount {
    pub partition: PartitionKey,
    pub minute: DateTime<Utc>,
    pub events: i64,
}

/// One row of the `sensor_stats` view.
#[derive(Debug, Clone, Default)]
pub struct SensorRow {
    pub sensor_id: String,
    pub events: i64,
    pub min_temperature: Option<f64>,
    pub avg_temperature: Option<f64>,
    pub max_temperature: Option<f64>,
    pub min_humidity: Option<f64>,
    pub avg_humidity: Option<f64>,
    pub max_humidity: Option<f64>,
}

/// Files and events the loader committed in one minute of its own (by `loaded_at`).
#[derive(Debug, Clone)]
pub struct LoadMinute {
    pub minute: DateTime<Utc>,
    pub files: i64,
    pub events: i64,
}

/// What the report draws, read through the reporting views and `capture_files`.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub events_per_minute: Vec<MinuteCount>,
    /// The busiest sensors first, at most the limit asked for.
    pub sensors: Vec<SensorRow>,
    /// How many sensors there are in all.
    pub sensor_count: i64,
    /// `(status, files)`.
    pub files_by_status: Vec<(String, i64)>,
    pub loads_per_minute: Vec<LoadMinute>,
}

/// A database the loader writes to.
pub trait Store: Send {
    /// Claim a file before reading it, so that loaders sharing a database never load one
    /// file twice at once: `false` when another process holds it (with `wait`, block until
    /// it lets go instead). A claim ends with [`Store::release`] or with the connection (a
    /// loader that dies frees its files). SQLite needs none: its single writer decides.
    fn claim(&mut self, _source: &str, _wait: bool) -> anyhow::Result<bool> {
        Ok(true)
    }
    fn release(&mut self, _source: &str) -> anyhow::Result<()> {
        Ok(())
    }
    /// The database's clock (what `loaded_at` is written with).
    fn now(&mut self) -> anyhow::Result<DateTime<Utc>>;
    fn known_file(&mut self, source: &str) -> anyhow::Result<Option<KnownFile>>;
    /// Write the file's events and its `capture_files` row in one transaction.
    fn load_file(&mut self, file: &FileRecord, events: &[EventRow]) -> anyhow::Result<Loaded>;
    /// Record that a file could not be loaded (nothing of it is in `capture_events`).
    fn record_failure(&mut self, file: &FileRecord, error: &str) -> anyhow::Result<()>;
    fn status(&mut self) -> anyhow::Result<Status>;
    /// Every loaded (non-empty) file with its sequence range.
    fn loaded_files(&mut self) -> anyhow::Result<Vec<LoadedFile>>;
    fn expected_missing(&mut self) -> anyhow::Result<Vec<DeclaredMissing>>;
    /// Record a declaration (kept; declaring the same range again changes its reason).
    fn declare_missing(&mut self, declared: &DeclaredMissing) -> anyhow::Result<()>;
    fn report_data(&mut self, sensor_limit: i64) -> anyhow::Result<ReportData>;
    /// Write a batch from the topic and the group's positions in one transaction. Events
    /// already there (by key, with the same body) are duplicates; positions never move
    /// backwards (a consumer that lost its partitions cannot undo its successor's progress).
    fn write_stream(&mut self, batch: &StreamBatch<'_>) -> anyhow::Result<Loaded>;
    /// The group's next offset per partition of one event hub.
    fn stream_positions(
        &mut self,
        group: &str,
        namespace: &str,
        event_hub: &str,
    ) -> anyhow::Result<Vec<StreamPosition>>;
}

/// The scope of Azure Database for PostgreSQL's Entra ID tokens.
pub const POSTGRES_ENTRA_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// How to sign in to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbAuth {
    /// The password from the URL, PGPASSWORD or the password file
    Password,
    /// A Microsoft Entra ID access token as the password (Azure Database for PostgreSQL),
    /// from the first credential that works: client secret (AZURE_CLIENT_SECRET), workload
    /// identity (AZURE_FEDERATED_TOKEN_FILE), managed identity, Azure CLI; a fresh one for
    /// each connection once the last has less than 5 minutes left
    Entra,
}

/// Which database, and how to sign in: opened the same way by every command.
#[derive(Clone)]
pub struct Database {
    url: Secret,
    entra: Option<Arc<TokenCache>>,
}

impl Database {
    pub fn new(url: Secret, auth: DbAuth) -> anyhow::Result<Self> {
        let postgres = is_postgres(url.expose());
        let entra = match auth {
            DbAuth::Password => None,
            DbAuth::Entra if !postgres => {
                anyhow::bail!(
                    "--db-auth entra signs in to PostgreSQL; this --db is not postgres://"
                )
            }
            DbAuth::Entra => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                Some(Arc::new(TokenCache::new(
                    Box::new(default_credential(&env)),
                    POSTGRES_ENTRA_SCOPE,
                )))
            }
        };
        Ok(Self { url, entra })
    }

    /// Open (`sqlite://PATH`, `postgres://…`), creating or migrating the schema.
    pub fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        let url = self.url.expose();
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Box::new(sqlite::SqliteStore::open(path)?));
        }
        if is_postgres(url) {
            return Ok(Box::new(postgres::PostgresStore::open(
                url,
                self.entra.as_deref(),
            )?));
        }
        anyhow::bail!("--db must be sqlite://PATH or postgres://…; got a URL with another scheme")
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A decoded body as `body_json`: UTF-8 JSON text without `\u0000` (PostgreSQL's jsonb
/// refuses NUL in strings; such bodies keep only their bytes, in both databases alike).
/// `None` means "bytes only".
pub fn body_json_text(json: Vec<u8>) -> Option<String> {
    String::from_utf8(json)
        .ok()
        .filter(|text| !text.contains("\\u0000"))
}

/// `status` of a file from its event count.
pub fn status_of(file: &FileRecord) -> FileStatus {
    if file.event_count == 0 {
        FileStatus::Empty
    } else {
        FileStatus::Loaded
    }
}
