//! The librdkafka client context every tool uses: librdkafka's log lines go to `tracing`,
//! and the last global error is kept so that a failed connection can be reported with its
//! real cause ("SASL authentication failed ...") instead of a bare "all brokers down".

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

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
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        record_and_log_error(&self.last_error, error, reason);
    }
}

/// Consumers used for metadata and offsets only (no rebalance handling of their own).
impl rdkafka::consumer::ConsumerContext for ToolContext {}

/// Route one librdkafka log line to `tracing` (target `librdkafka`).
pub fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
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

/// Keep the error for later reporting and log it. Transient transport errors are logged at
/// `warn`: librdkafka retries them by itself.
pub fn record_and_log_error(last: &LastError, error: KafkaError, reason: &str) {
    let message = if reason.is_empty() {
        error.to_string()
    } else {
        reason.to_string()
    };
    tracing::warn!(target: "librdkafka", error = %error, "{message}");
    last.record(message);
}
