//! `capture-loader load`: load each Capture file [`crate::discover`] found exactly once,
//! report.
//!
//! Per file: read → fingerprint (size + CRC-64) → skip if loaded with the same fingerprint,
//! report (and do not load) if it changed since → locate (namespace, event hub, partition,
//! window) from its path → read the Avro → decode bodies → one transaction with its events
//! and its `capture_files` row. A file that fails is recorded with its reason; the others
//! still load. Files of one partition load in window order.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use eventhubs_kafka::capture::path::NameFormat;
use eventhubs_kafka::capture::{CaptureEvent, read_capture};
use eventhubs_kafka::encoding::Decoder;
use serde::Serialize;

use crate::db::{EventRow, FileRecord, FileStatus, Store};
use crate::discover::{Candidate, Origin, discover, partition_groups};

/// Where files come from and how to read their paths.
#[derive(Clone)]
pub(crate) struct LoadOptions {
    pub sources: Vec<String>,
    pub name_format: NameFormat,
    pub namespace: Option<String>,
    pub event_hub: Option<String>,
    pub partition: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl LoadOptions {
    /// No sources and no filters yet.
    pub(crate) fn new(name_format: NameFormat) -> Self {
        Self {
            sources: Vec::new(),
            name_format,
            namespace: None,
            event_hub: None,
            partition: None,
            since: None,
            until: None,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub files_loaded: u64,
    pub files_empty: u64,
    pub files_skipped: u64,
    /// Loaded by another loader of the same database while this one ran (it held the file,
    /// or had loaded it, when this one came to it): not this run's work, not duplicates.
    pub files_loaded_elsewhere: u64,
    pub files_changed: u64,
    pub files_failed: u64,
    pub events_inserted: u64,
    pub duplicates: u64,
    pub undecodable_bodies: u64,
    pub elapsed_ms: u64,
    pub events_per_sec: f64,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.files_loaded += other.files_loaded;
        self.files_empty += other.files_empty;
        self.files_skipped += other.files_skipped;
        self.files_loaded_elsewhere += other.files_loaded_elsewhere;
        self.files_changed += other.files_changed;
        self.files_failed += other.files_failed;
        self.events_inserted += other.events_inserted;
        self.duplicates += other.duplicates;
        self.undecodable_bodies += other.undecodable_bodies;
    }

    pub fn ok(&self) -> bool {
        self.files_failed == 0 && self.files_changed == 0
    }
}

/// Size and content fingerprint: what "the same file" means for a local file (a blob has
/// its ETag instead).
fn fingerprint(bytes: &[u8]) -> String {
    format!(
        "crc64:{:016x}",
        eventhubs_kafka::encoding::single_object::crc64_avro(bytes)
    )
}

/// Runs on blocking threads (the database clients are synchronous); `runtime` drives the
/// decoder, which may ask the schema registry. `jobs` workers load whole partitions in
/// parallel, each with its own database connection; within a partition files load in
/// window order.
pub(crate) fn load(
    db: &crate::db::Database,
    decoder: &Decoder,
    options: &LoadOptions,
    runtime: &tokio::runtime::Handle,
    jobs: usize,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (candidates, ignored) = discover(options, runtime)?;
    if ignored > 0 {
        tracing::info!(
            ignored,
            "files skipped: neither .avro nor laid out by the archive name format"
        );
    }
    // Open (and migrate) once before the workers start, so they never race to migrate.
    let mut first = db.open()?;
    let run = Run {
        decoder,
        options,
        runtime,
        started: first.now()?,
    };
    let total = candidates.len();
    let queue = Mutex::new(
        partition_groups(candidates)
            .into_iter()
            .collect::<VecDeque<_>>(),
    );
    let done = AtomicUsize::new(0);
    let progress = std::io::stderr().is_terminal();
    let workers = jobs.max(1);
    let mut summary = Summary::default();
    let mut first = Some(first);
    let results: Vec<anyhow::Result<Summary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let store = first.take();
                let (queue, done, run) = (&queue, &done, &run);
                scope.spawn(move || -> anyhow::Result<Summary> {
                    let mut store = match store {
                        Some(s) => s,
                        None => db.open()?,
                    };
                    work(store.as_mut(), run, queue, &|| {
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if progress {
                            eprint!("\r{n}/{total} files");
                        }
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a loader thread panicked")))
            })
            .collect()
    });
    if progress && total > 0 {
        eprintln!();
    }
    for result in results {
        summary.add(&result?);
    }
    let elapsed = started.elapsed();
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.events_per_sec =
        (summary.events_inserted as f64 / elapsed.as_secs_f64().max(1e-9) * 10.0).round() / 10.0;
    Ok(summary)
}

/// One worker: whole partitions from the queue, each file claimed before it is loaded.
/// Files another loader holds come back at the end, when this one has nothing else to do:
/// by then they are loaded (and skipped), or their loader died and this one takes them over.
fn work(
    store: &mut dyn Store,
    run: &Run<'_>,
    queue: &Mutex<VecDeque<Vec<Candidate>>>,
    count: &dyn Fn(),
) -> anyhow::Result<Summary> {
    let mut part = Summary::default();
    let mut held_elsewhere = Vec::new();
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(group) = next else { break };
        for candidate in group {
            if !store.claim(&candidate.name, false)? {
                held_elsewhere.push(candidate);
                continue;
            }
            claimed(store, run, &candidate, &mut part)?;
            count();
        }
    }
    for candidate in held_elsewhere {
        tracing::debug!(file = %candidate.name, "waiting for the loader that holds it");
        store.claim(&candidate.name, true)?;
        claimed(store, run, &candidate, &mut part)?;
        count();
    }
    Ok(part)
}

/// What every file of one `load` shares.
struct Run<'a> {
    decoder: &'a Decoder,
    options: &'a LoadOptions,
    runtime: &'a tokio::runtime::Handle,
    /// When the run began, by the database's clock: a file whose row is newer was loaded
    /// by another loader meanwhile.
    started: DateTime<Utc>,
}

