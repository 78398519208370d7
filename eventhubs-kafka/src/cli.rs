//! Argument groups shared by every binary, `#[command(flatten)]`ed into each.
//!
//! Every option also reads the environment variable named beside it. Secret values are
//! accepted only from the environment or from files (never `--help` defaults, never echoed
//! by a parse error), except `--connection-string`, which the issue asks for and which warns
//! that the process list shows it.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, ValueEnum};

use crate::connection_string::{ConnectionString, ConnectionStringError};
use crate::kafka::config::{
    ClientSettings, Endpoint, EntraEndpoint, EventHubsEndpoint, KafkaEndpoint, SaslMechanism,
    SecurityProtocol,
};
use crate::registry::RegistrySettings;
use crate::secret::Secret;

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// Where to connect: an Event Hubs namespace or any Kafka broker.
#[derive(Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct KafkaArgs {
    /// Event Hubs SAS connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…).
    /// Prefer the environment variable: a value on the command line is visible in the process list
    #[arg(
        long,
        env = "EVENTHUB_CONNECTION_STRING",
        hide_env_values = true,
        value_name = "STRING",
        conflicts_with = "bootstrap_servers"
    )]
    pub connection_string: Option<Secret>,

    /// Any Kafka-protocol broker, host:port[,host:port…] (instead of a connection string)
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", value_name = "HOSTS")]
    pub bootstrap_servers: Option<String>,

    /// Security protocol for --bootstrap-servers
    #[arg(
        long,
        env = "KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value = "PLAINTEXT"
    )]
    pub security_protocol: SecurityProtocol,

    /// SASL mechanism for --bootstrap-servers (the password comes from KAFKA_SASL_PASSWORD
    /// or --sasl-password-file)
    #[arg(long, env = "KAFKA_SASL_MECHANISM", value_enum)]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// SASL user name for --bootstrap-servers
    #[arg(long, env = "KAFKA_SASL_USERNAME", value_name = "USER")]
    pub sasl_username: Option<String>,

    /// File holding the SASL password (one line); otherwise KAFKA_SASL_PASSWORD is read
    #[arg(long, env = "KAFKA_SASL_PASSWORD_FILE", value_name = "FILE")]
    pub sasl_password_file: Option<PathBuf>,

    /// CA certificate(s) to verify the broker's TLS certificate (PEM), instead of the
    /// system's; with a connection string too (a TLS-inspecting proxy, a local test broker)
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION", value_name = "FILE")]
    pub ssl_ca_location: Option<PathBuf>,

    /// With a connection string: connect to HOST:PORT instead of the namespace's
    /// NAMESPACE-HOST:9093 (a private endpoint's address, a proxy, a local broker), still
    /// authenticating with the connection string
    #[arg(long, env = "EVENTHUB_KAFKA_ENDPOINT", value_name = "HOST:PORT")]
    pub kafka_endpoint: Option<String>,

    /// How to sign in to Event Hubs: a connection string (SAS key), or Microsoft Entra ID
    /// (OAUTHBEARER) with --namespace [default: entra when a namespace and no connection
    /// string are given]
    #[arg(long, env = "EVENTHUB_AUTH", value_enum)]
    pub auth: Option<EventHubsAuth>,

    /// Event Hubs namespace for Microsoft Entra ID: its name (`myns`:
    /// myns.servicebus.windows.net) or its host (sovereign clouds). Credentials from the
    /// environment: a client secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET),
    /// workload identity (AZURE_FEDERATED_TOKEN_FILE), managed identity, or the Azure CLI
    #[arg(long, env = "EVENTHUB_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Topic (event hub); defaults to the connection string's EntityPath
    #[arg(long, env = "EVENTHUB_NAME")]
    pub topic: Option<String>,

    /// librdkafka property passthrough, repeatable. Applied after the Event Hubs
    /// recommendations and before the settings the tools rely on, which win
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub librdkafka: Vec<(String, String)>,
}

