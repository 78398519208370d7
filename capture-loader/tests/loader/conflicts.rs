//! What the database already has or refuses: events seen in two files are duplicates, the
//! same key with other content is a conflict that fails its file, rows PostgreSQL cannot
//! store fail their file alone. Helpers and fixtures as in load.rs.

use std::path::Path;

use crate::common::fixtures;
use crate::load::{load, loader, place, sqlite, summary};
use test_support::PgDatabase;

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn events_seen_in_two_files_are_counted_as_duplicates_not_inserted_twice() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    // The same events in two windows of one partition (as a redelivered file would be).
    place(&root, "telemetry-380-events.avro", 0, 18);
    place(&root, "telemetry-380-events.avro", 0, 19);
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(0));
    assert_eq!(
        (s["events_inserted"].as_u64(), s["duplicates"].as_u64()),
        (Some(380), Some(380)),
        "{s}"
    );
}

#[test]
fn rows_postgres_refuses_fail_their_file_alone_and_bad_json_keeps_only_its_bytes() {
    use eventhubs_kafka::capture::write::{CapturedRecord, capture_path, write_capture_file};
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    let base = chrono::DateTime::from_timestamp(1_795_334_400, 0).unwrap();
    let record = |n: i64, key: &str, header: &[u8], body: &str| CapturedRecord {
        sequence_number: n,
        offset: n.to_string(),
        enqueued_time: base + chrono::Duration::seconds(n),
        partition_key: Some(key.to_string()),
        kafka_key: None,
        properties: vec![("h".to_string(), Some(header.to_vec()))],
        body: Some(body.as_bytes().to_vec()),
    };
    let file = |partition: i32, minute: i64, records: Vec<CapturedRecord>| {
        let path = capture_path(
            &root,
            "ns",
            "hub",
            partition,
            base + chrono::Duration::minutes(minute),
        );
        write_capture_file(&path, &records).unwrap();
    };
    // Partition 0: a good file, then bodies jsonb refuses (they load, without body_json).
    file(
        0,
        0,
        vec![record(0, "k", b"v", r#"{"sensor_id":"s","temperature":1}"#)],
    );
    file(
        0,
        1,
        vec![
            record(1, "k", b"v", r#"{"x":"\udead"}"#),
            record(2, "k", b"v", r#"{"x":1e999999}"#),
        ],
    );
    // Partition 1: a NUL in a partition key and in a header value: that file fails alone.
    file(1, 0, vec![record(0, "bad\0key", b"v", "{}")]);
    file(2, 0, vec![record(0, "k", b"a\0b", "{}")]);
    // Partition 3: loads after the failures.
    file(3, 0, vec![record(0, "k", b"v", "{}")]);

    let out = loader(&pg.url, &["load", root.to_str().unwrap(), "--summary-json"]);
    let s = summary(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (s["files_loaded"].as_u64(), s["files_failed"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM capture_events"), "4");
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM capture_events WHERE body_json IS NULL AND body IS NOT NULL"
        ),
        "2"
    );
    let failed = pg.query("SELECT count(*) FROM capture_files WHERE status = 'failed' AND error LIKE '%refused its events%'");
    assert_eq!(failed, "2");
}

/// Same key, other content: a conflict that fails the file; same key, same content: a
/// duplicate that is counted and skipped.
fn conflicts_fail_the_file_and_identical_events_are_duplicates(
    db: &str,
    count_rows: &dyn Fn() -> String,
) {
    use eventhubs_kafka::capture::write::{CapturedRecord, capture_path, write_capture_file};
    let dir = tempfile::tempdir().unwrap();
    let base = chrono::DateTime::from_timestamp(1_795_334_400, 0).unwrap();
    let records = |range: std::ops::RangeInclusive<i64>, body: &str| -> Vec<CapturedRecord> {
        range
            .map(|n| CapturedRecord {
                sequence_number: n,
                offset: (n * 10).to_string(),
                enqueued_time: base + chrono::Duration::seconds(n),
                partition_key: None,
                kafka_key: None,
                properties: vec![],
                body: Some(format!("{{\"n\":{n},\"b\":\"{body}\"}}").into_bytes()),
            })
            .collect()
    };
    let write = |root: &Path, minute: i64, recs: Vec<CapturedRecord>| {
        let path = capture_path(
            root,
            "local",
            "hub",
            0,
            base + chrono::Duration::minutes(minute),
        );
        write_capture_file(&path, &recs).unwrap();
    };
    let first = dir.path().join("first");
    write(&first, 0, records(0..=9, "original"));
    assert_eq!(load(db, &first).0, Some(0));
    // The event hub re-created (or another cluster as `local`): sequence numbers 5..14 again,
    // other events.
    let second = dir.path().join("second");
    write(&second, 5, records(5..=14, "other"));
    let out = loader(db, &["load", second.to_str().unwrap(), "--summary-json"]);
    let s = summary(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(s["files_failed"], 1, "{s}");
    assert!(
        log.contains("5 event(s) conflict") && log.contains("sequence number 5"),
        "{log}"
    );
    assert_eq!(
        count_rows(),
        "10",
        "nothing of the conflicting file is loaded"
    );
    // A re-captured window with the same events: duplicates, not conflicts.
    let third = dir.path().join("third");
    write(&third, 7, records(5..=14, "original"));
    let out = loader(db, &["load", third.to_str().unwrap(), "--summary-json"]);
    let s = summary(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (s["duplicates"].as_u64(), s["events_inserted"].as_u64()),
        (Some(5), Some(5)),
        "{s}"
    );
    assert_eq!(count_rows(), "15");
}

#[test]
fn conflicting_events_under_one_key_fail_their_file_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let db = format!("sqlite://{}", path.display());
    conflicts_fail_the_file_and_identical_events_are_duplicates(&db, &|| {
        sqlite(&path, "SELECT count(*) FROM capture_events")
    });
}

#[test]
fn conflicting_events_under_one_key_fail_their_file_in_postgres() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    conflicts_fail_the_file_and_identical_events_are_duplicates(&pg.url, &|| {
        pg.query("SELECT count(*) FROM capture_events")
    });
}
