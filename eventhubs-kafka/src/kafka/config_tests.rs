//! Tests of the librdkafka configuration layers (config.rs).
use super::*;

const KEY: &str = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWsxMjM0NTY3OA==";

fn event_hubs(extra: &str) -> ClientSettings {
    let cs = ConnectionString::parse(&format!(
        "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}{extra}"
    ))
    .unwrap();
    ClientSettings {
        endpoint: Endpoint::EventHubs(cs.into()),
        passthrough: vec![],
        client_id: "test".into(),
    }
}

fn flat(p: &Properties) -> Vec<(String, String)> {
    p.resolved()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.value.display().to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn event_hubs_producer_properties() {
    let p = event_hubs("").properties(&ClientKind::Producer);
    assert_eq!(
        flat(&p),
        pairs(&[
            ("acks", "all"),
            ("bootstrap.servers", "myns.servicebus.windows.net:9093"),
            ("client.id", "test"),
            ("compression.codec", "none"),
            ("connections.max.idle.ms", "180000"),
            ("enable.idempotence", "true"),
            ("message.max.bytes", "1046527"),
            ("metadata.max.age.ms", "180000"),
            ("queue.buffering.max.messages", "50000"),
            ("request.timeout.ms", "60000"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.password", "***"),
            ("sasl.username", "$ConnectionString"),
            ("security.protocol", "sasl_ssl"),
            ("socket.keepalive.enable", "true"),
        ])
    );
    let config = p.client_config();
    assert_eq!(
        config.get("sasl.password").unwrap(),
        format!(
            "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"
        )
    );
}

#[test]
fn event_hubs_consumer_properties() {
    let p = event_hubs(";EntityPath=t").properties(&ClientKind::Consumer {
        group_id: "g1".into(),
        from: StartFrom::Earliest,
    });
    assert_eq!(
        flat(&p),
        pairs(&[
            ("auto.offset.reset", "earliest"),
            ("bootstrap.servers", "myns.servicebus.windows.net:9093"),
            ("client.id", "test"),
            ("connections.max.idle.ms", "180000"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("fetch.max.bytes", "3145728"),
            ("fetch.queue.backoff.ms", "10"),
            ("group.id", "g1"),
            ("heartbeat.interval.ms", "3000"),
            ("max.poll.interval.ms", "300000"),
            ("message.max.bytes", "1046527"),
            ("metadata.max.age.ms", "180000"),
            ("queued.max.messages.kbytes", "3072"),
            ("queued.min.messages", "10000"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.password", "***"),
            ("sasl.username", "$ConnectionString"),
            ("security.protocol", "sasl_ssl"),
            ("session.timeout.ms", "30000"),
            ("socket.keepalive.enable", "true"),
        ])
    );
}

#[test]
fn kafka_endpoint_and_ca_redirect_a_connection_string_but_keep_its_authentication() {
    let cs = ConnectionString::parse(&format!(
        "Endpoint=sb://localhost/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=hub"
    ))
    .unwrap();
    let settings = ClientSettings {
        endpoint: Endpoint::EventHubs(EventHubsEndpoint {
            connection: cs,
            kafka_endpoint: Some("127.0.0.1:19093".into()),
            ssl_ca_location: Some("/tmp/test-ca.pem".into()),
        }),
        // Neither can be undone by a passthrough.
        passthrough: vec![("bootstrap.servers".into(), "elsewhere:9093".into())],
        client_id: "test".into(),
    };
    let p = settings.properties(&ClientKind::Producer);
    assert_eq!(p.get("bootstrap.servers"), Some("127.0.0.1:19093"));
    assert_eq!(settings.bootstrap_servers(), "127.0.0.1:19093");
    assert_eq!(p.get("ssl.ca.location"), Some("/tmp/test-ca.pem"));
    assert_eq!(p.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(p.get("sasl.mechanism"), Some("PLAIN"));
    assert_eq!(p.get("sasl.username"), Some("$ConnectionString"));
    // Event Hubs' recommendations still apply: it is still Event Hubs.
    assert_eq!(p.get("connections.max.idle.ms"), Some("180000"));
}

#[test]
fn emulator_uses_plaintext_sasl_on_9092() {
    let cs = ConnectionString::parse(
        "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
    )
    .unwrap();
    let settings = ClientSettings {
        endpoint: Endpoint::EventHubs(cs.into()),
        passthrough: vec![],
        client_id: "test".into(),
    };
    let p = settings.properties(&ClientKind::Producer);
    assert_eq!(p.get("bootstrap.servers"), Some("localhost:9092"));
    assert_eq!(p.get("security.protocol"), Some("sasl_plaintext"));
    assert_eq!(p.get("sasl.mechanism"), Some("PLAIN"));
    assert_eq!(p.get("sasl.username"), Some("$ConnectionString"));
}

#[test]
fn plain_kafka_gets_no_event_hubs_recommendations() {
    let settings = ClientSettings {
        endpoint: Endpoint::Kafka(KafkaEndpoint {
            bootstrap_servers: "127.0.0.1:9092".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("alice".into()),
            sasl_password: Some(Secret::new("pw")),
            ssl_ca_location: Some("/tmp/ca.pem".into()),
        }),
        passthrough: vec![],
        client_id: "test".into(),
    };
    let p = settings.properties(&ClientKind::Producer);
    assert_eq!(
        flat(&p),
        pairs(&[
            ("acks", "all"),
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("client.id", "test"),
            ("enable.idempotence", "true"),
            ("queue.buffering.max.messages", "50000"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.password", "***"),
            ("sasl.username", "alice"),
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", "/tmp/ca.pem"),
        ])
    );
}

#[test]
fn passthrough_changes_recommendations_but_not_invariants() {
    let mut settings = event_hubs("");
    settings.passthrough = vec![
        ("linger.ms".into(), "20".into()),
        ("metadata.max.age.ms".into(), "60000".into()),
        ("acks".into(), "1".into()),
        ("sasl.password".into(), "mine".into()),
        ("enable.idempotence".into(), "true".into()),
    ];
    let p = settings.properties(&ClientKind::Producer);
    assert_eq!(p.get("linger.ms"), Some("20"));
    assert_eq!(p.get("metadata.max.age.ms"), Some("60000"));
    assert_eq!(p.get("acks"), Some("all"));
    let overridden = p.overridden();
    let keys: Vec<_> = overridden.iter().map(|o| o.key.as_str()).collect();
    // Same value as required: not worth a warning.
    assert_eq!(keys, vec!["acks", "sasl.password"]);
    assert_eq!(overridden[0].requested, "1");
    assert_eq!(overridden[0].applied, "all");
    // Secrets are never shown, not even the user's own.
    assert_eq!(overridden[1].requested, "***");
    assert_eq!(overridden[1].applied, "***");
}
