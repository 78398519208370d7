//! The producer: sends telemetry events to an event hub (or any Kafka topic).
//!
//! Data flow: [`input::Source`] (generator or JSON lines) → validate against the value schema
//! → key → [`eventhubs_kafka::encoding::Encoder`] → librdkafka's queue (waiting when it is
//! full) → broker → [`delivery::DeliveryContext`] counts what was acknowledged. On the end
//! of input, an invalid line or a signal: stop reading, flush with a deadline, purge what
//! is left and report it.

// A binary's internals are documented for its maintainers (`cargo doc
// --document-private-items`, as scripts/test runs it): its crate docs may name them.
#![allow(rustdoc::private_intra_doc_links)]

mod delivery;
mod input;
mod send;
mod topic;

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};
use eventhubs_kafka::cli::{KafkaArgs, LogArgs, RegistryArgs};
use eventhubs_kafka::encoding::{CompiledSchema, Encoder, Encoding};
use eventhubs_kafka::kafka::config::{ClientKind, ClientSettings};
use eventhubs_kafka::kafka::export::{ExportArgs, run_export};
use eventhubs_kafka::schemas;
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Deliveries, DeliveryContext, DeliveryTotals, LatencyMs, Origin};
use crate::input::{Item, Source};
use crate::send::{Refused, enqueue, finish, pace, parse_line, prepare, within_limit};

/// Send telemetry events to Event Hubs (or any Kafka broker): Avro-encoded, keyed for
/// ordering, batched and idempotent. Exit status: 0 when every event read was delivered,
/// 1 when some were not (or input was invalid), 2 when it could not run at all.
#[derive(Debug, Parser)]
#[command(name = "producer", version)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub produce: ProduceArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the resolved client configuration for other Kafka tools (librdkafka, Java, kcat)
    ConfigExport(ExportArgs),
}

impl Cli {
    pub fn log(&self) -> &LogArgs {
        match &self.command {
            Some(Command::ConfigExport(args)) => &args.log,
            None => &self.produce.log,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["generate", "input"])))]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// Generate N synthetic telemetry events
    #[arg(long, value_name = "N", help_heading = "Input")]
    pub generate: Option<u64>,

    /// Read JSON lines from FILE (`-` for stdin); each line is validated against the schema
    #[arg(long, value_name = "FILE|-", help_heading = "Input")]
    pub input: Option<PathBuf>,

    /// Distinct sensor ids for --generate
    #[arg(long, default_value_t = 100, value_name = "K", help_heading = "Input",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub sensors: usize,

    /// Seed for --generate, for repeatable data (default: from the clock)
    #[arg(long, help_heading = "Input")]
    pub seed: Option<u64>,

    /// Events per second at most (default: as fast as the broker takes them)
    #[arg(long, value_name = "R", help_heading = "Input", value_parser = eventhubs_kafka::cli::values::rate)]
    pub rate: Option<f64>,

    /// Skip and count invalid input lines instead of stopping at the first one
    #[arg(long, help_heading = "Input")]
    pub skip_invalid: bool,

    /// Value encoding [default: avro-azure with --schema-group, avro-confluent with a registry
    /// URL, else avro-single-object]
    #[arg(long, value_enum, help_heading = "Encoding")]
    pub encoding: Option<Encoding>,

    /// Value schema (Avro .avsc) instead of the embedded telemetry schema
    #[arg(long, value_name = "FILE.avsc", help_heading = "Encoding")]
    pub schema: Option<PathBuf>,

    /// Top-level field whose value is the Kafka key (empty: no key)
    #[arg(long, default_value = "sensor_id", help_heading = "Encoding")]
    pub key_field: String,

    /// Send every event to this partition instead of partitioning by key
    #[arg(long, value_name = "P", help_heading = "Delivery", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,

    /// Largest event (key + value) accepted; Event Hubs takes at most 1 MB per event
    #[arg(long, default_value_t = 1_000_000, help_heading = "Delivery",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub max_event_bytes: usize,

    /// Create the topic if it is missing (local brokers; event hubs are made by terraform)
    #[arg(long, help_heading = "Delivery")]
    pub ensure_topic: bool,

    /// Partitions for --ensure-topic
    #[arg(long, default_value_t = 4, value_name = "P", help_heading = "Delivery",
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,

    /// Replication factor for --ensure-topic
    #[arg(long, default_value_t = 1, help_heading = "Delivery", value_parser = clap::value_parser!(i32).range(1..=32))]
    pub replication_factor: i32,

    /// How long to wait, at the end, for events still in flight
    #[arg(long, default_value = "30s", value_parser = eventhubs_kafka::cli::values::duration, help_heading = "Delivery")]
    pub flush_timeout: Duration,

    /// How long to wait for the broker at start-up
    #[arg(long, default_value = "15s", value_parser = eventhubs_kafka::cli::values::duration, help_heading = "Delivery")]
    pub connect_timeout: Duration,

    /// Print one JSON summary object on stdout at the end (otherwise a line on stderr)
    #[arg(long, help_heading = "Output")]
    pub summary_json: bool,
}

