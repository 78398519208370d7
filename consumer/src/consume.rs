//! The consume loop: receive, decode, write out, store the offset; commit on an interval,
//! on revocation and at shutdown, always after flushing what was written.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventhubs_kafka::encoding::Decoder;
use std::sync::Arc;

use eventhubs_kafka::kafka::config::ClientKind;
use eventhubs_kafka::kafka::context::ToolContext;
use eventhubs_kafka::kafka::preflight::{describe_topic, missing_topic_message};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
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
    let settings = args.kafka.client_settings("eventhubs-kafka-consumer")?;
    let topic = args.kafka.topic(&settings)?;
    let group = args.group.clone().context("--group is required")?;
    let decoder = Decoder::for_tools(args.registry.settings().as_ref())?;
    let output = Output::stdout(args.output);
    // Capture paths and database rows file events under the namespace.
    let namespace = args
        .capture_namespace
        .clone()
        .unwrap_or_else(|| settings.namespace().unwrap_or_else(|| "local".to_string()));
    let sink = match (&args.capture_dir, &args.sink_db) {
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
                    group: group.clone(),
                    namespace,
                    batch_events: usize::try_from(args.sink_batch).unwrap_or(usize::MAX),
                    batch_interval: args.sink_interval,
                },
            )
            .context("opening --sink-db")?;
            Sink::Database(Arc::new(sink))
        }
        (None, None) => Sink::Lines(output.clone()),
    };

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
    let consumer: StreamConsumer<GroupContext> = properties
        .client_config()
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    let bootstrap = settings.bootstrap_servers();
    let found = describe_topic(&settings, &topic, args.connect_timeout)?;
    if found.is_none() {
        bail!(missing_topic_message(&topic, settings.is_event_hubs()));
    }
    let dead_letter = match &args.dead_letter_topic {
        Some(dlq) => {
            let producer: FutureProducer<ToolContext> = settings
                .properties(&ClientKind::Producer)
                .client_config()
                .create_with_context(ToolContext::new(&settings, ()))
                .context("creating the dead-letter producer")?;
            Some((dlq.clone(), producer))
        }
        None => None,
    };
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to `{topic}`"))?;
    tracing::info!(%topic, %group, bootstrap = %bootstrap, "consuming");

    let cancel = eventhubs_kafka::shutdown::on_signal();
    let options = LoopOptions {
        max_events: args.max_events,
        idle_timeout: args.idle_timeout,
        commit_interval: args.commit_interval,
        sink_interval: args.sink_interval,
        registry_retry_for: args.registry_retry_for,
        on_undecodable: args.on_undecodable,
    };
    let started = Instant::now();
    let (stop, counts) = consume(
        &consumer,
        &sink,
        &decoder,
        dead_letter.as_ref(),
        &options,
        &cancel,
    )
    .await?;

    commit(&consumer, &sink, CommitMode::Sync, true)?;
    let positions = committed_positions(&consumer, args.connect_timeout);
    consumer.unsubscribe();
    let elapsed = started.elapsed();
    if let Sink::Database(db) = &sink {
        let written = db.written();
        eprintln!(
            "consumer: database: {} events inserted, {} already there, in {} transactions",
            written.inserted, written.duplicates, written.transactions
        );
    }
    eprintln!(
        "consumer: {} consumed, {} decoded, {} undecodable{} in {:.2} s; committed: {}",
        counts.consumed,
        counts.decoded,
        counts.undecodable,
        if counts.dead_lettered > 0 {
            format!(" ({} dead-lettered)", counts.dead_lettered)
        } else {
            String::new()
        },
        elapsed.as_secs_f64(),
        positions
    );
    Ok(match stop {
        Stop::Undecodable => ExitCode::from(1),
        Stop::Signal | Stop::MaxEvents | Stop::Idle => ExitCode::SUCCESS,
    })
}

/// What the consume loop needs, lowered from the command line at the edge.
struct LoopOptions {
    max_events: Option<u64>,
    idle_timeout: Option<Duration>,
    commit_interval: Duration,
    sink_interval: Duration,
    registry_retry_for: Duration,
    on_undecodable: OnUndecodable,
}

