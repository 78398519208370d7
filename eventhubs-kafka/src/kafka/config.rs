//! The one place that builds librdkafka configuration, for every client kind.
//!
//! Properties are applied in layers, later layers winning:
//! 1. recommendations: Microsoft's settings for Event Hubs (only for Event Hubs endpoints);
//! 2. passthrough: the user's `-X key=value`, free to change any recommendation;
//! 3. required: the connection and the invariants the code relies on (idempotence, manual
//!    offset store, ...). A passthrough they override is reported by [`Properties::overridden`].
//!
//! Secrets stay [`Secret`]s until [`Properties::client_config`] hands them to librdkafka.

use std::path::PathBuf;

use clap::ValueEnum;

pub use super::properties::{Origin, Overridden, Properties, Property, PropertyValue};
use crate::connection_string::ConnectionString;
use crate::secret::Secret;

/// Largest request Event Hubs accepts: a larger one makes the service close the connection
/// (EVENTHUBS.md, "message.max.bytes / request size < 1,046,528").
pub const EVENT_HUBS_MAX_REQUEST_BYTES: usize = 1_046_527;

/// Where the clients connect.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// An Event Hubs namespace (or the emulator) reached through its connection string.
    EventHubs(EventHubsEndpoint),
    /// An Event Hubs namespace reached with Microsoft Entra ID (SASL OAUTHBEARER).
    EventHubsEntra(EntraEndpoint),
    /// Any Kafka-protocol broker.
    Kafka(KafkaEndpoint),
}

/// An Event Hubs namespace: the connection string says who we are and which namespace;
/// two overrides say how to reach it when the public endpoint is not the way.
#[derive(Debug, Clone)]
pub struct EventHubsEndpoint {
    pub connection: ConnectionString,
    /// `host:port` to connect to instead of `<namespace host>:9093` (a private endpoint's
    /// address, a TLS-inspecting proxy, a local broker in tests). Authentication stays the
    /// connection string's.
    pub kafka_endpoint: Option<String>,
    /// CA bundle to verify the endpoint with instead of the system's (a proxy's or a test
    /// broker's CA).
    pub ssl_ca_location: Option<PathBuf>,
}

impl From<ConnectionString> for EventHubsEndpoint {
    fn from(connection: ConnectionString) -> Self {
        Self {
            connection,
            kafka_endpoint: None,
            ssl_ca_location: None,
        }
    }
}

impl EventHubsEndpoint {
    /// `--kafka-endpoint` when given, else the namespace's Kafka endpoint.
    pub fn bootstrap_servers(&self) -> String {
        self.kafka_endpoint
            .clone()
            .unwrap_or_else(|| self.connection.bootstrap_servers())
    }
}

/// An Event Hubs namespace with Microsoft Entra ID: SASL_SSL + OAUTHBEARER on
/// `<namespace host>:9093`, tokens of scope `https://<namespace host>/.default` from
/// `tokens` (the credential chain), handed to librdkafka by the clients' context.
#[derive(Clone)]
pub struct EntraEndpoint {
    /// `<namespace>.servicebus.windows.net` (or a sovereign cloud's).
    pub namespace_host: String,
    /// As [`EventHubsEndpoint::kafka_endpoint`].
    pub kafka_endpoint: Option<String>,
    pub ssl_ca_location: Option<PathBuf>,
    pub tokens: std::sync::Arc<crate::identity::TokenCache>,
}

impl std::fmt::Debug for EntraEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraEndpoint")
            .field("namespace_host", &self.namespace_host)
            .field("kafka_endpoint", &self.kafka_endpoint)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .finish_non_exhaustive()
    }
}

impl EntraEndpoint {
    /// The token scope for the namespace's Kafka endpoint (not `eventhubs.azure.net`, which
    /// it refuses with "Invalid tenant name").
    pub fn scope(namespace_host: &str) -> String {
        format!("https://{namespace_host}/.default")
    }

    pub fn bootstrap_servers(&self) -> String {
        self.kafka_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}:9093", self.namespace_host))
    }
}

