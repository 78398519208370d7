//! Event Hubs' misbehaviours, reproduced on librdkafka's mock cluster (in this process; the
//! tools connect to it over loopback like to any broker): errors injected per request type,
//! brokers going down and up, round-trip delays, group coordinators moving. Each test states
//! the behaviour a user wants and checks it end to end with the producer and consumer
//! binaries. README: "What Event Hubs does differently".

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{event_ids, set, write_events};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;
use test_support::{TOOL_ENV, bin, json_lines, stderr, unique};

type Mock = MockCluster<'static, DefaultProducerContext>;

fn mock(brokers: i32, topic: &str, partitions: i32) -> Mock {
    let cluster = MockCluster::new(brokers).expect("mock cluster");
    cluster
        .create_topic(topic, partitions, 1)
        .expect("mock topic");
    cluster
}

/// One of the tools, pointed at the mock cluster and nothing else.
fn tool(name: &str, cluster: &Mock) -> Command {
    let mut cmd = Command::new(bin(name));
    for var in TOOL_ENV {
        cmd.env_remove(var);
    }
    cmd.env("KAFKA_BOOTSTRAP_SERVERS", cluster.bootstrap_servers())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

fn producer(cluster: &Mock, topic: &str, input: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = tool("producer", cluster);
    cmd.args(["--topic", topic, "--summary-json", "--input"])
        .arg(input)
        .args(extra);
    cmd
}

/// A producer run that delivered all `count` events and failed none.
fn all_delivered(out: &Output, count: u64) {
    assert!(out.status.success(), "{}", stderr(out));
    let s = summary(out);
    assert_eq!(
        (s["sent"].as_u64(), s["failed"].as_u64()),
        (Some(count), Some(0)),
        "{s}"
    );
}

fn summary(out: &Output) -> Value {
    json_lines(out)
        .pop()
        .unwrap_or_else(|| panic!("no summary: {}", stderr(out)))
}

/// Read the topic to its end with the consumer; its JSON lines.
fn read_all(cluster: &Mock, topic: &str, group: &str, count: usize, idle: &str) -> Output {
    tool("consumer", cluster)
        .env(
            "RUST_LOG",
            std::env::var("FAULTS_LOG").unwrap_or("info".into()),
        )
        .args(["--topic", topic, "--group", group, "--idle-timeout", idle])
        .args([
            "--max-events",
            &count.to_string(),
            "--commit-interval",
            "100ms",
        ])
        .output()
        .unwrap()
}

/// Every event exactly once, and each sensor's events in the order they were sent.
fn exactly_once_in_order(lines: &[Value], ids: &[String]) {
    let got = event_ids(lines);
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates in the topic");
    assert_eq!(
        unique,
        ids.iter().collect::<BTreeSet<_>>(),
        "events lost or foreign"
    );
    // One sensor = one key = one partition: its per-sensor sequence must rise with the offset.
    let mut by_key: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for l in lines {
        let seq: u64 = l["value"]["properties"]["seq"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        by_key
            .entry(l["key"].as_str().unwrap().to_string())
            .or_default()
            .push((l["offset"].as_i64().unwrap(), seq));
    }
    for (key, mut events) in by_key {
        events.sort();
        assert!(
            events.windows(2).all(|w| w[0].1 < w[1].1),
            "{key}: events out of order"
        );
    }
}

/// `consumer lag --json` on the mock cluster.
fn lag(cluster: &Mock, group: &str, topic: &str) -> Value {
    let out = tool("consumer", cluster)
        .args(["lag", "--json", "--group", group, "--topic", topic])
        .output()
        .unwrap();
    assert!(out.status.success(), "consumer lag: {}", stderr(&out));
    json_lines(&out).remove(0)
}

/// The group's committed offsets per partition, read every 100 ms while `running`: they
/// must never go backwards. Returns the last reading.
fn watch_commits(
    cluster: &Mock,
    group: String,
    topic: String,
    running: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<i64, i64>> {
    let bootstrap = cluster.bootstrap_servers();
    std::thread::spawn(move || {
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        while running.load(Ordering::Relaxed) {
            let out = Command::new(bin("consumer"))
                .env_clear()
                .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
                .args(["lag", "--json", "--group", &group, "--topic", &topic])
                .args(["--timeout", "5s"])
                .output()
                .unwrap();
            if let Some(report) = json_lines(&out).pop() {
                for p in report["partitions"].as_array().into_iter().flatten() {
                    let (Some(partition), Some(committed)) =
                        (p["partition"].as_i64(), p["committed"].as_i64())
                    else {
                        continue;
                    };
                    let before = last.insert(partition, committed).unwrap_or(0);
                    assert!(
                        committed >= before,
                        "partition {partition}: committed offset went back from {before} to {committed}"
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last
    })
}

/// Wanted: throttling, leader moves, timeouts and dropped connections during production are
/// retried invisibly; idempotence keeps every key's order and writes nothing twice.
#[test]
fn transient_produce_errors_are_retried_invisibly_in_order_without_duplicates() {
    let topic = unique("transient");
    let cluster = mock(3, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 5000, 20);
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    all_delivered(&out, 5000);
    let read = read_all(&cluster, &topic, &unique("g"), 5000, "10s");
    assert!(read.status.success(), "{}", stderr(&read));
    exactly_once_in_order(&json_lines(&read), &ids);
}

/// Wanted: an error the broker will give again (a message too large for Event Hubs' 1 MB,
/// a policy violation such as compression on Standard) fails those events, each reported with
/// the broker's reason, counted in the summary, and the exit status says so; the other
/// events are delivered.
#[test]
fn permanent_produce_errors_are_reported_per_event_with_the_brokers_reason() {
    use RDKafkaRespErr::*;
    for (error, reason) in [
        (
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            "Message size too large",
        ),
        (RD_KAFKA_RESP_ERR_POLICY_VIOLATION, "Policy violation"),
    ] {
        let topic = unique("permanent");
        let cluster = mock(1, &topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let (input, _) = write_events(dir.path(), 3000, 10);
        cluster.request_errors(RDKafkaApiKey::Produce, &[error, error]);
        let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
        let log = stderr(&out);
        let s = summary(&out);
        let (sent, failed) = (s["sent"].as_u64().unwrap(), s["failed"].as_u64().unwrap());
        assert_eq!(out.status.code(), Some(1), "{s}\n{log}");
        assert!(failed > 0 && sent + failed == 3000, "{s}");
        assert!(log.contains(reason), "the broker's reason: {log}");
        // Exactly what was reported sent is in the topic.
        let read = read_all(&cluster, &topic, &unique("g"), 3000, "8s");
        assert_eq!(json_lines(&read).len() as u64, sent, "{}", stderr(&read));
    }
}

/// Wanted: a broker going away during production (an Event Hubs gateway restart), and the
/// partition leaders moving, cost nothing: every event acknowledged, none twice, order kept.
#[test]
fn a_broker_down_and_leaders_moving_during_production_lose_and_duplicate_nothing() {
    let topic = unique("down-produce");
    let cluster = mock(3, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 6000, 30);
    // Paced to last about 3 s, so that the outage falls in the middle.
    let child = producer(&cluster, &topic, &input, &["--rate", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_up(1).unwrap();
    // And the leaders move (Event Hubs rebalancing partitions across its brokers).
    std::thread::sleep(Duration::from_millis(300));
    for partition in 0..3 {
        cluster
            .partition_leader(&topic, partition, Some((partition + 1) % 3 + 1))
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    all_delivered(&out, 6000);
    let read = read_all(&cluster, &topic, &unique("g"), 6000, "10s");
    assert!(read.status.success(), "{}", stderr(&read));
    exactly_once_in_order(&json_lines(&read), &ids);
}

/// Wanted: a broker going away during consumption: the consumer waits for it and goes on;
/// nothing is skipped, committed positions never go backwards, and at the end everything
/// read is committed.
#[test]
fn a_broker_down_and_back_during_consumption_resumes_without_skipping() {
    let topic = unique("down-consume");
    let cluster = mock(3, &topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 6000, 30);
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let group = unique("g");
    // The broker that goes down leads partitions but does not coordinate the group: one
    // vanishing during the group's first join stalls that join for the request timeout
    // (minutes), a different fault, not reproducible reliably here.
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 1)
        .unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let watcher = watch_commits(&cluster, group.clone(), topic.clone(), running.clone());
    // Slowed by round trips, so that the outage falls in the middle of the stream.
    for broker in 1..=3 {
        cluster
            .broker_round_trip_time(broker, Duration::from_millis(100))
            .unwrap();
    }
    let child = tool("consumer", &cluster)
        // librdkafka's reconnect backoff grows to 10 s while a broker is away.
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--idle-timeout",
            "40s",
        ])
        .args(["--max-events", "6000", "--commit-interval", "100ms"])
        .args(["-X", "max.partition.fetch.bytes=20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_down(2).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    cluster.broker_up(2).unwrap();
    let out = child.wait_with_output().unwrap();
    running.store(false, Ordering::Relaxed);
    let last = watcher.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(set(&event_ids(&lines)), set(&ids));
    assert_eq!(
        lines.len(),
        6000,
        "one consumer, no rebalance: nothing read twice"
    );
    assert!(!last.is_empty(), "commits were observed during the run");
}

/// Wanted: commits that fail (rebalance in progress, coordinator unavailable or moved,
/// timeouts) are retried at the next interval, even by an idle consumer, and never counted
/// as done before the broker said so; positions never go backwards.
#[test]
fn failed_commits_are_retried_until_they_land() {
    let topic = unique("commit");
    let cluster = mock(3, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = write_events(dir.path(), 2000, 10);
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let group = unique("g");
    // Everything is read at once; then the consumer idles while its commits fail and are
    // retried: the last commit must still land before the idle timeout ends the run.
    let read = read_all(&cluster, &topic, &group, 100_000, "8s");
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(json_lines(&read).len(), 2000);
    let log = stderr(&read);
    // (librdkafka retries the coordinator errors itself; the timeouts reach the consumer,
    // which commits again at the next interval.)
    let report = lag(&cluster, &group, &topic);
    assert_eq!(
        crate::common::total_committed(&report),
        2000,
        "{report}\n{log}"
    );
}

/// Wanted: a commit that fails at shutdown (the last chance) is reported, with what it
/// means, in the exit status; nothing is claimed committed.
#[test]
fn a_failed_final_commit_is_reported() {
    let topic = unique("final");
    let cluster = mock(1, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = write_events(dir.path(), 500, 5);
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Every commit of this run fails: the interval is longer than the run, so the only
    // commits are the final one and the one before revocation.
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 50];
    cluster.request_errors(RDKafkaApiKey::OffsetCommit, &errors);
    let group = unique("g");
    let out = tool("consumer", &cluster)
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--idle-timeout",
            "10s",
        ])
        .args([
            "--max-events",
            "500",
            "--commit-interval",
            "1h",
            "--output",
            "none",
        ])
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("committing offsets at shutdown failed") && log.contains("timed out"),
        "{log}"
    );
    cluster.clear_request_errors(RDKafkaApiKey::OffsetCommit);
    assert_eq!(
        crate::common::total_committed(&lag(&cluster, &group, &topic)),
        0
    );
}

/// Wanted: metadata that fails for a while at start-up is waited out; a topic that
/// disappears under a running producer fails the events still to send, each with the
/// broker's reason, and the exit status says so (nothing hangs).
#[test]
fn metadata_failures_are_waited_out_and_a_vanished_topic_is_reported() {
    use RDKafkaRespErr::*;
    let topic = unique("metadata");
    let cluster = mock(1, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = write_events(dir.path(), 1000, 10);
    cluster.request_errors(
        RDKafkaApiKey::Metadata,
        &[
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["sent"].as_u64(), Some(1000));

    // Paced over ~3 s; the topic goes away after 1 s.
    let child = producer(&cluster, &topic, &input, &["--rate", "300"])
        .args(["-X", "topic.metadata.refresh.interval.ms=500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    cluster
        .topic_error(&topic, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(1), "{s}\n{log}");
    assert!(s["failed"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(
        s["sent"].as_u64().unwrap() + s["failed"].as_u64().unwrap(),
        1000,
        "{s}"
    );
    assert!(log.to_lowercase().contains("unknown topic"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(90), "it hung");
}

/// Wanted: Event Hubs throttles by answering late. With a 400 ms round trip on every broker
/// and the recommended settings, nothing times out; the producer's latency figures and the
/// lag report show the delay.
#[test]
fn throttling_delays_show_in_latency_and_lag_and_nothing_times_out() {
    let topic = unique("throttle");
    let cluster = mock(3, &topic, 3);
    for broker in 1..=3 {
        cluster
            .broker_round_trip_time(broker, Duration::from_millis(400))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 3000, 30);
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    all_delivered(&out, 3000);
    let s = summary(&out);
    assert!(s["latency_ms"]["p50"].as_f64().unwrap() >= 400.0, "{s}");
    let group = unique("g");
    let read = read_all(&cluster, &topic, &group, 1000, "20s");
    assert!(read.status.success(), "{}", stderr(&read));
    let report = lag(&cluster, &group, &topic);
    assert_eq!(report["total_lag"].as_i64(), Some(2000), "{report}");
    // And a whole read, slowed but complete.
    let read = read_all(&cluster, &topic, &unique("g"), 3000, "20s");
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(set(&event_ids(&json_lines(&read))), set(&ids));
}

/// Wanted: the group coordinator moving to another broker in the middle of a stream (Event
/// Hubs moves them during upgrades) changes nothing a user can see: commits follow it, never
/// go backwards, and nothing is skipped. (Rebalances mid-stream are tested on Apache Kafka,
/// at_least_once.rs and sink_db.rs: on the mock a second member's join never completes, the
/// group waits out the rebalance timeout.)
#[test]
fn a_moving_group_coordinator_neither_rewinds_nor_skips() {
    let topic = unique("coordinator");
    let cluster = mock(3, &topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 8000, 40);
    let out = producer(&cluster, &topic, &input, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let group = unique("g");
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 1)
        .unwrap();
    for broker in 1..=3 {
        cluster
            .broker_round_trip_time(broker, Duration::from_millis(100))
            .unwrap();
    }
    let running = Arc::new(AtomicBool::new(true));
    let watcher = watch_commits(&cluster, group.clone(), topic.clone(), running.clone());
    let child = tool("consumer", &cluster)
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--idle-timeout",
            "15s",
        ])
        .args(["--commit-interval", "100ms"])
        .args(["-X", "max.partition.fetch.bytes=20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // After the group's first join (the mock takes about 3.5 s): moving it while a JoinGroup
    // is pending stalls that join in the mock for the request timeout (minutes), a quirk of
    // the mock that is not what is tested here.
    for (at, broker) in [(5000, 2), (6500, 3)] {
        std::thread::sleep(Duration::from_millis(at).saturating_sub(started.elapsed()));
        cluster
            .coordinator(MockCoordinator::Group(group.clone()), broker)
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    running.store(false, Ordering::Relaxed);
    let last = watcher.join().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let got = set(&event_ids(&json_lines(&out)));
    assert_eq!(got.len(), ids.len(), "events skipped: {log}");
    assert!(!last.is_empty(), "commits were observed during the run");
    assert_eq!(
        crate::common::total_committed(&lag(&cluster, &group, &topic)),
        8000,
        "{log}"
    );
}
