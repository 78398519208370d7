//! SASL and TLS end to end, fast and clear failures on bad credentials, and secrets that
//! never reach help text, logs or error messages.

use std::time::{Duration, Instant};

use crate::common::*;
use test_support::{Broker, bin, run, stderr, tool, unique};

const PASSWORD: &str = "s3cret-Pa55word-do-not-print";
const SAS_KEY: &str = "QUFBQUJCQkJDQ0NDRERERFNFQ1JFVC1LRVktZG8tbm90LXByaW50";

#[test]
fn scram_over_tls_end_to_end() {
    let broker = Broker::scram();
    let topic = unique("secure");
    let summary = produce(&broker, &topic, &["--partitions", "2", "--generate", "300"]);
    assert_eq!(summary["sent"], 300);
    let lines = consume(&broker, &topic, &unique("g"), 300, &[]);
    assert_eq!(set(&event_ids(&lines)).len(), 300);
}

#[test]
fn wrong_password_fails_fast_with_a_clear_message() {
    let broker = Broker::scram();
    let started = Instant::now();
    let out = run(tool("producer", &broker)
        .env("KAFKA_SASL_PASSWORD", "wrong-password-value")
        .args([
            "--topic",
            "t",
            "--generate",
            "1",
            "--connect-timeout",
            "10s",
        ]));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("authenticat") || err.contains("Authenticat"),
        "{err}"
    );
    assert!(
        err.contains("refused the connection") && err.contains("Check the credentials"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password-value"),
        "password echoed: {err}"
    );
    eprintln!("wrong password rejected in {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");

    // An untrusted certificate is refused too, and said so.
    let started = Instant::now();
    let out = run(tool("consumer", &broker)
        .env_remove("KAFKA_SSL_CA_LOCATION")
        .args(["--topic", "t", "--group", "g", "--connect-timeout", "5s"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let took = started.elapsed();
    eprintln!("untrusted certificate rejected in {took:?}");
    assert!(err.contains("certificate verify failed"), "{err}");
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} with a 5 s connect timeout"
    );
}

#[test]
fn secrets_stay_out_of_help_errors_and_logs() {
    let connection_string = format!(
        "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=send;SharedAccessKey={SAS_KEY};EntityPath=hub"
    );
    for name in ["producer", "consumer"] {
        let out = std::process::Command::new(bin(name))
            .arg("--help")
            .env("EVENTHUB_CONNECTION_STRING", &connection_string)
            .env("KAFKA_SASL_PASSWORD", PASSWORD)
            .env("SCHEMA_REGISTRY_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("EVENTHUB_CONNECTION_STRING"), "{help}");
        assert!(
            !help.contains(SAS_KEY) && !help.contains(PASSWORD),
            "{name} --help leaks"
        );
    }

    // A connection string that parses but reaches nothing: debug logs, the error, all clean.
    let out = std::process::Command::new(bin("producer"))
        .args(["--generate", "1", "--connect-timeout", "3s"])
        .env("EVENTHUB_CONNECTION_STRING", &connection_string)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(all.contains("127.0.0.1:9093"), "{all}");
    assert!(!all.contains(SAS_KEY), "the key leaked: {all}");

    // Given on the command line it still works, with a warning about the process list.
    let out = std::process::Command::new(bin("producer"))
        .args([
            "--generate",
            "1",
            "--connect-timeout",
            "1s",
            "--connection-string",
        ])
        .arg(&connection_string)
        .env_remove("EVENTHUB_CONNECTION_STRING")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("process list; prefer EVENTHUB_CONNECTION_STRING"),
        "{err}"
    );
    assert!(!err.contains(SAS_KEY), "{err}");

    // A malformed one: rejected before any network call, naming the problem, not the key.
    let bad = format!(
        "Endpoint=https://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey={SAS_KEY}"
    );
    let out = std::process::Command::new(bin("consumer"))
        .args(["--group", "g", "--topic", "t"])
        .env("EVENTHUB_CONNECTION_STRING", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("expected `sb://`"), "{err}");
    assert!(!err.contains(SAS_KEY), "{err}");
}

#[test]
fn secrets_on_the_command_line_are_warned_about_and_never_echoed() {
    // A typo that puts the key into a key name: rejected without echoing it.
    let typo = format!(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey:{SAS_KEY}"
    );
    let out = std::process::Command::new(bin("producer"))
        .args(["--generate", "1", "--topic", "t"])
        .env("EVENTHUB_CONNECTION_STRING", &typo)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("segment 3"), "{err}");
    assert!(!err.contains(&SAS_KEY[..20]), "the key leaked: {err}");

    // -X credentials and a --db URL with a password: warned about, not shown.
    let out = std::process::Command::new(bin("producer"))
        .args([
            "--generate",
            "1",
            "--topic",
            "t",
            "--bootstrap-servers",
            "127.0.0.1:1",
        ])
        .args([
            "--connect-timeout",
            "1s",
            "-X",
            &format!("sasl.password={PASSWORD}"),
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("-X sasl.password=… was given on the command line"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let out = std::process::Command::new(bin("capture-loader"))
        .args(["status", "--db"])
        .arg(format!(
            "postgres://u:{PASSWORD}@127.0.0.1:1/x?sslmode=disable&connect_timeout=1"
        ))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("--db holds a password"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn config_export_replaces_a_planted_symlink_instead_of_following_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let output = dir.path().join("client.properties");
    std::os::unix::fs::symlink(&victim, &output).unwrap();
    let out = std::process::Command::new(bin("consumer"))
        .args(["config-export", "--format", "librdkafka", "--group", "g", "--output"])
        .arg(&output)
        .env(
            "EVENTHUB_CONNECTION_STRING",
            format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey={SAS_KEY}"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "wrote through the link"
    );
    let meta = std::fs::symlink_metadata(&output).unwrap();
    assert!(meta.file_type().is_file(), "the link is replaced by a file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&output).unwrap().contains(SAS_KEY));
}
