//! Helpers shared by the end-to-end tests.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use test_support::{Broker, json_lines, run, stderr, tool};

/// `count` telemetry events as JSON lines with known ids, spread over `sensors` keys; each
/// carries its per-sensor sequence number in `properties.seq`.
pub(crate) fn write_events(dir: &Path, count: usize, sensors: usize) -> (PathBuf, Vec<String>) {
    let path = dir.join("events.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut ids = Vec::with_capacity(count);
    let mut seq = vec![0u64; sensors];
    for i in 0..count {
        let sensor = i % sensors;
        seq[sensor] += 1;
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let event = json!({
            "event_id": id,
            "sensor_id": format!("sensor-{sensor:03}"),
            "timestamp": 1_795_334_400_000_i64 + i as i64,
            "temperature": 20.0 + (i % 10) as f64 / 10.0,
            "humidity": if i % 7 == 0 { Value::Null } else { json!(45.5) },
            "properties": {"seq": seq[sensor].to_string()},
        });
        writeln!(file, "{event}").unwrap();
        ids.push(id);
    }
    (path, ids)
}

/// Run the producer to completion; assert it succeeded; return its summary.
pub(crate) fn produce(broker: &Broker, topic: &str, args: &[&str]) -> Value {
    let out = run(tool("producer", broker)
        .args(["--topic", topic, "--ensure-topic", "--summary-json"])
        .args(args));
    assert!(
        out.status.success(),
        "producer failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    summary(&out)
}

pub(crate) fn summary(out: &Output) -> Value {
    json_lines(out)
        .pop()
        .unwrap_or_else(|| panic!("no summary on stdout: {}", stderr(out)))
}

/// The consumer as a member of `group` reading `topic`, committing every `commit_interval`
/// (a long-running process: the caller sets its output, spawns and stops it).
pub(crate) fn group_member(
    broker: &Broker,
    topic: &str,
    group: &str,
    commit_interval: &str,
) -> std::process::Command {
    let mut cmd = tool("consumer", broker);
    cmd.args(["--topic", topic, "--group", group])
        .args(["--commit-interval", commit_interval]);
    cmd
}

/// Run the consumer until `max` events or 15 s idle; assert a clean exit.
pub(crate) fn consume(
    broker: &Broker,
    topic: &str,
    group: &str,
    max: usize,
    extra: &[&str],
) -> Vec<Value> {
    let out = run(tool("consumer", broker)
        .args(["--topic", topic, "--group", group, "--idle-timeout", "15s"])
        .args(["--max-events", &max.to_string()])
        .args(extra));
    assert!(
        out.status.success(),
        "consumer failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    json_lines(&out)
}

/// Consume the first `events` of `topic` into Capture files under `dir/capture`, as
/// `consumer --capture-dir` writes them (one-second windows), and return that folder.
pub(crate) fn capture_locally(broker: &Broker, topic: &str, events: usize, dir: &Path) -> PathBuf {
    let capture = dir.join("capture");
    let out = run(tool("consumer", broker)
        .args(["--topic", topic, "--group", &test_support::unique("cap")])
        .args(["--max-events", &events.to_string()])
        .args(["--idle-timeout", "15s", "--capture-window", "1s"])
        .arg("--capture-dir")
        .arg(&capture));
    assert!(
        out.status.success(),
        "consumer --capture-dir: {}",
        stderr(&out)
    );
    capture
}

/// `consumer lag --json` for one group and topic.
pub(crate) fn lag(broker: &Broker, group: &str, topic: &str) -> Value {
    let out =
        run(tool("consumer", broker).args(["lag", "--json", "--group", group, "--topic", topic]));
    assert!(
        out.status.success(),
        "consumer lag failed: {}",
        stderr(&out)
    );
    json_lines(&out).remove(0)
}

/// The JSON lines of a file a tool writes to; a line cut short by a kill is not a complete
/// write (and was never committed), so it is left out.
pub(crate) fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The sum of the committed offsets in a lag report (partitions with none count 0).
pub(crate) fn total_committed(report: &Value) -> i64 {
    report["partitions"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|p| p["committed"].as_i64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

pub(crate) fn event_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["value"]["event_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no event_id: {l}"))
                .to_string()
        })
        .collect()
}

pub(crate) fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

pub(crate) fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/telemetry.avsc")
}

/// Run `python/interop.py` with `args` through `python` (a `python3` command, with any
/// environment it needs); its JSON lines.
pub(crate) fn interop(python: &mut std::process::Command, args: &[&str]) -> Vec<Value> {
    let out = python
        .arg(interop_script())
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "interop.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn interop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/interop.py")
}
