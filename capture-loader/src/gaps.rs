//! Which events never arrived: within a partition, Event Hubs sequence numbers are
//! consecutive from 0, so the loaded files of a partition should cover one unbroken range.
//! A hole between them is a Capture file that was never loaded (a lost notification, a
//! deleted blob, a failed load); a hole before the first file is one too, unless it was
//! declared expected-missing (retention expired before Capture was enabled).
//!
//! Pure: the store hands over each partition's files and declarations; `status` and the
//! report print what comes back. Nothing after the newest file is a gap (those events may
//! not be captured yet): staleness, the age of the newest event, covers that end.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub(crate) use eventhubs_kafka::db::{ExpectedMissing, FileRange};

/// The file on one side of a gap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Neighbour {
    pub source: String,
    /// The sequence number next to the gap (the file's last before it, its first after it).
    pub sequence_number: i64,
    /// That event's enqueue time.
    pub enqueued_time: Option<DateTime<Utc>>,
}

/// Sequence numbers that should have been loaded and were not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Gap {
    pub first_missing: i64,
    pub last_missing: i64,
    pub missing: i64,
    /// The file just before the gap (none when the gap starts at sequence number 0).
    pub after: Option<Neighbour>,
    /// The file just after it.
    pub before: Neighbour,
}

impl Gap {
    /// The time window the missing events were enqueued in, as far as the neighbours tell.
    pub(crate) fn window(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.after.as_ref().and_then(|n| n.enqueued_time),
            self.before.enqueued_time,
        )
    }
}

/// Two files that hold some of the same sequence numbers (a re-captured window): not a
/// loss, since the database keeps each event once, but worth knowing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Overlap {
    pub first: String,
    pub second: String,
    pub first_sequence_number: i64,
    pub last_sequence_number: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Coverage {
    /// Merged ranges of loaded sequence numbers, in order.
    pub loaded: Vec<(i64, i64)>,
    pub gaps: Vec<Gap>,
    pub overlaps: Vec<Overlap>,
}

/// Analyse one partition's files against its declared expected-missing ranges.
pub(crate) fn analyse(files: &[FileRange], expected: &[ExpectedMissing]) -> Coverage {
    let mut sorted: Vec<&FileRange> = files
        .iter()
        .filter(|f| f.first_sequence_number <= f.last_sequence_number)
        .collect();
    sorted.sort_by_key(|f| (f.first_sequence_number, f.last_sequence_number));
    let mut coverage = Coverage::default();
    // The highest sequence number covered so far, and the file that covered it.
    let mut reached: Option<(i64, &FileRange)> = None;
    for file in sorted {
        let next_expected = reached.map_or(0, |(last, _)| last + 1);
        if file.first_sequence_number > next_expected {
            let missing = (next_expected, file.first_sequence_number - 1);
            for (first, last) in subtract(missing, expected) {
                coverage.gaps.push(Gap {
                    first_missing: first,
                    last_missing: last,
                    missing: last - first + 1,
                    after: reached.map(|(last, f)| Neighbour {
                        source: f.source.clone(),
                        sequence_number: last,
                        enqueued_time: f.last_enqueued_time,
                    }),
                    before: Neighbour {
                        source: file.source.clone(),
                        sequence_number: file.first_sequence_number,
                        enqueued_time: file.first_enqueued_time,
                    },
                });
            }
        } else if let Some((last, previous)) = reached
            && file.first_sequence_number <= last
        {
            coverage.overlaps.push(Overlap {
                first: previous.source.clone(),
                second: file.source.clone(),
                first_sequence_number: file.first_sequence_number,
                last_sequence_number: last.min(file.last_sequence_number),
            });
        }
        match coverage.loaded.last_mut() {
            Some((_, end)) if file.first_sequence_number <= *end + 1 => {
                *end = (*end).max(file.last_sequence_number);
            }
            _ => coverage
                .loaded
                .push((file.first_sequence_number, file.last_sequence_number)),
        }
        if reached.is_none_or(|(last, _)| file.last_sequence_number > last) {
            reached = Some((file.last_sequence_number, file));
        }
    }
    coverage
}