/// `-X` values whose keys name credentials print as `***`; the connection string is a
/// [`Secret`] already.
impl std::fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let passthrough: Vec<(&str, &str)> = self
            .librdkafka
            .iter()
            .map(|(k, v)| {
                let shown = if crate::kafka::config::is_sensitive_key(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaArgs")
            .field("connection_string", &self.connection_string)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password_file", &self.sasl_password_file)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("kafka_endpoint", &self.kafka_endpoint)
            .field("auth", &self.auth)
            .field("namespace", &self.namespace)
            .field("topic", &self.topic)
            .field("librdkafka", &passthrough)
            .finish()
    }
}

/// A connection option that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "give --connection-string (EVENTHUB_CONNECTION_STRING), --namespace (EVENTHUB_NAMESPACE, Microsoft Entra ID) or --bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS)"
    )]
    NoEndpoint,
    #[error("invalid Event Hubs connection string: {0}")]
    ConnectionString(#[from] ConnectionStringError),
    #[error(
        "--{option} only applies to --bootstrap-servers; an Event Hubs connection string sets it itself"
    )]
    NotWithConnectionString { option: &'static str },
    #[error(
        "--kafka-endpoint (EVENTHUB_KAFKA_ENDPOINT) redirects a connection string; with --bootstrap-servers, name the broker there"
    )]
    KafkaEndpointWithoutConnectionString,
    #[error("--security-protocol {protocol} uses SASL: set --sasl-mechanism")]
    MissingMechanism { protocol: &'static str },
    #[error("--sasl-mechanism needs a user name: set --sasl-username (KAFKA_SASL_USERNAME)")]
    MissingUsername,
    #[error("--sasl-mechanism needs a password: set KAFKA_SASL_PASSWORD or --sasl-password-file")]
    MissingPassword,
    #[error(
        "--sasl-mechanism is set but --security-protocol {protocol} does not use SASL; use SASL_PLAINTEXT or SASL_SSL"
    )]
    MechanismWithoutSasl { protocol: &'static str },
    #[error("cannot read the SASL password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no topic: give --topic (EVENTHUB_NAME) or a connection string with EntityPath")]
    NoTopic,
    #[error(
        "--auth entra signs in with Microsoft Entra ID, not a connection string: give --namespace (EVENTHUB_NAMESPACE) and unset EVENTHUB_CONNECTION_STRING"
    )]
    EntraWithConnectionString,
    #[error("--auth entra needs --namespace (EVENTHUB_NAMESPACE): the namespace's name or host")]
    EntraNeedsNamespace,
    #[error(
        "--namespace (EVENTHUB_NAMESPACE) is for Event Hubs; with --bootstrap-servers, name the broker there"
    )]
    NamespaceWithBootstrapServers,
    #[error("--namespace `{0}` is not a namespace name or host (letters, digits, '-' and '.')")]
    BadNamespace(String),
    #[error(
        "--topic `{topic}` differs from the connection string's EntityPath `{entity_path}`: a key scoped to one event hub cannot reach another"
    )]
    TopicMismatch { topic: String, entity_path: String },
}

impl KafkaArgs {
    /// Resolve the endpoint, reading `KAFKA_SASL_PASSWORD` from the process environment.
    pub fn client_settings(&self, client_id: &str) -> Result<ClientSettings, ArgsError> {
        self.client_settings_with_env(client_id, |k| std::env::var(k).ok())
    }

