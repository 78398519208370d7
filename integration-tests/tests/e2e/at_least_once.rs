//! At-least-once under failure: a consumer killed with SIGKILL loses nothing and re-reads
//! only what it had not committed; two consumers in one group split the partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use test_support::{Broker, json_lines, tool, unique};

#[test]
fn sigkilled_consumer_loses_nothing_and_rereads_only_uncommitted_events() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 30_000, 40);
    let topic = unique("kill");
    // Normal batching: the consumer resumes at committed offsets in the middle of batches.
    let input = input.to_str().unwrap();
    produce(&broker, &topic, &["--partitions", "3", "--input", input]);

    // First run, killed mid-stream; it commits every 100 ms. The broker gives a dead
    // member's partitions away after its session timeout: 6 s (the broker's minimum) rather
    // than librdkafka's 45 s keeps the second run from waiting. A kill is only a test when
    // it falls after a commit landed and before the end of the topic: output reaches the file
    // when it is flushed, just before a commit is sent, so the kill can come between the two
    // or (on a fast machine) after everything; then the attempt is repeated with a fresh group.
    let mut attempt = 0;
    let (group, first) = loop {
        attempt += 1;
        let group = unique("g");
        let first_out = dir.path().join(format!("first-{attempt}.jsonl"));
        let mut child = crate::common::group_member(&broker, &topic, &group, "100ms")
            .args(["-X", "session.timeout.ms=6000"])
            .stdout(std::fs::File::create(&first_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_json_lines(&first_out).len() < 2000 {
            assert!(Instant::now() < deadline, "consumer made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let _ = child.wait();
        let first = read_json_lines(&first_out);
        let committed = total_committed(&lag(&broker, &group, &topic));
        if committed > 0 && first.len() < ids.len() {
            break (group, first);
        }
        assert!(
            attempt < 5,
            "five kills all fell before the first commit or after the last event (last: {} read, {committed} committed)",
            first.len()
        );
    };

    // Second run: it starts at whatever the group had committed when the first died.
    let out = test_support::run(tool("consumer", &broker).args([
        "--topic",
        &topic,
        "--group",
        &group,
        "--idle-timeout",
        "15s",
    ]));
    assert!(out.status.success(), "{}", test_support::stderr(&out));
    let second = json_lines(&out);
    let second_log = test_support::stderr(&out);
    let dup_in = |lines: &[Value]| lines.len() - set(&event_ids(lines)).len();
    assert_eq!(dup_in(&first), 0, "run 1 read an event twice");
    assert_eq!(
        dup_in(&second),
        0,
        "run 2 read an event twice: {second_log}"
    );
    let mut resumed_at: BTreeMap<i64, i64> = BTreeMap::new();
    for l in &second {
        let p = l["partition"].as_i64().unwrap();
        let o = l["offset"].as_i64().unwrap();
        let first_seen = resumed_at.entry(p).or_insert(o);
        *first_seen = (*first_seen).min(o);
    }
    let mut written: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for l in &first {
        written
            .entry(l["partition"].as_i64().unwrap())
            .or_default()
            .insert(l["offset"].as_i64().unwrap());
    }
    // Nothing committed that was not written out: every offset below each resume point
    // is in the first run's output.
    for (p, start) in &resumed_at {
        let offsets = written.get(p).cloned().unwrap_or_default();
        let missing = (0..*start).filter(|o| !offsets.contains(o)).count();
        assert_eq!(
            missing, 0,
            "partition {p}: committed {start} past {missing} events never written out"
        );
    }
    let mut all = set(&event_ids(&first));
    all.extend(set(&event_ids(&second)));
    let lost = set(&ids).difference(&all).count();
    assert_eq!(
        lost,
        0,
        "{lost} events lost (first run {} lines, second {})",
        first.len(),
        second.len()
    );
    // Re-read exactly the written-but-uncommitted tail, nothing more.
    let reread = first.len() + second.len() - ids.len();
    let uncommitted_tail: usize = written
        .iter()
        .map(|(p, offs)| {
            let start = resumed_at.get(p).copied().unwrap_or(i64::MAX);
            offs.iter().filter(|o| **o >= start).count()
        })
        .sum();
    eprintln!(
        "first run {} events, second {}, re-read {reread}",
        first.len(),
        second.len()
    );
    assert_eq!(
        reread, uncommitted_tail,
        "re-read more than the uncommitted tail"
    );
    assert!(
        reread < first.len(),
        "commits did not happen during the first run"
    );
}

#[test]
fn two_consumers_in_one_group_split_the_partitions() {
    let broker = Broker::plaintext();
    let topic = unique("split");
    let group = unique("g");
    produce(&broker, &topic, &["--partitions", "4", "--generate", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        tool("consumer", &broker)
            .args(["--topic", &topic, "--group", &group])
            .stdout(std::fs::File::create(dir.path().join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    let mut a = start("a");
    let mut b = start("b");
    // Let both join before the events arrive, then feed them over a few seconds.
    std::thread::sleep(Duration::from_secs(4));
    produce(&broker, &topic, &["--generate", "4000", "--rate", "1500"]);
    // Done when the group has committed everything (commits every second), whatever the
    // machine's load; then both stop on SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(90);
    while total_committed(&lag(&broker, &group, &topic)) < 4001 {
        assert!(
            Instant::now() < deadline,
            "the group never committed all 4001 events"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for child in [&a, &b] {
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    }
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let read = |name: &str| read_json_lines(&dir.path().join(format!("{name}.out")));
    let (la, lb) = (read("a"), read("b"));
    assert!(
        !la.is_empty() && !lb.is_empty(),
        "one consumer got nothing: {} / {}",
        la.len(),
        lb.len()
    );
    let parts = |lines: &[Value]| -> BTreeSet<i64> {
        lines
            .iter()
            .map(|l| l["partition"].as_i64().unwrap())
            .collect()
    };
    let mut all = set(&event_ids(&la));
    all.extend(set(&event_ids(&lb)));
    assert_eq!(all.len(), 4001, "together they see everything");
    // A partition may change owner in a rebalance while events flow; the revoked owner
    // commits before letting go, so the new owner re-reads nothing.
    let duplicates = la.len() + lb.len() - all.len();
    eprintln!(
        "partitions {:?} / {:?}, {duplicates} duplicates",
        parts(&la),
        parts(&lb)
    );
    assert_eq!(duplicates, 0, "events read twice across the rebalance");
}
