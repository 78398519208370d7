//! Interoperability with an independent client (Python confluent-kafka and fastavro):
//! each side reads what the other wrote, through the Confluent registry and through
//! single-object encoding.

use std::process::Command;

use crate::common::*;
use test_support::{Broker, TestSchemaRegistry, run, stderr, tool, unique};

fn python(args: &[&str]) -> Vec<serde_json::Value> {
    interop(&mut Command::new("python3"), args)
}

fn ids_of(values: &[serde_json::Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_avro_both_ways_through_the_registry() {
    let registry = TestSchemaRegistry::start().await;
    let url = registry.url.clone();
    let subjects = tokio::task::spawn_blocking(move || {
        let broker = Broker::plaintext();
        let dir = tempfile::tempdir().unwrap();
        let (input, ids) = write_events(dir.path(), 500, 10);
        let schema = schema_file();

        // Ours → theirs: our producer registers the schema; their deserializer reads.
        let ours = unique("ours");
        let summary = produce(
            &broker,
            &ours,
            &[
                "--partitions",
                "2",
                "--input",
                input.to_str().unwrap(),
                "--schema-registry-url",
                &url,
            ],
        );
        assert_eq!(summary["sent"], 500);
        let theirs_read = python(&["consume-confluent", &broker.bootstrap, &ours, &url, "500"]);
        assert_eq!(set(&ids_of(&theirs_read)), set(&ids));

        // Theirs → ours: their serializer registers and writes; our consumer decodes.
        let theirs = unique("theirs");
        produce(&broker, &theirs, &["--partitions", "2", "--generate", "0"]);
        python(&[
            "produce-confluent",
            &broker.bootstrap,
            &theirs,
            &url,
            schema.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        let lines = consume(
            &broker,
            &theirs,
            &unique("g"),
            500,
            &["--schema-registry-url", &url],
        );
        assert!(lines.iter().all(|l| l["encoding"] == "avro-confluent"));
        assert_eq!(set(&event_ids(&lines)), set(&ids));
        // Timestamps written by Python's datetime come back as the same instant.
        let first = lines
            .iter()
            .find(|l| l["value"]["event_id"] == ids[0].as_str())
            .unwrap();
        assert_eq!(first["value"]["timestamp"], "2026-11-22T08:00:00.000Z");
        (ours, theirs)
    })
    .await
    .unwrap();
    let registered = registry.subjects();
    assert_eq!(registered.len(), 2, "{registered:?}");
    assert!(registered.contains_key(&format!("{}-value", subjects.0)));
    // The same schema registered by both clients got one id.
    let ids: std::collections::BTreeSet<_> = registered.values().flatten().collect();
    assert_eq!(ids.len(), 1, "{registered:?}");
}

#[test]
fn single_object_avro_both_ways_with_fastavro_fingerprints() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 300, 5);
    let schema = schema_file();

    let ours = unique("so-ours");
    produce(
        &broker,
        &ours,
        &["--partitions", "2", "--input", input.to_str().unwrap()],
    );
    let read = python(&[
        "consume-single-object",
        &broker.bootstrap,
        &ours,
        schema.to_str().unwrap(),
        "300",
    ]);
    assert_eq!(set(&ids_of(&read)), set(&ids));

    let theirs = unique("so-theirs");
    produce(&broker, &theirs, &["--partitions", "2", "--generate", "0"]);
    python(&[
        "produce-single-object",
        &broker.bootstrap,
        &theirs,
        schema.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let lines = consume(&broker, &theirs, &unique("g"), 300, &[]);
    assert!(
        lines.iter().all(|l| l["encoding"] == "avro-single-object"),
        "{}",
        lines[0]
    );
    assert_eq!(set(&event_ids(&lines)), set(&ids));
}

#[test]
fn registry_unreachable_is_reported_before_anything_is_sent() {
    let broker = Broker::plaintext();
    let topic = unique("noreg");
    let out = run(tool("producer", &broker).args([
        "--topic",
        &topic,
        "--ensure-topic",
        "--generate",
        "5",
        "--schema-registry-url",
        "http://127.0.0.1:9",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "registering the value schema under `{topic}-value`"
        )),
        "{err}"
    );
}