#[derive(Debug, Clone)]
pub struct KafkaEndpoint {
    pub bootstrap_servers: String,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<Secret>,
    pub ssl_ca_location: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `--from`: where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartFrom {
    Earliest,
    Latest,
}

/// Which client a configuration is for; each gets only the properties it understands
/// (librdkafka warns about, and ignores, producer properties on a consumer and vice versa).
#[derive(Debug, Clone)]
pub enum ClientKind {
    Producer,
    Consumer {
        group_id: String,
        from: StartFrom,
    },
    /// Metadata, watermarks, committed offsets and topic creation: no group membership.
    Admin {
        group_id: Option<String>,
    },
}

/// Connection plus passthrough: everything needed to build any client's configuration.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub endpoint: Endpoint,
    pub passthrough: Vec<(String, String)>,
    /// `client.id`, so broker logs and quotas tell the tools apart.
    pub client_id: String,
}

impl ClientSettings {
    pub fn is_event_hubs(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::EventHubs(_) | Endpoint::EventHubsEntra(_)
        )
    }

    pub fn bootstrap_servers(&self) -> String {
        match &self.endpoint {
            Endpoint::EventHubs(e) => e.bootstrap_servers(),
            Endpoint::EventHubsEntra(e) => e.bootstrap_servers(),
            Endpoint::Kafka(k) => k.bootstrap_servers.clone(),
        }
    }

    /// The namespace's short name (`myns` of `myns.servicebus.windows.net`); `None` for a
    /// plain Kafka broker.
    pub fn namespace(&self) -> Option<String> {
        let host = match &self.endpoint {
            Endpoint::EventHubs(e) => e.connection.host().to_string(),
            Endpoint::EventHubsEntra(e) => e.namespace_host.clone(),
            Endpoint::Kafka(_) => return None,
        };
        host.split('.').next().map(str::to_string)
    }

    /// Where OAUTHBEARER tokens come from, when the endpoint uses Microsoft Entra ID.
    pub fn tokens(&self) -> Option<std::sync::Arc<crate::identity::TokenCache>> {
        match &self.endpoint {
            Endpoint::EventHubsEntra(e) => Some(e.tokens.clone()),
            _ => None,
        }
    }

    pub fn properties(&self, kind: &ClientKind) -> Properties {
        let mut p = Properties::default();
        recommend_for_any_broker(&mut p, kind);
        if self.is_event_hubs() {
            recommend_event_hubs(&mut p, kind);
        }
        for (key, value) in &self.passthrough {
            let value = if is_sensitive_key(key) {
                PropertyValue::Secret(Secret::new(value.as_str()))
            } else {
                PropertyValue::Plain(value.clone())
            };
            p.entries.push(Property {
                key: key.clone(),
                value,
                origin: Origin::Passthrough,
                why: "",
            });
        }
        self.require_connection(&mut p);
        p.set(
            Origin::Required,
            "client.id",
            self.client_id.as_str(),
            "names this tool in broker logs and quotas",
        );
        require_invariants(&mut p, kind);
        p
    }

    fn require_connection(&self, p: &mut Properties) {
        const R: Origin = Origin::Required;
        match &self.endpoint {
            Endpoint::EventHubs(e) => {
                let cs = &e.connection;
                let why = if e.kafka_endpoint.is_some() {
                    "from --kafka-endpoint, instead of the namespace's own endpoint"
                } else {
                    "the namespace's Kafka endpoint, host taken from Endpoint"
                };
                p.set(R, "bootstrap.servers", e.bootstrap_servers(), why);
                if cs.is_emulator() {
                    p.set(
                        R,
                        "security.protocol",
                        "sasl_plaintext",
                        "the Event Hubs emulator speaks SASL without TLS",
                    );
                } else {
                    p.set(
                        R,
                        "security.protocol",
                        "sasl_ssl",
                        "Event Hubs accepts only SASL over TLS",
                    );
                }
                p.set(
                    R,
                    "sasl.mechanism",
                    "PLAIN",
                    "connection strings authenticate with SASL PLAIN",
                );
                p.set(
                    R,
                    "sasl.username",
                    "$ConnectionString",
                    "Event Hubs expects this literal user name",
                );
                p.set_secret(
                    "sasl.password",
                    cs.sasl_password(),
                    "the whole connection string is the password",
                );
            }
            Endpoint::EventHubsEntra(e) => {
                let why = if e.kafka_endpoint.is_some() {
                    "from --kafka-endpoint, instead of the namespace's own endpoint"
                } else {
                    "the namespace's Kafka endpoint"
                };
                p.set(R, "bootstrap.servers", e.bootstrap_servers(), why);
                p.set(
                    R,
                    "security.protocol",
                    "sasl_ssl",
                    "Event Hubs accepts only SASL over TLS",
                );
                p.set(
                    R,
                    "sasl.mechanism",
                    "OAUTHBEARER",
                    "Microsoft Entra ID tokens, refreshed by the tool before they expire",
                );
            }
            Endpoint::Kafka(k) => {
                p.set(R, "bootstrap.servers", k.bootstrap_servers.as_str(), "");
                p.set(
                    R,
                    "security.protocol",
                    k.security_protocol.as_librdkafka(),
                    "from --security-protocol",
                );
                if let Some(m) = k.sasl_mechanism {
                    p.set(
                        R,
                        "sasl.mechanism",
                        m.as_librdkafka(),
                        "from --sasl-mechanism",
                    );
                }
                if let Some(user) = &k.sasl_username {
                    p.set(R, "sasl.username", user.as_str(), "from --sasl-username");
                }
                if let Some(password) = &k.sasl_password {
                    p.set_secret(
                        "sasl.password",
                        password,
                        "from KAFKA_SASL_PASSWORD or --sasl-password-file",
                    );
                }
            }
        }
        let ca = match &self.endpoint {
            Endpoint::Kafka(k) => k.ssl_ca_location.as_ref(),
            Endpoint::EventHubs(e) => e.ssl_ca_location.as_ref(),
            Endpoint::EventHubsEntra(e) => e.ssl_ca_location.as_ref(),
        };
        if let Some(ca) = ca {
            p.set(
                R,
                "ssl.ca.location",
                ca.display().to_string(),
                "from --ssl-ca-location",
            );
        }
    }
}

