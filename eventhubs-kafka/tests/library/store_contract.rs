//! One contract for both stores: the same operations on SQLite and on PostgreSQL give the
//! same answers, in the same order. Each step's answer goes into a transcript; the two
//! transcripts must be equal, and the SQLite one is also checked against what the loader and
//! the consumer's sink rely on. PostgreSQL is the one scripts/test starts (CI requires it).

#![cfg(feature = "db")]

use chrono::{DateTime, Duration, Utc};
use eventhubs_kafka::db::postgres::PostgresStore;
use eventhubs_kafka::db::sqlite::SqliteStore;
use eventhubs_kafka::db::{
    Conflict, DeclaredMissing, EventRow, ExpectedMissing, FileRecord, PartitionKey, Store,
    StreamBatch, StreamPosition,
};

fn base() -> DateTime<Utc> {
    "2026-11-22T08:00:00Z".parse().unwrap()
}

fn event(partition: &str, seq: i64, sensor: &str, temperature: f64) -> EventRow {
    let body = format!(r#"{{"sensor_id":"{sensor}","temperature":{temperature},"humidity":40.0}}"#);
    EventRow {
        namespace: "ns".into(),
        event_hub: "hub".into(),
        partition_id: partition.into(),
        sequence_number: seq,
        offset: (seq * 100).to_string(),
        enqueued_time: base() + Duration::seconds(seq * 20),
        partition_key: Some(sensor.into()),
        system_properties: r#"{"x-opt-sequence-number":1}"#.into(),
        properties: "{}".into(),
        body: Some(body.clone().into_bytes()),
        body_json: Some(body),
    }
}

fn file(source: &str, partition: &str, events: &[EventRow]) -> FileRecord {
    FileRecord {
        source: source.into(),
        size: 1000,
        etag: format!("etag-{source}"),
        namespace: Some("ns".into()),
        event_hub: Some("hub".into()),
        partition_id: Some(partition.into()),
        event_count: events.len() as i64,
        first_sequence_number: events.first().map(|e| e.sequence_number),
        last_sequence_number: events.last().map(|e| e.sequence_number),
        first_enqueued_time: events.first().map(|e| e.enqueued_time),
        last_enqueued_time: events.last().map(|e| e.enqueued_time),
    }
}

/// Every operation of the contract, in order; each answer as a line.
fn transcript(store: &mut dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |step: &str, answer: String| out.push(format!("{step}: {answer}"));

    // Partitions "10" and "2": text that sorts otherwise than numbers.
    let p10: Vec<_> = (0..3)
        .map(|s| event("10", s, "sensor-a", 20.0 + s as f64))
        .collect();
    let p2: Vec<_> = (0..2).map(|s| event("2", s, "sensor-b", 10.0)).collect();
    // Overlaps p2 by one identical event.
    let p2b: Vec<_> = (1..4).map(|s| event("2", s, "sensor-b", 10.0)).collect();
    let conflicting = vec![event("2", 3, "sensor-c", 99.0)];
    for (source, partition, events) in
        [("f-10", "10", &p10), ("f-2", "2", &p2), ("f-2b", "2", &p2b)]
    {
        let loaded = store
            .load_file(&file(source, partition, events), events)
            .unwrap();
        say(
            &format!("load {source}"),
            format!(
                "inserted {} duplicates {} elsewhere {}",
                loaded.inserted, loaded.duplicates, loaded.elsewhere
            ),
        );
    }
    let conflict = store
        .load_file(&file("f-conflict", "2", &conflicting), &conflicting)
        .unwrap_err();
    let conflict = conflict
        .downcast_ref::<Conflict>()
        .map(|c| format!("conflict count {} first {}", c.count, c.first))
        .unwrap_or_else(|| format!("not a Conflict: {conflict:#}"));
    say("load f-conflict", conflict);
    store
        .record_failure(&file("f-bad", "2", &[]), "not an Avro file")
        .unwrap();

    for source in ["f-10", "f-2b", "f-conflict", "f-bad", "f-unknown"] {
        let known = store.known_file(source).unwrap().map(|k| {
            format!(
                "{:?} size {} etag {} events {} seq {:?}..{:?} error {:?} has loaded_at {}",
                k.status,
                k.size,
                k.etag,
                k.event_count,
                k.first_sequence_number,
                k.last_sequence_number,
                k.error,
                k.loaded_at.is_some()
            )
        });
        say(&format!("known {source}"), format!("{known:?}"));
    }
    for f in store.loaded_files().unwrap() {
        say("loaded file", format!("{:?} {:?}", f.partition, f.range));
    }
    let status = store.status().unwrap();
    for p in &status.partitions {
        say("status partition", format!("{p:?}"));
    }
    for f in &status.failed_files {
        say("status failed", format!("{f:?}"));
    }

    let partition = PartitionKey {
        namespace: "ns".into(),
        event_hub: "hub".into(),
        partition_id: "2".into(),
    };
    for reason in ["retention expired", "retention expired before capture"] {
        store
            .declare_missing(&DeclaredMissing {
                partition: partition.clone(),
                range: ExpectedMissing {
                    first_sequence_number: 5,
                    last_sequence_number: 9,
                    reason: reason.into(),
                },
            })
            .unwrap();
    }
    for d in store.expected_missing().unwrap() {
        say(
            "expected missing",
            format!("{:?} {:?}", d.partition, d.range),
        );
    }

    // The consumer's sink: rows with positions; a stale position never moves one back.
    let streamed: Vec<_> = (4..6).map(|s| event("2", s, "sensor-b", 11.0)).collect();
    for (label, rows, next) in [
        ("first", &streamed[..], 6),
        ("again", &streamed[..], 6),
        ("stale", &streamed[..1], 5),
    ] {
        let positions = [StreamPosition {
            partition_id: "2".into(),
            next_offset: next,
        }];
        let loaded = store
            .write_stream(&StreamBatch {
                group: "g",
                namespace: "ns",
                event_hub: "hub",
                rows,
                positions: &positions,
            })
            .unwrap();
        say(
            &format!("stream {label}"),
            format!(
                "inserted {} duplicates {}",
                loaded.inserted, loaded.duplicates
            ),
        );
    }
    say(
        "stream positions",
        format!("{:?}", store.stream_positions("g", "ns", "hub").unwrap()),
    );

    let report = store.report_data(10).unwrap();
    for m in &report.events_per_minute {
        say(
            "per minute",
            format!("{:?} {} {}", m.partition, m.minute, m.events),
        );
    }
    for s in &report.sensors {
        say("sensor", format!("{s:?}"));
    }
    say("sensor count", report.sensor_count.to_string());
    say("files by status", format!("{:?}", report.files_by_status));
    out
}

#[test]
fn sqlite_and_postgresql_keep_the_same_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contract.db");
    let mut sqlite = SqliteStore::open(path.to_str().unwrap()).unwrap();
    let theirs = transcript(&mut sqlite);

    // What the loader and the sink rely on, checked on one backend (the other must agree).
    let expect = [
        "load f-10: inserted 3 duplicates 0 elsewhere false",
        "load f-2b: inserted 2 duplicates 1 elsewhere false",
        "load f-conflict: conflict count 1 first 3",
        "stream first: inserted 2 duplicates 0",
        "stream again: inserted 0 duplicates 2",
        r#"stream positions: [StreamPosition { partition_id: "2", next_offset: 6 }]"#,
        "sensor count: 2",
    ];
    for line in expect {
        assert!(
            theirs.iter().any(|l| l == line),
            "missing `{line}` in\n{}",
            theirs.join("\n")
        );
    }
    assert_eq!(
        theirs
            .iter()
            .filter(|l| l.starts_with("expected missing"))
            .count(),
        1,
        "{}",
        theirs.join("\n")
    );

    let Some(pg) = test_support::PgDatabase::create() else {
        return;
    };
    let mut postgres = PostgresStore::open(&pg.url, None).unwrap();
    let ours = transcript(&mut postgres);
    for (i, (s, p)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(s, p, "step {i}: SQLite and PostgreSQL disagree");
    }
    assert_eq!(theirs.len(), ours.len());
}
