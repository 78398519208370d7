//! The consumer: reads a topic in a consumer group, decodes every event, writes it out,
//! and commits offsets only for what was written out (at least once).
//!
//! Data flow: librdkafka (a BaseConsumer polled on the loop's own thread, [`consume`]) →
//! [`handle`] decodes with [`eventhubs_kafka::encoding::Decoder`] → [`output::Output`]
//! (stdout JSON lines), Capture files ([`capture`]) or the capture tables ([`sink_db`]);
//! an undecodable event per `--on-undecodable` or to the dead-letter topic →
//! [`positions::Positions`] advanced → every `--commit-interval`: flush, commit a snapshot
//! of the positions. [`lag`] answers `consumer lag`.

// A binary's internals are documented for its maintainers (`cargo doc
// --document-private-items`, as scripts/test runs it): its crate docs may name them.
#![allow(rustdoc::private_intra_doc_links)]

mod capture;
mod consume;
mod context;
mod handle;
mod headers;
mod lag;
mod output;
mod positions;
mod sink_db;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use eventhubs_kafka::cli::{KafkaArgs, LogArgs, RegistryArgs};
use eventhubs_kafka::kafka::config::{ClientKind, StartFrom};
use eventhubs_kafka::kafka::export::{ExportArgs, run_export};

use crate::output::OutputFormat;

/// Read events from Event Hubs (or any Kafka broker) in a consumer group, decode them
/// (Confluent Avro, single-object Avro or JSON, detected per event), write them as JSON
/// lines, and commit offsets only after they were written. Exit status: 0 on a clean stop,
/// 1 when an undecodable event stopped it (--on-undecodable fail), 2 on errors.
#[derive(Debug, Parser)]
#[command(name = "consumer", version)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub consume: ConsumeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per partition: the group's committed offset, the high watermark and the lag
    Lag(lag::LagArgs),
    /// Write the resolved client configuration for other Kafka tools (librdkafka, Java, kcat)
    ConfigExport(ConsumerExportArgs),
}

#[derive(Debug, Args)]
pub struct ConsumerExportArgs {
    #[command(flatten)]
    pub export: ExportArgs,

    /// Consumer group id to put in the file
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "")]
    pub group: String,

    /// Where a group with no committed offset starts
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: StartFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnUndecodable {
    /// Write it out with an "error" field and its raw bytes (base64), and go on
    Print,
    /// Stop without committing it (exit status 1)
    Fail,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// Consumer group id (required: Event Hubs groups span the whole namespace)
    #[arg(long, env = "KAFKA_GROUP_ID", required = true)]
    pub group: Option<String>,

    /// Where to start when the group has no committed offset
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: StartFrom,

    /// `json`: one line per event on stdout; `none`: count only
    #[arg(long, value_enum, default_value = "json")]
    pub output: OutputFormat,

    /// How often stored offsets are committed (the service throttles commits to 4/s per partition)
    #[arg(long, default_value = "1s", value_parser = eventhubs_kafka::cli::values::duration)]
    pub commit_interval: Duration,

    /// Stop after this many events
    #[arg(long, value_name = "N", value_parser = eventhubs_kafka::cli::values::at_least_one)]
    pub max_events: Option<u64>,

    /// Stop after this long without an event
    #[arg(long, value_name = "DURATION", value_parser = eventhubs_kafka::cli::values::duration)]
    pub idle_timeout: Option<Duration>,

    /// Send undecodable events to this topic (original key and headers, plus an error header)
    #[arg(long, value_name = "TOPIC", conflicts_with = "on_undecodable")]
    pub dead_letter_topic: Option<String>,

    /// What to do with an event that cannot be decoded
    #[arg(long, value_enum, default_value = "print")]
    pub on_undecodable: OnUndecodable,

    /// How long to wait for an unreachable schema registry (retrying with backoff) before
    /// stopping without committing the event; an event is never given up as undecodable
    /// because the registry was down. Keep it under max.poll.interval.ms (5 minutes)
    #[arg(long, default_value = "4m", value_parser = eventhubs_kafka::cli::values::duration)]
    pub registry_retry_for: Duration,

    /// How long to wait for the broker at start-up
    #[arg(long, default_value = "15s", value_parser = eventhubs_kafka::cli::values::duration)]
    pub connect_timeout: Duration,

    /// Write what is consumed as Event Hubs Capture files under DIR (instead of JSON lines);
    /// offsets are committed only once a file is on disk
    #[arg(long, value_name = "DIR", help_heading = "Local capture")]
    pub capture_dir: Option<std::path::PathBuf>,

    /// Capture time window: one file per partition per window
    #[arg(long, default_value = "60s", value_parser = eventhubs_kafka::cli::values::duration, help_heading = "Local capture")]
    pub capture_window: Duration,

    /// Capture size window: a file is written early when its events reach this many bytes
    #[arg(long, default_value_t = 64 << 20, help_heading = "Local capture",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=(1 << 40)))]
    pub capture_size_limit: usize,

    /// Namespace in capture paths and in --sink-db rows [default: the connection string's
    /// namespace, else `local`]
    #[arg(long, help_heading = "Local capture")]
    pub capture_namespace: Option<String>,

    /// Write each event as a row of `capture_events` (postgres://… or sqlite://PATH, as the
    /// capture-loader's --db), with the group's positions in the same transaction: exactly
    /// once, and seconds after the event was sent instead of after a Capture window
    #[arg(
        long,
        value_name = "URL",
        env = "SINK_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "capture_dir",
        help_heading = "Database sink"
    )]
    pub sink_db: Option<eventhubs_kafka::secret::Secret>,

    /// How to sign in to PostgreSQL for --sink-db
    #[arg(
        long,
        env = "SINK_DATABASE_AUTH",
        value_enum,
        default_value = "password",
        help_heading = "Database sink"
    )]
    pub sink_db_auth: eventhubs_kafka::db::DbAuth,

    /// Write a transaction when this many events are waiting
    #[arg(long, default_value = "5000", value_parser = eventhubs_kafka::cli::values::at_least_one,
          help_heading = "Database sink")]
    pub sink_batch: u64,

    /// Write a transaction when the oldest waiting event has waited this long
    #[arg(long, default_value = "1s", value_parser = eventhubs_kafka::cli::values::duration,
          help_heading = "Database sink")]
    pub sink_interval: Duration,
}

impl Cli {
    pub fn log(&self) -> &LogArgs {
        match &self.command {
            Some(Command::Lag(args)) => &args.log,
            Some(Command::ConfigExport(args)) => &args.export.log,
            None => &self.consume.log,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Lag(args)) => lag::run(args).await,
        Some(Command::ConfigExport(args)) => {
            let kind = if args.group.is_empty() {
                ClientKind::Admin { group_id: None }
            } else {
                ClientKind::Consumer {
                    group_id: args.group.clone(),
                    from: args.from,
                }
            };
            run_export(&args.export, kind, "consumer")?;
            Ok(ExitCode::SUCCESS)
        }
        None => consume::run(cli.consume).await,
    }
}