/// `range` less every expected-missing range: what remains, in order.
fn subtract(range: (i64, i64), expected: &[ExpectedMissing]) -> Vec<(i64, i64)> {
    let mut pieces = vec![range];
    for e in expected {
        let (cut_first, cut_last) = (e.first_sequence_number, e.last_sequence_number);
        pieces = pieces
            .into_iter()
            .flat_map(|(first, last)| {
                if cut_last < first || cut_first > last {
                    return vec![(first, last)];
                }
                let mut kept = Vec::new();
                if cut_first > first {
                    kept.push((first, cut_first - 1));
                }
                if cut_last < last {
                    kept.push((cut_last + 1, last));
                }
                kept
            })
            .collect();
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(source: &str, first: i64, last: i64) -> FileRange {
        FileRange {
            source: source.into(),
            first_sequence_number: first,
            last_sequence_number: last,
            first_enqueued_time: DateTime::from_timestamp(first * 10, 0),
            last_enqueued_time: DateTime::from_timestamp(last * 10, 0),
        }
    }

    fn declared(first: i64, last: i64) -> ExpectedMissing {
        ExpectedMissing {
            first_sequence_number: first,
            last_sequence_number: last,
            reason: "retention".into(),
        }
    }

    fn holes(c: &Coverage) -> Vec<(i64, i64)> {
        c.gaps
            .iter()
            .map(|g| (g.first_missing, g.last_missing))
            .collect()
    }

    #[test]
    fn consecutive_files_leave_no_gap() {
        let c = analyse(&[file("b", 100, 199), file("a", 0, 99)], &[]);
        assert_eq!(c.loaded, vec![(0, 199)]);
        assert!(c.gaps.is_empty() && c.overlaps.is_empty());
    }

    #[test]
    fn a_missing_middle_file_is_a_gap_with_its_neighbours_and_window() {
        let c = analyse(
            &[file("a", 0, 99), file("c", 200, 299), file("d", 300, 310)],
            &[],
        );
        assert_eq!(holes(&c), vec![(100, 199)]);
        let gap = &c.gaps[0];
        assert_eq!(gap.missing, 100);
        assert_eq!(gap.after.as_ref().unwrap().source, "a");
        assert_eq!(gap.after.as_ref().unwrap().sequence_number, 99);
        assert_eq!(gap.before.source, "c");
        assert_eq!(
            gap.window(),
            (
                DateTime::from_timestamp(990, 0),
                DateTime::from_timestamp(2000, 0)
            )
        );
        assert_eq!(c.loaded, vec![(0, 99), (200, 310)]);
    }

    #[test]
    fn a_missing_first_file_is_a_gap_unless_declared() {
        let c = analyse(&[file("b", 100, 199)], &[]);
        assert_eq!(holes(&c), vec![(0, 99)]);
        assert!(c.gaps[0].after.is_none());
        // Declared expected-missing (retention), then a missing first file after it.
        let c = analyse(&[file("c", 200, 299)], &[declared(0, 99)]);
        assert_eq!(holes(&c), vec![(100, 199)]);
        let c = analyse(&[file("c", 200, 299)], &[declared(0, 199)]);
        assert!(c.gaps.is_empty());
        // A declaration in the middle of a hole splits it.
        let c = analyse(&[file("a", 0, 9), file("b", 100, 110)], &[declared(40, 59)]);
        assert_eq!(holes(&c), vec![(10, 39), (60, 99)]);
    }

    #[test]
    fn overlapping_files_are_not_gaps_and_are_reported() {
        let c = analyse(
            &[file("a", 0, 99), file("b", 50, 149), file("c", 150, 160)],
            &[],
        );
        assert!(c.gaps.is_empty());
        assert_eq!(c.loaded, vec![(0, 160)]);
        assert_eq!(c.overlaps.len(), 1);
        assert_eq!(
            (
                c.overlaps[0].first_sequence_number,
                c.overlaps[0].last_sequence_number
            ),
            (50, 99)
        );
        // A file inside another one, then a hole after the larger one.
        let c = analyse(
            &[file("a", 0, 99), file("b", 10, 20), file("c", 120, 130)],
            &[],
        );
        assert_eq!(holes(&c), vec![(100, 119)]);
        assert_eq!(c.gaps[0].after.as_ref().unwrap().source, "a");
    }

    #[test]
    fn nothing_after_the_newest_file_is_a_gap() {
        let c = analyse(&[file("a", 0, 99)], &[]);
        assert!(c.gaps.is_empty());
        assert!(analyse(&[], &[]).gaps.is_empty());
    }
}
