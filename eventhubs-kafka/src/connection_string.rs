//! Strict parsing of Event Hubs SAS connection strings.
//!
//! `Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=<hub>]`
//! and the emulator's `…;UseDevelopmentEmulator=true`. The whole string is the Kafka SASL
//! password, so the parsed value keeps it as a [`Secret`]; errors name the part that is
//! wrong and never echo a key or the string itself.

use std::fmt;
use std::str::FromStr;

use crate::secret::Secret;

/// One `Key=Value` segment of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The key as written.
    pub key: &'a str,
    /// The key in lower case: keys are case-insensitive in every Azure SDK.
    pub lower: String,
    /// Trimmed, never empty.
    pub value: &'a str,
}

/// The segments of an Azure connection string (Event Hubs' or Storage's), checked alike for
/// every kind: `;`-separated, empty segments skipped (the portal's trailing `;`), keys
/// letters only and case-insensitive, values trimmed and not empty, no key twice. Which keys
/// are known is the caller's business. No error carries a value, nor a key that is not a
/// name: after a typo (`SharedAccessKey:…=`) it may hold part of a secret.
pub fn segments(text: &str) -> Result<Vec<Segment<'_>>, ConnectionStringError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ConnectionStringError::Empty);
    }
    let mut out: Vec<Segment<'_>> = Vec::new();
    for (index, segment) in text.split(';').enumerate() {
        let position = index + 1;
        let segment = segment.trim();
        if segment.is_empty() {
            continue;
        }
        let Some((key, value)) = segment.split_once('=') else {
            return Err(ConnectionStringError::NotKeyValue { position });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(ConnectionStringError::NotKeyValue { position });
        }
        if key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ConnectionStringError::BadKey { position });
        }
        let lower = key.to_ascii_lowercase();
        if out.iter().any(|s| s.lower == lower) {
            return Err(ConnectionStringError::Duplicate {
                key: key.to_string(),
            });
        }
        if value.is_empty() {
            return Err(ConnectionStringError::EmptyValue {
                key: key.to_string(),
            });
        }
        out.push(Segment { key, lower, value });
    }
    Ok(out)
}

/// A parsed, validated Event Hubs connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Host from `Endpoint`, e.g. `myns.servicebus.windows.net` (sovereign clouds keep theirs).
    host: String,
    key_name: String,
    entity_path: Option<String>,
    emulator: bool,
    /// The whole string as given (trimmed): the SASL PLAIN password on the Kafka endpoint.
    raw: Secret,
}

/// Why a connection string was rejected. No variant carries a key or the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("the connection string is empty")]
    Empty,
    #[error(
        "segment {position} of the connection string is not `Key=Value` (segments are separated by `;`)"
    )]
    NotKeyValue { position: usize },
    #[error("`{key}` appears more than once in the connection string")]
    Duplicate { key: String },
    #[error("`{key}` has an empty value in the connection string")]
    EmptyValue { key: String },
    #[error(
        "the connection string has no `{key}`; copy it from the portal (Shared access policies) or from `terraform output`"
    )]
    Missing { key: &'static str },
    #[error(
        "the connection string carries a `SharedAccessSignature`: the Event Hubs Kafka endpoint does not accept generated SAS tokens; use a connection string with `SharedAccessKeyName` and `SharedAccessKey`"
    )]
    SasToken,
    #[error(
        "unknown key `{key}` in the connection string; expected Endpoint, SharedAccessKeyName, SharedAccessKey, EntityPath or UseDevelopmentEmulator"
    )]
    UnknownKey { key: String },
    #[error(
        "segment {position} of the connection string has an unknown key (not shown: after a typo it may hold part of the key); expected Endpoint, SharedAccessKeyName, SharedAccessKey, EntityPath or UseDevelopmentEmulator"
    )]
    UnrecognisedSegment { position: usize },
    /// [`segments`]' form of `UnrecognisedSegment`, for any kind of connection string.
    #[error(
        "segment {position} of the connection string has a key that is not a name (not shown: after a typo it may hold part of a key)"
    )]
    BadKey { position: usize },
    #[error("`Endpoint` must look like `sb://<namespace>.servicebus.windows.net/`: {reason}")]
    BadEndpoint { reason: String },
    #[error("`UseDevelopmentEmulator` must be `true` or `false`")]
    BadEmulatorFlag,
}

