//! The consume loop: receive, decode, write out, store the offset; commit on an interval,
//! on revocation and at shutdown, always after flushing what was written.
//!
//! The loop polls a `BaseConsumer` on a thread of its own (the async runtime hands its
//! other work to another worker): every poll serves librdkafka's events (rebalances, commit
//! results, token refresh) in order with the messages, and the blocking parts (the topic
//! check, synchronous commits, Capture files' fsync and rename, the database sink's
//! hand-over) never stall the runtime. Only what is async by nature goes back to the
//! runtime and is waited for: a registry request for a schema not seen yet, and a send to
//! the dead-letter topic.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventhubs_kafka::encoding::{DecodeError, Decoder, Encoding};
use std::sync::Arc;

use eventhubs_kafka::kafka::config::ClientKind;
use eventhubs_kafka::kafka::context::ToolContext;
use eventhubs_kafka::kafka::preflight::{describe_topic, missing_topic_message};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::capture::CaptureSink;
use crate::context::{GroupContext, Member};
use crate::output::{Output, Sink, finish_decoded, finish_undecodable, start_line};
use crate::sink_db::{DbSink, DbSinkOptions};
use crate::{ConsumeArgs, OnUndecodable};

/// Header names on dead-lettered events.
pub(crate) const DEAD_LETTER_ERROR_HEADER: &str = "x-dead-letter-error";
pub(crate) const DEAD_LETTER_SOURCE_HEADER: &str = "x-dead-letter-source";

#[derive(Debug, Default)]
struct Counts {
    consumed: u64,
    decoded: u64,
    undecodable: u64,
    dead_lettered: u64,
}

/// Why the loop ended.
enum Stop {
    Signal,
    MaxEvents,
    Idle,
    Undecodable,
}

pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Handle::current();
    let cancel = eventhubs_kafka::shutdown::on_signal();
    tokio::task::block_in_place(|| run_polling(args, &runtime, &cancel))
}

