//! `consumer lag`: per partition, the group's committed offset, the high watermark and
//! the difference. Reads only; never joins the group or commits.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use eventhubs_kafka::cli::{KafkaArgs, LogArgs};
use eventhubs_kafka::kafka::config::ClientKind;
use eventhubs_kafka::kafka::context::ToolContext;
use eventhubs_kafka::kafka::preflight::{PreflightError, describe_topic, missing_topic_message};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct LagArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// Consumer group id
    #[arg(long, env = "KAFKA_GROUP_ID")]
    pub group: String,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    /// How long to wait for the broker
    #[arg(long, default_value = "15s", value_parser = eventhubs_kafka::cli::values::duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read; `None` when it has committed nothing.
    pub committed: Option<i64>,
    pub low_watermark: i64,
    pub high_watermark: i64,
    /// Events not yet consumed by the group (from the low watermark when nothing is committed).
    pub lag: i64,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    group: &'a str,
    partitions: &'a [PartitionLag],
    total_lag: i64,
}

pub(crate) async fn run(args: LagArgs) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || {
        let lags = measure(&args)?;
        let total_lag = lags.iter().map(|l| l.lag).sum();
        // A closed stdout (`| head`) is an error here, not a panic; main ends quietly.
        let mut out = std::io::stdout().lock();
        if args.json {
            let report = Report {
                group: &args.group,
                partitions: &lags,
                total_lag,
            };
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            writeln!(
                out,
                "{:<30} {:>9} {:>12} {:>14} {:>10}",
                "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"
            )?;
            for l in &lags {
                let committed = l.committed.map_or("-".to_string(), |c| c.to_string());
                writeln!(
                    out,
                    "{:<30} {:>9} {:>12} {:>14} {:>10}",
                    l.topic, l.partition, committed, l.high_watermark, l.lag
                )?;
            }
            writeln!(out, "total lag of group {}: {total_lag}", args.group)?;
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

pub(crate) fn measure(args: &LagArgs) -> anyhow::Result<Vec<PartitionLag>> {
    let settings = args.kafka.client_settings("eventhubs-kafka-lag")?;
    let topic = args.kafka.topic(&settings).ok();
    if let Some(topic) = &topic {
        // Reachability, credentials and the topic, with the real cause on failure.
        if describe_topic(&settings, topic, args.timeout)?.is_none() {
            bail!(missing_topic_message(topic, settings.is_event_hubs()));
        }
    }
    let context = ToolContext::new(&settings, ());
    let consumer: BaseConsumer<ToolContext> = settings
        .properties(&ClientKind::Admin {
            group_id: Some(args.group.clone()),
        })
        .client_config()
        .create_with_context(context.clone())
        .context("creating the Kafka client")?;
    // librdkafka asks for an OAUTHBEARER token through the client's queue, which only a poll
    // serves; the requests below do not poll.
    if settings.tokens().is_some() {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let metadata = consumer
        .fetch_metadata(topic.as_deref(), args.timeout)
        .map_err(|e| PreflightError::Unreachable {
            bootstrap: settings.bootstrap_servers(),
            timeout: args.timeout,
            cause: context.last_error.take().unwrap_or_else(|| e.to_string()),
        })?;
    let mut list = TopicPartitionList::new();
    for t in metadata.topics() {
        if t.error().is_some() || t.name().starts_with("__") {
            continue;
        }
        for p in t.partitions() {
            list.add_partition(t.name(), p.id());
        }
    }
    if list.count() == 0 {
        match &topic {
            Some(topic) => bail!(missing_topic_message(topic, settings.is_event_hubs())),
            None => bail!("the broker lists no topics"),
        }
    }
    let committed = consumer
        .committed_offsets(list, args.timeout)
        .context("reading the group's committed offsets")?;
    let mut lags = Vec::new();
    for e in committed.elements() {
        let committed = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        // Without --topic, list only the topics this group has committed to.
        if topic.is_none() && committed.is_none() {
            continue;
        }
        let (low, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), args.timeout)
            .with_context(|| format!("reading watermarks of {}/{}", e.topic(), e.partition()))?;
        if committed.is_some_and(|c| c > high) {
            // A topic deleted and re-created since the commit, or a broker with wrong
            // watermarks (tansu 0.6.0 reports the last batch's base offset + 1).
            tracing::warn!(
                topic = e.topic(),
                partition = e.partition(),
                "the broker reports a high watermark ({high}) below the committed offset ({}); this partition's lag cannot be trusted",
                committed.unwrap_or_default()
            );
        }
        let from = committed.unwrap_or(low).max(low);
        lags.push(PartitionLag {
            topic: e.topic().to_string(),
            partition: e.partition(),
            committed,
            low_watermark: low,
            high_watermark: high,
            lag: (high - from).max(0),
        });
    }
    lags.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(lags)
}