/// Read, decode, write out and advance the positions until a stop condition; commit on the
/// interval (the final synchronous commit is the caller's).
async fn consume(
    consumer: &StreamConsumer<GroupContext>,
    sink: &Sink,
    decoder: &Decoder,
    dead_letter: Option<&(String, FutureProducer<ToolContext>)>,
    options: &LoopOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<(Stop, Counts)> {
    let mut counts = Counts::default();
    let mut buffers = Buffers::default();
    // One timer for commits and the idle check: no timer is set up per event.
    let tick_every = options
        .commit_interval
        .min(options.sink_interval)
        .min(Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Idle time is measured at ticks (no clock read per event): the tick notices that the
    // count moved.
    let mut last_event = Instant::now();
    let mut consumed_at_last_tick = 0;
    let mut last_commit = Instant::now();
    let mut last_full_commit = Instant::now();
    let stop = loop {
        if options.max_events.is_some_and(|max| counts.consumed >= max) {
            break Stop::MaxEvents;
        }
        tokio::select! {
            _ = cancel.cancelled() => break Stop::Signal,
            _ = tick.tick() => {
                if counts.consumed != consumed_at_last_tick {
                    consumed_at_last_tick = counts.consumed;
                    last_event = Instant::now();
                }
                if options.idle_timeout.is_some_and(|idle| last_event.elapsed() >= idle) {
                    break Stop::Idle;
                }
                if let Sink::Database(db) = &sink && db.due() {
                    sink.flush(false, &consumer.context().positions)
                        .context("writing to the database; offsets were not committed")?;
                }
                if last_commit.elapsed() >= options.commit_interval {
                    // Now and then every position again, moved or not: an asynchronous
                    // commit's failure may never be reported back, and an idle consumer
                    // would otherwise never retry it (re-committing an offset is harmless).
                    let refresh = last_full_commit.elapsed() >= (options.commit_interval * 10).max(Duration::from_secs(1));
                    if refresh {
                        last_full_commit = Instant::now();
                    }
                    commit(consumer, sink, CommitMode::Async, refresh)?;
                    last_commit = Instant::now();
                }
            }
            received = consumer.recv() => {
                let message = match received {
                    Ok(m) => m,
                    Err(e) => {
                        // librdkafka reports and retries transport errors by itself.
                        tracing::warn!("consume error: {e}");
                        continue;
                    }
                };
                counts.consumed += 1;
                let waiting = Waiting { cancel, retry_for: options.registry_retry_for };
                match handle(&message, decoder, sink, dead_letter, options.on_undecodable, &mut counts, &mut buffers, &waiting).await? {
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
                consumer
                    .context()
                    .positions
                    .advance(message.topic(), message.partition(), message.offset());
            }
        }
    };
    Ok((stop, counts))
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

/// How long to wait for an unreachable registry, and the signal that ends the wait.
struct Waiting<'a> {
    cancel: &'a tokio_util::sync::CancellationToken,
    retry_for: Duration,
}

/// Decode and write out one event.
#[allow(clippy::too_many_arguments)]
async fn handle(
    message: &BorrowedMessage<'_>,
    decoder: &Decoder,
    sink: &Sink,
    dead_letter: Option<&(String, FutureProducer<ToolContext>)>,
    policy: OnUndecodable,
    counts: &mut Counts,
    buffers: &mut Buffers,
    waiting: &Waiting<'_>,
) -> anyhow::Result<Handled> {
    if let Sink::Capture(capture) = sink {
        // Capture keeps bodies as they are: nothing to decode. The position advances when
        // the window's file is written.
        capture.add(message);
        return Ok(Handled::Buffered { full: false });
    }
    // Unreadable headers make the event undecodable, like an undecodable value.
    let headers = crate::headers::read(message);
    // A registry that cannot be reached is waited for, never taken as an answer: the event
    // would otherwise be dead-lettered and committed while the registry is down.
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    let decoded = loop {
        buffers.value.clear();
        let decoded = match &headers {
            Ok(h) => {
                decoder
                    .decode_into(
                        message.payload(),
                        crate::headers::content_type(h),
                        &mut buffers.value,
                    )
                    .await
            }
            Err(unreadable) => Err(eventhubs_kafka::encoding::DecodeError::Unreadable(
                unreadable.to_string(),
            )),
        };
        match decoded {
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
                    _ = waiting.cancel.cancelled() => return Ok(Handled::Interrupted),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => break other,
        }
    };
    let headers = headers.unwrap_or_default();
    let decoded = match decoded {
        Ok(encoding) => {
            counts.decoded += 1;
            Ok(encoding)
        }
        Err(error) => {
            counts.undecodable += 1;
            let source = format!(
                "{}/{}/{}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            if let Some((dlq, producer)) = dead_letter {
                send_to_dead_letter(
                    message,
                    &headers,
                    dlq,
                    producer,
                    &error.to_string(),
                    &source,
                )
                .await?;
                counts.dead_lettered += 1;
                // The database keeps every event (its bytes, at least); lines do not.
                if !matches!(sink, Sink::Database(_)) {
                    return Ok(Handled::Done);
                }
            } else if policy == OnUndecodable::Fail {
                tracing::error!(event = %source, "undecodable event: {error}; stopping without committing it");
                return Ok(Handled::StopUndecodable);
            } else {
                tracing::warn!(event = %source, "undecodable event: {error}");
            }
            Err(error)
        }
    };
    match sink {
        Sink::Database(db) => {
            let body_json = match decoded {
                Ok(_) => eventhubs_kafka::db::body_json_text(std::mem::take(&mut buffers.value)),
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
                        start_line(&mut buffers.line, message, &headers);
                        finish_decoded(&mut buffers.line, encoding.as_str(), &buffers.value);
                    }
                }
                Err(error) => {
                    start_line(&mut buffers.line, message, &headers);
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
    consumer: &StreamConsumer<GroupContext>,
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
    match consumer.commit(&positions, mode) {
        Ok(()) => Ok(()),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) if matches!(mode, CommitMode::Async) => {
            consumer.context().positions.mark_uncommitted(&positions);
            tracing::warn!("offset commit failed (retried at the next interval): {e}");
            Ok(())
        }
        Err(e) => Err(e).context(
            "committing offsets at shutdown failed; the events since the last commit will be read again by the group",
        ),
    }
}

/// `topic/partition=offset` for the partitions this consumer holds, as the broker has them.
fn committed_positions(consumer: &StreamConsumer<GroupContext>, timeout: Duration) -> String {
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
