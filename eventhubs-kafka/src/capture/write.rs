//! Writing Capture files, as Event Hubs Capture does: same record schema (the current
//! variant), same `SystemProperties` keys, same path layout. Used by the consumer's
//! `--capture-dir`, so the whole architecture runs locally without Azure.
//!
//! A file is written to a temporary name, fsynced, renamed into place and its directory
//! fsynced: once [`write_capture_file`] returns, the file survives a crash, and only then
//! may the offsets of its events be committed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, Utc};

/// The record schema Capture writes today.
pub const SCHEMA: &str = r#"{"type":"record","name":"EventData","namespace":"Microsoft.ServiceBus.Messaging","fields":[{"name":"SequenceNumber","type":"long"},{"name":"Offset","type":"string"},{"name":"EnqueuedTimeUtc","type":"string"},{"name":"SystemProperties","type":{"type":"map","values":["long","double","string","bytes"]}},{"name":"Properties","type":{"type":"map","values":["long","double","string","bytes","null"]}},{"name":"Body","type":["null","bytes"]}]}"#;

/// One event to capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedRecord {
    pub sequence_number: i64,
    pub offset: String,
    pub enqueued_time: DateTime<Utc>,
    pub partition_key: Option<String>,
    /// A Kafka key that is not UTF-8 (so not a partition key), kept as bytes under
    /// `x-opt-kafka-key`, the annotation Event Hubs gives Kafka keys for AMQP readers.
    pub kafka_key: Option<Vec<u8>>,
    /// Kafka headers: Capture keeps them as bytes.
    pub properties: Vec<(String, Option<Vec<u8>>)>,
    pub body: Option<Vec<u8>>,
}