/// Set up, consume until a stop condition, commit, report: all of it blocking, on the
/// thread `run` gave up to it.
fn run_polling(
    args: ConsumeArgs,
    runtime: &tokio::runtime::Handle,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<ExitCode> {
    let settings = args.kafka.client_settings("eventhubs-kafka-consumer")?;
    let topic = args.kafka.topic(&settings)?;
    let group = args.group.clone().context("--group is required")?;
    let decoder = Decoder::for_tools(args.registry.settings().as_ref())?;
    let sink = open_sink(&args, &settings, &group)?;

    let properties = settings.properties(&ClientKind::Consumer {
        group_id: group.clone(),
        from: args.from,
    });
    properties.warn_overridden();
    let context = GroupContext::new(
        &settings,
        Member {
            sink: sink.clone(),
            positions: Default::default(),
        },
    );
    let consumer: BaseConsumer<GroupContext> = properties
        .client_config()
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    let bootstrap = settings.bootstrap_servers();
    let found = describe_topic(&settings, &topic, args.connect_timeout)?;
    if found.is_none() {
        bail!(missing_topic_message(&topic, settings.is_event_hubs()));
    }
    let dead_letter = match &args.dead_letter_topic {
        Some(dlq) => Some((dlq.clone(), dead_letter_producer(&settings)?)),
        None => None,
    };
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to `{topic}`"))?;
    tracing::info!(%topic, %group, bootstrap = %bootstrap, "consuming");

    let options = LoopOptions {
        max_events: args.max_events,
        idle_timeout: args.idle_timeout,
        commit_interval: args.commit_interval,
        sink_interval: args.sink_interval,
    };
    let started = Instant::now();
    let waiting = Waiting {
        runtime,
        cancel,
        retry_for: args.registry_retry_for,
    };
    let handler = Handler {
        decoder: &decoder,
        sink: &sink,
        dead_letter: dead_letter.as_ref(),
        policy: args.on_undecodable,
        waiting: &waiting,
    };
    let (stop, counts) = consume(&consumer, &handler, &options)?;

    commit(&consumer, &sink, CommitMode::Sync, true)?;
    let positions = committed_positions(&consumer, args.connect_timeout);
    consumer.unsubscribe();
    report(&sink, &counts, started.elapsed(), &positions);
    Ok(match stop {
        Stop::Undecodable => ExitCode::from(1),
        Stop::Signal | Stop::MaxEvents | Stop::Idle => ExitCode::SUCCESS,
    })
}

/// Where events go: Capture files (`--capture-dir`), the capture tables (`--sink-db`), or
/// JSON lines on stdout.
fn open_sink(
    args: &ConsumeArgs,
    settings: &eventhubs_kafka::kafka::config::ClientSettings,
    group: &str,
) -> anyhow::Result<Sink> {
    // Capture paths and database rows file events under the namespace.
    let namespace = args
        .capture_namespace
        .clone()
        .unwrap_or_else(|| settings.namespace().unwrap_or_else(|| "local".to_string()));
    Ok(match (&args.capture_dir, &args.sink_db) {
        (Some(dir), _) => {
            if args.capture_window < Duration::from_secs(1) {
                bail!(
                    "--capture-window must be at least 1s (file names have one-second resolution)"
                );
            }
            Sink::Capture(Arc::new(CaptureSink::new(
                dir.clone(),
                namespace,
                args.capture_window,
                args.capture_size_limit,
            )))
        }
        (None, Some(url)) => {
            let database = eventhubs_kafka::db::Database::new(url.clone(), args.sink_db_auth)?;
            let sink = DbSink::open(
                database,
                DbSinkOptions {
                    group: group.to_string(),
                    namespace,
                    batch_events: usize::try_from(args.sink_batch).unwrap_or(usize::MAX),
                    batch_interval: args.sink_interval,
                },
            )
            .context("opening --sink-db")?;
            Sink::Database(Arc::new(sink))
        }
        (None, None) => Sink::Lines(Output::stdout(args.output)),
    })
}

/// The producer that sends undecodable events to `--dead-letter-topic`.
fn dead_letter_producer(
    settings: &eventhubs_kafka::kafka::config::ClientSettings,
) -> anyhow::Result<FutureProducer<ToolContext>> {
    settings
        .properties(&ClientKind::Producer)
        .client_config()
        .create_with_context(ToolContext::new(settings, ()))
        .context("creating the dead-letter producer")
}

/// The summary on stderr: what was consumed and decoded, what the database got, where the
/// group's committed positions are.
fn report(sink: &Sink, counts: &Counts, elapsed: Duration, positions: &str) {
    if let Sink::Database(db) = sink {
        let written = db.written();
        eprintln!(
            "consumer: database: {} events inserted, {} already there, in {} transactions",
            written.inserted, written.duplicates, written.transactions
        );
    }
    let dead_lettered = if counts.dead_lettered > 0 {
        format!(" ({} dead-lettered)", counts.dead_lettered)
    } else {
        String::new()
    };
    eprintln!(
        "consumer: {} consumed, {} decoded, {} undecodable{dead_lettered} in {:.2} s; committed: {positions}",
        counts.consumed,
        counts.decoded,
        counts.undecodable,
        elapsed.as_secs_f64(),
    );
}

/// What the consume loop needs, lowered from the command line at the edge.
struct LoopOptions {
    max_events: Option<u64>,
    idle_timeout: Option<Duration>,
    commit_interval: Duration,
    sink_interval: Duration,
}

/// Read, decode, write out and advance the positions until a stop condition; commit on the
/// interval (the final synchronous commit is the caller's).
fn consume(
    consumer: &BaseConsumer<GroupContext>,
    handler: &Handler<'_>,
    options: &LoopOptions,
) -> anyhow::Result<(Stop, Counts)> {
    let (sink, waiting) = (handler.sink, handler.waiting);
    let mut counts = Counts::default();
    let mut buffers = Buffers::default();
    // Time-driven work (commits, the database sink's interval, the idle check) and signals
    // are looked at when a poll comes back empty, and otherwise every CLOCK_EVERY events
    // (no clock read per event); the work is done every `tick_every`. Polls wait at most
    // POLL_WAIT, which bounds how long a signal waits to be noticed.
    const CLOCK_EVERY: u64 = 64;
    const POLL_WAIT: Duration = Duration::from_millis(100);
    let tick_every = options
        .commit_interval
        .min(options.sink_interval)
        .min(Duration::from_millis(250));
    let mut next_tick = Instant::now() + tick_every;
    let mut ticks = Ticks::new();
    let stop = loop {
        if options.max_events.is_some_and(|max| counts.consumed >= max) {
            break Stop::MaxEvents;
        }
        // A poll that does not wait first: with a timeout librdkafka reads the clock at
        // every call; the waiting poll only when nothing is queued.
        let polled = consumer
            .poll(Duration::ZERO)
            .or_else(|| consumer.poll(POLL_WAIT.min(tick_every)));
        let check_clock = match &polled {
            None => true,
            Some(_) => counts.consumed % CLOCK_EVERY == 0,
        };
        if check_clock {
            // (The token's check takes a lock: not per event either.)
            if waiting.cancel.is_cancelled() {
                break Stop::Signal;
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick_every;
                if let Some(stop) = ticks.tick(consumer, sink, options, counts.consumed)? {
                    break stop;
                }
            }
        }
        let message = match polled {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // librdkafka reports and retries transport errors by itself.
                tracing::warn!("consume error: {e}");
                continue;
            }
        };
        counts.consumed += 1;
        match handler.handle(&message, &mut counts, &mut buffers)? {
            Handled::Done => {}
            Handled::StopUndecodable => break Stop::Undecodable,
            Handled::Interrupted => break Stop::Signal,
            Handled::Buffered { full: false } => continue,
            Handled::Buffered { full: true } => {
                sink.flush(false, &consumer.context().positions)
                    .context("writing to the database; offsets were not committed")?;
                continue;
            }
        }
        consumer.context().positions.advance(
            message.topic(),
            message.partition(),
            message.offset(),
        );
    };
    Ok((stop, counts))
}