impl ConnectionString {
    pub fn parse(input: &str) -> Result<Self, ConnectionStringError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut entity_path = None;
        let mut emulator = None;
        let segments = segments(trimmed).map_err(|e| match e {
            ConnectionStringError::BadKey { position } => {
                ConnectionStringError::UnrecognisedSegment { position }
            }
            e => e,
        })?;
        for segment in segments {
            let slot = match segment.lower.as_str() {
                "endpoint" => &mut endpoint,
                "sharedaccesskeyname" => &mut key_name,
                "sharedaccesskey" => &mut key,
                "entitypath" => &mut entity_path,
                "usedevelopmentemulator" => &mut emulator,
                "sharedaccesssignature" => return Err(ConnectionStringError::SasToken),
                _ => {
                    return Err(ConnectionStringError::UnknownKey {
                        key: segment.key.to_string(),
                    });
                }
            };
            *slot = Some(segment.value.to_string());
        }
        let endpoint = endpoint.ok_or(ConnectionStringError::Missing { key: "Endpoint" })?;
        let key_name = key_name.ok_or(ConnectionStringError::Missing {
            key: "SharedAccessKeyName",
        })?;
        key.ok_or(ConnectionStringError::Missing {
            key: "SharedAccessKey",
        })?;
        let emulator = match emulator.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ConnectionStringError::BadEmulatorFlag),
        };
        // The port of `Endpoint` (the emulator's AMQP port) is checked, never used for Kafka.
        let (host, _amqp_port) = parse_endpoint(&endpoint)?;
        Ok(Self {
            host,
            key_name,
            entity_path,
            emulator,
            raw: Secret::new(trimmed),
        })
    }

    /// The namespace host, e.g. `myns.servicebus.windows.net`.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// `EntityPath`: the event hub (Kafka topic) this string is scoped to, if any.
    pub fn entity_path(&self) -> Option<&str> {
        self.entity_path.as_deref()
    }

    /// `UseDevelopmentEmulator=true`: the local Event Hubs emulator.
    pub fn is_emulator(&self) -> bool {
        self.emulator
    }

    /// The Kafka bootstrap address: `<host>:9093` on Azure, `<host>:9092` for the emulator.
    pub fn bootstrap_servers(&self) -> String {
        let port = if self.emulator { 9092 } else { 9093 };
        format!("{}:{port}", self.host)
    }

    /// The SASL PLAIN password: the whole connection string.
    pub fn sasl_password(&self) -> &Secret {
        &self.raw
    }
}

