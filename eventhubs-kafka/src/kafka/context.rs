//! The librdkafka client context every tool uses: librdkafka's log lines go to `tracing`,
//! and the last global error is kept so that a failed connection can be reported with its
//! real cause ("SASL authentication failed ...") instead of a bare "all brokers down".

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;

use crate::identity::TokenCache;
use crate::kafka::config::ClientSettings;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

/// Remembers the most recent librdkafka global error.
#[derive(Debug, Clone, Default)]
pub struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    pub fn record(&self, message: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The client context of every Kafka client the tools create, whatever its role: what all of
/// them share lives here once (librdkafka's log lines to `tracing`, the last error kept for
/// the report; the place for an OAUTHBEARER token callback), and the role adds what only it
/// does: a producer's delivery reports ([`DeliveryHandler`]), a consumer group's
/// rebalance and commit handling ([`GroupHandler`]). `()` is the role of clients that only
/// ask (metadata, offsets, the connection check). The context derefs to its role.
#[derive(Clone, Default)]
pub struct ToolContext<R = ()> {
    pub last_error: LastError,
    /// Microsoft Entra ID tokens for SASL OAUTHBEARER (`--auth entra`).
    pub tokens: Option<Arc<TokenCache>>,
    pub role: R,
}

impl<R> ToolContext<R> {
    /// The context for a client of `settings`: the token source comes with it, so every
    /// client the tools create can sign in the same way.
    pub fn new(settings: &ClientSettings, role: R) -> Self {
        Self {
            last_error: LastError::default(),
            tokens: settings.tokens(),
            role,
        }
    }
}

impl<R> std::ops::Deref for ToolContext<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.role
    }
}

impl<R: Send + Sync + 'static> ClientContext for ToolContext<R> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(&self.last_error, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        record_and_log_error(&self.last_error, error, reason);
    }

    /// librdkafka asks when it has no token or 80% of the last one's life is gone; the
    /// cache answers from memory while its token has more than five minutes left, else asks
    /// the credential. The lifetime librdkafka wants is an absolute time (epoch ms). A
    /// failure is kept as the last error, so a connection check reports the credential's
    /// reason instead of a timeout.
    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let Some(tokens) = &self.tokens else {
            return Err(
                "SASL OAUTHBEARER needs Microsoft Entra ID: use --auth entra with --namespace"
                    .into(),
            );
        };
        let token = tokens.token().map_err(|e| {
            let message = format!("getting a Microsoft Entra ID token: {e}");
            self.last_error.record(message.clone());
            tracing::error!("{message}");
            message
        })?;
        let lifetime_ms = token
            .expires_on
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Ok(OAuthToken {
            token: token.token.expose().to_string(),
            // The broker takes the principal from the token; this is only librdkafka's label.
            principal_name: "entra-id".to_string(),
            lifetime_ms,
        })
    }
}

/// A producer's part of its context: what to do with each delivery report.
pub trait DeliveryHandler: Send + Sync + 'static {
    type Opaque: rdkafka::util::IntoOpaque;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::Opaque);
}

/// The connection check's producer never produces.
impl DeliveryHandler for () {
    type Opaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

impl<R: DeliveryHandler> ProducerContext for ToolContext<R> {
    type DeliveryOpaque = R::Opaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: R::Opaque) {
        self.role.delivery(result, opaque);
    }
}

/// A consumer group member's part of its context. The rebalance itself (assign, unassign,
/// eager or cooperative, logged as "partitions assigned (initialized)" / "revoked
/// (closed)") is done once, in [`ToolContext`]'s `ConsumerContext`; the role acts around it.
pub trait GroupHandler: Send + Sync + Sized + 'static {
    /// Partitions about to be assigned: the role may set where each starts.
    fn before_assign(&self, _partitions: &mut TopicPartitionList) {}
    /// Partitions about to be taken away: the role makes its output durable and commits.
    fn before_revoke(
        &self,
        _consumer: &BaseConsumer<ToolContext<Self>>,
        _partitions: &TopicPartitionList,
    ) {
    }
    fn commit_callback(&self, _result: KafkaResult<()>, _offsets: &TopicPartitionList) {}
}

/// Consumers used for metadata and offsets only (they never subscribe).
impl GroupHandler for () {}

impl<R: GroupHandler> ConsumerContext for ToolContext<R> {
    /// librdkafka's rebalance as rust-rdkafka's default does it, with the role's hooks.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.role.before_assign(list);
                let assigned = if cooperative {
                    consumer.incremental_assign(list)
                } else {
                    consumer.assign(list)
                };
                if assigned.is_ok() {
                    tracing::info!(partitions = %describe(list), "partitions assigned (initialized)");
                }
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.role.before_revoke(consumer, list);
                tracing::info!(partitions = %describe(list), "partitions revoked (closed)");
                if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!("rebalance error: {}", RDKafkaErrorCode::from(other));
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!("applying the rebalance failed: {e}");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.role.commit_callback(result, offsets);
    }
}

/// `topic/partition, …` for logs.
pub fn describe(list: &TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Route one librdkafka log line to `tracing` (target `librdkafka`). Connection failures
/// (facility `FAIL`) are also kept as the last error: for a consumer they reach the error
/// callback only when its queue is polled, which a start-up check does not do.
pub fn log_librdkafka(last: &LastError, level: RDKafkaLogLevel, facility: &str, message: &str) {
    if facility == "FAIL" {
        last.record(message.to_string());
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Keep the error for later reporting and log it (at `warn`: librdkafka retries by itself).
///
/// "All brokers are down" is a consequence, not a cause: it never replaces the error that
/// led to it (an authentication or TLS failure), which is what the user must see. A message
/// identical to the one just recorded is not logged again.
pub fn record_and_log_error(last: &LastError, error: KafkaError, reason: &str) {
    let message = if reason.is_empty() {
        error.to_string()
    } else {
        reason.to_string()
    };
    let mut slot = last.0.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_deref() == Some(message.as_str()) {
        return;
    }
    tracing::warn!(target: "librdkafka", error = %error, "{message}");
    let consequence = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
    if !(consequence && slot.is_some()) {
        *slot = Some(message);
    }
}
