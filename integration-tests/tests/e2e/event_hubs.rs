//! The path Event Hubs uses, end to end: SASL_SSL + PLAIN with user `$ConnectionString` and
//! the connection string as the password, against Apache Kafka's listener that checks it the
//! way Event Hubs does. The tools get nothing but the connection string, plus the documented
//! overrides that point it at the local listener (`EVENTHUB_KAFKA_ENDPOINT`) and its CA
//! (`KAFKA_SSL_CA_LOCATION`).

use std::time::{Duration, Instant};

use crate::common::*;
use test_support::{Broker, run, stderr, tool, unique};

#[test]
fn connection_string_produces_and_consumes_with_commits() {
    let broker = Broker::event_hubs();
    let topic = unique("eh");
    let group = unique("g");
    // Event hubs exist before clients use them (terraform makes them; --ensure-topic
    // refuses on Event Hubs).
    broker.create_topic(&topic, 4);
    let cs = broker.connection_string_for(&topic);
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 2000, 25);

    // No --topic anywhere: EntityPath names the event hub.
    let out = run(tool("producer", &broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .arg("--input")
        .arg(&input)
        .arg("--summary-json"));
    assert!(out.status.success(), "producer: {}", stderr(&out));
    assert_eq!(summary(&out)["sent"], 2000);
    let log = stderr(&out);
    assert!(
        !log.contains(cs.rsplit("SharedAccessKey=").next().unwrap()),
        "the key reached the log: {log}"
    );

    // Two runs of one group: the second starts where the first committed.
    let first = run(tool("consumer", &broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .args([
            "--group",
            &group,
            "--max-events",
            "1500",
            "--idle-timeout",
            "15s",
        ]));
    assert!(first.status.success(), "consumer: {}", stderr(&first));
    let first = test_support::json_lines(&first);
    assert_eq!(first.len(), 1500);
    let lag = run(tool("consumer", &broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .args(["lag", "--json", "--group", &group]));
    assert!(lag.status.success(), "{}", stderr(&lag));
    let report = test_support::json_lines(&lag).remove(0);
    assert_eq!(total_committed(&report), 1500, "{report}");
    assert_eq!(report["total_lag"], 500, "{report}");
    let high: i64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(high, 2000, "high watermarks are honest: {report}");

    let second = run(tool("consumer", &broker)
        .env("EVENTHUB_CONNECTION_STRING", &cs)
        .args(["--group", &group, "--idle-timeout", "5s"]));
    assert!(second.status.success(), "consumer: {}", stderr(&second));
    let second = test_support::json_lines(&second);
    assert_eq!(
        second.len(),
        500,
        "the second run reads only what was not committed"
    );
    let mut all = set(&event_ids(&first));
    all.extend(set(&event_ids(&second)));
    assert_eq!(
        all,
        set(&ids),
        "every event exactly once across the two runs"
    );
}

#[test]
fn wrong_key_fails_fast_with_the_brokers_reason() {
    let broker = Broker::event_hubs();
    let topic = unique("eh-wrong");
    broker.create_topic(&topic, 1);
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let cs = format!(
        "Endpoint=sb://localhost/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={wrong_key};EntityPath={topic}"
    );
    for (name, args) in [
        ("producer", vec!["--generate", "1"]),
        ("consumer", vec!["--group", "g"]),
    ] {
        let started = Instant::now();
        let out = run(tool(name, &broker)
            .env("EVENTHUB_CONNECTION_STRING", &cs)
            .args(&args)
            .args(["--connect-timeout", "10s"]));
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        // Kafka's own words for a PLAIN failure, passed through by librdkafka.
        assert!(
            err.contains("Invalid username or password"),
            "{name} did not give the broker's reason: {err}"
        );
        assert!(!err.contains(wrong_key), "{name} echoed the key: {err}");
        eprintln!("{name}: wrong key rejected in {took:?}");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}: {err}");
    }

    // A policy the namespace does not have is refused the same way.
    let unknown_policy = broker
        .connection_string_for(&topic)
        .replace("RootManageSharedAccessKey", "NoSuchPolicy");
    let out = run(tool("producer", &broker)
        .env("EVENTHUB_CONNECTION_STRING", &unknown_policy)
        .args(["--generate", "1", "--connect-timeout", "10s"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Invalid username or password"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn connection_string_without_the_test_ca_is_refused() {
    let broker = Broker::event_hubs();
    let topic = unique("eh-ca");
    broker.create_topic(&topic, 1);
    let out = run(tool("producer", &broker)
        .env(
            "EVENTHUB_CONNECTION_STRING",
            broker.connection_string_for(&topic),
        )
        .env_remove("KAFKA_SSL_CA_LOCATION")
        .args(["--generate", "1", "--connect-timeout", "5s"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("certificate verify failed"),
        "{}",
        stderr(&out)
    );
}
