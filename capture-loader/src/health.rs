//! What `status` and the report say about the load: per partition, what is loaded, where
//! the holes are (see [`crate::gaps`]), how old the newest event is; and the failed files.
//! One assessment serves both, so the page and the scheduler's exit status never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::{
    DeclaredMissing, FailedFile, LoadedFile, PartitionKey, PartitionStatus, Status, Store,
};
use crate::gaps::{self, ExpectedMissing, Gap, Overlap};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionHealth {
    /// Files, events, the newest sequence number and enqueue time, as the store counts them
    /// (flattened: the JSON keeps those fields at this level).
    #[serde(flatten)]
    pub status: PartitionStatus,
    /// How long ago that was, when the report or status was made.
    pub newest_event_age_seconds: Option<i64>,
    /// Older than `--stale-after`: Capture or the loader may have stopped.
    pub stale: bool,
    /// Merged ranges of loaded sequence numbers.
    pub loaded_ranges: Vec<(i64, i64)>,
    pub gaps: Vec<Gap>,
    pub expected_missing: Vec<ExpectedMissing>,
    pub overlaps: Vec<Overlap>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Health {
    pub generated_at: DateTime<Utc>,
    pub partitions: Vec<PartitionHealth>,
    pub failed_files: Vec<FailedFile>,
    pub gaps: usize,
    pub missing_events: i64,
    pub stale_partitions: usize,
}

impl Health {
    /// Nothing for a scheduler to alert on.
    pub(crate) fn is_healthy(&self) -> bool {
        self.gaps == 0 && self.failed_files.is_empty() && self.stale_partitions == 0
    }
}

/// Read what the store knows and assess it at `now`.
pub(crate) fn assess(
    store: &mut dyn Store,
    now: DateTime<Utc>,
    stale_after: Option<Duration>,
) -> anyhow::Result<Health> {
    let status = store.status()?;
    let files = store.loaded_files()?;
    let declared = store.expected_missing()?;
    Ok(combine(status, files, declared, now, stale_after))
}

fn combine(
    status: Status,
    files: Vec<LoadedFile>,
    declared: Vec<DeclaredMissing>,
    now: DateTime<Utc>,
    stale_after: Option<Duration>,
) -> Health {
    let mut files_of: BTreeMap<PartitionKey, Vec<gaps::FileRange>> = BTreeMap::new();
    for f in files {
        files_of.entry(f.partition).or_default().push(f.range);
    }
    let mut declared_of: BTreeMap<PartitionKey, Vec<ExpectedMissing>> = BTreeMap::new();
    for d in declared {
        declared_of.entry(d.partition).or_default().push(d.range);
    }
    let partitions: Vec<PartitionHealth> = status
        .partitions
        .into_iter()
        .map(|p| {
            let key = PartitionKey {
                namespace: p.namespace.clone(),
                event_hub: p.event_hub.clone(),
                partition_id: p.partition_id.clone(),
            };
            let expected = declared_of.remove(&key).unwrap_or_default();
            let coverage = gaps::analyse(
                files_of.get(&key).map(Vec::as_slice).unwrap_or_default(),
                &expected,
            );
            let age = p
                .last_enqueued_time
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (now - t.with_timezone(&Utc)).num_seconds());
            let stale = match (stale_after, age) {
                (Some(limit), Some(age)) => age > limit.as_secs() as i64,
                // A partition with files but no event at all has nothing fresh.
                (Some(_), None) => true,
                (None, _) => false,
            };
            PartitionHealth {
                status: p,
                newest_event_age_seconds: age,
                stale,
                loaded_ranges: coverage.loaded,
                gaps: coverage.gaps,
                expected_missing: expected,
                overlaps: coverage.overlaps,
            }
        })
        .collect();
    Health {
        generated_at: now,
        gaps: partitions.iter().map(|p| p.gaps.len()).sum(),
        missing_events: partitions
            .iter()
            .flat_map(|p| &p.gaps)
            .map(|g| g.missing)
            .sum(),
        stale_partitions: partitions.iter().filter(|p| p.stale).count(),
        partitions,
        failed_files: status.failed_files,
    }
}