/// The end-of-run report (`--summary-json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub sent: u64,
    pub failed: u64,
    pub invalid: u64,
    pub bytes: u64,
    pub elapsed_ms: u64,
    pub events_per_sec: f64,
    pub latency_ms: LatencyMs,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::ConfigExport(args)) => {
            run_export(&args, ClientKind::Producer, "producer")?;
            Ok(ExitCode::SUCCESS)
        }
        None => produce_events(cli.produce).await,
    }
}

async fn produce_events(cli: ProduceArgs) -> anyhow::Result<ExitCode> {
    let settings = cli.kafka.client_settings("eventhubs-kafka-producer")?;
    let topic = cli.kafka.topic(&settings)?;
    let schema_text = match &cli.schema {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --schema {}", path.display()))?,
        None => schemas::TELEMETRY.to_string(),
    };
    let schema = Arc::new(
        CompiledSchema::parse(&schema_text)
            .context("the value schema is not a valid Avro schema")?,
    );
    let encoder = build_encoder(&cli, &topic, &schema_text, schema).await?;
    let cancel = eventhubs_kafka::shutdown::on_signal();
    let source = match (&cli.input, cli.generate) {
        (Some(path), _) => Source::lines(path.clone(), cli.max_event_bytes)?,
        (None, Some(n)) => {
            let seed = cli.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
            // The generator writes the telemetry datum itself when the encoder would write
            // exactly that (the embedded schema, an Avro encoding, keyed by sensor or not at
            // all); otherwise it hands over values to encode.
            let direct = encoder
                .telemetry_prefix()
                .filter(|_| matches!(cli.key_field.as_str(), "sensor_id" | ""))
                .map(|prefix| input::Direct {
                    prefix: prefix.to_vec(),
                    keyed: !cli.key_field.is_empty(),
                });
            Source::generator(n, cli.sensors, seed, direct)
        }
        (None, None) => bail!("give --generate N or --input FILE"),
    };
    let options = ProduceOptions::from_args(&cli, topic);
    tokio::task::spawn_blocking(move || produce(&options, &settings, encoder, source, &cancel))
        .await?
}

/// What the produce pipeline needs, lowered from the command line at the edge: plain
/// values, no clap types past this point.
pub(crate) struct ProduceOptions {
    pub(crate) topic: String,
    pub(crate) topic_setup: topic::TopicSetup,
    /// Every event to this partition instead of partitioning by key.
    pub(crate) partition: Option<i32>,
    /// The top-level field whose value is the key; empty: no key.
    pub(crate) key_field: String,
    pub(crate) max_event_bytes: usize,
    /// Events per second at most.
    pub(crate) rate: Option<f64>,
    pub(crate) skip_invalid: bool,
    pub(crate) flush_timeout: Duration,
    pub(crate) summary_json: bool,
}

impl ProduceOptions {
    fn from_args(args: &ProduceArgs, topic: String) -> Self {
        Self {
            topic,
            topic_setup: topic::TopicSetup {
                create_if_missing: args.ensure_topic,
                partitions: args.partitions,
                replication_factor: args.replication_factor,
                connect_timeout: args.connect_timeout,
            },
            partition: args.partition,
            key_field: args.key_field.clone(),
            max_event_bytes: args.max_event_bytes,
            rate: args.rate,
            skip_invalid: args.skip_invalid,
            flush_timeout: args.flush_timeout,
            summary_json: args.summary_json,
        }
    }
}

