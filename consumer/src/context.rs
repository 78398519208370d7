//! The consumer's librdkafka context: logs partition assignment and revocation (the
//! "partition initialized / closed" moments); before partitions are taken away flushes
//! the output and commits their offsets synchronously, so the next owner starts right after
//! the last event this process wrote out; with `--sink-db`, starts assigned partitions
//! from the database's positions.

use eventhubs_kafka::kafka::context::{LastError, log_librdkafka, record_and_log_error};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

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

impl GroupContext {
    /// Before partitions are taken away: make the output durable and commit their positions,
    /// so their next owner starts right after the last event written out.
    fn revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        if let Err(e) = self.sink.flush(true, &self.positions) {
            // Nothing written since the last commit can be trusted: commit nothing.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::info!("stdout was closed; what was not written out is not committed");
            } else {
                tracing::error!("cannot flush output before revocation ({e}); not committing");
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
}

impl ConsumerContext for GroupContext {
    /// librdkafka's rebalance, as rust-rdkafka's default does it, with two additions: the
    /// revoked partitions are flushed and committed first, and with `--sink-db` the assigned
    /// partitions start from the database's positions.
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
                if let Sink::Database(db) = &self.sink {
                    db.start_positions(list);
                }
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
                self.revoke(consumer, list);
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
        // A commit can succeed as a request and fail for some partitions (the broker answers
        // per partition): those are not committed either.
        let mut failed = TopicPartitionList::new();
        for e in offsets.elements() {
            if let Err(error) = e.error() {
                tracing::warn!(partition = %format!("{}/{}", e.topic(), e.partition()), "offset commit failed (it is retried at the next interval): {error}");
                let _ = failed.add_partition_offset(e.topic(), e.partition(), e.offset());
            }
        }
        if failed.count() > 0 {
            self.positions.mark_uncommitted(&failed);
        }
        match result {
            Ok(()) if failed.count() > 0 => {}
            Ok(()) => tracing::debug!(offsets = %describe(offsets), "offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.positions.mark_uncommitted(offsets);
                tracing::warn!("offset commit failed (it is retried at the next interval): {e}")
            }
        }
    }
}