/// Load a file this worker has claimed, and let go of it (also when loading it failed).
fn claimed(
    store: &mut dyn Store,
    run: &Run<'_>,
    candidate: &Candidate,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let result = load_one(store, run, candidate, summary);
    let released = store.release(&candidate.name);
    result.and(released)
}

/// One file: read it, skip it if it was loaded (or report that it changed), locate it,
/// read its events, store them with its `capture_files` row, account for it.
fn load_one(
    store: &mut dyn Store,
    run: &Run<'_>,
    candidate: &Candidate,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let bytes = match read_bytes(candidate, run.runtime) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(file = %candidate.name, "cannot read: {e:#}");
            summary.files_failed += 1;
            return Ok(());
        }
    };
    let mut record = file_record(candidate, &bytes);
    if is_known(store, run, &record, summary)? {
        return Ok(());
    }
    let Some(place) = locate(run.options, candidate, &mut record) else {
        let reason = "its path does not follow the archive name format (--name-format); give --namespace, --event-hub and --partition";
        return fail(store, &record, reason, summary);
    };
    let file = match read_capture(&bytes) {
        Ok(f) => f,
        Err(e) => return fail(store, &record, &e.to_string(), summary),
    };
    describe_events(&mut record, &file.events);
    let rows = match event_rows(run, &place, file.events, summary) {
        Ok(rows) => rows,
        // Not an answer about the bodies: the file waits for the registry.
        Err(unreachable) => {
            let reason = format!(
                "{unreachable}; not loaded, so its bodies are not stored undecoded: it is tried again on the next run"
            );
            return fail(store, &record, &reason, summary);
        }
    };
    store_rows(store, &record, &rows, summary)
}