async fn build_encoder(
    cli: &ProduceArgs,
    topic: &str,
    schema_text: &str,
    schema: Arc<CompiledSchema>,
) -> anyhow::Result<Encoder> {
    let registry = cli.registry.settings();
    let group = registry.as_ref().and_then(|r| r.schema_group.clone());
    let encoding = cli.encoding.unwrap_or(match (&registry, &group) {
        (Some(_), Some(_)) => Encoding::AvroAzure,
        (Some(_), None) => Encoding::AvroConfluent,
        (None, _) => Encoding::AvroSingleObject,
    });
    if group.is_some() && encoding != Encoding::AvroAzure {
        bail!(
            "--schema-group is for the Azure Schema Registry's format, not --encoding {}",
            encoding.as_str()
        );
    }
    Ok(match encoding {
        Encoding::AvroSingleObject => Encoder::single_object(schema),
        Encoding::Json => Encoder::json(schema),
        Encoding::AvroConfluent => {
            let Some(registry) = registry else {
                bail!(
                    "--encoding avro-confluent needs --schema-registry-url (SCHEMA_REGISTRY_URL)"
                );
            };
            let id = registry
                .register_value_schema(topic, schema_text)
                .await
                .with_context(|| format!("registering the value schema under `{topic}-value`"))?;
            tracing::info!(subject = %format!("{topic}-value"), schema_id = id, "value schema registered");
            Encoder::confluent(schema, id)
        }
        Encoding::AvroAzure => {
            let (Some(registry), Some(group)) = (registry, group) else {
                bail!(
                    "--encoding avro-azure needs --schema-registry-url https://<namespace>.servicebus.windows.net and --schema-group GROUP"
                );
            };
            let id = registry
                .azure(&|k| std::env::var(k).ok())?
                .register(&group, schema_text)
                .await
                .with_context(|| {
                    format!("registering the schema in Azure Schema Registry group `{group}`")
                })?;
            tracing::info!(group, schema_id = %id, "schema registered in the Azure Schema Registry");
            Encoder::azure(schema, &id)
        }
    })
}

fn produce(
    options: &ProduceOptions,
    settings: &ClientSettings,
    encoder: Encoder,
    mut source: Source,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let producer = open_producer(options, settings, &encoder)?;
    let started = Instant::now();
    let sent = send_all(&producer, options, &encoder, &mut source, cancel, started);
    let interrupted = cancel.is_cancelled();
    let undelivered_at_flush = finish(&producer, options.flush_timeout);
    let totals = producer.context().totals();
    report(
        options,
        &totals,
        sent.invalid,
        started.elapsed(),
        undelivered_at_flush,
    )?;

    if sent.stopped_on_invalid {
        tracing::error!(
            "stopped at the first invalid event; what was accepted before it was delivered. Use --skip-invalid to go on past invalid lines"
        );
    }
    if interrupted {
        tracing::info!("stopped by signal after reading {} events", sent.accepted);
    }
    let complete = totals.failed == 0
        && !sent.fatal
        && totals.sent == sent.accepted
        && !sent.stopped_on_invalid
        && !sent.read_failed
        && (sent.invalid == 0 || options.skip_invalid);
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The producer, once the topic is known to exist (or was created) and `--partition` is
/// one of its partitions. Polled by [`send_all`], between events, as librdkafka's own tool
/// does: a polling thread of its own cost a thread hand-off (futex wake-ups) per batch of
/// delivery reports.
fn open_producer(
    options: &ProduceOptions,
    settings: &ClientSettings,
    encoder: &Encoder,
) -> anyhow::Result<BaseProducer<DeliveryContext>> {
    let properties = settings.properties(&ClientKind::Producer);
    properties.warn_overridden();
    let producer: BaseProducer<DeliveryContext> = properties
        .client_config()
        .create_with_context(DeliveryContext::new(settings, Deliveries::new()))
        .context("creating the Kafka producer")?;
    let topic = options.topic.as_str();
    let partitions = topic::prepare(&options.topic_setup, settings, topic)?;
    if let Some(p) = options.partition
        && (p < 0 || p >= partitions)
    {
        bail!(
            "--partition {p} does not exist: `{topic}` has partitions 0..{}",
            partitions - 1
        );
    }
    tracing::info!(topic, partitions, encoding = encoder.encoding().as_str(), bootstrap = %settings.bootstrap_servers(), "producing");
    Ok(producer)
}

/// How the reading ended, and what was handed to librdkafka.
#[derive(Default)]
struct Sent {
    accepted: u64,
    invalid: u64,
    stopped_on_invalid: bool,
    read_failed: bool,
    fatal: bool,
}

/// Read the input to its end (or a signal, an invalid event without `--skip-invalid`, a
/// fatal producer error), handing each event to librdkafka, paced by `--rate`.
fn send_all(
    producer: &BaseProducer<DeliveryContext>,
    options: &ProduceOptions,
    encoder: &Encoder,
    source: &mut Source,
    cancel: &CancellationToken,
    started: Instant,
) -> Sent {
    let mut sent = Sent::default();
    // Delivery reports (and librdkafka's logs) are served at every poll: after each event,
    // and every 100 ms while the input is quiet.
    let mut serve = || producer.poll(Duration::ZERO);
    while let Some(item) = source.next(cancel, &mut serve) {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                tracing::error!("{e}");
                sent.read_failed = true;
                break;
            }
        };
        let (origin, prepared) = prepare_item(item, encoder, options);
        let (key, payload) = match prepared {
            Ok(event) => event,
            Err(reason) => {
                sent.invalid += 1;
                tracing::error!(origin = %origin, "invalid event: {reason}");
                if options.skip_invalid {
                    continue;
                }
                sent.stopped_on_invalid = true;
                break;
            }
        };
        if let Some(rate) = options.rate {
            pace(producer, started, sent.accepted, rate, cancel);
        }
        match enqueue(
            producer,
            &options.topic,
            options.partition,
            key.as_deref(),
            &payload,
            encoder.content_type(),
            origin,
        ) {
            Ok(()) => {
                sent.accepted += 1;
                // (Polling every 256 events instead, as librdkafka's own tool polls every
                // 1000, made no measurable difference here: A/B, 4 alternating runs each.)
                producer.poll(Duration::ZERO);
            }
            // Refused before sending (larger than librdkafka's own limit, an unknown
            // partition): accounted as failed with the reason; the next event goes on.
            Err(Refused::Event { origin, reason }) => {
                producer
                    .context()
                    .record_failure(&origin, reason, key.as_deref());
            }
            // The producer cannot go on (a fatal idempotence error): stop reading, still
            // flush and report everything handed over before.
            Err(Refused::Fatal { origin, reason }) => {
                producer
                    .context()
                    .record_failure(&origin, reason.clone(), key.as_deref());
                tracing::error!("the producer hit a fatal error and stops reading: {reason}");
                sent.fatal = true;
                break;
            }
        }
    }
    sent
}