    pub fn client_settings_with_env(
        &self,
        client_id: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientSettings, ArgsError> {
        let entra = match self.auth {
            Some(EventHubsAuth::Entra) => true,
            Some(EventHubsAuth::ConnectionString) => false,
            None => self.connection_string.is_none() && self.namespace.is_some(),
        };
        if entra {
            if self.connection_string.is_some() {
                return Err(ArgsError::EntraWithConnectionString);
            }
            let namespace = self
                .namespace
                .as_deref()
                .ok_or(ArgsError::EntraNeedsNamespace)?;
            let namespace_host = namespace_host(namespace)?;
            let tokens = crate::identity::TokenCache::new(
                Box::new(crate::identity::default_credential(&env)),
                EntraEndpoint::scope(&namespace_host),
            );
            return Ok(ClientSettings {
                endpoint: Endpoint::EventHubsEntra(EntraEndpoint {
                    namespace_host,
                    kafka_endpoint: self.kafka_endpoint.clone(),
                    ssl_ca_location: self.ssl_ca_location.clone(),
                    tokens: std::sync::Arc::new(tokens),
                }),
                passthrough: self.librdkafka.clone(),
                client_id: client_id.to_string(),
            });
        }
        if self.namespace.is_some() && self.bootstrap_servers.is_some() {
            return Err(ArgsError::NamespaceWithBootstrapServers);
        }
        let endpoint = match (&self.connection_string, &self.bootstrap_servers) {
            (Some(cs), _) => {
                for (set, option) in [
                    (self.sasl_mechanism.is_some(), "sasl-mechanism"),
                    (self.sasl_username.is_some(), "sasl-username"),
                    (self.sasl_password_file.is_some(), "sasl-password-file"),
                ] {
                    if set {
                        return Err(ArgsError::NotWithConnectionString { option });
                    }
                }
                Endpoint::EventHubs(EventHubsEndpoint {
                    connection: ConnectionString::parse(cs.expose())?,
                    kafka_endpoint: self.kafka_endpoint.clone(),
                    ssl_ca_location: self.ssl_ca_location.clone(),
                })
            }
            (None, Some(_)) if self.kafka_endpoint.is_some() => {
                return Err(ArgsError::KafkaEndpointWithoutConnectionString);
            }
            (None, Some(bootstrap)) => Endpoint::Kafka(self.kafka_endpoint(bootstrap, &env)?),
            (None, None) => return Err(ArgsError::NoEndpoint),
        };
        Ok(ClientSettings {
            endpoint,
            passthrough: self.librdkafka.clone(),
            client_id: client_id.to_string(),
        })
    }

    fn kafka_endpoint(
        &self,
        bootstrap: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<KafkaEndpoint, ArgsError> {
        let protocol = self.security_protocol;
        let name = protocol.as_librdkafka();
        let mut sasl_password = None;
        match (protocol.uses_sasl(), self.sasl_mechanism) {
            (true, None) => return Err(ArgsError::MissingMechanism { protocol: name }),
            (false, Some(_)) => return Err(ArgsError::MechanismWithoutSasl { protocol: name }),
            (true, Some(_)) => {
                if self.sasl_username.is_none() {
                    return Err(ArgsError::MissingUsername);
                }
                let password = match &self.sasl_password_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|source| ArgsError::PasswordFile {
                            path: path.clone(),
                            source,
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                    None => env("KAFKA_SASL_PASSWORD").ok_or(ArgsError::MissingPassword)?,
                };
                if password.is_empty() {
                    return Err(ArgsError::MissingPassword);
                }
                sasl_password = Some(Secret::new(password));
            }
            (false, None) => {}
        }
        Ok(KafkaEndpoint {
            bootstrap_servers: bootstrap.to_string(),
            security_protocol: protocol,
            sasl_mechanism: self.sasl_mechanism,
            sasl_username: self.sasl_username.clone(),
            sasl_password,
            ssl_ca_location: self.ssl_ca_location.clone(),
        })
    }

    /// The topic: `--topic`, else the connection string's EntityPath.
    pub fn topic(&self, settings: &ClientSettings) -> Result<String, ArgsError> {
        let entity_path = match &settings.endpoint {
            Endpoint::EventHubs(e) => e.connection.entity_path(),
            Endpoint::EventHubsEntra(_) | Endpoint::Kafka(_) => None,
        };
        match (&self.topic, entity_path) {
            (Some(topic), Some(path)) if topic != path => Err(ArgsError::TopicMismatch {
                topic: topic.clone(),
                entity_path: path.to_string(),
            }),
            (Some(topic), _) => Ok(topic.clone()),
            (None, Some(path)) => Ok(path.to_string()),
            (None, None) => Err(ArgsError::NoTopic),
        }
    }
}

/// How to sign in to Event Hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventHubsAuth {
    /// A SAS connection string (EVENTHUB_CONNECTION_STRING)
    ConnectionString,
    /// Microsoft Entra ID (OAUTHBEARER), with --namespace
    Entra,
}

/// `myns` → `myns.servicebus.windows.net`; a host (with a dot) stays as it is.
fn namespace_host(namespace: &str) -> Result<String, ArgsError> {
    let ns = namespace.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !ns.is_empty()
        && ns.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(ArgsError::BadNamespace(namespace.to_string()));
    }
    Ok(if ns.contains('.') {
        ns
    } else {
        format!("{ns}.servicebus.windows.net")
    })
}

/// Parse the command line of a binary, and name the secrets that came on the command line
/// itself (visible in the process list), which the caller warns about once logging is up.
pub fn parse_args<T: clap::Parser>() -> (T, Vec<String>) {
    let matches = T::command().get_matches();
    let mut warnings = Vec::new();
    secrets_on_command_line(&matches, &mut warnings);
    let cli = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli, warnings)
}

fn secrets_on_command_line(matches: &clap::ArgMatches, warnings: &mut Vec<String>) {
    use clap::parser::ValueSource;
    let from_command_line = |id: &str| {
        matches.try_get_raw(id).ok().flatten().is_some()
            && matches.value_source(id) == Some(ValueSource::CommandLine)
    };
    if from_command_line("connection_string") {
        warnings.push(CONNECTION_STRING_ON_COMMAND_LINE.to_string());
    }
    if let Ok(Some(values)) = matches.try_get_raw("librdkafka") {
        for value in values {
            let key = value.to_string_lossy();
            let key = key.split('=').next().unwrap_or_default().trim();
            if crate::kafka::config::is_sensitive_key(key) {
                warnings.push(format!(
                    "-X {key}=… was given on the command line, where other users of this machine can read it in the process list; prefer the environment (KAFKA_SASL_PASSWORD) or --sasl-password-file"
                ));
            }
        }
    }
    for (id, flag, env) in [
        ("db", "--db", "DATABASE_URL"),
        ("sink_db", "--sink-db", "SINK_DATABASE_URL"),
    ] {
        if from_command_line(id)
            && let Ok(Some(mut values)) = matches.try_get_raw(id)
            && values
                .next()
                .is_some_and(|url| url_has_password(&url.to_string_lossy()))
        {
            warnings.push(format!(
                "{flag} holds a password, on the command line where other users of this machine can read it in the process list; prefer {env}, PGPASSWORD or ~/.pgpass"
            ));
        }
    }
    if let Some((_, sub)) = matches.subcommand() {
        secrets_on_command_line(sub, warnings);
    }
}

