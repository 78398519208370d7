//! Producer → broker → consumer, as processes against a real broker.

use crate::common::*;
use test_support::{Broker, run, stderr, tool, unique};

#[test]
fn every_event_produced_is_consumed_with_its_id() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 3000, 50);
    let topic = unique("pipeline");
    let summary = produce(
        &broker,
        &topic,
        &["--partitions", "3", "--input", input.to_str().unwrap()],
    );
    assert_eq!(summary["sent"], 3000, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["invalid"], 0);
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    let lines = consume(&broker, &topic, &unique("g"), 3000, &[]);
    let got = event_ids(&lines);
    assert_eq!(got.len(), 3000, "duplicates or losses");
    assert_eq!(set(&got), set(&ids));
    let first = &lines[0];
    assert_eq!(first["encoding"], "avro-single-object");
    assert_eq!(first["topic"], topic.as_str());
    assert!(first["key"].as_str().unwrap().starts_with("sensor-"));
    assert!(first["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
}

#[test]
fn one_sensors_events_stay_in_order_in_one_partition() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = write_events(dir.path(), 2000, 20);
    let topic = unique("order");
    produce(
        &broker,
        &topic,
        &["--partitions", "4", "--input", input.to_str().unwrap()],
    );
    let lines = consume(&broker, &topic, &unique("g"), 2000, &[]);
    let mut per_key: std::collections::HashMap<String, (i64, u64)> = Default::default();
    let mut partitions_used = std::collections::BTreeSet::new();
    for l in &lines {
        let key = l["key"].as_str().unwrap().to_string();
        assert_eq!(
            l["value"]["sensor_id"],
            key.as_str(),
            "key is the sensor id"
        );
        let partition = l["partition"].as_i64().unwrap();
        partitions_used.insert(partition);
        let seq: u64 = l["value"]["properties"]["seq"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let entry = per_key.entry(key.clone()).or_insert((partition, 0));
        assert_eq!(entry.0, partition, "{key} moved between partitions");
        assert_eq!(seq, entry.1 + 1, "{key} out of order");
        entry.1 = seq;
    }
    assert_eq!(per_key.len(), 20);
    assert!(
        partitions_used.len() > 1,
        "keys should spread over partitions"
    );
}

#[test]
fn generated_events_are_unique_and_all_delivered() {
    let broker = Broker::plaintext();
    let topic = unique("gen");
    let summary = produce(
        &broker,
        &topic,
        &["--partitions", "2", "--generate", "5000", "--sensors", "7"],
    );
    assert_eq!(summary["sent"], 5000);
    let lines = consume(&broker, &topic, &unique("g"), 5000, &["--from", "earliest"]);
    let ids = event_ids(&lines);
    assert_eq!(set(&ids).len(), 5000);
    let sensors: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sensors.len(), 7);
}

