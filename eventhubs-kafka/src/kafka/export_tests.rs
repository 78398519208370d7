//! Unit tests of `export.rs`.

use super::*;
use crate::connection_string::ConnectionString;
use crate::kafka::config::{ClientKind, ClientSettings, Endpoint};

const KEY: &str = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWsxMjM0NTY3OA==";

fn settings() -> ClientSettings {
    let cs = ConnectionString::parse(&format!(
        "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=telemetry"
    ))
    .unwrap();
    ClientSettings {
        endpoint: Endpoint::EventHubs(cs.into()),
        passthrough: vec![],
        client_id: "t".into(),
    }
}

#[test]
fn java_producer_file_has_the_jaas_line_and_java_names() {
    let p = settings().properties(&ClientKind::Producer);
    let e = export(&p, ExportFormat::Java, "test");
    let text = e.with_secrets();
    assert!(text.contains("bootstrap.servers=myns.servicebus.windows.net:9093\n"));
    assert!(text.contains("security.protocol=SASL_SSL\n"));
    assert!(text.contains("sasl.mechanism=PLAIN\n"));
    assert!(text.contains(&format!(
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$ConnectionString\" password=\"Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=telemetry\";\n"
    )));
    assert!(text.contains("compression.type=none\n"));
    assert!(text.contains("max.request.size=1046527\n"));
    assert!(text.contains("request.timeout.ms=60000\n"));
    assert!(text.contains("#   socket.keepalive.enable=true\n"));
    assert!(!text.contains("client.id"));
    assert!(e.has_secret);
    assert!(!e.redacted().contains(KEY));
    assert!(e.redacted().contains("password=\"***\""));
}

#[test]
fn librdkafka_consumer_file_leaves_out_the_tools_own_commit_settings() {
    let p = settings().properties(&ClientKind::Consumer {
        group_id: "g".into(),
        from: crate::kafka::config::StartFrom::Earliest,
    });
    let text = export(&p, ExportFormat::Librdkafka, "test")
        .with_secrets()
        .to_string();
    assert!(text.contains("group.id=g\n"));
    assert!(text.contains("session.timeout.ms=30000\n"));
    assert!(text.contains("sasl.username=$ConnectionString\n"));
    assert!(!text.contains("enable.auto.commit"));
    assert!(!text.contains("enable.auto.offset.store"));
}

#[test]
fn kcat_file_has_connection_and_global_settings_only() {
    let p = settings().properties(&ClientKind::Admin { group_id: None });
    let e = export(&p, ExportFormat::Kcat, "test");
    let keys: Vec<_> = e
        .with_secrets()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "bootstrap.servers",
            "connections.max.idle.ms",
            "message.max.bytes",
            "metadata.max.age.ms",
            "sasl.mechanism",
            "sasl.password",
            "sasl.username",
            "security.protocol",
            "socket.keepalive.enable"
        ]
    );
}

#[test]
fn entra_client_secret_becomes_oidc_for_librdkafka_and_the_login_handler_for_java() {
    let credential = CredentialExport::ClientSecret {
        token_endpoint: "https://login.example/t/oauth2/v2.0/token".into(),
        client_id: "app".into(),
        client_secret: crate::secret::Secret::new("s3cret\"x"),
        scope: "https://myns.servicebus.windows.net/.default".into(),
    };
    let mut p = settings().properties(&ClientKind::Producer);
    let note = entra_settings(&mut p, &credential, ExportFormat::Java);
    assert!(note.usable);
    assert!(note.comment.contains(
        "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=https://login.example/t/oauth2/v2.0/token"
    ));
    let e = export(&p, ExportFormat::Java, &format!("test\n{}", note.comment));
    let text = e.with_secrets();
    assert!(text.starts_with("# test\n# Kafka 4.0 and later"), "{text}");
    assert!(text.contains("sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n"), "{text}");
    assert!(
        text.contains(
            "sasl.oauthbearer.token.endpoint.url=https://login.example/t/oauth2/v2.0/token\n"
        ),
        "{text}"
    );
    assert!(text.contains("OAuthBearerLoginModule required clientId=\"app\" clientSecret=\"s3cret\\\"x\" scope=\"https://myns.servicebus.windows.net/.default\";\n"), "{text}");
    assert!(!text.contains("#   sasl.oauthbearer"), "{text}");
    assert!(e.has_secret);
    assert!(!e.redacted().contains("s3cret"));

    let mut p = settings().properties(&ClientKind::Producer);
    entra_settings(&mut p, &credential, ExportFormat::Librdkafka);
    let text = export(&p, ExportFormat::Librdkafka, "test")
        .with_secrets()
        .to_string();
    assert!(text.contains("sasl.oauthbearer.method=oidc\n"), "{text}");
    assert!(text.contains("sasl.oauthbearer.client.id=app\n"), "{text}");
}

#[test]
fn entra_sources_other_clients_cannot_use_are_named_in_the_file() {
    let mut p = settings().properties(&ClientKind::Producer);
    let note = entra_settings(
        &mut p,
        &CredentialExport::Unsupported {
            source: "Azure CLI",
        },
        ExportFormat::Librdkafka,
    );
    assert!(!note.usable);
    assert!(
        note.comment
            .contains("from the Azure CLI, which librdkafka")
    );
    assert!(p.get("sasl.oauthbearer.method").is_none());

    let imds = CredentialExport::Imds {
        token_endpoint: None,
        query: "api-version=2018-02-01&resource=https%3A%2F%2Fmyns.servicebus.windows.net".into(),
    };
    let mut p = settings().properties(&ClientKind::Producer);
    let note = entra_settings(&mut p, &imds, ExportFormat::Java);
    assert!(!note.usable, "Kafka's Java client has no IMDS login");
    let mut p = settings().properties(&ClientKind::Producer);
    let note = entra_settings(&mut p, &imds, ExportFormat::Librdkafka);
    assert!(note.usable);
    assert_eq!(
        p.get("sasl.oauthbearer.config"),
        Some("query=api-version=2018-02-01&resource=https%3A%2F%2Fmyns.servicebus.windows.net")
    );
    assert!(p.get("sasl.oauthbearer.token.endpoint.url").is_none());
}
