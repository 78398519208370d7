//! Azure Schema Registry interop with Microsoft's own Python encoder
//! (`azure-schemaregistry-avroencoder`), both ways, through test-support's HTTPS registry,
//! which requires a bearer token for `https://eventhubs.azure.net` (our tools get theirs
//! from the credential chain: a client secret against test-support's token service). The
//! same events reach the database through Capture files, their content type in the events'
//! properties.

use std::process::Command;

use crate::common::*;
use test_support::{
    AzureSchemaRegistry, Broker, TokenService, TokenServiceOptions, bin, run, stderr, tool, unique,
};

const GROUP: &str = "telemetry-schemas";

struct Setup {
    broker: Broker,
    registry: AzureSchemaRegistry,
    tokens: TokenService,
}

fn setup() -> Setup {
    Setup {
        broker: Broker::plaintext(),
        registry: AzureSchemaRegistry::start(&[GROUP]),
        tokens: TokenService::start(TokenServiceOptions {
            sign: true,
            ..TokenServiceOptions::client_secret("tenant-1", "app-1", "app-secret", "")
        }),
    }
}

/// Our tool with the registry's settings and an Entra ID client secret.
fn ours(s: &Setup, name: &str) -> Command {
    let mut cmd = tool(name, &s.broker);
    with_registry(s, &mut cmd);
    cmd
}

fn with_registry(s: &Setup, cmd: &mut Command) {
    cmd.env("SCHEMA_REGISTRY_URL", s.registry.url())
        .env("SSL_CERT_FILE", s.registry.certificate())
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", "app-secret")
        .env("AZURE_AUTHORITY_HOST", s.tokens.authority_host())
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9");
}

/// Microsoft's encoder, with a token for the registry.
fn theirs(s: &Setup, args: &[&str]) -> Vec<serde_json::Value> {
    interop(
        Command::new("python3")
            .env(
                "AZURE_REGISTRY_TOKEN",
                s.tokens.issue("https://eventhubs.azure.net"),
            )
            .env("REQUESTS_CA_BUNDLE", s.registry.certificate()),
        args,
    )
}

#[test]
fn azure_schema_registry_both_ways_with_microsofts_encoder() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), 300, 6);
    let host = s.registry.address.to_string();

    // Ours → theirs: our producer registers the schema in the group; their encoder decodes.
    let topic = unique("asr-ours");
    let out = run(ours(&s, "producer")
        .args(["--topic", &topic, "--ensure-topic", "--partitions", "2"])
        .args(["--input", input.to_str().unwrap(), "--summary-json"])
        .args(["--schema-group", GROUP]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["sent"], 300);
    let registered = s.registry.schemas();
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(registered[0].0, GROUP);
    assert_eq!(
        registered[0].1,
        "io.eventhubs.kafka.telemetry.TelemetryEvent"
    );
    let read = theirs(
        &s,
        &["consume-azure", &s.broker.bootstrap, &topic, &host, "300"],
    );
    let their_ids: Vec<String> = read
        .iter()
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(set(&their_ids), set(&ids));

    // Theirs → ours: their encoder finds the same schema (same id), our consumer decodes.
    let topic = unique("asr-theirs");
    run(ours(&s, "producer").args([
        "--topic",
        &topic,
        "--ensure-topic",
        "--partitions",
        "2",
        "--generate",
        "0",
        "--encoding",
        "json",
    ]));
    theirs(
        &s,
        &[
            "produce-azure",
            &s.broker.bootstrap,
            &topic,
            &host,
            GROUP,
            schema_file().to_str().unwrap(),
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(s.registry.schemas().len(), 1, "{:?}", s.registry.schemas());
    let fetches_before = s
        .registry
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    let out = run(ours(&s, "consumer")
        .args(["--topic", &topic, "--group", &unique("g")])
        .args(["--max-events", "300", "--idle-timeout", "15s"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = test_support::json_lines(&out);
    assert!(
        lines.iter().all(|l| l["encoding"] == "avro-azure"),
        "{}",
        lines[0]
    );
    assert_eq!(set(&event_ids(&lines)), set(&ids));
    let first = lines
        .iter()
        .find(|l| l["value"]["event_id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(first["value"]["timestamp"], "2026-11-22T08:00:00.000Z");
    // One schema, fetched once for 300 events.
    let requests = s.registry.requests();
    let fetches = requests.iter().filter(|r| r.method == "GET").count() - fetches_before;
    assert_eq!(fetches, 1, "{requests:?}");
    assert!(requests.iter().all(|r| r.status < 300), "{requests:?}");
    assert!(requests.iter().all(|r| r.api_version == "2022-10"));

    // The same events through Capture files into SQLite: decoded from the content type in
    // each event's properties.
    let capture = capture_locally(&s.broker, &topic, 300, dir.path());
    let db = format!("sqlite://{}", dir.path().join("asr.db").display());
    let mut loader = Command::new(bin("capture-loader"));
    for var in test_support::TOOL_ENV {
        loader.env_remove(var);
    }
    with_registry(&s, &mut loader);
    let out = run(loader
        .args(["load", "--summary-json"])
        .arg(&capture)
        .env("DATABASE_URL", &db));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["events_inserted"], 300, "{}", stderr(&out));
    let conn = rusqlite::Connection::open(dir.path().join("asr.db")).unwrap();
    let decoded: i64 = conn
        .query_row(
            "SELECT count(*) FROM capture_events WHERE json_extract(body_json, '$.event_id') IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(decoded, 300);
}

#[test]
fn registry_refusals_are_reported_with_azures_reason() {
    let s = setup();
    let topic = unique("asr-refused");
    // A group that does not exist: nothing is sent, Azure's reason is shown.
    let out = run(ours(&s, "producer")
        .args(["--topic", &topic, "--ensure-topic", "--generate", "5"])
        .args(["--schema-group", "no-such-group"]));
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("Schema group no-such-group does not exist"),
        "{log}"
    );

    // A token for another audience: the registry's 401, with what to check.
    let other = TokenService::start(TokenServiceOptions::client_secret(
        "tenant-1",
        "app-1",
        "app-secret",
        &TokenService::unsigned_jwt("https://other.example", "tenant-1", "app-1", 3600),
    ));
    let out = run(ours(&s, "producer")
        .env("AZURE_AUTHORITY_HOST", other.authority_host())
        .args(["--topic", &topic, "--ensure-topic", "--generate", "5"])
        .args(["--schema-group", GROUP]));
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("401") && log.contains("InvalidAudience"),
        "{log}"
    );
    assert!(
        log.contains("scope https://eventhubs.azure.net/.default"),
        "{log}"
    );

    // A wrong secret: the credential chain's reasons, without the secret.
    let out = run(ours(&s, "producer")
        .env("AZURE_CLIENT_SECRET", "wrong-secret")
        .args(["--topic", &topic, "--ensure-topic", "--generate", "5"])
        .args(["--schema-group", GROUP]));
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("AADSTS7000215"), "{log}");
    assert!(!log.contains("wrong-secret"), "{log}");

    // Plain http to a registry that is not on loopback: no token is sent in the clear.
    let out = run(ours(&s, "producer")
        .env("SCHEMA_REGISTRY_URL", "http://registry.example")
        .args(["--topic", &topic, "--ensure-topic", "--generate", "5"])
        .args(["--schema-group", GROUP]));
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("must be https"), "{log}");
}