/// The loop's time-driven work: the idle check, the database sink's interval, commits.
struct Ticks {
    /// Idle time is measured at ticks: a tick notices that the count moved.
    last_event: Instant,
    consumed_at_last_tick: u64,
    last_commit: Instant,
    last_full_commit: Instant,
}

impl Ticks {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            last_event: now,
            consumed_at_last_tick: 0,
            last_commit: now,
            last_full_commit: now,
        }
    }

    /// Do what is due; `Some(Stop::Idle)` when the idle timeout passed.
    fn tick(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        sink: &Sink,
        options: &LoopOptions,
        consumed: u64,
    ) -> anyhow::Result<Option<Stop>> {
        if consumed != self.consumed_at_last_tick {
            self.consumed_at_last_tick = consumed;
            self.last_event = Instant::now();
        }
        if options
            .idle_timeout
            .is_some_and(|idle| self.last_event.elapsed() >= idle)
        {
            return Ok(Some(Stop::Idle));
        }
        if let Sink::Database(db) = &sink
            && db.due()
        {
            sink.flush(false, &consumer.context().positions)
                .context("writing to the database; offsets were not committed")?;
        }
        if self.last_commit.elapsed() >= options.commit_interval {
            // Now and then every position again, moved or not: an asynchronous commit's
            // failure may never be reported back, and an idle consumer would otherwise
            // never retry it (re-committing an offset is harmless).
            let refresh = self.last_full_commit.elapsed()
                >= (options.commit_interval * 10).max(Duration::from_secs(1));
            if refresh {
                self.last_full_commit = Instant::now();
            }
            commit(consumer, sink, CommitMode::Async, refresh)?;
            self.last_commit = Instant::now();
        }
        Ok(None)
    }
}

/// Reused buffers: the line being built and the decoded value.
#[derive(Default)]
struct Buffers {
    line: Vec<u8>,
    value: Vec<u8>,
}

/// What became of one event.
enum Handled {
    /// Written out (decoded, printed as undecodable, or dead-lettered): its position moves.
    Done,
    /// In a capture window or the database sink's batch: its position moves when that is
    /// written (`full`: write the batch now).
    Buffered { full: bool },
    /// Undecodable, and the policy is to stop without committing it.
    StopUndecodable,
    /// A signal came while waiting for the registry: stop, this event not committed.
    Interrupted,
}

/// Where async work is waited for (registry requests, dead-letter sends), how long to wait
/// for an unreachable registry, and the signal that ends the wait (and the loop).
struct Waiting<'a> {
    runtime: &'a tokio::runtime::Handle,
    cancel: &'a tokio_util::sync::CancellationToken,
    retry_for: Duration,
}

/// What handling an event needs besides the event itself: the same for every event.
struct Handler<'a> {
    decoder: &'a Decoder,
    sink: &'a Sink,
    dead_letter: Option<&'a (String, FutureProducer<ToolContext>)>,
    policy: OnUndecodable,
    waiting: &'a Waiting<'a>,
}