#[test]
fn invalid_input_lines_stop_the_producer_unless_skipped() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let good = |i: u32| {
        format!(
            r#"{{"event_id":"00000000-0000-4000-8000-00000000000{i}","sensor_id":"s{i}","timestamp":"2026-11-22T08:00:00Z","temperature":1.5}}"#
        )
    };
    let input = dir.path().join("mixed.jsonl");
    std::fs::write(
        &input,
        [
            good(1),
            "{not json".to_string(),
            good(2),
            r#"{"event_id":"00000000-0000-4000-8000-000000000009","sensor_id":"s9","timestamp":0}"#
                .to_string(),
            good(3),
        ]
        .join("\n"),
    )
    .unwrap();
    let topic = unique("invalid");

    let out = run(tool("producer", &broker)
        .args([
            "--topic",
            &topic,
            "--ensure-topic",
            "--summary-json",
            "--input",
        ])
        .arg(&input));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["invalid"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let err = stderr(&out);
    assert!(err.contains("input line 2"), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(err.contains("--skip-invalid"), "{err}");

    let out = run(tool("producer", &broker)
        .args([
            "--topic",
            &topic,
            "--summary-json",
            "--skip-invalid",
            "--input",
        ])
        .arg(&input));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["invalid"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    let err = stderr(&out);
    assert!(err.contains("input line 4"), "{err}");
    assert!(
        err.contains("field `temperature`: required field is missing"),
        "{err}"
    );

    // Everything delivered is readable: 1 from the first run, 3 from the second.
    let lines = consume(&broker, &topic, &unique("g"), 4, &[]);
    assert_eq!(lines.len(), 4);
}

#[test]
fn oversized_events_are_rejected_before_sending() {
    let broker = Broker::plaintext();
    let topic = unique("big");
    let out = run(tool("producer", &broker).args([
        "--topic",
        &topic,
        "--ensure-topic",
        "--summary-json",
        "--generate",
        "3",
        "--max-event-bytes",
        "50",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("more than --max-event-bytes 50"), "{err}");
    assert_eq!(summary(&out)["sent"], 0);
}

#[test]
fn json_encoding_round_trips_and_a_missing_topic_is_explained() {
    let broker = Broker::plaintext();
    let topic = unique("json");
    let out = run(tool("producer", &broker).args(["--topic", &topic, "--generate", "1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ensure-topic"), "{}", stderr(&out));

    produce(&broker, &topic, &["--generate", "50", "--encoding", "json"]);
    let lines = consume(&broker, &topic, &unique("g"), 50, &[]);
    assert_eq!(lines.len(), 50);
    assert!(lines.iter().all(|l| l["encoding"] == "json"));
    assert!(
        lines[0]["value"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn lag_reports_committed_offsets_and_watermarks() {
    let broker = Broker::plaintext();
    let topic = unique("lag");
    let group = unique("g");
    produce(&broker, &topic, &["--partitions", "2", "--generate", "100"]);
    let lines = consume(&broker, &topic, &group, 30, &[]);
    assert_eq!(lines.len(), 30);
    let report = &lag(&broker, &group, &topic);
    let parts = report["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let committed = total_committed(report);
    let high: i64 = parts
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 30, "{report}");
    assert_eq!(high, 100, "{report}");
    assert_eq!(report["total_lag"], 70, "{report}");

    // The table form, and a group that committed nothing lags by everything.
    let out = run(tool("consumer", &broker).args(["lag", "--group", "nobody", "--topic", &topic]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("total lag of group nobody: 100"), "{text}");
}

#[test]
fn events_librdkafka_refuses_are_accounted_and_the_rest_delivered() {
    let broker = Broker::plaintext();
    let topic = unique("refused");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..100 {
        let filler = if i % 10 == 9 {
            "x".repeat(3000)
        } else {
            String::new()
        };
        text.push_str(
            &serde_json::json!({
                "event_id": format!("00000000-0000-4000-8000-{i:012}"),
                "sensor_id": "sensor-1",
                "timestamp": 1_795_334_400_000_i64 + i,
                "temperature": 20.5,
                "properties": {"filler": filler},
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    // librdkafka's own limit below --max-event-bytes: it refuses the large ones itself.
    let out = run(tool("producer", &broker)
        .args([
            "--topic",
            &topic,
            "--ensure-topic",
            "--partitions",
            "1",
            "--summary-json",
        ])
        .arg("--input")
        .arg(&input)
        .args(["-X", "message.max.bytes=2000"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["failed"].as_u64()),
        (Some(90), Some(10)),
        "{s}"
    );
    for line in [10, 20, 100] {
        assert!(
            err.contains(&format!("input line {line}")),
            "line {line} not named: {err}"
        );
    }
    assert!(err.contains("refused by librdkafka"), "{err}");
    let lines = consume(&broker, &topic, &unique("g"), 90, &[]);
    assert_eq!(lines.len(), 90);
}

#[test]
fn an_over_long_or_non_utf8_line_costs_only_itself() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    let event = |i: usize| {
        serde_json::json!({
            "event_id": format!("00000000-0000-4000-8000-{i:012}"),
            "sensor_id": "sensor-1",
            "timestamp": 1_795_334_400_000_i64,
            "temperature": 20.5,
        })
        .to_string()
            + "\n"
    };
    let mut bytes = Vec::new();
    for i in 0..5 {
        bytes.extend_from_slice(event(i).as_bytes());
    }
    // 20 MB on one line, far over the 1 MB event limit: refused without being kept.
    bytes.extend_from_slice(b"{\"event_id\":\"");
    bytes.extend(std::iter::repeat_n(b'x', 20 << 20));
    bytes.extend_from_slice(b"\"}\n");
    bytes.extend_from_slice(b"{\"event_id\":\"\xff\xfe\"}\n");
    for i in 5..10 {
        bytes.extend_from_slice(event(i).as_bytes());
    }
    std::fs::write(&input, bytes).unwrap();

    let topic = unique("mixed");
    let out = run(tool("producer", &broker)
        .args([
            "--topic",
            &topic,
            "--ensure-topic",
            "--summary-json",
            "--skip-invalid",
        ])
        .arg("--input")
        .arg(&input));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["invalid"].as_u64()),
        (Some(10), Some(2)),
        "{s}"
    );
    assert!(
        err.contains("over the event limit") && err.contains("input line 6"),
        "{err}"
    );
    assert!(
        err.contains("not valid UTF-8") && err.contains("input line 7"),
        "{err}"
    );

    // Without --skip-invalid: what came before is delivered, then it stops (exit 1).
    let topic = unique("mixed");
    let out = run(tool("producer", &broker)
        .args(["--topic", &topic, "--ensure-topic", "--summary-json"])
        .arg("--input")
        .arg(&input));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(summary(&out)["sent"], 5);
}