/// An event's key and payload as they will be sent, or why it is invalid.
type Prepared<'a> = Result<(Option<Cow<'a, [u8]>>, Cow<'a, [u8]>), String>;

/// Where an event came from, and its key and payload. Pre-encoded events (the generator's
/// fast path) are borrowed as they are.
fn prepare_item<'a>(
    item: Item<'a>,
    encoder: &Encoder,
    options: &ProduceOptions,
) -> (Origin, Prepared<'a>) {
    let owned = |prepared: Result<(Option<Vec<u8>>, Vec<u8>), String>| {
        prepared.map(|(key, payload)| (key.map(Cow::Owned), Cow::Owned(payload)))
    };
    match item {
        Item::Record(origin, value) => (origin, owned(prepare(encoder, value, options))),
        Item::Encoded {
            origin,
            key,
            payload,
        } => (
            origin,
            within_limit(key, payload, options.max_event_bytes)
                .map(|()| (key.map(Cow::Borrowed), Cow::Borrowed(payload))),
        ),
        Item::Line(n, text) => (
            Origin::Line(n),
            owned(parse_line(encoder, &text).and_then(|v| prepare(encoder, v, options))),
        ),
        Item::Invalid(origin, reason) => (origin, Err(reason)),
    }
}

fn report(
    options: &ProduceOptions,
    totals: &DeliveryTotals,
    invalid: u64,
    elapsed: Duration,
    undelivered_at_flush: i32,
) -> anyhow::Result<()> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let summary = Summary {
        sent: totals.sent,
        failed: totals.failed,
        invalid,
        bytes: totals.bytes,
        elapsed_ms: elapsed.as_millis() as u64,
        events_per_sec: (totals.sent as f64 / secs * 10.0).round() / 10.0,
        latency_ms: totals.latency_ms,
    };
    for (reason, count) in &totals.failure_reasons {
        tracing::error!(count, reason = %reason, "events not delivered");
    }
    if undelivered_at_flush > 0 {
        tracing::error!(
            undelivered_at_flush,
            "events were still in flight at the flush deadline"
        );
    }
    if options.summary_json {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
        out.flush()?;
    } else {
        eprintln!(
            "producer: {} sent ({:.1} MB) in {:.2} s ({:.0} events/s), {} failed, {} invalid; delivery latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            summary.sent,
            summary.bytes as f64 / 1e6,
            secs,
            summary.events_per_sec,
            summary.failed,
            summary.invalid,
            summary.latency_ms.p50,
            summary.latency_ms.p99,
            summary.latency_ms.max,
        );
    }
    Ok(())
}
