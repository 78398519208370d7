//! The next offset to commit per partition, advanced only after an event was written out.
//!
//! Commits are made from an explicit snapshot of these positions taken right after the
//! output is flushed. Committing librdkafka's stored offsets asynchronously would not be
//! safe: the commit request reads them later, on librdkafka's thread, by which time the
//! loop has stored offsets of events still sitting in the output buffer (a kill then loses
//! those events; the end-to-end SIGKILL test caught exactly that).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Per topic (a list: a consumer reads one topic or a few, and a string comparison is
/// cheaper per event than hashing the name), per partition.
#[derive(Default)]
pub(crate) struct Positions {
    inner: Mutex<Vec<(String, BTreeMap<i32, Entry>)>>,
}

#[derive(Clone, Copy)]
struct Entry {
    next: i64,
    dirty: bool,
}

impl Positions {
    fn lock(&self) -> MutexGuard<'_, Vec<(String, BTreeMap<i32, Entry>)>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The event at `offset` was written out.
    pub(crate) fn advance(&self, topic: &str, partition: i32, offset: i64) {
        let entry = Entry {
            next: offset + 1,
            dirty: true,
        };
        let mut topics = self.lock();
        match topics.iter_mut().find(|(t, _)| t == topic) {
            Some((_, partitions)) => {
                partitions.insert(partition, entry);
            }
            None => topics.push((topic.to_string(), BTreeMap::from([(partition, entry)]))),
        }
    }

    /// All positions, if any moved since the last snapshot; marks them clean.
    pub(crate) fn snapshot_if_moved(&self) -> Option<TopicPartitionList> {
        let moved = self
            .lock()
            .iter()
            .flat_map(|(_, p)| p.values())
            .any(|e| e.dirty);
        if !moved {
            return None;
        }
        self.snapshot_all()
    }

    /// All positions (none: `None`), marked clean.
    pub(crate) fn snapshot_all(&self) -> Option<TopicPartitionList> {
        let mut topics = self.lock();
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in topics.iter_mut() {
            for (partition, entry) in partitions.iter_mut() {
                entry.dirty = false;
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(entry.next));
            }
        }
        (list.count() > 0).then_some(list)
    }

    /// A commit of `failed` did not happen: its partitions are committed again at the next
    /// interval even when nothing new arrives (a snapshot marks positions clean before the
    /// broker has answered; without this an idle consumer would never retry).
    pub(crate) fn mark_uncommitted(&self, failed: &TopicPartitionList) {
        let mut topics = self.lock();
        for e in failed.elements() {
            if let Some(entry) =
                partitions_of(&mut topics, e.topic()).and_then(|p| p.get_mut(&e.partition()))
            {
                entry.dirty = true;
            }
        }
    }

    /// Positions of the given partitions (those about to be revoked), removed from here:
    /// once revoked, another consumer owns them and an older position must not be committed.
    pub(crate) fn take(&self, partitions: &TopicPartitionList) -> TopicPartitionList {
        let mut topics = self.lock();
        let mut list = TopicPartitionList::new();
        for e in partitions.elements() {
            if let Some(entry) =
                partitions_of(&mut topics, e.topic()).and_then(|p| p.remove(&e.partition()))
            {
                let _ =
                    list.add_partition_offset(e.topic(), e.partition(), Offset::Offset(entry.next));
            }
        }
        list
    }
}

fn partitions_of<'a>(
    topics: &'a mut [(String, BTreeMap<i32, Entry>)],
    topic: &str,
) -> Option<&'a mut BTreeMap<i32, Entry>> {
    topics
        .iter_mut()
        .find(|(t, _)| t == topic)
        .map(|(_, partitions)| partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_only_when_moved_and_revoked_partitions_are_forgotten() {
        let p = Positions::default();
        assert!(p.snapshot_if_moved().is_none());
        p.advance("t", 0, 9);
        p.advance("t", 1, 4);
        let snap = p.snapshot_if_moved().unwrap();
        assert_eq!(
            snap.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(10)
        );
        assert_eq!(
            snap.find_partition("t", 1).unwrap().offset(),
            Offset::Offset(5)
        );
        assert!(p.snapshot_if_moved().is_none());
        let mut revoked = TopicPartitionList::new();
        revoked.add_partition("t", 1);
        let taken = p.take(&revoked);
        assert_eq!(taken.count(), 1);
        p.advance("t", 0, 10);
        let snap = p.snapshot_if_moved().unwrap();
        assert_eq!(snap.count(), 1, "partition 1 is no longer ours");
        // A failed commit comes back at the next snapshot, with nothing new consumed.
        assert!(p.snapshot_if_moved().is_none());
        p.mark_uncommitted(&snap);
        let again = p.snapshot_if_moved().unwrap();
        assert_eq!(
            again.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(11)
        );
        // Not for a partition revoked meanwhile.
        p.mark_uncommitted(&taken);
        assert!(p.snapshot_if_moved().is_none());
    }
}