/// librdkafka properties whose values are credentials, whoever sets them.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key == "sasl.oauthbearer.config"
        || key == "ssl.key.pem"
        || key == "ssl_key"
}

/// Defaults measured to serve the tools better than librdkafka's own, whatever the broker.
fn recommend_for_any_broker(p: &mut Properties, kind: &ClientKind) {
    if let ClientKind::Producer = kind {
        // Events waiting for the broker are memory: librdkafka holds up to 100,000 (about
        // 33 MiB of telemetry with its per-event bookkeeping), reached whenever the broker
        // is slower than the input (a cold broker, a remote namespace). 50,000 is still
        // 100 ms of the producer's fastest pace here, and librdkafka waits (backpressure)
        // rather than failing when they are all in flight.
        p.set(
            Origin::Recommended,
            "queue.buffering.max.messages",
            "50000",
            "bounds the memory of events in flight (librdkafka: 100,000)",
        );
    }
    if let ClientKind::Consumer { .. } = kind {
        // librdkafka 2.12 stops fetching a partition for fetch.queue.backoff.ms (1000 ms)
        // whenever its prefetch queue is over queued.min.messages: against a broker that
        // keeps up, the consumer idled two thirds of the time (1,000,000 events from Apache
        // Kafka 4.3 on loopback: 6.7 s at 1000 ms, 1.7 s at 100 ms, same CPU and memory).
        //
        // The prefetch queue itself: librdkafka's defaults (64 MiB, 100,000 events, fetches of
        // up to 50 MiB) cost a consumer about 70 MiB of memory and bought nothing; a queue of
        // 3 MiB or 10,000 events refilled after a 10 ms pause was faster (1,000,000 events
        // from Kafka on loopback: 1.2 s instead of 1.4 s, 0.95 s of CPU instead of 1.1) at
        // 27 MiB. A fetch of 3 MiB still holds three of Event Hubs' largest events (1 MB), and
        // at a 30 ms round trip it carries 100 MB/s, more than a consumer decodes.
        const R: Origin = Origin::Recommended;
        p.set(
            R,
            "fetch.queue.backoff.ms",
            "10",
            "librdkafka's 1 s pause after a full prefetch queue left the consumer idle",
        );
        p.set(
            R,
            "queued.max.messages.kbytes",
            "3072",
            "a prefetch of 3 MiB keeps up; librdkafka's 64 MiB only costs memory",
        );
        p.set(
            R,
            "queued.min.messages",
            "10000",
            "refill the prefetch queue in smaller steps (librdkafka: 100,000)",
        );
        p.set(
            R,
            "fetch.max.bytes",
            "3145728",
            "fetches no larger than the prefetch queue (librdkafka: 50 MiB)",
        );
    }
}

