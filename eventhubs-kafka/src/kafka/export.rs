//! `config-export`: the resolved client configuration written for other Kafka tools, from
//! the same [`Properties`] the binaries use (connection, Event Hubs settings, passthrough),
//! so a kcat session or a Java client sees the namespace exactly as the tools do.
//!
//! Formats: a librdkafka properties file (any librdkafka client, `kcat -F`), a Java
//! `client.properties` (JAAS line, Java property names), and a kcat file (connection and
//! global settings only, valid for both kcat modes).
//!
//! With Microsoft Entra ID the file tells the other client how to get tokens by itself
//! ([`entra_settings`]): a client secret becomes OAuth client credentials (librdkafka's
//! `sasl.oauthbearer.method=oidc`, Kafka's OIDC login callback handler); a VM's managed
//! identity becomes librdkafka's `azure_imds` method; sources no other client can use (a
//! federated token file, App Service's endpoint, the Azure CLI) are named in a comment.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use clap::ValueEnum;

use super::config::{Properties, PropertyValue};
use super::properties::Origin;
use crate::identity::CredentialExport;
use crate::secret::REDACTED;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// librdkafka `key=value` properties (librdkafka clients, confluent-kafka, kcat -F)
    Librdkafka,
    /// Java client.properties with the JAAS line (Kafka console tools, Java clients)
    Java,
    /// kcat -F file: connection and global settings only
    Kcat,
}

/// Settings that only make sense inside this project's tools (they commit offsets
/// themselves, and name themselves): never exported.
const TOOL_ONLY: &[&str] = &[
    "enable.auto.offset.store",
    "enable.auto.commit",
    "client.id",
];

/// Client-kind specific librdkafka settings, left out of the kcat file.
const CLIENT_SPECIFIC: &[&str] = &[
    "acks",
    "enable.idempotence",
    "request.timeout.ms",
    "compression.codec",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "group.id",
    "auto.offset.reset",
];

/// An exported configuration, with and without its secrets.
#[derive(Debug, Clone)]
pub struct Exported {
    text: String,
    redacted: String,
    pub has_secret: bool,
}