impl Handler<'_> {
    /// Decode and write out one event.
    fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        counts: &mut Counts,
        buffers: &mut Buffers,
    ) -> anyhow::Result<Handled> {
        if let Sink::Capture(capture) = self.sink {
            // Capture keeps bodies as they are: nothing to decode. The position advances
            // when the window's file is written.
            capture.add(message);
            return Ok(Handled::Buffered { full: false });
        }
        // Unreadable headers make the event undecodable, like an undecodable value.
        let headers = crate::headers::read(message);
        let decoded = match &headers {
            Ok(h) => {
                let content_type = crate::headers::content_type(h);
                match self.decode(message, content_type, &mut buffers.value)? {
                    Some(decoded) => decoded,
                    None => return Ok(Handled::Interrupted),
                }
            }
            Err(unreadable) => Err(DecodeError::Unreadable(unreadable.to_string())),
        };
        let headers = headers.unwrap_or_default();
        let decoded = match decoded {
            Ok(encoding) => {
                counts.decoded += 1;
                Ok(encoding)
            }
            Err(error) => {
                counts.undecodable += 1;
                if let Some(handled) = self.undecodable(message, &headers, &error, counts)? {
                    return Ok(handled);
                }
                Err(error)
            }
        };
        self.write_out(message, &headers, decoded, buffers)
    }

    /// The value as JSON text in `out`: at once when its schema is at hand, else waiting
    /// on the runtime for the registry. `None`: a signal came while waiting.
    fn decode(
        &self,
        message: &BorrowedMessage<'_>,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<Option<Result<Encoding, DecodeError>>> {
        out.clear();
        if let Some(decoded) = self
            .decoder
            .decode_cached_into(message.payload(), content_type, out)
        {
            return Ok(Some(decoded));
        }
        self.waiting.runtime.block_on(fetch_and_decode(
            message,
            content_type,
            self.decoder,
            out,
            self.waiting,
        ))
    }

    /// The policy for an undecodable event: dead-letter it, stop, or warn and go on.
    /// `Some`: what became of it, when it is not written out like the others.
    fn undecodable(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &crate::headers::HeaderList<'_>,
        error: &DecodeError,
        counts: &mut Counts,
    ) -> anyhow::Result<Option<Handled>> {
        let source = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        if let Some((dlq, producer)) = self.dead_letter {
            self.waiting.runtime.block_on(send_to_dead_letter(
                message,
                headers,
                dlq,
                producer,
                &error.to_string(),
                &source,
            ))?;
            counts.dead_lettered += 1;
            // The database keeps every event (its bytes, at least); lines do not.
            if !matches!(self.sink, Sink::Database(_)) {
                return Ok(Some(Handled::Done));
            }
        } else if self.policy == OnUndecodable::Fail {
            tracing::error!(event = %source, "undecodable event: {error}; stopping without committing it");
            return Ok(Some(Handled::StopUndecodable));
        } else {
            tracing::warn!(event = %source, "undecodable event: {error}");
        }
        Ok(None)
    }

    /// The event as a JSON line or a database row (decoded or not).
    fn write_out(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &crate::headers::HeaderList<'_>,
        decoded: Result<Encoding, DecodeError>,
        buffers: &mut Buffers,
    ) -> anyhow::Result<Handled> {
        match self.sink {
            Sink::Database(db) => {
                let body_json = match decoded {
                    Ok(_) => {
                        eventhubs_kafka::db::body_json_text(std::mem::take(&mut buffers.value))
                    }
                    Err(_) => None,
                };
                Ok(Handled::Buffered {
                    full: db.add(message, body_json)?,
                })
            }
            Sink::Lines(output) => {
                match decoded {
                    Ok(encoding) => {
                        if output.enabled() {
                            start_line(&mut buffers.line, message, headers);
                            finish_decoded(&mut buffers.line, encoding.as_str(), &buffers.value);
                        }
                    }
                    Err(error) => {
                        start_line(&mut buffers.line, message, headers);
                        finish_undecodable(&mut buffers.line, &error.to_string(), message);
                    }
                }
                output
                    .write_line(&buffers.line)
                    .context("writing to stdout")?;
                Ok(Handled::Done)
            }
            // Taken before decoding (Capture keeps bodies as they are).
            Sink::Capture(_) => Ok(Handled::Buffered { full: false }),
        }
    }
}

/// Decode an event whose schema a registry must give first. A registry that cannot be
/// reached is waited for (backing off, up to `retry_for`), never taken as an answer: the
/// event would otherwise be dead-lettered and committed while the registry is down.
/// `None`: a signal came while waiting.
async fn fetch_and_decode(
    message: &BorrowedMessage<'_>,
    content_type: Option<&str>,
    decoder: &Decoder,
    out: &mut Vec<u8>,
    waiting: &Waiting<'_>,
) -> anyhow::Result<Option<Result<Encoding, DecodeError>>> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        out.clear();
        match decoder
            .decode_into(message.payload(), content_type, out)
            .await
        {
            Err(e) if e.is_retriable() => {
                let event = format!(
                    "{}/{}/{}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                if started.elapsed() >= waiting.retry_for {
                    anyhow::bail!(
                        "the schema registry stayed unreachable for {:?} ({e}); stopping without committing {event}",
                        waiting.retry_for
                    );
                }
                tracing::warn!(event = %event, "{e}; retrying in {pause:?}");
                tokio::select! {
                    _ = waiting.cancel.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return Ok(Some(other)),
        }
    }
}

