//! Connection check before any work: reach the broker, authenticate, and find the topic, so
//! that a wrong password or a missing event hub fails in seconds with an actionable message
//! instead of as a delivery timeout minutes later.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};

use super::config::{ClientKind, ClientSettings};
use super::context::ToolContext;

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
    /// The broker answered, and said no (credentials, a token's audience, TLS trust): no use
    /// waiting out the timeout.
    #[error(
        "{bootstrap} refused the connection: {cause}. Check the credentials (for Entra ID: the namespace and the principal's roles) and the CA"
    )]
    Refused { bootstrap: String, cause: String },
    #[error("cannot create the Kafka client for the connection check: {0}")]
    Client(#[from] KafkaError),
}

/// What the broker says about a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub partitions: i32,
}

/// Fetch metadata for `topic`. `Ok(None)` means the broker answered and the topic does not
/// exist.
///
/// The check uses a short-lived client of its own whose events are served by a background
/// thread (a threaded producer, which never produces here): a consumer's log and error
/// events only arrive when its queue is polled, so through the consumer itself the real
/// cause of a failure would come too late to report.
pub fn describe_topic(
    settings: &ClientSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Option<TopicInfo>, PreflightError> {
    let context = ToolContext::new(settings, ());
    let probe: ThreadedProducer<ToolContext> = settings
        .properties(&ClientKind::Admin { group_id: None })
        .client_config()
        .create_with_context(context.clone())?;
    let client = probe.client();
    let last_error = &context.last_error;
    let bootstrap = settings.bootstrap_servers();
    // Ask in short slices so that a definite failure (bad credentials, an untrusted
    // certificate) ends the wait at once instead of at the deadline; librdkafka itself
    // keeps retrying until the timeout.
    let deadline = Instant::now() + timeout;
    let metadata = loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        match client.fetch_metadata(Some(topic), slice) {
            Ok(metadata) => break metadata,
            Err(e) => {
                let cause = last_error.take();
                if let Some(cause) = cause.as_deref().filter(|c| is_definite_failure(c)) {
                    return Err(PreflightError::Refused {
                        bootstrap: bootstrap.to_string(),
                        cause: cause.to_string(),
                    });
                }
                if Instant::now() >= deadline {
                    return Err(PreflightError::Unreachable {
                        bootstrap: bootstrap.to_string(),
                        timeout,
                        cause: cause.unwrap_or_else(|| e.to_string()),
                    });
                }
                if let Some(cause) = cause {
                    last_error.record(cause);
                }
            }
        }
    };
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

/// Errors that retrying cannot fix: wrong credentials or a certificate that is not trusted.
fn is_definite_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("authentication")
        || m.contains("certificate verify failed")
        || m.contains("ssl handshake failed")
}
