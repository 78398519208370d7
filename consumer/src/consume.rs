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
use eventhubs_kafka::encoding::Decoder;
use std::sync::Arc;

use eventhubs_kafka::kafka::config::ClientKind;
use eventhubs_kafka::kafka::context::ToolContext;
use eventhubs_kafka::kafka::preflight::{describe_topic, missing_topic_message};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::ConsumeArgs;
use crate::capture::CaptureSink;
use crate::context::{GroupContext, Member};
use crate::handle::{Buffers, Counts, Handled, Handler, Waiting};
use crate::output::{Output, Sink};
use crate::sink_db::{DbSink, DbSinkOptions};

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
    // (no clock read per event); the work is done every `Ticks::every`. Polls wait at most
    // POLL_WAIT, which bounds how long a signal waits to be noticed.
    const CLOCK_EVERY: u64 = 64;
    const POLL_WAIT: Duration = Duration::from_millis(100);
    let mut ticks = Ticks::new(options);
    let stop = loop {
        if options.max_events.is_some_and(|max| counts.consumed >= max) {
            break Stop::MaxEvents;
        }
        // A poll that does not wait first: with a timeout librdkafka reads the clock at
        // every call; the waiting poll only when nothing is queued.
        let polled = consumer
            .poll(Duration::ZERO)
            .or_else(|| consumer.poll(POLL_WAIT.min(ticks.every)));
        let check_clock = match &polled {
            None => true,
            Some(_) => counts.consumed % CLOCK_EVERY == 0,
        };
        if check_clock {
            // (The token's check takes a lock: not per event either.)
            if waiting.cancel.is_cancelled() {
                break Stop::Signal;
            }
            if let Some(stop) = ticks.tick(consumer, sink, options, counts.consumed)? {
                break stop;
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
    /// How often the work is looked at (the shortest interval, at most 250 ms).
    every: Duration,
    next: Instant,
    /// Idle time is measured at ticks: a tick notices that the count moved.
    last_event: Instant,
    consumed_at_last_tick: u64,
    last_commit: Instant,
    last_full_commit: Instant,
}

impl Ticks {
    fn new(options: &LoopOptions) -> Self {
        let now = Instant::now();
        let every = options
            .commit_interval
            .min(options.sink_interval)
            .min(Duration::from_millis(250));
        Self {
            every,
            next: now + every,
            last_event: now,
            consumed_at_last_tick: 0,
            last_commit: now,
            last_full_commit: now,
        }
    }

    /// Do what is due, if a tick is due; `Some(Stop::Idle)` when the idle timeout passed.
    fn tick(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        sink: &Sink,
        options: &LoopOptions,
        consumed: u64,
    ) -> anyhow::Result<Option<Stop>> {
        let now = Instant::now();
        if now < self.next {
            return Ok(None);
        }
        self.next = now + self.every;
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