/// Microsoft's recommended client settings for Event Hubs (EVENTHUBS.md, "Client settings").
fn recommend_event_hubs(p: &mut Properties, kind: &ClientKind) {
    const R: Origin = Origin::Recommended;
    p.set(
        R,
        "socket.keepalive.enable",
        "true",
        "Azure's load balancer drops idle TCP connections silently",
    );
    p.set(
        R,
        "metadata.max.age.ms",
        "180000",
        "must stay under the service's 240 s idle timeout",
    );
    p.set(
        R,
        "connections.max.idle.ms",
        "180000",
        "Azure closes idle connections at 240 s; librdkafka only picks a safe value for hosts named *azure*",
    );
    p.set(
        R,
        "message.max.bytes",
        EVENT_HUBS_MAX_REQUEST_BYTES.to_string(),
        "a request of 1,046,528 bytes or more makes the service close the connection",
    );
    match kind {
        ClientKind::Producer => {
            p.set(
                R,
                "request.timeout.ms",
                "60000",
                "the service enforces more than 20 s; throttled produces come back late",
            );
            p.set(
                R,
                "compression.codec",
                "none",
                "Standard tier rejects compressed batches (gzip only on Premium/Dedicated)",
            );
        }
        ClientKind::Consumer { .. } => {
            p.set(
                R,
                "session.timeout.ms",
                "30000",
                "Microsoft's recommendation (range 6000–300000)",
            );
            p.set(
                R,
                "heartbeat.interval.ms",
                "3000",
                "Microsoft's recommendation; leave it",
            );
            p.set(
                R,
                "max.poll.interval.ms",
                "300000",
                "must exceed the session timeout",
            );
        }
        ClientKind::Admin { .. } => {}
    }
}

/// Settings the code's correctness depends on: set last so a passthrough cannot undo them.
fn require_invariants(p: &mut Properties, kind: &ClientKind) {
    const R: Origin = Origin::Required;
    match kind {
        ClientKind::Producer => {
            p.set(
                R,
                "enable.idempotence",
                "true",
                "retries must not duplicate or reorder events",
            );
            p.set(
                R,
                "acks",
                "all",
                "an event counts as sent only once every in-sync replica has it",
            );
        }
        ClientKind::Consumer { group_id, from } => {
            p.set(R, "group.id", group_id.as_str(), "from --group");
            p.set(
                R,
                "enable.auto.offset.store",
                "false",
                "the consumer commits explicit positions of events already written out (at least once)",
            );
            p.set(
                R,
                "enable.auto.commit",
                "false",
                "commits happen after output is flushed, on --commit-interval",
            );
            p.set(
                R,
                "auto.offset.reset",
                match from {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
                "from --from",
            );
        }
        ClientKind::Admin { group_id } => {
            if let Some(group_id) = group_id {
                p.set(
                    R,
                    "group.id",
                    group_id.as_str(),
                    "committed offsets are read per group",
                );
                p.set(
                    R,
                    "enable.auto.commit",
                    "false",
                    "a lag query must never commit",
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