async fn send_to_dead_letter(
    message: &BorrowedMessage<'_>,
    original: &crate::headers::HeaderList<'_>,
    topic: &str,
    producer: &FutureProducer<ToolContext>,
    error: &str,
    source: &str,
) -> anyhow::Result<()> {
    let mut headers = OwnedHeaders::new();
    for (key, value) in original {
        headers = headers.insert(Header { key, value: *value });
    }
    headers = headers
        .insert(Header {
            key: DEAD_LETTER_ERROR_HEADER,
            value: Some(error),
        })
        .insert(Header {
            key: DEAD_LETTER_SOURCE_HEADER,
            value: Some(source),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    // The offset is stored only once the dead-letter topic has the event.
    producer
        .send(record, Timeout::After(Duration::from_secs(60)))
        .await
        .map_err(|(e, _)| {
            anyhow::anyhow!("sending event {source} to dead-letter topic `{topic}` failed: {e}")
        })?;
    tracing::warn!(event = %source, dead_letter_topic = %topic, "undecodable event dead-lettered: {error}");
    Ok(())
}

/// Make the output durable, then commit a snapshot of the positions of what was written
/// (those that moved since the last snapshot, or with `every_position` all of them).
/// An asynchronous (interval) commit writes only the capture windows that are over; the
/// final synchronous one writes them all.
fn commit(
    consumer: &BaseConsumer<GroupContext>,
    sink: &Sink,
    mode: CommitMode,
    every_position: bool,
) -> anyhow::Result<()> {
    let all = matches!(mode, CommitMode::Sync);
    sink.flush(all, &consumer.context().positions)
        .context("writing the output; offsets were not committed")?;
    let positions = &consumer.context().positions;
    let snapshot = if every_position {
        positions.snapshot_all()
    } else {
        positions.snapshot_if_moved()
    };
    let Some(positions) = snapshot else {
        return Ok(());
    };
    if matches!(mode, CommitMode::Sync) {
        return commit_final(consumer, &positions);
    }
    match consumer.commit(&positions, mode) {
        Ok(()) => Ok(()),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => {
            consumer.context().positions.mark_uncommitted(&positions);
            tracing::warn!("offset commit failed (retried at the next interval): {e}");
            Ok(())
        }
    }
}

/// How long the last commit waits out a coordinator that is moving, loading or slow.
const FINAL_COMMIT_PATIENCE: Duration = Duration::from_secs(5);

/// The last commit, synchronous: a coordinator that moved, is loading or did not answer in
/// time is tried again for a few seconds (backing off) before the commit is reported as
/// failed, since a failure means the group reads those events again.
fn commit_final(
    consumer: &BaseConsumer<GroupContext>,
    positions: &TopicPartitionList,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + FINAL_COMMIT_PATIENCE;
    let mut pause = Duration::from_millis(250);
    loop {
        let error = match consumer.commit(positions, CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return Ok(()),
            Err(e) => e,
        };
        let transient = matches!(
            error,
            KafkaError::ConsumerCommit(
                RDKafkaErrorCode::WaitingForCoordinator
                    | RDKafkaErrorCode::CoordinatorLoadInProgress
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
            )
        );
        if !transient || Instant::now() + pause > deadline {
            return Err(error).context(
                "committing offsets at shutdown failed; the events since the last commit will be read again by the group",
            );
        }
        tracing::warn!("the final offset commit failed ({error}); trying again in {pause:?}");
        std::thread::sleep(pause);
        pause *= 2;
    }
}

/// `topic/partition=offset` for the partitions this consumer holds, as the broker has them.
fn committed_positions(consumer: &BaseConsumer<GroupContext>, timeout: Duration) -> String {
    let assignment = match consumer.assignment() {
        Ok(a) if a.count() > 0 => a,
        _ => return "no partitions assigned".into(),
    };
    let committed = consumer
        .committed_offsets(assignment, timeout)
        .unwrap_or_else(|_| TopicPartitionList::new());
    let mut out = BTreeMap::new();
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => o.to_string(),
            _ => "none".into(),
        };
        out.insert((e.topic().to_string(), e.partition()), at);
    }
    out.into_iter()
        .map(|((t, p), o)| format!("{t}/{p}={o}"))
        .collect::<Vec<_>>()
        .join(" ")
}
