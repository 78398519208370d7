//! Connection check before any work: reach the broker, authenticate, and find the topic, so
//! that a wrong password or a missing event hub fails in seconds with an actionable message
//! instead of as a delivery timeout minutes later.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;

use super::context::LastError;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "could not reach or authenticate with {bootstrap} within {timeout:?}: {cause}. Check the address, the credentials and that the port is reachable"
    )]
    Unreachable {
        bootstrap: String,
        timeout: Duration,
        cause: String,
    },
    #[error("{0}")]
    MissingTopic(String),
}

/// What the broker says about a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub partitions: i32,
}

/// Fetch metadata for `topic`. `Ok(None)` means the broker answered and the topic does not
/// exist.
pub fn describe_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    bootstrap: &str,
    last_error: &LastError,
    timeout: Duration,
) -> Result<Option<TopicInfo>, PreflightError> {
    let metadata =
        client
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| PreflightError::Unreachable {
                bootstrap: bootstrap.to_string(),
                timeout,
                cause: last_error.take().unwrap_or_else(|| describe(&e)),
            })?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(TopicInfo {
        partitions: t.partitions().len() as i32,
    }))
}

/// The message for a missing topic, worded for where the user is.
pub fn missing_topic_message(topic: &str, event_hubs: bool) -> String {
    if event_hubs {
        format!(
            "event hub `{topic}` does not exist in this namespace (or the key cannot see it). Event hubs are not created through the Kafka API: create it with the terraform in terraform/ (or the portal), then retry"
        )
    } else {
        format!(
            "topic `{topic}` does not exist on the broker; create it first (the producer's --ensure-topic --partitions P does that)"
        )
    }
}

fn describe(error: &KafkaError) -> String {
    error.to_string()
}
