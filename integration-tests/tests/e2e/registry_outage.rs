//! A schema registry that is down is waited for, never taken as an answer: the consumer
//! neither dead-letters nor commits events it could not decode because of the outage, and
//! the capture-loader fails the file (tried again later) instead of loading it undecoded.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use test_support::{Broker, TestSchemaRegistry, run, stderr, tool, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_waits_out_a_registry_outage_without_dead_lettering_or_committing() {
    let registry = TestSchemaRegistry::start().await;
    let broker = Broker::plaintext();
    let topic = unique("outage");
    let dlq = unique("dlq");
    let group = unique("g");
    produce(&broker, &dlq, &["--partitions", "1", "--generate", "0"]);
    let sent = produce(
        &broker,
        &topic,
        &[
            "--partitions",
            "2",
            "--generate",
            "200",
            "--schema-registry-url",
            &registry.url,
        ],
    );
    assert_eq!(sent["sent"], 200);

    registry.set_unavailable(true);
    let dir = tempfile::tempdir().unwrap();
    let lines_path = dir.path().join("out.jsonl");
    let mut child = tool("consumer", &broker)
        .args(["--topic", &topic, "--group", &group, "--max-events", "200"])
        .args(["--idle-timeout", "60s", "--dead-letter-topic", &dlq])
        .args([
            "--schema-registry-url",
            &registry.url,
            "--commit-interval",
            "200ms",
        ])
        .stdout(std::fs::File::create(&lines_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Down: nothing written, nothing committed, nothing dead-lettered.
    assert_eq!(std::fs::read_to_string(&lines_path).unwrap(), "");
    assert_eq!(total_committed(&lag(&broker, &group, &topic)), 0);
    assert!(
        child.try_wait().unwrap().is_none(),
        "it must wait, not stop"
    );

    registry.set_unavailable(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not finish after the registry came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("retrying in"), "the wait is visible: {err}");
    let lines = read_json_lines(&lines_path);
    assert_eq!(lines.len(), 200);
    assert!(
        lines.iter().all(|l| l.get("error").is_none()),
        "all decoded"
    );
    assert_eq!(total_committed(&lag(&broker, &group, &topic)), 200);
    assert_eq!(total_committed(&lag(&broker, &unique("nobody"), &dlq)), 0);
    let dead = lag(&broker, "nobody", &dlq);
    let high: i64 = dead["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(high, 0, "nothing was dead-lettered");

    // Down for longer than --registry-retry-for: it stops without committing (exit 2).
    registry.set_unavailable(true);
    let other = unique("g");
    let out = run(tool("consumer", &broker)
        .args(["--topic", &topic, "--group", &other, "--max-events", "200"])
        .args([
            "--schema-registry-url",
            &registry.url,
            "--registry-retry-for",
            "2s",
        ]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("stayed unreachable"), "{err}");
    assert_eq!(total_committed(&lag(&broker, &other, &topic)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_fails_a_file_while_the_registry_is_down_and_loads_it_after() {
    let registry = TestSchemaRegistry::start().await;
    let broker = Broker::plaintext();
    let topic = unique("outage-capture");
    produce(
        &broker,
        &topic,
        &[
            "--partitions",
            "1",
            "--generate",
            "50",
            "--schema-registry-url",
            &registry.url,
        ],
    );
    // Capture files with the Confluent-framed bodies as they are.
    let dir = tempfile::tempdir().unwrap();
    let capture = capture_locally(&broker, &topic, 50, dir.path());

    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let load = || {
        run(
            std::process::Command::new(test_support::bin("capture-loader"))
                .args(["load", capture.to_str().unwrap(), "--summary-json"])
                .env("DATABASE_URL", &db)
                .env("SCHEMA_REGISTRY_URL", &registry.url),
        )
    };
    registry.set_unavailable(true);
    let out = load();
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        (s["files_failed"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert!(
        stderr(&out).contains("tried again on the next run"),
        "{}",
        stderr(&out)
    );

    registry.set_unavailable(false);
    let out = load();
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(s["events_inserted"], 50, "{s}");
    assert_eq!(s["undecodable_bodies"], 0, "{s}");
}
