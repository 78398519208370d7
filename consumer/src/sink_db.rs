//! `--sink-db`: events straight from the topic into the capture tables (`capture_events`),
//! exactly once, with no Capture, blob or Function in between.
//!
//! Data flow: the consume loop decodes an event as for JSON lines and hands it to
//! [`DbSink::add`], which builds the row as Capture would record the event (the Kafka offset
//! is the Event Hubs sequence number) and buffers it. [`DbSink::flush`] (batch full, its
//! interval over, before every Kafka commit, before partitions are revoked, at shutdown)
//! writes the buffered rows and the group's next offsets (`consumer_positions`) in one
//! database transaction; only then do the positions for the Kafka commit advance, so Kafka's
//! committed offsets never run ahead of the database. On assignment,
//! [`DbSink::start_positions`] starts each partition from the database's position, not
//! Kafka's: a kill between the database commit and the Kafka commit re-reads nothing. Rows
//! are keyed by (namespace, event hub, partition, sequence number), so even a consumer that
//! lost its partitions without knowing it cannot write an event twice.
//!
//! The database client is synchronous (and the PostgreSQL one runs a runtime of its own,
//! which cannot start inside the consume loop's), so the store lives on a thread of its own;
//! the loop and the rebalance callback hand it work and wait for the answer.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use eventhubs_kafka::capture::write::read_back;
use eventhubs_kafka::db::{Database, EventRow, Loaded, Store, StreamBatch, StreamPosition};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::positions::Positions;

/// How the sink batches.
#[derive(Debug, Clone)]
pub(crate) struct DbSinkOptions {
    /// Consumer group: the key of its positions, and `kafka:<group>` as the rows' source.
    pub group: String,
    /// The Event Hubs namespace the rows are filed under.
    pub namespace: String,
    /// Write when this many events are buffered.
    pub batch_events: usize,
    /// Write when the oldest buffered event has waited this long.
    pub batch_interval: Duration,
}

/// What went into the database.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub inserted: u64,
    /// Already in the table (written before a kill, or loaded from a Capture file).
    pub duplicates: u64,
    pub transactions: u64,
}

#[derive(Default)]
struct Pending {
    /// Per topic: its rows, and each partition's last offset among them.
    topics: BTreeMap<String, (Vec<EventRow>, BTreeMap<i32, i64>)>,
    events: usize,
    since: Option<Instant>,
}

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// The store on its own thread.
struct StoreThread {
    jobs: mpsc::Sender<Job>,
}

impl StoreThread {
    fn start(database: Database) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sink-db".into())
            .spawn(move || {
                let mut store = match database.open() {
                    Ok(store) => {
                        let _ = opened.send(Ok(()));
                        store
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                // Ends when the sink is dropped (the sender goes away).
                for job in queue {
                    job(store.as_mut());
                }
            })
            .context("starting the database thread")?;
        open_result
            .recv()
            .context("the database thread stopped while opening")??;
        Ok(Self { jobs })
    }

    /// Run `job` on the store and wait for its answer.
    fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Store) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |store| {
                let _ = reply.send(job(store));
            }))
            .map_err(|_| anyhow::anyhow!("the database thread has stopped"))?;
        answer
            .recv()
            .map_err(|_| anyhow::anyhow!("the database thread stopped during a write"))
    }
}

