//! The broker stops and comes back (controlled shutdown, durable log directory) while the
//! producer is sending and a consumer is reading: every event the producer reported as
//! delivered is read back exactly once; what it did not deliver it names, one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use test_support::{Listener, PrivateKafka, json_lines, tool, unique};

#[test]
fn broker_restart_while_producing_loses_nothing_acknowledged_and_duplicates_nothing() {
    let kafka = PrivateKafka::start();
    let broker = kafka.broker(Listener::Plaintext);
    let topic = unique("restart");
    let group = unique("g");
    broker.create_topic(&topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 12_000, 30);

    // About eight seconds of sending at 1500 events/s; the broker is away for three of them.
    let summary_path = dir.path().join("summary.json");
    let log_path = dir.path().join("producer.log");
    let mut producer = tool("producer", &broker)
        .args(["--topic", &topic, "--input"])
        .arg(&input)
        .args(["--rate", "1500", "--summary-json", "--log-format", "json"])
        .args(["--flush-timeout", "120s"])
        .stdout(std::fs::File::create(&summary_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    // A consumer in the group reads across the restart too, committing every 200 ms.
    let live_out = dir.path().join("live.jsonl");
    let mut live = crate::common::group_member(&broker, &topic, &group, "200ms")
        .stdout(std::fs::File::create(&live_out).unwrap())
        .stderr(std::fs::File::create(dir.path().join("live.log")).unwrap())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while read_json_lines(&live_out).len() < 2000 {
        assert!(
            Instant::now() < deadline,
            "nothing flowed before the restart: {}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("live.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = Instant::now();
    kafka.stop();
    std::thread::sleep(Duration::from_secs(3));
    kafka.restart();
    eprintln!("broker away for {:?}", stopped.elapsed());

    let status = producer.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let summary = read_json_lines(&summary_path)
        .pop()
        .unwrap_or_else(|| panic!("no summary ({status}): {log}"));
    let sent = summary["sent"].as_u64().unwrap();
    let failed = summary["failed"].as_u64().unwrap();
    // Every event not delivered is named by its input line (the first 1000 of them).
    let undelivered: BTreeSet<usize> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "event not delivered")
        .filter_map(|l| {
            l["origin"]
                .as_str()?
                .strip_prefix("input line ")?
                .parse()
                .ok()
        })
        .collect();
    eprintln!(
        "producer {status}: {sent} delivered, {failed} failed, {} named",
        undelivered.len()
    );
    assert_eq!(
        sent + failed,
        ids.len() as u64,
        "every event accounted: {summary}"
    );
    assert_eq!(
        undelivered.len() as u64,
        failed.min(1000),
        "undelivered events named: {log}"
    );
    assert_eq!(
        status.success(),
        failed == 0,
        "exit status says whether all arrived"
    );
    let delivered: BTreeSet<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| !undelivered.contains(&(i + 1)))
        .map(|(_, id)| id.clone())
        .collect();

    // The live consumer goes on after the restart; stop it once the group has committed
    // everything there is, then read the whole topic afresh.
    let deadline = Instant::now() + Duration::from_secs(90);
    while total_committed(&lag(&broker, &group, &topic)) < sent as i64 {
        assert!(
            Instant::now() < deadline,
            "the live consumer never caught up after the restart: {}",
            std::fs::read_to_string(dir.path().join("live.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    kill(Pid::from_raw(live.id() as i32), Signal::SIGTERM).unwrap();
    assert!(live.wait().unwrap().success());

    let out = test_support::run(
        tool("consumer", &broker)
            .args(["--topic", &topic, "--group", &unique("after")])
            .args(["--idle-timeout", "10s"])
            .stderr(Stdio::piped()),
    );
    assert!(out.status.success(), "{}", test_support::stderr(&out));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in event_ids(&json_lines(&out)) {
        *seen.entry(id).or_default() += 1;
    }
    let missing = delivered
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .count();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        missing, 0,
        "{missing} delivered events are not in the topic"
    );
    assert!(twice.is_empty(), "events stored twice: {twice:?}");

    // The live consumer, across the restart: everything, with re-reads only of what it had
    // not yet committed (at least once), never a loss.
    let live_ids = set(&event_ids(&read_json_lines(&live_out)));
    let lost = delivered.difference(&live_ids).count();
    assert_eq!(
        lost, 0,
        "the consumer across the restart missed {lost} events"
    );
}
