//! Before the first event: check the broker, the credentials and the topic; create the
//! topic with `--ensure-topic` on brokers where that is allowed (never on Event Hubs, whose
//! event hubs are created by terraform).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventhubs_kafka::kafka::config::{ClientKind, ClientSettings};
use eventhubs_kafka::kafka::preflight::{describe_topic, missing_topic_message};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// Whether and how to make the topic, and how long to wait for the broker.
pub(crate) struct TopicSetup {
    pub(crate) create_if_missing: bool,
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i32,
    pub(crate) connect_timeout: Duration,
}

/// Returns the topic's partition count.
pub(crate) fn prepare(
    setup: &TopicSetup,
    settings: &ClientSettings,
    topic: &str,
) -> anyhow::Result<i32> {
    let describe = || describe_topic(settings, topic, setup.connect_timeout);
    if let Some(info) = describe()? {
        return Ok(info.partitions);
    }
    if !setup.create_if_missing {
        bail!(missing_topic_message(topic, settings.is_event_hubs()));
    }
    if settings.is_event_hubs() {
        bail!(
            "{}; --ensure-topic does not create event hubs, because the Kafka admin API is not a reliable way to create them",
            missing_topic_message(topic, true)
        );
    }
    create_topic(setup, settings, topic)?;
    // Wait for the new topic's metadata to reach the broker we talk to.
    let deadline = Instant::now() + setup.connect_timeout;
    loop {
        if let Some(info) = describe()? {
            return Ok(info.partitions);
        }
        if Instant::now() > deadline {
            bail!(
                "topic `{topic}` was created but its metadata did not appear within {:?}",
                setup.connect_timeout
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_topic(setup: &TopicSetup, settings: &ClientSettings, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings
        .properties(&ClientKind::Admin { group_id: None })
        .client_config()
        .create()
        .context("creating the Kafka admin client")?;
    let new_topic = NewTopic::new(
        topic,
        setup.partitions,
        TopicReplication::Fixed(setup.replication_factor),
    );
    let options = AdminOptions::new().operation_timeout(Some(setup.connect_timeout));
    let results = tokio::runtime::Handle::current()
        .block_on(admin.create_topics([&new_topic], &options))
        .context("creating the topic")?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions = setup.partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic `{name}` failed: {code}"),
        }
    }
    Ok(())
}
