//! The whole architecture without Azure: producer → broker → consumer writing Capture files
//! (`--capture-dir`) → capture-loader → database, with the same event ids at the end.

use std::process::Command;

use crate::common::*;
use test_support::{Broker, bin, run, stderr, tool, unique};

fn db_event_ids(db: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT json_extract(body_json, '$.event_id') FROM capture_events")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn produced_events_reach_the_database_through_local_capture_exactly_once() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 2000, 30);
    let topic = unique("capture");
    let group = unique("g");
    produce(
        &broker,
        &topic,
        &["--partitions", "3", "--input", input.to_str().unwrap()],
    );

    let capture_dir = dir.path().join("capture");
    let out = run(tool("consumer", &broker)
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--max-events",
            "2000",
            "--idle-timeout",
            "15s",
            "--capture-window",
            "1s",
            "--capture-dir",
        ])
        .arg(&capture_dir));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("capture file written"),
        "{}",
        stderr(&out)
    );
    // Offsets were committed once the files were written.
    assert_eq!(total_committed(&lag(&broker, &group, &topic)), 2000);

    let db = dir.path().join("capture.db");
    let load = |expect_inserted: u64| {
        let out = Command::new(bin("capture-loader"))
            .args(["load", "--summary-json"])
            .arg(&capture_dir)
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["events_inserted"].as_u64(), Some(expect_inserted), "{s}");
        assert_eq!(
            s["undecodable_bodies"], 0,
            "single-object bodies are decoded: {s}"
        );
    };
    load(2000);
    load(0);
    let got = db_event_ids(&db);
    assert_eq!(got.len(), 2000);
    assert_eq!(set(&got), set(&ids));

    // Path layout and system properties as Capture writes them.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (namespace, hub, key): (String, String, String) = conn
        .query_row(
            "SELECT namespace, event_hub, partition_key FROM capture_events LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (namespace.as_str(), hub.as_str()),
        ("local", topic.as_str())
    );
    assert!(
        key.starts_with("sensor-"),
        "the Kafka key is the partition key"
    );
}

#[test]
fn non_utf8_keys_and_repeated_header_keys_survive_local_capture() {
    let broker = Broker::plaintext();
    let topic = unique("odd-keys");
    produce(&broker, &topic, &["--partitions", "1", "--generate", "0"]);
    // An independent client writes what our producer never would.
    let script = r#"
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1]})
p.produce(sys.argv[2], key=b"\xff\xfe-binary", value=b'{"a":1}',
          headers=[("h", b"first"), ("h", b"second"), ("other", b"x")])
if p.flush(30):
    raise SystemExit("not delivered")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &broker.bootstrap, &topic])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let capture = capture_locally(&broker, &topic, 1, dir.path());
    let db = dir.path().join("c.db");
    let out = run(Command::new(bin("capture-loader"))
        .args(["load", capture.to_str().unwrap()])
        .env("DATABASE_URL", format!("sqlite://{}", db.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (system, properties): (String, String) = conn
        .query_row(
            "SELECT system_properties, properties FROM capture_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        system.contains("x-opt-kafka-key"),
        "the binary key was dropped: {system}"
    );
    assert!(!system.contains("x-opt-partition-key"), "{system}");
    let properties: serde_json::Value = serde_json::from_str(&properties).unwrap();
    assert!(
        properties.get("h").is_some() && properties.get("h#2").is_some(),
        "{properties}"
    );
    assert!(properties.get("other").is_some(), "{properties}");
}
