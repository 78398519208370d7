//! Events that cannot be decoded are never dropped silently: printed with their raw bytes,
//! dead-lettered, or they stop the consumer without being committed.

use std::process::Command;

use crate::common::*;
use test_support::{Broker, json_lines, run, stderr, tool, unique};

/// Three good events, then garbage bytes and a Confluent frame with no registry to resolve
/// it, written by an independent client.
fn topic_with_bad_events(broker: &Broker) -> String {
    let topic = unique("bad");
    produce(broker, &topic, &["--partitions", "1", "--generate", "3"]);
    let out = Command::new("python3")
        .arg(interop_script())
        .args([
            "produce-raw",
            &broker.bootstrap,
            &topic,
            "fffe01",
            "000000002a0102",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    topic
}

#[test]
fn undecodable_events_are_printed_with_error_and_raw_bytes() {
    let broker = Broker::plaintext();
    let topic = topic_with_bad_events(&broker);
    let lines = consume(&broker, &topic, &unique("g"), 5, &[]);
    assert_eq!(lines.len(), 5);
    let bad: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0]["raw"], "//4B");
    assert!(bad[0]["error"].as_str().unwrap().contains("neither Avro"));
    assert!(bad[1]["error"].as_str().unwrap().contains("schema id 42"));
    assert!(
        bad[1]["error"]
            .as_str()
            .unwrap()
            .contains("--schema-registry-url")
    );
    assert_eq!(bad[0]["headers"]["origin"], "interop");
}

#[test]
fn on_undecodable_fail_stops_before_committing_the_bad_event() {
    let broker = Broker::plaintext();
    let topic = topic_with_bad_events(&broker);
    let group = unique("g");
    let out = run(tool("consumer", &broker).args([
        "--topic",
        &topic,
        "--group",
        &group,
        "--idle-timeout",
        "15s",
        "--on-undecodable",
        "fail",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        json_lines(&out).len(),
        3,
        "the good events before it are written"
    );
    assert!(stderr(&out).contains("stopping without committing it"));
    let report = lag(&broker, &group, &topic);
    assert_eq!(report["partitions"][0]["committed"], 3, "{report}");
}

#[test]
fn dead_letter_topic_receives_undecodable_events_with_their_key_headers_and_error() {
    let broker = Broker::plaintext();
    let topic = topic_with_bad_events(&broker);
    let dlq = unique("dlq");
    produce(&broker, &dlq, &["--partitions", "1", "--generate", "0"]);
    let lines = consume(
        &broker,
        &topic,
        &unique("g"),
        5,
        &["--dead-letter-topic", &dlq],
    );
    assert_eq!(lines.len(), 3, "only decodable events are written out");
    assert!(lines.iter().all(|l| l.get("error").is_none()));

    let dead = consume(&broker, &dlq, &unique("g"), 2, &[]);
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["key"], "raw");
    assert_eq!(dead[0]["raw"], "//4B", "original bytes kept");
    assert_eq!(
        dead[0]["headers"]["origin"], "interop",
        "original headers kept"
    );
    assert!(
        dead[0]["headers"]["x-dead-letter-error"]
            .as_str()
            .unwrap()
            .contains("neither Avro")
    );
    assert_eq!(
        dead[0]["headers"]["x-dead-letter-source"],
        format!("{topic}/0/3")
    );
}

/// One record whose header key is not UTF-8, written with the Kafka protocol directly.
fn raw_event_with_a_non_utf8_header_key(broker: &Broker, topic: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/raw_produce.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&broker.bootstrap, topic, "0", "fffe", r#"{"poison":true}"#])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_poison_pill_header_never_stops_the_group_and_every_good_event_arrives() {
    let broker = Broker::plaintext();
    let topic = unique("poison");
    let dir = tempfile::tempdir().unwrap();
    let (first, first_ids) = write_events(dir.path(), 2000, 10);
    produce(
        &broker,
        &topic,
        &["--partitions", "1", "--input", first.to_str().unwrap()],
    );
    raw_event_with_a_non_utf8_header_key(&broker, &topic);
    let later = dir.path().join("later");
    std::fs::create_dir(&later).unwrap();
    let (second, second_ids) = write_events(&later, 2000, 10);
    // Other ids for the second half: same generator, renamed.
    let text = std::fs::read_to_string(&second)
        .unwrap()
        .replace("-8000-", "-9000-");
    std::fs::write(&second, text).unwrap();
    let second_ids: Vec<String> = second_ids
        .iter()
        .map(|id| id.replace("-8000-", "-9000-"))
        .collect();
    produce(&broker, &topic, &["--input", second.to_str().unwrap()]);

    // Printed: the group reads past it to the end, the pill marked undecodable.
    let group = unique("g");
    let out = run(tool("consumer", &broker)
        .args(["--topic", &topic, "--group", &group, "--max-events", "4001"])
        .args(["--idle-timeout", "15s"]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4001);
    let pills: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(pills.len(), 1, "{pills:?}");
    assert!(
        pills[0]["error"]
            .as_str()
            .unwrap()
            .contains("header key is not UTF-8")
    );
    let good: Vec<serde_json::Value> = lines
        .into_iter()
        .filter(|l| l.get("error").is_none())
        .collect();
    let mut expected = set(&first_ids);
    expected.extend(set(&second_ids));
    assert_eq!(set(&event_ids(&good)), expected, "every good event arrives");
    assert_eq!(total_committed(&lag(&broker, &group, &topic)), 4001);

    // Dead-lettered: the pill goes to the dead-letter topic, with the reason.
    let dlq = unique("dlq");
    produce(&broker, &dlq, &["--partitions", "1", "--generate", "0"]);
    let out = run(tool("consumer", &broker)
        .args([
            "--topic",
            &topic,
            "--group",
            &unique("g"),
            "--max-events",
            "4001",
        ])
        .args([
            "--idle-timeout",
            "15s",
            "--dead-letter-topic",
            &dlq,
            "--output",
            "none",
        ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let dead = consume(&broker, &dlq, &unique("g"), 1, &[]);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["headers"]["x-dead-letter-error"]
            .as_str()
            .unwrap()
            .contains("header key is not UTF-8"),
        "{}",
        dead[0]
    );
}
