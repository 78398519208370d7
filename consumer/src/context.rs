//! The consumer's librdkafka context: logs partition assignment and revocation (the
//! "partition initialized / closed" moments), and before partitions are taken away flushes
//! the output and commits their offsets synchronously, so the next owner starts right after
//! the last event this process wrote out.

use eventhubs_kafka::kafka::context::{LastError, log_librdkafka, record_and_log_error};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::output::Sink;
use crate::positions::Positions;

pub struct GroupContext {
    pub last_error: LastError,
    pub sink: Sink,
    pub positions: Positions,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(&self.last_error, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        record_and_log_error(&self.last_error, error, reason);
    }
}

fn describe(list: &TopicPartitionList) -> String {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                if let Err(e) = self.sink.flush(true, &self.positions) {
                    // Nothing written since the last commit can be trusted: commit nothing.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        tracing::info!(
                            "stdout was closed; what was not written out is not committed"
                        );
                    } else {
                        tracing::error!(
                            "cannot flush output before revocation ({e}); not committing"
                        );
                    }
                    return;
                }
                let positions = self.positions.take(list);
                if positions.count() > 0
                    && let Err(e) = consumer.commit(&positions, CommitMode::Sync)
                {
                    tracing::warn!("commit before revocation failed: {e}");
                }
                tracing::info!(partitions = %describe(list), "partitions revoked (closed)");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::error!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            tracing::info!(partitions = %describe(list), "partitions assigned (initialized)");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = %describe(offsets), "offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!("offset commit failed (it is retried at the next interval): {e}")
            }
        }
    }
}
