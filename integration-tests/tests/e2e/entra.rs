//! Microsoft Entra ID on the Kafka endpoint: producer, consumer and `consumer lag` sign in
//! with SASL OAUTHBEARER and tokens from the credential chain (here a client secret against
//! test-support's token service, which signs RS256 JWTs), and Apache Kafka's OAUTHBEARER
//! listener validates them as Event Hubs does: signature against the JWKS, expiry, audience.
//! Tokens live 12 s and the broker makes every connection sign in again every 10 s, so a
//! run that did not refresh its token would be cut off. Every source of the chain (client
//! secret, workload identity, App Service and IMDS managed identity, Azure CLI) signs in end
//! to end.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::summary;
use test_support::json_lines as json_lines_of;
use test_support::{
    Listener, PrivateKafka, TOOL_ENV, TokenService, TokenServiceOptions, bin, stderr, unique,
};

const AUDIENCE: &str = "https://ns1.servicebus.windows.net";
const FEDERATED_TOKEN: &str = "federated-token-1";

struct Setup {
    service: TokenService,
    kafka: PrivateKafka,
}

fn setup() -> Setup {
    let service = TokenService::start(TokenServiceOptions {
        sign: true,
        lifetime_secs: 12,
        federated_token: Some(FEDERATED_TOKEN.into()),
        identity_header: Some("identity-header-value".into()),
        ..TokenServiceOptions::client_secret("tenant-1", "app-1", "client-secret-value", "")
    });
    let kafka = PrivateKafka::start_with_oauth(&service.jwks_url(), AUDIENCE);
    Setup { service, kafka }
}

/// A fresh topic of `partitions` on the broker (created through its plaintext listener).
fn new_topic(setup: &Setup, prefix: &str, partitions: u32) -> String {
    let topic = unique(prefix);
    setup
        .kafka
        .broker(Listener::Plaintext)
        .create_topic(&topic, partitions);
    topic
}

/// A tool signing in as the application of the token service, to namespace `namespace`.
fn entra_tool(setup: &Setup, name: &str, namespace: &str) -> Command {
    let info = setup.kafka.info();
    let mut cmd = Command::new(bin(name));
    for var in TOOL_ENV {
        cmd.env_remove(var);
    }
    cmd.env("EVENTHUB_NAMESPACE", namespace)
        .env(
            "EVENTHUB_KAFKA_ENDPOINT",
            info.oauth.as_deref().expect("an OAUTHBEARER listener"),
        )
        .env("KAFKA_SSL_CA_LOCATION", &info.ca_file)
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", "client-secret-value")
        .env("AZURE_AUTHORITY_HOST", setup.service.authority_host())
        // The chain's later sources stay on this machine: IMDS at a closed loopback port.
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
        .env("RUST_LOG", "info");
    cmd
}

/// One broker (a JVM) for all the cases.
#[test]
fn entra_id_on_the_kafka_endpoint() {
    let setup = setup();
    tools_sign_in_and_refresh_their_tokens(&setup);
    every_credential_source_signs_in(&setup);
    exported_files_let_other_clients_get_their_own_tokens(&setup);
    a_token_for_another_namespace_is_refused_with_the_brokers_reason(&setup);
    a_failing_credential_is_reported_with_every_sources_reason(&setup);
}

fn tools_sign_in_and_refresh_their_tokens(setup: &Setup) {
    let topic = new_topic(setup, "entra", 2);

    let out = entra_tool(setup, "producer", "ns1")
        .args(["--topic", &topic, "--generate", "500", "--summary-json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&out)["sent"].as_u64(),
        Some(500),
        "{}",
        stderr(&out)
    );

    // Read half, then sit idle past two token lifetimes and re-authentications, then the rest.
    let group = unique("g");
    let started = Instant::now();
    let out = entra_tool(setup, "consumer", "ns1")
        .args(["--topic", &topic, "--group", &group, "--max-events", "250"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines_of(&out).len(), 250);
    let out = entra_tool(setup, "consumer", "ns1")
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--idle-timeout",
            "30s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines_of(&out).len(), 250, "{}", stderr(&out));
    assert!(started.elapsed() > Duration::from_secs(30));
    let log = stderr(&out);
    assert!(!log.contains("Authentication failed"), "{log}");

    let out = entra_tool(setup, "consumer", "ns1")
        .args(["lag", "--json", "--group", &group, "--topic", &topic])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(crate::common::total_committed(&json_lines_of(&out)[0]), 500);

    // Tokens were asked for the namespace's scope, and again as they aged (the idle
    // consumer alone lived through more than two 12 s lifetimes).
    let requests = setup.service.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.scope == format!("{AUDIENCE}/.default") && r.granted),
        "{requests:?}"
    );
    assert!(
        requests.len() >= 6,
        "tokens refreshed: {} requests",
        requests.len()
    );
}