impl Exported {
    /// The text with secrets shown: for files (mode 0600) or an explicit `--show-secrets`.
    pub fn with_secrets(&self) -> &str {
        &self.text
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Write to `path`, readable by its owner only when it holds a secret.
    /// Write to a new private file beside `path`, then rename it over `path`: a symlink
    /// planted at `path` is replaced, never followed, and no reader sees half a file.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output path names no file",
            )
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{}.{}.{nanos:x}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        // create_new: never opens an existing file (or a symlink) at the temporary name.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options
            .open(&temp)
            .and_then(|file| write_all(file, &self.text))
            .and_then(|()| std::fs::rename(&temp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

fn write_all(mut file: std::fs::File, text: &str) -> std::io::Result<()> {
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Render `properties` in `format`. `header` is a comment line saying where it came from.
pub fn export(properties: &Properties, format: ExportFormat, header: &str) -> Exported {
    let resolved = properties.resolved();
    let entries: Vec<(&str, &PropertyValue)> = resolved
        .iter()
        .filter(|(k, _)| !TOOL_ONLY.contains(k))
        .filter(|(k, _)| format != ExportFormat::Kcat || !CLIENT_SPECIFIC.contains(k))
        .map(|(k, p)| (*k, &p.value))
        .collect();
    let has_secret = entries.iter().any(|(_, v)| v.is_secret());
    let render = |show: bool| match format {
        ExportFormat::Librdkafka | ExportFormat::Kcat => librdkafka(&entries, header, show),
        ExportFormat::Java => java(&entries, header, show),
    };
    Exported {
        text: render(true),
        redacted: render(false),
        has_secret,
    }
}

fn value(v: &PropertyValue, show: bool) -> String {
    match v {
        PropertyValue::Plain(s) => s.clone(),
        PropertyValue::Secret(s) if show => s.expose().to_string(),
        PropertyValue::Secret(_) => REDACTED.to_string(),
    }
}

/// `header`'s lines as comments, then the credential warning.
fn preamble(out: &mut String, header: &str, has_secret: bool) {
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    if has_secret {
        let _ = writeln!(
            out,
            "# Holds a credential: keep this file private (mode 0600)."
        );
    }
}

fn librdkafka(entries: &[(&str, &PropertyValue)], header: &str, show: bool) -> String {
    let mut out = String::new();
    preamble(&mut out, header, entries.iter().any(|(_, v)| v.is_secret()));
    for (k, v) in entries {
        let _ = writeln!(out, "{k}={}", value(v, show));
    }
    out
}

/// Java property names where they differ from librdkafka's.
fn java_name(key: &str, producer: bool) -> Option<&'static str> {
    Some(match key {
        "bootstrap.servers" => "bootstrap.servers",
        "security.protocol" => "security.protocol",
        "sasl.mechanism" => "sasl.mechanism",
        "metadata.max.age.ms" => "metadata.max.age.ms",
        "connections.max.idle.ms" => "connections.max.idle.ms",
        "request.timeout.ms" => "request.timeout.ms",
        "session.timeout.ms" => "session.timeout.ms",
        "heartbeat.interval.ms" => "heartbeat.interval.ms",
        "max.poll.interval.ms" => "max.poll.interval.ms",
        "acks" => "acks",
        "enable.idempotence" => "enable.idempotence",
        "group.id" => "group.id",
        "auto.offset.reset" => "auto.offset.reset",
        "compression.codec" => "compression.type",
        "message.max.bytes" if producer => "max.request.size",
        "sasl.oauthbearer.token.endpoint.url" => "sasl.oauthbearer.token.endpoint.url",
        _ => return None,
    })
}

/// Kafka's OIDC client-credentials login (Java clients 3.4 and later).
const JAVA_OIDC_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler";

/// The JVM system property that Kafka 4.0 and later clients check token endpoints against.
const JAVA_ALLOWED_URLS: &str = "org.apache.kafka.sasl.oauthbearer.allowed.urls";

/// What an Entra ID export must say in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraNote {
    /// Comment lines (empty: nothing to say).
    pub comment: String,
    /// Whether the file's client can get tokens with what the file holds.
    pub usable: bool,
}

/// Adds to `properties` what lets another client get the tokens of `credential` itself, and
/// says what the file must tell its reader for `format`.
pub fn entra_settings(
    properties: &mut Properties,
    credential: &CredentialExport,
    format: ExportFormat,
) -> EntraNote {
    let note = |comment: String, usable| EntraNote { comment, usable };
    const R: Origin = Origin::Required;
    let java = format == ExportFormat::Java;
    match credential {
        CredentialExport::ClientSecret {
            token_endpoint,
            client_id,
            client_secret,
            scope,
        } => {
            properties.set(
                R,
                "sasl.oauthbearer.method",
                "oidc",
                "the client gets its own tokens: OAuth 2.0 client credentials",
            );
            properties.set(R, "sasl.oauthbearer.token.endpoint.url", token_endpoint, "");
            properties.set(R, "sasl.oauthbearer.client.id", client_id, "");
            properties.set_secret("sasl.oauthbearer.client.secret", client_secret, "");
            properties.set(R, "sasl.oauthbearer.scope", scope, "");
            if java {
                note(
                    format!(
                        "Kafka 4.0 and later clients accept the token endpoint only when the JVM allows it:\n  KAFKA_OPTS=\"-D{JAVA_ALLOWED_URLS}={token_endpoint}\""
                    ),
                    true,
                )
            } else {
                note(String::new(), true)
            }
        }
        CredentialExport::Imds {
            token_endpoint,
            query,
        } => {
            properties.set(
                R,
                "sasl.oauthbearer.method",
                "oidc",
                "the client gets its own tokens",
            );
            properties.set(
                R,
                "sasl.oauthbearer.metadata.authentication.type",
                "azure_imds",
                "from this VM's managed identity (Azure IMDS)",
            );
            properties.set(R, "sasl.oauthbearer.config", format!("query={query}"), "");
            if let Some(url) = token_endpoint {
                properties.set(
                    R,
                    "sasl.oauthbearer.token.endpoint.url",
                    url,
                    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                );
            }
            if java {
                note("NOT USABLE AS IT IS: tokens come from this VM's managed identity (Azure IMDS),\nwhich Kafka's Java client cannot use by itself. Set AZURE_TENANT_ID, AZURE_CLIENT_ID\nand AZURE_CLIENT_SECRET and export again, or give it a login callback handler of your own.".to_string(), false)
            } else {
                note("Tokens come from this VM's managed identity (Azure IMDS): librdkafka 2.12 or later.".to_string(), true)
            }
        }
        CredentialExport::Unsupported { source } => {
            let client = if java {
                "Kafka's Java client"
            } else {
                "librdkafka"
            };
            note(
                format!(
                    "NOT USABLE AS IT IS: the tools got their tokens from the {source}, which {client}\ncannot use by itself. Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET\n(an application's client secret) and export again, or give the client a token\ncallback of your own."
                ),
                false,
            )
        }
    }
}

fn jaas_quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn java(entries: &[(&str, &PropertyValue)], header: &str, show: bool) -> String {
    let get = |key: &str| entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let producer = get("acks").is_some();
    let mut out = String::new();
    preamble(&mut out, header, entries.iter().any(|(_, v)| v.is_secret()));
    let mut librdkafka_only = Vec::new();
    for (k, v) in entries {
        match (*k, java_name(k, producer)) {
            ("security.protocol", Some(name)) => {
                let _ = writeln!(out, "{name}={}", value(v, show).to_ascii_uppercase());
            }
            (_, Some(name)) => {
                let _ = writeln!(out, "{name}={}", value(v, show));
            }
            (
                "sasl.username"
                | "sasl.password"
                | "sasl.oauthbearer.client.id"
                | "sasl.oauthbearer.client.secret"
                | "sasl.oauthbearer.scope",
                None,
            ) => {}
            ("sasl.oauthbearer.method", None) if value(v, true) == "oidc" => {
                let _ = writeln!(out, "sasl.login.callback.handler.class={JAVA_OIDC_HANDLER}");
            }
            ("ssl.ca.location", None) => {
                let _ = writeln!(out, "ssl.truststore.type=PEM");
                let _ = writeln!(out, "ssl.truststore.location={}", value(v, show));
            }
            (_, None) => librdkafka_only.push(format!("{k}={}", value(v, show))),
        }
    }
    if let (Some(user), Some(password)) = (get("sasl.username"), get("sasl.password")) {
        let module = match get("sasl.mechanism").map(|m| value(m, true)).as_deref() {
            Some("PLAIN") => "org.apache.kafka.common.security.plain.PlainLoginModule",
            _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
        };
        let _ = writeln!(
            out,
            "sasl.jaas.config={module} required username=\"{}\" password=\"{}\";",
            jaas_quote(&value(user, show)),
            jaas_quote(&value(password, show))
        );
    }
    if let (Some(id), Some(secret), Some(scope)) = (
        get("sasl.oauthbearer.client.id"),
        get("sasl.oauthbearer.client.secret"),
        get("sasl.oauthbearer.scope"),
    ) {
        let _ = writeln!(
            out,
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"{}\" clientSecret=\"{}\" scope=\"{}\";",
            jaas_quote(&value(id, show)),
            jaas_quote(&value(secret, show)),
            jaas_quote(&value(scope, show))
        );
    }
    if !librdkafka_only.is_empty() {
        let _ = writeln!(out, "# librdkafka settings with no Java client equivalent:");
        for line in librdkafka_only {
            let _ = writeln!(out, "#   {line}");
        }
    }
    out
}

/// `config-export` options, shared by the binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub kafka: crate::cli::KafkaArgs,

    #[command(flatten)]
    pub log: crate::cli::LogArgs,

    /// File format
    #[arg(long, value_enum, default_value = "librdkafka")]
    pub format: ExportFormat,

    /// Write to FILE (created with mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// Print credentials on stdout instead of `***`
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Args(#[from] crate::cli::ArgsError),
    #[error("writing to stdout")]
    Stdout(#[source] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// No credential source gave a token: the file could only be wrong.
    #[error("{0}")]
    Credential(#[from] crate::identity::CredentialError),
}

/// Resolve the configuration `kind` would use and write it out.
pub fn run_export(
    args: &ExportArgs,
    kind: super::config::ClientKind,
    tool: &str,
) -> Result<(), ExportError> {
    let settings = args
        .kafka
        .client_settings(&format!("eventhubs-kafka-{tool}"))?;
    let kind = match args.format {
        ExportFormat::Kcat => super::config::ClientKind::Admin { group_id: None },
        _ => kind,
    };
    let mut properties = settings.properties(&kind);
    let mut header = format!(
        "{:?} configuration for {}, exported by `{tool} config-export` {}",
        args.format,
        settings.bootstrap_servers(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(tokens) = settings.tokens() {
        let note = entra_settings(&mut properties, &tokens.export()?, args.format);
        if !note.comment.is_empty() {
            header.push('\n');
            header.push_str(&note.comment);
        }
        if !note.usable {
            tracing::warn!("{}", note.comment.replace('\n', " "));
        }
    }
    let exported = export(&properties, args.format, &header);
    match &args.output {
        Some(path) => {
            exported
                .write_file(path)
                .map_err(|source| ExportError::Write {
                    path: path.clone(),
                    source,
                })?;
            eprintln!("wrote {} (mode 0600)", path.display());
        }
        None if exported.has_secret && !args.show_secrets => {
            to_stdout(exported.redacted())?;
            eprintln!(
                "credentials shown as {REDACTED}: --output FILE writes them to a private file, --show-secrets prints them"
            );
        }
        None => to_stdout(exported.with_secrets())?,
    }
    Ok(())
}

/// A closed stdout is an error for the caller (which ends quietly on it), never a panic.
fn to_stdout(text: &str) -> Result<(), ExportError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(ExportError::Stdout)
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