pub(crate) struct DbSink {
    options: DbSinkOptions,
    store: StoreThread,
    pending: Mutex<Pending>,
    written: Mutex<Written>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DbSink {
    /// Open (and migrate) the database on the sink's own thread.
    pub(crate) fn open(database: Database, options: DbSinkOptions) -> anyhow::Result<Self> {
        Ok(Self {
            options,
            store: StoreThread::start(database)?,
            pending: Mutex::new(Pending::default()),
            written: Mutex::new(Written::default()),
        })
    }

    /// Buffer one event; `body_json` is its decoded body (`None`: bytes only). Returns
    /// whether the batch is full (the caller flushes).
    pub(crate) fn add(
        &self,
        message: &BorrowedMessage<'_>,
        body_json: Option<String>,
    ) -> anyhow::Result<bool> {
        let record = crate::capture::captured_record(message);
        // Built the way the loader reads a Capture file, so rows from both agree. (Fails
        // only for a record Capture could not hold either: said, and nothing is committed.)
        let event = read_back(&record).map_err(|e| {
            anyhow::anyhow!(
                "event {}/{}/{} cannot be stored as Capture would record it: {e}",
                message.topic(),
                message.partition(),
                message.offset()
            )
        })?;
        let row = EventRow {
            namespace: self.options.namespace.clone(),
            event_hub: message.topic().to_string(),
            partition_id: message.partition().to_string(),
            sequence_number: event.sequence_number,
            offset: event.offset,
            enqueued_time: event.enqueued_time,
            partition_key: event.partition_key,
            system_properties: serde_json::Value::Object(event.system_properties).to_string(),
            properties: serde_json::Value::Object(event.properties).to_string(),
            body: event.body,
            body_json,
        };
        let mut pending = lock(&self.pending);
        let (rows, last) = match pending.topics.get_mut(message.topic()) {
            Some(t) => t,
            None => pending
                .topics
                .entry(message.topic().to_string())
                .or_default(),
        };
        rows.push(row);
        last.insert(message.partition(), message.offset());
        pending.events += 1;
        pending.since.get_or_insert_with(Instant::now);
        Ok(pending.events >= self.options.batch_events)
    }

    /// Whether the oldest buffered event has waited its interval.
    pub(crate) fn due(&self) -> bool {
        lock(&self.pending)
            .since
            .is_some_and(|t| t.elapsed() >= self.options.batch_interval)
    }

    /// Write what is buffered, one transaction per topic (there is one), then advance the
    /// Kafka positions to it. On failure nothing is lost: the batch stays buffered, nothing
    /// is committed, and the error says why.
    pub(crate) fn flush(&self, positions: &Positions) -> anyhow::Result<()> {
        let mut pending = lock(&self.pending);
        if pending.events == 0 {
            return Ok(());
        }
        while let Some((topic, (rows, last))) = pending.topics.pop_first() {
            let stream_positions: Vec<StreamPosition> = last
                .iter()
                .map(|(partition, offset)| StreamPosition {
                    partition_id: partition.to_string(),
                    next_offset: offset + 1,
                })
                .collect();
            let (group, namespace) = (self.options.group.clone(), self.options.namespace.clone());
            let event_hub = topic.clone();
            // The rows go to the database thread and come back, written or not.
            let (result, rows) = self
                .store
                .call(move |store| {
                    let batch = StreamBatch {
                        group: &group,
                        namespace: &namespace,
                        event_hub: &event_hub,
                        rows: &rows,
                        positions: &stream_positions,
                    };
                    (store.write_stream(&batch), rows)
                })
                .unwrap_or_else(|e| (Err(e), Vec::new()));
            let loaded: Loaded = match result {
                Ok(loaded) => loaded,
                Err(e) => {
                    let count = rows.len();
                    // Nothing is committed past the last written batch; kept for a retry
                    // (the loop stops on this error; a revocation flush may come first).
                    if !rows.is_empty() {
                        pending.topics.insert(topic, (rows, last));
                    }
                    return Err(e.context(format!(
                        "writing {count} event(s) to the database; nothing after the last written batch is committed"
                    )));
                }
            };
            pending.events -= rows.len();
            {
                let mut written = lock(&self.written);
                written.inserted += loaded.inserted;
                written.duplicates += loaded.duplicates;
                written.transactions += 1;
            }
            if loaded.duplicates > 0 {
                tracing::info!(
                    duplicates = loaded.duplicates,
                    "events already in the database were not written again"
                );
            }
            for (partition, offset) in last {
                positions.advance(&topic, partition, offset);
            }
        }
        pending.since = None;
        Ok(())
    }

    /// Start each assigned partition where the database says the group is; partitions it
    /// has no position for keep Kafka's (committed offset, else `--from`). If the database
    /// cannot be asked, Kafka's committed offsets are used: they never run ahead of the
    /// database, so the worst case is reading again what the table already holds.
    pub(crate) fn start_positions(&self, assignment: &mut TopicPartitionList) {
        let topics: Vec<String> = {
            let mut t: Vec<String> = assignment
                .elements()
                .iter()
                .map(|e| e.topic().to_string())
                .collect();
            t.sort();
            t.dedup();
            t
        };
        for topic in topics {
            let (group, namespace, event_hub) = (
                self.options.group.clone(),
                self.options.namespace.clone(),
                topic.clone(),
            );
            let stored = self
                .store
                .call(move |store| store.stream_positions(&group, &namespace, &event_hub))
                .and_then(|r| r);
            match stored {
                Ok(stored) => {
                    for p in stored {
                        let Ok(partition) = p.partition_id.parse::<i32>() else {
                            continue;
                        };
                        if assignment.find_partition(&topic, partition).is_some() {
                            tracing::debug!(%topic, partition, next = p.next_offset, "starting from the database's position");
                            let _ = assignment.set_partition_offset(
                                &topic,
                                partition,
                                Offset::Offset(p.next_offset),
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    %topic,
                    "cannot read the group's positions from the database ({e:#}); starting from Kafka's committed offsets, which never run ahead of it"
                ),
            }
        }
    }

    pub(crate) fn written(&self) -> Written {
        *lock(&self.written)
    }
}