/// Each source of the chain alone (the variables of the others removed) produces and
/// consumes; the token service saw only that source's requests, for the namespace's scope.
fn every_credential_source_signs_in(setup: &Setup) {
    let dir = tempfile::tempdir().unwrap();
    let federated = dir.path().join("federated-token");
    std::fs::write(&federated, FEDERATED_TOKEN).unwrap();
    setup.service.install_fake_az(dir.path());
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let without_secret = ["AZURE_CLIENT_SECRET"];
    let without_app = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"];
    // (the token service's name for the source, variables removed, variables added)
    type Source<'a> = (&'a str, &'a [&'a str], Vec<(&'a str, String)>);
    let sources: [Source<'_>; 4] = [
        (
            "workload_identity",
            &without_secret,
            vec![(
                "AZURE_FEDERATED_TOKEN_FILE",
                federated.display().to_string(),
            )],
        ),
        (
            "app_service",
            &without_app,
            vec![
                ("IDENTITY_ENDPOINT", setup.service.identity_endpoint()),
                ("IDENTITY_HEADER", "identity-header-value".into()),
            ],
        ),
        (
            "imds",
            &without_app,
            vec![(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                setup.service.authority_host(),
            )],
        ),
        // IMDS stays at the closed port: the chain falls through to the CLI.
        ("azure_cli", &without_app, vec![("PATH", path)]),
    ];
    for (kind, removed, added) in sources {
        let topic = new_topic(setup, "entra", 1);
        let before = setup.service.requests().len();
        let tool = |name: &str| {
            let mut cmd = entra_tool(setup, name, "ns1");
            for var in removed {
                cmd.env_remove(var);
            }
            cmd.envs(added.iter().map(|(k, v)| (k, v)));
            cmd
        };
        let out = tool("producer")
            .args(["--topic", &topic, "--generate", "20", "--summary-json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert_eq!(summary(&out)["sent"].as_u64(), Some(20), "{kind}");
        let out = tool("consumer")
            .args([
                "--topic",
                &topic,
                "--group",
                &unique("g"),
                "--max-events",
                "20",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert_eq!(json_lines_of(&out).len(), 20, "{kind}");

        let requests = &setup.service.requests()[before..];
        assert!(!requests.is_empty(), "{kind}: no token requested");
        for r in requests {
            assert_eq!(r.kind, kind, "{requests:?}");
            assert!(r.granted, "{requests:?}");
            // Managed identity endpoints take a resource, the others a scope.
            assert_eq!(r.scope.trim_end_matches("/.default"), AUDIENCE, "{r:?}");
        }
    }
}

/// Python's confluent-kafka with nothing but `file` (librdkafka properties): the number of
/// events it reads from `topic` under a group of its own, up to `want`.
fn python_reads(file: &std::path::Path, topic: &str, want: usize) -> std::process::Output {
    let script = r##"
import sys, uuid
from confluent_kafka import Consumer
conf = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        conf[k] = v
conf.update({"group.id": "py-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"})
topic, want = sys.argv[2], int(sys.argv[3])
reader = Consumer(conf)
reader.subscribe([topic])
n = 0
for _ in range(60):
    for m in reader.consume(100, 1.0):
        if m.error():
            print(m.error(), file=sys.stderr)
        else:
            n += 1
    if n >= want:
        break
reader.close()
print(n)
"##;
    Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .arg(topic)
        .arg(want.to_string())
        .output()
        .unwrap()
}

/// `config-export` with Entra ID: librdkafka (Python's confluent-kafka) signs in with the
/// client secret through its own OIDC client and with the managed identity through its
/// `azure_imds` method, Kafka's console consumer with its OIDC login handler; a source no
/// other client can use is named in the file.
fn exported_files_let_other_clients_get_their_own_tokens(setup: &Setup) {
    let topic = new_topic(setup, "entra-export", 2);
    let out = entra_tool(setup, "producer", "ns1")
        .args(["--topic", &topic, "--generate", "40"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let export = |format: &str, cmd: &mut Command| {
        let file = dir
            .path()
            .join(format!("{format}-{}.properties", unique("f")));
        let out = cmd
            .args([
                "config-export",
                "--format",
                format,
                "--group",
                "g",
                "--output",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(&file).unwrap();
        (file, text, stderr(&out))
    };
    // Python reads all 40 with nothing but `file`, its librdkafka asking the token service
    // itself, as source `kind`.
    let python_reads_all = |file: &std::path::Path, kind: &str| {
        let before = setup.service.requests().len();
        let out = python_reads(file, &topic, 40);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "40",
            "{}",
            stderr(&out)
        );
        let asked = setup.service.requests()[before..].to_vec();
        assert!(
            asked.iter().any(|r| r.kind == kind && r.granted),
            "librdkafka asked for no {kind} token: {asked:?}"
        );
    };

    // Client secret, librdkafka.
    let (file, text, _) = export("librdkafka", &mut entra_tool(setup, "consumer", "ns1"));
    assert!(text.contains("sasl.oauthbearer.method=oidc\n"), "{text}");
    assert!(
        text.contains("sasl.oauthbearer.client.secret=client-secret-value\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("sasl.oauthbearer.scope={AUDIENCE}/.default\n")),
        "{text}"
    );
    python_reads_all(&file, "client_secret");

    // Managed identity (IMDS), librdkafka.
    let mut imds = entra_tool(setup, "consumer", "ns1");
    imds.env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            setup.service.authority_host(),
        );
    let (file, text, _) = export("librdkafka", &mut imds);
    assert!(
        text.contains("sasl.oauthbearer.metadata.authentication.type=azure_imds\n"),
        "{text}"
    );
    python_reads_all(&file, "imds");

    // Client secret, Kafka's console consumer.
    let (file, text, _) = export("java", &mut entra_tool(setup, "consumer", "ns1"));
    assert!(
        text.contains("sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n"),
        "{text}"
    );
    let endpoint = format!(
        "{}/tenant-1/oauth2/v2.0/token",
        setup.service.authority_host()
    );
    assert!(text.contains(&format!("allowed.urls={endpoint}")), "{text}");
    let info = setup.kafka.info();
    let out = setup
        .kafka
        .broker(Listener::Plaintext)
        .kafka_tool("kafka-console-consumer.sh")
        .env(
            "KAFKA_OPTS",
            format!("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={endpoint}"),
        )
        .args(["--bootstrap-server", info.oauth.as_deref().unwrap()])
        .arg("--command-config")
        .arg(&file)
        .args([
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "40",
        ])
        .args(["--timeout-ms", "60000"])
        // Keys only: the values are Avro, with line breaks among their bytes.
        .args(["--formatter-property", "print.key=true"])
        .args(["--formatter-property", "print.value=false"])
        .output()
        .unwrap();
    assert!(out.status.success(), "console consumer: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        40,
        "{}",
        stderr(&out)
    );

    // The Azure CLI: no other client can use it; the file and the log say so.
    let cli_dir = tempfile::tempdir().unwrap();
    setup.service.install_fake_az(cli_dir.path());
    let mut cli = entra_tool(setup, "consumer", "ns1");
    cli.env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env(
            "PATH",
            format!(
                "{}:{}",
                cli_dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    let (_, text, log) = export("librdkafka", &mut cli);
    assert!(
        text.contains("# NOT USABLE AS IT IS: the tools got their tokens from the Azure CLI"),
        "{text}"
    );
    assert!(!text.contains("sasl.oauthbearer.method"), "{text}");
    assert!(log.contains("NOT USABLE"), "{log}");
}

fn a_token_for_another_namespace_is_refused_with_the_brokers_reason(setup: &Setup) {
    let topic = new_topic(setup, "entra", 1);
    let started = Instant::now();
    let out = entra_tool(setup, "producer", "ns2")
        .args([
            "--topic",
            &topic,
            "--generate",
            "10",
            "--connect-timeout",
            "20s",
        ])
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    // Kafka's validator answers `invalid_token` (Event Hubs words it its own way).
    assert!(
        log.contains("SASL authentication error") && log.contains("invalid_token"),
        "{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not fast: {log}"
    );
    assert!(!log.contains("client-secret-value"), "{log}");
}

fn a_failing_credential_is_reported_with_every_sources_reason(setup: &Setup) {
    let topic = new_topic(setup, "entra", 1);
    let out = entra_tool(setup, "producer", "ns1")
        .env("AZURE_CLIENT_SECRET", "wrong-secret")
        .env("PATH", "/nonexistent")
        .args([
            "--topic",
            &topic,
            "--generate",
            "10",
            "--connect-timeout",
            "10s",
        ])
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("AADSTS7000215"), "{log}");
    assert!(log.contains("`az` is not on PATH"), "{log}");
    assert!(!log.contains("wrong-secret"), "{log}");
}
