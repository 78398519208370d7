//! Tests of the shared argument groups (cli.rs).
use super::*;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn parse(args: &[&str]) -> KafkaArgs {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap().kafka
}

#[test]
fn sasl_password_comes_from_env_and_never_prints() {
    let args = parse(&[
        "--bootstrap-servers",
        "127.0.0.1:9092",
        "--security-protocol",
        "SASL_SSL",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "alice",
    ]);
    let settings = args
        .client_settings_with_env("t", |k| {
            (k == "KAFKA_SASL_PASSWORD").then(|| "pa55word".to_string())
        })
        .unwrap();
    assert!(!format!("{settings:?}").contains("pa55word"));
    let missing = args.client_settings_with_env("t", |_| None).unwrap_err();
    assert!(matches!(missing, ArgsError::MissingPassword));
}

#[test]
fn topic_defaults_to_entity_path_and_must_match_it() {
    let cs = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey=k;EntityPath=hub";
    let args = KafkaArgs {
        connection_string: Some(Secret::new(cs)),
        ..parse(&[])
    };
    let settings = args.client_settings_with_env("t", |_| None).unwrap();
    assert_eq!(args.topic(&settings).unwrap(), "hub");
    let other = KafkaArgs {
        topic: Some("other".into()),
        ..args.clone()
    };
    assert!(matches!(
        other.topic(&settings),
        Err(ArgsError::TopicMismatch { .. })
    ));
}

#[test]
fn bad_connection_string_error_does_not_echo_it() {
    let secret = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey=TOPSECRETKEY;Bogus=1";
    let args = KafkaArgs {
        connection_string: Some(Secret::new(secret)),
        ..parse(&[])
    };
    let err = args.client_settings_with_env("t", |_| None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Bogus"), "{text}");
    assert!(!text.contains("TOPSECRETKEY"), "{text}");
}

#[test]
fn debug_output_hides_passthrough_credentials() {
    let args = parse(&["-X", "sasl.password=hunter2", "-X", "linger.ms=5"]);
    let shown = format!("{args:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("linger.ms") && shown.contains("\"5\""),
        "{shown}"
    );
}

#[test]
fn passwords_in_urls_are_recognised() {
    assert!(url_has_password("postgres://u:p@h/d"));
    assert!(url_has_password(
        "postgresql://u:p%40ss@h:5432/d?sslmode=require"
    ));
    assert!(!url_has_password("postgres://u@h/d"));
    assert!(!url_has_password("postgres://h/d?x=a:b@c"));
    assert!(!url_has_password("sqlite://capture.db"));
}

#[test]
fn passthrough_parse_error_does_not_echo_value() {
    let mut all = vec!["test", "-X", "sasl.password"];
    let err = Cli::try_parse_from(all.drain(..)).unwrap_err().to_string();
    assert!(err.contains("KEY=VALUE"), "{err}");
}
