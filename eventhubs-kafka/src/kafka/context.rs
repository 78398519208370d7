//! The librdkafka client context every tool uses: librdkafka's log lines go to `tracing`,
//! and the last global error is kept so that a failed connection can be reported with its
//! real cause ("SASL authentication failed ...") instead of a bare "all brokers down".

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

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

/// Client context shared by the tools' producers, consumers and admin clients.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    pub last_error: LastError,
}

impl ClientContext for ToolContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(&self.last_error, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        record_and_log_error(&self.last_error, error, reason);
    }
}

/// Consumers used for metadata and offsets only (no rebalance handling of their own).
impl rdkafka::consumer::ConsumerContext for ToolContext {}

/// The connection check's client, which never produces.
impl rdkafka::producer::ProducerContext for ToolContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
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