/// .NET's `M/d/yyyy h:mm:ss tt`, as Capture writes `EnqueuedTimeUtc`.
pub fn dotnet_utc(t: DateTime<Utc>) -> String {
    t.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

/// The Avro container file for `records`.
pub fn encode_capture(records: &[CapturedRecord]) -> Result<Vec<u8>, apache_avro::Error> {
    let schema = Schema::parse_str(SCHEMA)?;
    let mut writer = apache_avro::Writer::new(&schema, Vec::new())?;
    for r in records {
        writer.append_value_ref(&record_value(r))?;
    }
    writer.into_inner()
}

/// One record as Capture's Avro value.
fn record_value(r: &CapturedRecord) -> Value {
    let mut system = HashMap::new();
    system.insert(
        "x-opt-enqueued-time".to_string(),
        Value::Union(0, Box::new(Value::Long(r.enqueued_time.timestamp_millis()))),
    );
    system.insert(
        "x-opt-offset".to_string(),
        Value::Union(2, Box::new(Value::String(r.offset.clone()))),
    );
    system.insert(
        "x-opt-sequence-number".to_string(),
        Value::Union(0, Box::new(Value::Long(r.sequence_number))),
    );
    if let Some(key) = &r.partition_key {
        system.insert(
            "x-opt-partition-key".to_string(),
            Value::Union(2, Box::new(Value::String(key.clone()))),
        );
    }
    if let Some(key) = &r.kafka_key {
        system.insert(
            "x-opt-kafka-key".to_string(),
            Value::Union(3, Box::new(Value::Bytes(key.clone()))),
        );
    }
    let properties = properties_map(&r.properties);
    let body = match &r.body {
        Some(b) => Value::Union(1, Box::new(Value::Bytes(b.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("SequenceNumber".into(), Value::Long(r.sequence_number)),
        ("Offset".into(), Value::String(r.offset.clone())),
        (
            "EnqueuedTimeUtc".into(),
            Value::String(dotnet_utc(r.enqueued_time)),
        ),
        ("SystemProperties".into(), Value::Map(system)),
        ("Properties".into(), Value::Map(properties)),
        ("Body".into(), body),
    ])
}

/// The event as [`read_capture`](super::read_capture) reads it back from a file holding
/// `record`, without the file: what the consumer's `--sink-db` stores, so that rows from the
/// topic and rows loaded later from Capture files are built one way.
pub fn read_back(record: &CapturedRecord) -> Result<super::CaptureEvent, super::CaptureError> {
    super::event_from(0, record_value(record))
}

/// Headers as Capture's `Properties` map. A map holds one value per key, so a key repeated
/// in one event is kept as `name`, `name#2`, `name#3`, ... rather than losing values.
fn properties_map(headers: &[(String, Option<Vec<u8>>)]) -> HashMap<String, Value> {
    let mut map = HashMap::with_capacity(headers.len());
    for (k, v) in headers {
        let v = match v {
            Some(bytes) => Value::Union(3, Box::new(Value::Bytes(bytes.clone()))),
            None => Value::Union(4, Box::new(Value::Null)),
        };
        let mut name = k.clone();
        let mut n = 1;
        while map.contains_key(&name) {
            n += 1;
            name = format!("{k}#{n}");
        }
        map.insert(name, v);
    }
    map
}

/// The file for one window under `root`, in Capture's default layout
/// (`{namespace}/{event_hub}/{partition}/{yyyy}/{MM}/{dd}/{HH}/{mm}/{ss}.avro`), rendered by
/// the same [`NameFormat`](super::path::NameFormat) the loader reads paths with.
pub fn capture_path(
    root: &Path,
    namespace: &str,
    event_hub: &str,
    partition: i32,
    window_start: DateTime<Utc>,
) -> PathBuf {
    let location = super::path::CaptureLocation {
        namespace: namespace.to_string(),
        event_hub: event_hub.to_string(),
        partition_id: partition.to_string(),
        window_start,
    };
    root.join(format!(
        "{}.avro",
        super::path::NameFormat::default().render(&location)
    ))
}

/// The directories `create_dir_all(dir)` would create, deepest first.
fn missing_dirs(dir: &Path) -> Vec<&Path> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect()
}

/// Create `dir` and its missing ancestors so that they survive a crash: each new directory's
/// entry lives in its parent, so every parent of a created directory is fsynced too (up to
/// the first one that existed, the root of the capture folder or above it).
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    let created = missing_dirs(dir);
    std::fs::create_dir_all(dir)?;
    for d in created {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Write `records` durably to `path` (temporary file, fsync, rename, fsync the directory).
pub fn write_capture_file(path: &Path, records: &[CapturedRecord]) -> std::io::Result<()> {
    let bytes = encode_capture(records).map_err(std::io::Error::other)?;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a capture path needs a directory"))?;
    create_dirs_durably(dir)?;
    let tmp = path.with_extension("avro.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_is_what_reading_the_written_file_gives() {
        let record = CapturedRecord {
            sequence_number: 41,
            offset: "41".into(),
            enqueued_time: DateTime::from_timestamp_millis(1_763_800_000_123).unwrap(),
            partition_key: Some("sensor-7".into()),
            kafka_key: None,
            properties: vec![
                ("content-type".into(), Some(b"application/json".to_vec())),
                ("raw".into(), Some(vec![0xff, 0x00])),
                ("raw".into(), None),
            ],
            body: Some(br#"{"t":1}"#.to_vec()),
        };
        let binary_key = CapturedRecord {
            partition_key: None,
            kafka_key: Some(vec![0xc3, 0x28]),
            body: None,
            ..record.clone()
        };
        for r in [record, binary_key] {
            let file =
                super::super::read_capture(&encode_capture(std::slice::from_ref(&r)).unwrap())
                    .unwrap();
            assert_eq!(read_back(&r).unwrap(), file.events[0]);
        }
    }

    #[test]
    fn every_created_directory_is_named_so_its_parent_is_synced() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ns/hub/0/2026/11/22");
        let missing = missing_dirs(&dir);
        assert_eq!(missing.len(), 6, "{missing:?}");
        assert_eq!(missing.last().unwrap(), &root.path().join("ns"));
        create_dirs_durably(&dir).unwrap();
        assert!(dir.is_dir());
        assert!(missing_dirs(&dir).is_empty());
    }
    use crate::capture::path::NameFormat;
    use crate::capture::read_capture;

    #[test]
    fn written_files_read_back_as_capture_files() {
        let t = DateTime::from_timestamp_millis(1_795_334_400_123).unwrap();
        let records = vec![
            CapturedRecord {
                sequence_number: 7,
                offset: "7".into(),
                enqueued_time: t,
                partition_key: Some("sensor-1".into()),
                kafka_key: None,
                properties: vec![
                    ("origin".into(), Some(b"test".to_vec())),
                    ("empty".into(), None),
                ],
                body: Some(b"{\"a\":1}".to_vec()),
            },
            CapturedRecord {
                sequence_number: 8,
                offset: "8".into(),
                enqueued_time: t,
                partition_key: None,
                kafka_key: None,
                properties: vec![],
                body: None,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = capture_path(dir.path(), "ns", "hub", 3, t);
        write_capture_file(&path, &records).unwrap();
        let file = read_capture(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file.events.len(), 2);
        let e = &file.events[0];
        assert_eq!(e.sequence_number, 7);
        assert_eq!(e.enqueued_time, t);
        assert_eq!(e.enqueued_time_utc, "11/22/2026 8:00:00 AM");
        assert_eq!(e.partition_key.as_deref(), Some("sensor-1"));
        assert_eq!(e.properties["origin"], "test");
        assert_eq!(e.properties["empty"], serde_json::Value::Null);
        assert_eq!(file.events[1].body, None);
        let loc = NameFormat::default()
            .locate(&path.to_string_lossy())
            .unwrap();
        assert_eq!(
            (loc.namespace.as_str(), loc.partition_id.as_str()),
            ("ns", "3")
        );
        assert_eq!(loc.window_start.timestamp(), t.timestamp());
        assert!(!path.with_extension("avro.tmp").exists());
    }
}