/// A candidate's bytes, from its folder or its container.
fn read_bytes(candidate: &Candidate, runtime: &tokio::runtime::Handle) -> anyhow::Result<Vec<u8>> {
    match &candidate.origin {
        Origin::Local(path) => std::fs::read(path).map_err(anyhow::Error::from),
        Origin::Blob { source, object } => runtime.block_on(source.get(object)),
    }
}

/// The file's `capture_files` row as far as its bytes say: a blob's ETag says whether it
/// changed; a local file gets a content fingerprint.
fn file_record(candidate: &Candidate, bytes: &[u8]) -> FileRecord {
    let etag = match &candidate.origin {
        Origin::Blob { object, .. } => object.etag.as_ref().map(|e| format!("etag:{e}")),
        Origin::Local(_) => None,
    };
    FileRecord {
        source: candidate.name.clone(),
        size: bytes.len() as i64,
        etag: etag.unwrap_or_else(|| fingerprint(bytes)),
        namespace: None,
        event_hub: None,
        partition_id: None,
        event_count: 0,
        first_sequence_number: None,
        last_sequence_number: None,
        first_enqueued_time: None,
        last_enqueued_time: None,
    }
}

/// Whether the database has this file already: loaded as it is (skipped, or loaded by
/// another loader since this run began) or changed since (reported, not loaded). A failed
/// file is tried again.
fn is_known(
    store: &mut dyn Store,
    run: &Run<'_>,
    record: &FileRecord,
    summary: &mut Summary,
) -> anyhow::Result<bool> {
    let Some(known) = store
        .known_file(&record.source)?
        .filter(|k| k.status != FileStatus::Failed)
    else {
        return Ok(false);
    };
    if known.size == record.size && known.etag == record.etag {
        if known.loaded_at.is_some_and(|t| t >= run.started) {
            summary.files_loaded_elsewhere += 1;
        } else {
            summary.files_skipped += 1;
        }
    } else {
        tracing::error!(file = %record.source, loaded_size = known.size, size = record.size, "file changed since it was loaded; not loading it again (its events are keyed by sequence number: investigate before removing its capture_files row)");
        summary.files_changed += 1;
    }
    Ok(true)
}

/// Where a file's events belong.
struct Place {
    namespace: String,
    event_hub: String,
    partition: String,
}

/// Namespace, event hub and partition from the options, else from the file's path; written
/// into the record as far as they are known.
fn locate(options: &LoadOptions, candidate: &Candidate, record: &mut FileRecord) -> Option<Place> {
    let location = candidate.location.as_ref();
    record.namespace = options
        .namespace
        .clone()
        .or_else(|| location.map(|l| l.namespace.clone()));
    record.event_hub = options
        .event_hub
        .clone()
        .or_else(|| location.map(|l| l.event_hub.clone()));
    record.partition_id = options
        .partition
        .clone()
        .or_else(|| location.map(|l| l.partition_id.clone()));
    Some(Place {
        namespace: record.namespace.clone()?,
        event_hub: record.event_hub.clone()?,
        partition: record.partition_id.clone()?,
    })
}

/// The file's event count and its first and last sequence numbers and enqueued times.
fn describe_events(record: &mut FileRecord, events: &[CaptureEvent]) {
    record.event_count = events.len() as i64;
    let first = events.iter().min_by_key(|e| e.sequence_number);
    let last = events.iter().max_by_key(|e| e.sequence_number);
    record.first_sequence_number = first.map(|e| e.sequence_number);
    record.last_sequence_number = last.map(|e| e.sequence_number);
    record.first_enqueued_time = first.map(|e| e.enqueued_time);
    record.last_enqueued_time = last.map(|e| e.enqueued_time);
}

