//! The consumer group member's part of its librdkafka context ([`ToolContext`] does the
//! rest, shared with every client): before partitions are taken away it flushes the output
//! and commits their offsets synchronously, so the next owner starts right after the last
//! event this process wrote out; with `--sink-db` assigned partitions start from the
//! database's positions; failed commits are marked to be committed again.

use eventhubs_kafka::kafka::context::{GroupHandler, ToolContext, describe};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::output::Sink;
use crate::positions::Positions;

/// The consumer's context: the shared one with this member's role.
pub(crate) type GroupContext = ToolContext<Member>;

pub(crate) struct Member {
    pub sink: Sink,
    pub positions: Positions,
}

impl GroupHandler for Member {
    fn before_assign(&self, partitions: &mut TopicPartitionList) {
        if let Sink::Database(db) = &self.sink {
            db.start_positions(partitions);
        }
    }

    /// Make the output durable and commit the positions of the partitions going away.
    fn before_revoke(&self, consumer: &BaseConsumer<GroupContext>, list: &TopicPartitionList) {
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
