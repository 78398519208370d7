//! Where captured events go: SQLite (the default, no server) or PostgreSQL (production).
//!
//! Exactly once: a file's events and its `capture_files` row are written in one
//! transaction; an event already present (same namespace, event hub, partition and sequence
//! number) is counted as a duplicate and never written twice. Each backend creates and
//! migrates its own schema (versioned, in `schema_migrations`).

pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;

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
}

/// Result of loading one file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub inserted: u64,
    pub duplicates: u64,
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

/// A database the loader writes to.
pub trait Store: Send {
    fn known_file(&mut self, source: &str) -> anyhow::Result<Option<KnownFile>>;
    /// Write the file's events and its `capture_files` row in one transaction.
    fn load_file(&mut self, file: &FileRecord, events: &[EventRow]) -> anyhow::Result<Loaded>;
    /// Record that a file could not be loaded (nothing of it is in `capture_events`).
    fn record_failure(&mut self, file: &FileRecord, error: &str) -> anyhow::Result<()>;
    fn status(&mut self) -> anyhow::Result<Status>;
}

/// Open `url` (`sqlite://PATH`, `postgres://…`), creating or migrating the schema.
pub fn open(url: &str) -> anyhow::Result<Box<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Box::new(sqlite::SqliteStore::open(path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresStore::open(url)?));
    }
    anyhow::bail!("--db must be sqlite://PATH or postgres://…; got a URL with another scheme")
}

/// `status` of a file from its event count.
pub fn status_of(file: &FileRecord) -> FileStatus {
    if file.event_count == 0 {
        FileStatus::Empty
    } else {
        FileStatus::Loaded
    }
}
