//! `--capture-dir`: write what is consumed as Event Hubs Capture files (same schema, same
//! path layout, `x-opt-enqueued-time` and `x-opt-partition-key` from the Kafka timestamp and
//! key, headers as `Properties`), one file per partition per window. Offsets advance only
//! when a file is durably on disk, so a crash re-reads the events of unwritten windows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eventhubs_kafka::capture::write::{CapturedRecord, capture_path, write_capture_file};
use rdkafka::message::{BorrowedMessage, Message};

use crate::positions::Positions;

pub(crate) struct CaptureSink {
    root: PathBuf,
    namespace: String,
    window: Duration,
    size_limit: usize,
    open: Mutex<HashMap<(String, i32), Window>>,
}

struct Window {
    opened: Instant,
    start: DateTime<Utc>,
    records: Vec<CapturedRecord>,
    bytes: usize,
    last_offset: i64,
}

/// An event as Capture records it: the Kafka offset as sequence number and offset, the
/// record's timestamp as enqueue time, a UTF-8 key as partition key (any other key as
/// `x-opt-kafka-key`), headers as properties. The capture files and `--sink-db` both use it.
pub(crate) fn captured_record(message: &BorrowedMessage<'_>) -> CapturedRecord {
    let enqueued_time = message
        .timestamp()
        .to_millis()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    // Capture keeps events as they are; headers that cannot be read are left out, said.
    let properties = match crate::headers::read(message) {
        Ok(headers) => headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect(),
        Err(e) => {
            tracing::warn!(
                partition = message.partition(),
                offset = message.offset(),
                "{e}; captured without them"
            );
            Vec::new()
        }
    };
    CapturedRecord {
        sequence_number: message.offset(),
        offset: message.offset().to_string(),
        enqueued_time,
        partition_key: message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_string),
        kafka_key: message
            .key()
            .filter(|k| std::str::from_utf8(k).is_err())
            .map(<[u8]>::to_vec),
        properties,
        body: message.payload().map(<[u8]>::to_vec),
    }
}

impl CaptureSink {
    pub(crate) fn new(
        root: PathBuf,
        namespace: String,
        window: Duration,
        size_limit: usize,
    ) -> Self {
        Self {
            root,
            namespace,
            window,
            size_limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Window>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add one event to its partition's open window.
    pub(crate) fn add(&self, message: &BorrowedMessage<'_>) {
        let record = captured_record(message);
        let size = record.body.as_ref().map_or(0, Vec::len) + 64;
        let mut open = self.lock();
        let window = open
            .entry((message.topic().to_string(), message.partition()))
            .or_insert_with(|| Window {
                opened: Instant::now(),
                start: Utc::now(),
                records: Vec::new(),
                bytes: 0,
                last_offset: -1,
            });
        window.records.push(record);
        window.bytes += size;
        window.last_offset = message.offset();
    }

    /// Write the windows that are over (`all`: every open window), then advance their
    /// partitions' positions. Returns how many files were written.
    pub(crate) fn close(&self, all: bool, positions: &Positions) -> std::io::Result<usize> {
        let mut open = self.lock();
        let due: Vec<(String, i32)> = open
            .iter()
            .filter(|(_, w)| all || w.opened.elapsed() >= self.window || w.bytes >= self.size_limit)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &due {
            let Some(window) = open.remove(key) else {
                continue;
            };
            let (topic, partition) = key;
            // A window never reuses a file name (size-limit rollovers within one second).
            let mut start = window.start;
            let mut path = capture_path(&self.root, &self.namespace, topic, *partition, start);
            while path.exists() {
                start += chrono::Duration::seconds(1);
                path = capture_path(&self.root, &self.namespace, topic, *partition, start);
            }
            if let Err(e) = write_capture_file(&path, &window.records) {
                // Keep the window: its events are not committed, and writing is retried.
                open.insert(key.clone(), window);
                return Err(e);
            }
            tracing::info!(file = %path.display(), events = window.records.len(), "capture file written");
            positions.advance(topic, *partition, window.last_offset);
        }
        Ok(due.len())
    }
}