/// `sb://host[:port][/]` → host and optional port.
fn parse_endpoint(endpoint: &str) -> Result<(String, Option<u16>), ConnectionStringError> {
    let bad = |reason: &str| ConnectionStringError::BadEndpoint {
        reason: reason.to_string(),
    };
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(bad("it has no `sb://` scheme"));
    };
    if !scheme.eq_ignore_ascii_case("sb") {
        // Echo a scheme only when it looks like one (`https`): a garbled string can put key
        // material before the `://` (found by fuzzing).
        let reason = if scheme.len() <= 10 && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
            format!("the scheme is `{scheme}://`, expected `sb://`")
        } else {
            "the scheme is not `sb://`".to_string()
        };
        return Err(ConnectionStringError::BadEndpoint { reason });
    }
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err(bad("it has a path after the host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?;
            (host, Some(port))
        }
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    let valid_host = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid_host || host.starts_with('.') || host.ends_with('.') {
        return Err(bad("the host is not a valid DNS name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host", &self.host)
            .field("key_name", &self.key_name)
            .field("entity_path", &self.entity_path)
            .field("emulator", &self.emulator)
            .field("key", &crate::secret::REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWsxMjM0NTY3OA==";

    fn azure(extra: &str) -> String {
        format!(
            "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}{extra}"
        )
    }

    #[test]
    fn parses_portal_string_with_entity_path() {
        let cs = ConnectionString::parse(&azure(";EntityPath=telemetry")).unwrap();
        assert_eq!(cs.host(), "myns.servicebus.windows.net");
        assert_eq!(cs.key_name(), "send");
        assert_eq!(cs.entity_path(), Some("telemetry"));
        assert!(!cs.is_emulator());
        assert_eq!(cs.bootstrap_servers(), "myns.servicebus.windows.net:9093");
        assert_eq!(cs.sasl_password().expose(), azure(";EntityPath=telemetry"));
    }

    #[test]
    fn accepts_trailing_semicolon_whitespace_and_key_case() {
        let cs = ConnectionString::parse(&format!(
            "  endpoint=sb://MyNs.servicebus.chinacloudapi.cn;sharedaccesskeyname=k;sharedaccesskey={KEY};\n"
        ))
        .unwrap();
        assert_eq!(cs.host(), "myns.servicebus.chinacloudapi.cn");
        assert_eq!(cs.entity_path(), None);
    }

    #[test]
    fn key_may_contain_equals_signs() {
        let cs = ConnectionString::parse(&azure("")).unwrap();
        assert!(cs.sasl_password().expose().ends_with("==")); // padding kept
    }

    #[test]
    fn parses_emulator_string() {
        let cs = ConnectionString::parse(
            "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
        )
        .unwrap();
        assert!(cs.is_emulator());
        assert_eq!(cs.bootstrap_servers(), "localhost:9092");
    }

    #[test]
    fn rejects_bad_forms_with_specific_reasons() {
        use ConnectionStringError as E;
        let cases: Vec<(String, E)> = vec![
            (String::new(), E::Empty),
            ("   ".into(), E::Empty),
            (
                format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey={KEY}"),
                E::Missing {
                    key: "SharedAccessKeyName",
                },
            ),
            (
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send".into(),
                E::Missing {
                    key: "SharedAccessKey",
                },
            ),
            (
                format!("SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::Missing { key: "Endpoint" },
            ),
            (
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=send".into(),
                E::SasToken,
            ),
            (
                format!("Endpoint=https://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::BadEndpoint {
                    reason: "the scheme is `https://`, expected `sb://`".into(),
                },
            ),
            (
                format!("Endpoint=ns.servicebus.windows.net;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::BadEndpoint {
                    reason: "it has no `sb://` scheme".into(),
                },
            ),
            (
                format!("Endpoint=sb:///;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::BadEndpoint {
                    reason: "the host is empty".into(),
                },
            ),
            (
                format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=;SharedAccessKey={KEY}"),
                E::EmptyValue {
                    key: "SharedAccessKeyName".into(),
                },
            ),
            (
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=".into(),
                E::EmptyValue {
                    key: "SharedAccessKey".into(),
                },
            ),
            (
                azure(";EntityPath=a;EntityPath=b"),
                E::Duplicate {
                    key: "EntityPath".into(),
                },
            ),
            (
                azure(";TransportType=Amqp"),
                E::UnknownKey {
                    key: "TransportType".into(),
                },
            ),
            (azure(";garbage"), E::NotKeyValue { position: 4 }),
            // The key run into a garbled endpoint: the scheme is not echoed.
            (
                "Endpoint=sbSharedAccessKey=c2VjcmV0LWtleQ==://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=x".into(),
                E::BadEndpoint {
                    reason: "the scheme is not `sb://`".into(),
                },
            ),
            // A typo that puts the key in the name: never echoed.
            (
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey:c2VjcmV0LWtleQ==".into(),
                E::UnrecognisedSegment { position: 3 },
            ),
            (azure(";UseDevelopmentEmulator=yes"), E::BadEmulatorFlag),
            (
                format!("Endpoint=sb://ns.servicebus.windows.net:abc/;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::BadEndpoint {
                    reason: "the port is not a number".into(),
                },
            ),
            (
                format!("Endpoint=sb://bad host/;SharedAccessKeyName=send;SharedAccessKey={KEY}"),
                E::BadEndpoint {
                    reason: "the host is not a valid DNS name".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            let err = ConnectionString::parse(&input).unwrap_err();
            assert_eq!(err, expected, "input: {input}");
            let message = err.to_string();
            assert!(!message.contains(KEY), "error echoes the key: {message}");
            assert!(
                !message.contains("sig=y"),
                "error echoes a SAS token: {message}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let cs = ConnectionString::parse(&azure(";EntityPath=t")).unwrap();
        let debug = format!("{cs:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("myns.servicebus.windows.net"));
    }
}
