//! `config-export` writes files other Kafka tools can use as they are.

use std::process::Command;

use crate::common::*;
use test_support::{Broker, bin, json_lines, run, stderr, tool, unique};

/// Through the Event Hubs listener (SASL_SSL + PLAIN, `$ConnectionString`): create a
/// 3-partition event hub, send `count` events with a connection string scoped to it, and
/// let group `group` consume and commit `consumed` of them. Returns the connection string
/// and the producer's summary.
fn send_and_half_consume(
    broker: &Broker,
    topic: &str,
    group: &str,
    count: usize,
    consumed: usize,
    encoding: &str,
) -> (String, serde_json::Value) {
    broker.create_topic(topic, 3);
    let cs = broker.connection_string_for(topic);
    let out = run(tool("producer", broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .args(["--generate", &count.to_string(), "--encoding", encoding])
        .arg("--summary-json"));
    assert!(out.status.success(), "producer: {}", stderr(&out));
    let sent = summary(&out);
    assert_eq!(sent["sent"], count as u64);
    let out = run(tool("consumer", broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .args(["--group", group, "--max-events", &consumed.to_string()])
        .args(["--idle-timeout", "15s", "--output", "none"]));
    assert!(out.status.success(), "consumer: {}", stderr(&out));
    (cs, sent)
}

/// `config-export` into a private file, for the tools of another client library.
fn export(
    broker: &Broker,
    cs: &str,
    format: &str,
    group: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let file = dir.join(format!("{format}.properties"));
    let out = run(tool("consumer", broker)
        .env("EVENTHUB_CONNECTION_STRING", cs)
        .args([
            "config-export",
            "--format",
            format,
            "--group",
            group,
            "--output",
        ])
        .arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "a file holding a connection string must be private"
    );
    file
}

/// The keys of the first `count` events as our consumer reads them, sorted.
fn our_keys(broker: &Broker, cs: &str, count: usize) -> Vec<String> {
    let out = run(tool("consumer", broker)
        .env("EVENTHUB_CONNECTION_STRING", cs)
        .args([
            "--group",
            &unique("ours"),
            "--max-events",
            &count.to_string(),
        ])
        .args(["--idle-timeout", "15s"]));
    assert!(out.status.success(), "consumer: {}", stderr(&out));
    let mut keys: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort_unstable();
    keys
}

/// (partition, committed, high watermark, lag) per partition, from `consumer lag --json`;
/// a partition the group never committed counts as committed at 0, as Python reports it.
fn our_lag(broker: &Broker, cs: &str, group: &str) -> Vec<(i64, Option<i64>, i64, i64)> {
    let out = run(tool("consumer", broker)
        .env("EVENTHUB_CONNECTION_STRING", cs)
        .args(["lag", "--json", "--group", group]));
    assert!(out.status.success(), "consumer lag: {}", stderr(&out));
    let report = json_lines(&out).remove(0);
    let mut rows: Vec<_> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["committed"].as_i64(),
                p["high_watermark"].as_i64().unwrap(),
                p["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn kafka_console_tools_work_with_the_exported_java_file_and_agree_on_lag() {
    let broker = Broker::event_hubs();
    let topic = unique("java-tools");
    let group = unique("g");
    // JSON values: one line each, so the console consumer's output can be counted in bytes.
    let (cs, sent) = send_and_half_consume(&broker, &topic, &group, 300, 120, "json");
    let dir = tempfile::tempdir().unwrap();
    // The file names a reader group of its own: the console consumer commits as it reads,
    // and must not move our consumer's group.
    let file = export(&broker, &cs, "java", &unique("console"), dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("username=\"$ConnectionString\""), "{text}");
    assert!(text.contains("ssl.truststore.type=PEM"), "{text}");

    let out = broker
        .kafka_tool("kafka-console-consumer.sh")
        .args(["--bootstrap-server", &broker.bootstrap, "--command-config"])
        .arg(&file)
        .args([
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "300",
        ])
        .args([
            "--timeout-ms",
            "60000",
            "--formatter-property",
            "print.key=true",
        ])
        .args(["--formatter-property", "key.separator=\t"])
        .output()
        .unwrap();
    assert!(out.status.success(), "console consumer: {}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.len(),
        300,
        "console consumer read {} events",
        lines.len()
    );
    // The producer counts key + value bytes of what the broker acknowledged.
    let bytes: usize = lines.iter().map(|l| l.len() - 1).sum();
    assert_eq!(bytes as u64, sent["bytes"].as_u64().unwrap(), "byte count");
    let mut keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    keys.sort_unstable();
    // Our consumer's view of the same events, keys included.
    let our_keys = our_keys(&broker, &cs, 300);
    assert_eq!(
        keys, our_keys,
        "keys differ between Kafka's console consumer and ours"
    );

    // kafka-consumer-groups --describe sees our group exactly as `consumer lag` does.
    let out = broker
        .kafka_tool("kafka-consumer-groups.sh")
        .args(["--bootstrap-server", &broker.bootstrap, "--command-config"])
        .arg(&file)
        .args(["--describe", "--group", &group])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kafka-consumer-groups: {}",
        stderr(&out)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    let mut theirs: Vec<(i64, i64, i64, i64)> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[1] == topic)
        .map(|cols| {
            let n = |s: &str| s.parse::<i64>().unwrap_or(0);
            (n(cols[2]), n(cols[3]), n(cols[4]), n(cols[5]))
        })
        .collect();
    theirs.sort();
    let ours = our_lag(&broker, &cs, &group);
    // kafka-consumer-groups lists only the partitions the group has committed.
    let committed: Vec<(i64, i64, i64, i64)> = ours
        .iter()
        .filter_map(|&(p, c, high, lag)| c.map(|c| (p, c, high, lag)))
        .collect();
    assert!(!committed.is_empty(), "nothing committed: {ours:?}");
    assert_eq!(theirs, committed, "kafka-consumer-groups:\n{table}");
    assert_eq!(
        committed.iter().map(|r| r.1).sum::<i64>(),
        120,
        "committed {ours:?}"
    );
    assert_eq!(ours.iter().map(|r| r.3).sum::<i64>(), 180, "lag {ours:?}");
}

#[test]
fn python_confluent_kafka_works_with_the_exported_librdkafka_file_and_agrees_on_lag() {
    let broker = Broker::event_hubs();
    let topic = unique("py-tools");
    let group = unique("g");
    let (cs, sent) = send_and_half_consume(&broker, &topic, &group, 250, 100, "avro-single-object");
    let dir = tempfile::tempdir().unwrap();
    let file = export(&broker, &cs, "librdkafka", &group, dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("sasl.mechanism=PLAIN"), "{text}");
    assert!(text.contains("sasl.username=$ConnectionString"), "{text}");
    assert!(!text.contains("enable.auto.offset.store"), "{text}");

    // Python confluent-kafka (its own librdkafka) with nothing but the file: it reads every
    // event under a group of its own, then reports our group's committed offsets and the
    // watermarks without joining it.
    let script = r##"
import json, sys, uuid
from confluent_kafka import Consumer, TopicPartition
conf = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        conf[k] = v
topic, want = sys.argv[2], int(sys.argv[3])
ours = conf["group.id"]
reader = Consumer(dict(conf, **{"group.id": "py-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"}))
reader.subscribe([topic])
n, size, keys = 0, 0, []
for _ in range(60):
    for m in reader.consume(100, 1.0):
        if m.error():
            continue
        n += 1
        size += len(m.value()) + len(m.key() or b"")
        keys.append(m.key().decode())
    if n >= want:
        break
reader.close()
probe = Consumer(conf)
parts = probe.list_topics(topic, timeout=10).topics[topic].partitions
rows = []
for tp in probe.committed([TopicPartition(topic, p) for p in sorted(parts)], timeout=10):
    low, high = probe.get_watermark_offsets(tp, timeout=10)
    committed = tp.offset if tp.offset >= 0 else 0
    rows.append([tp.partition, committed, high, high - committed])
probe.close()
print(json.dumps({"count": n, "bytes": size, "keys": sorted(keys), "lag": rows}))
"##;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .arg(&topic)
        .arg("250")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["count"], 250);
    assert_eq!(report["bytes"], sent["bytes"]);
    let our_keys = our_keys(&broker, &cs, 250);
    let their_keys: Vec<String> = serde_json::from_value(report["keys"].clone()).unwrap();
    assert_eq!(their_keys, our_keys);
    let theirs: Vec<(i64, i64, i64, i64)> = serde_json::from_value(report["lag"].clone()).unwrap();
    let ours: Vec<(i64, i64, i64, i64)> = our_lag(&broker, &cs, &group)
        .into_iter()
        .map(|(p, c, high, lag)| (p, c.unwrap_or(0), high, lag))
        .collect();
    assert_eq!(theirs, ours);
    assert_eq!(
        ours.iter().map(|r| r.1).sum::<i64>(),
        100,
        "committed {ours:?}"
    );
}

#[test]
fn stdout_export_redacts_unless_asked_and_java_has_the_jaas_line() {
    let key = "U0VDUkVULUtFWS1leHBvcnQtdGVzdA==";
    let cs = format!(
        "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={key};EntityPath=telemetry"
    );
    let export = |args: &[&str]| {
        let mut cmd = Command::new(bin("producer"));
        for var in test_support::TOOL_ENV {
            cmd.env_remove(var);
        }
        cmd.env("EVENTHUB_CONNECTION_STRING", &cs)
            .arg("config-export")
            .args(args)
            .output()
            .unwrap()
    };
    let out = export(&["--format", "java"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(key), "{text}");
    assert!(text.contains("password=\"***\""), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--show-secrets"));

    let out = export(&["--format", "java", "--show-secrets"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PlainLoginModule required username=\"$ConnectionString\""),
        "{text}"
    );
    assert!(text.contains(key));

    let out = export(&["--format", "kcat", "--show-secrets"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bootstrap.servers=myns.servicebus.windows.net:9093\n"),
        "{text}"
    );
    assert!(text.contains("security.protocol=sasl_ssl\n"), "{text}");
    assert!(!text.contains("enable.idempotence"), "{text}");
}