/// `scheme://user:password@host…`
fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The warning for a connection string given on the command line.
pub const CONNECTION_STRING_ON_COMMAND_LINE: &str = "--connection-string was given on the command line, where other users of this machine can read it in the process list; prefer EVENTHUB_CONNECTION_STRING";

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        // Never echo the value: it may be a password.
        _ => Err("expected KEY=VALUE".to_string()),
    }
}

/// Value parsers for numeric and duration flags: a bad value is a usage error (exit 2) at
/// parse time, never a panic or a silent surprise later (a zero period, an `Instant`
/// overflow, a NaN rate).
pub mod values {
    use std::time::Duration;

    /// The longest duration any flag takes (a year): more overflows `Instant` arithmetic.
    pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

    /// A duration greater than zero and at most [`MAX_DURATION`] (`500ms`, `30s`, `5m`).
    pub fn duration(s: &str) -> Result<Duration, String> {
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("`{s}`: {e} (e.g. 500ms, 30s, 5m)"))?;
        if d.is_zero() {
            return Err(format!("`{s}`: must be greater than zero"));
        }
        if d > MAX_DURATION {
            return Err(format!("`{s}`: at most a year (366 days)"));
        }
        Ok(d)
    }

    /// Events per second: a finite number from 0.001 to 10,000,000 (leave `--rate` out for
    /// no limit).
    pub fn rate(s: &str) -> Result<f64, String> {
        let r: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number of events per second"))?;
        if !r.is_finite() || !(0.001..=10_000_000.0).contains(&r) {
            return Err(format!(
                "`{s}`: give a rate from 0.001 to 10000000 events/s; leave --rate out for no limit"
            ));
        }
        Ok(r)
    }

    /// A whole number of at least 1.
    pub fn at_least_one(s: &str) -> Result<u64, String> {
        match s.trim().parse::<u64>() {
            Ok(0) => Err(format!("`{s}`: must be at least 1")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("`{s}` is not a whole number")),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bad_values_are_refused_with_a_reason() {
            for bad in ["0s", "0", "abc", "-1s", "1000y"] {
                assert!(duration(bad).is_err(), "{bad}");
            }
            assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
            for bad in ["NaN", "inf", "-1", "0", "1e-20", "1e300", "fast"] {
                assert!(rate(bad).is_err(), "{bad}");
            }
            assert_eq!(rate("1500"), Ok(1500.0));
            assert!(at_least_one("0").is_err() && at_least_one("x").is_err());
            assert_eq!(at_least_one("7"), Ok(7));
        }
    }
}

/// A Confluent-compatible schema registry.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema registry")]
pub struct RegistryArgs {
    /// Confluent-compatible schema registry URL (basic auth from SCHEMA_REGISTRY_USERNAME
    /// and SCHEMA_REGISTRY_PASSWORD)
    #[arg(long, env = "SCHEMA_REGISTRY_URL", value_name = "URL")]
    pub schema_registry_url: Option<String>,

    /// Schema registry user name for basic auth
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME", value_name = "USER")]
    pub schema_registry_username: Option<String>,

    /// Azure Schema Registry schema group: the producer registers its schema there and writes
    /// Azure's format (content type avro/binary+ID); --schema-registry-url is then the
    /// namespace's own endpoint (https, NAMESPACE.servicebus.windows.net), reached with
    /// Microsoft Entra ID
    #[arg(long, env = "SCHEMA_REGISTRY_GROUP", value_name = "GROUP")]
    pub schema_group: Option<String>,
}

impl RegistryArgs {
    pub fn settings(&self) -> Option<RegistrySettings> {
        self.settings_with_env(|k| std::env::var(k).ok())
    }

    pub fn settings_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<RegistrySettings> {
        let url = self.schema_registry_url.clone()?;
        Some(RegistrySettings {
            url,
            username: self.schema_registry_username.clone(),
            password: env("SCHEMA_REGISTRY_PASSWORD").map(Secret::new),
            schema_group: self.schema_group.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging: to stderr, levels from RUST_LOG.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log line format (levels come from RUST_LOG, default info)
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