/// The file's events as rows, bodies decoded; `Err` when the schema registry could not be
/// asked.
fn event_rows(
    run: &Run<'_>,
    place: &Place,
    events: Vec<CaptureEvent>,
    summary: &mut Summary,
) -> Result<Vec<EventRow>, eventhubs_kafka::encoding::DecodeError> {
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let (body_json, undecodable) = body_json(run.decoder, run.runtime, &event)?;
        summary.undecodable_bodies += u64::from(undecodable);
        rows.push(EventRow {
            namespace: place.namespace.clone(),
            event_hub: place.event_hub.clone(),
            partition_id: place.partition.clone(),
            sequence_number: event.sequence_number,
            offset: event.offset,
            enqueued_time: event.enqueued_time,
            partition_key: event.partition_key,
            system_properties: serde_json::Value::Object(event.system_properties).to_string(),
            properties: serde_json::Value::Object(event.properties).to_string(),
            body: event.body,
            body_json,
        });
    }
    Ok(rows)
}

/// Store a file's rows with its record, and account for what happened. A file whose rows
/// the database refuses (a NUL in a partition key or a header the database cannot store as
/// text) fails alone, its reason recorded; the load goes on. Only when even that cannot be
/// recorded (the database is gone) does the load stop.
fn store_rows(
    store: &mut dyn Store,
    record: &FileRecord,
    rows: &[EventRow],
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let source = &record.source;
    let loaded = match store.load_file(record, rows) {
        Ok(loaded) => loaded,
        Err(e) => {
            let reason = match e.downcast_ref::<crate::db::Conflict>() {
                Some(conflict) => conflict.to_string(),
                None => format!("the database refused its events: {e:#}"),
            };
            return fail(store, record, &reason, summary)
                .with_context(|| format!("loading {source}"));
        }
    };
    if loaded.elsewhere {
        summary.files_loaded_elsewhere += 1;
        tracing::debug!(file = %source, "loaded by another loader meanwhile");
        return Ok(());
    }
    if record.event_count == 0 {
        summary.files_empty += 1;
    } else {
        summary.files_loaded += 1;
    }
    summary.events_inserted += loaded.inserted;
    summary.duplicates += loaded.duplicates;
    if loaded.duplicates > 0 {
        tracing::warn!(file = %source, duplicates = loaded.duplicates, "events already loaded from another file were not inserted again");
    }
    tracing::debug!(file = %source, events = loaded.inserted, "file loaded");
    Ok(())
}

fn fail(
    store: &mut dyn Store,
    record: &FileRecord,
    reason: &str,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    tracing::error!(file = %record.source, "not loaded: {reason}");
    store.record_failure(record, reason)?;
    summary.files_failed += 1;
    Ok(())
}

/// The body as JSON text when it is JSON or Avro the decoder understands; `(None, true)`
/// when there is a body that is neither (its bytes are stored all the same); `Err` when the
/// schema registry could not be asked (unreachable, 502/503), which says nothing of the body.
/// Bodies whose schema is at hand decode here; only a registry request goes to `runtime`.
fn body_json(
    decoder: &Decoder,
    runtime: &tokio::runtime::Handle,
    event: &CaptureEvent,
) -> Result<(Option<String>, bool), eventhubs_kafka::encoding::DecodeError> {
    let Some(body) = event.body.as_deref() else {
        return Ok((None, false));
    };
    // Kafka headers travel as application properties; an AMQP sender's content type is a
    // system property.
    let content_type = event
        .properties
        .get("content-type")
        .or_else(|| event.system_properties.get("content-type"))
        .and_then(|v| v.as_str());
    let mut out = Vec::new();
    let decoded = match decoder.decode_cached_into(Some(body), content_type, &mut out) {
        Some(decoded) => decoded,
        None => runtime.block_on(decoder.decode_into(Some(body), content_type, &mut out)),
    };
    match decoded {
        Ok(_) => {
            let json = crate::db::body_json_text(out);
            let undecodable = json.is_none();
            Ok((json, undecodable))
        }
        Err(e) if e.is_retriable() => Err(e),
        Err(_) => Ok((None, true)),
    }
}
