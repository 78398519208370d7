//! `config-export` writes files other Kafka tools can use as they are.

mod common;

use std::process::Command;

use common::*;
use test_support::{Broker, BrokerOptions, ScramUser, bin, run, stderr, tool, unique};

const PASSWORD: &str = "export-Pa55word";

#[test]
fn exported_librdkafka_file_lets_an_independent_client_read_the_topic() {
    let broker = Broker::start_with(BrokerOptions {
        scram: Some(ScramUser {
            name: "bob".into(),
            password: PASSWORD.into(),
        }),
        tls: true,
    });
    let topic = unique("export");
    produce(&broker, &topic, &["--partitions", "1", "--generate", "25"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.properties");
    let out = run(tool("consumer", &broker)
        .args([
            "config-export",
            "--format",
            "librdkafka",
            "--group",
            &unique("g"),
            "--output",
        ])
        .arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a file holding a password must be private");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("sasl.mechanism=SCRAM-SHA-512"), "{text}");
    assert!(
        text.contains(&format!("sasl.password={PASSWORD}")),
        "{text}"
    );
    assert!(!text.contains("enable.auto.offset.store"), "{text}");

    // Python confluent-kafka (its own librdkafka) reads the topic with nothing but the file.
    let script = r##"
import sys
from confluent_kafka import Consumer
conf = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        conf[k] = v
conf["auto.offset.reset"] = "earliest"
c = Consumer(conf)
c.subscribe([sys.argv[2]])
n = 0
for _ in range(60):
    for m in c.consume(100, 1.0):
        if not m.error():
            n += 1
    if n >= 25:
        break
c.close()
print(n)
"##;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .arg(&topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "25");
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
