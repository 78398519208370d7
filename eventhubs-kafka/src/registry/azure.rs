//! Azure Schema Registry client (REST API 2022-10), as Microsoft's `azure-schemaregistry`
//! SDKs call it, with Entra ID tokens of scope `https://eventhubs.azure.net/.default`.
//!
//! Who calls what: the producer [`AzureRegistry::register`]s its schema once, in its schema
//! group under the schema's full name, and writes each event as the bare Avro datum with the
//! Kafka header `content-type: avro/binary+<id>` ([`content_type`]), the format of
//! Microsoft's Avro encoders. The consumer and the capture-loader read the id back from that
//! content type ([`schema_id`]) and ask [`AzureRegistry::schema`], which fetches each id once
//! and keeps it.
//!
//! The registry is the namespace's own endpoint, `https://<namespace>.servicebus.windows.net`;
//! plain `http` only on loopback. A private CA: `SSL_CERT_FILE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::RegistryError;
use crate::encoding::CompiledSchema;
use crate::identity::TokenCache;

/// The token scope of every Azure Schema Registry.
pub const SCHEMA_REGISTRY_SCOPE: &str = "https://eventhubs.azure.net/.default";

const API_VERSION: &str = "2022-10";
const AVRO_SCHEMA_CONTENT_TYPE: &str = "application/json; serialization=Avro";
/// What an event's content type starts with, before the schema id.
pub const AVRO_CONTENT_TYPE_PREFIX: &str = "avro/binary+";

/// The content type of an event written with schema `id`.
pub fn content_type(id: &str) -> String {
    format!("{AVRO_CONTENT_TYPE_PREFIX}{id}")
}

/// The schema id in an event's content type (`avro/binary+<id>`), if it is one; ids are
/// letters, digits and dashes (Azure's are 32 hex digits), so none can reach another path.
pub fn schema_id(content_type: &str) -> Result<&str, String> {
    let id = content_type
        .trim()
        .strip_prefix(AVRO_CONTENT_TYPE_PREFIX)
        .ok_or_else(|| format!("content type `{content_type}` is not avro/binary+<schema id>"))?;
    if !is_schema_id(id) {
        return Err(format!(
            "content type `{content_type}`: `{id}` is not a schema id"
        ));
    }
    Ok(id)
}

fn is_schema_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One Azure Schema Registry, its tokens, and the schemas fetched from it.
pub struct AzureRegistry {
    endpoint: String,
    tokens: Arc<TokenCache>,
    http: reqwest::Client,
    compiled: Mutex<HashMap<String, Arc<CompiledSchema>>>,
}

impl std::fmt::Debug for AzureRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureRegistry")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AzureRegistry {
    /// `url`: `https://<namespace>.servicebus.windows.net` (a bare host is taken as https).
    /// `tokens` must be of [`SCHEMA_REGISTRY_SCOPE`]; none is asked for before it is needed.
    pub fn new(url: &str, tokens: Arc<TokenCache>) -> Result<Self, RegistryError> {
        let url = url.trim().trim_end_matches('/');
        let endpoint = if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RegistryError::new(format!("starting the HTTP client: {e}"), false))?;
        Ok(Self {
            endpoint,
            tokens,
            http,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// A bearer token; the credential chain blocks, so it runs on the blocking pool. Only
    /// for an https endpoint (or loopback): a token never travels in the clear. (The same
    /// `--schema-registry-url` may be a Confluent registry on plain http: that is refused
    /// here, when an Azure event needs it, not when the tool starts.)
    async fn authorization(&self) -> Result<String, RegistryError> {
        if !(self.endpoint.starts_with("https://")
            || crate::identity::is_loopback_http(&self.endpoint))
        {
            return Err(RegistryError::new(
                format!(
                    "the Azure Schema Registry `{}` must be https (its bearer tokens never travel in the clear)",
                    self.endpoint
                ),
                false,
            ));
        }
        let tokens = self.tokens.clone();
        let token = tokio::task::spawn_blocking(move || tokens.token())
            .await
            .map_err(|e| RegistryError::new(format!("the token request failed: {e}"), true))?
            .map_err(|e| {
                RegistryError::new(
                    format!("no token for the Azure Schema Registry: {e}"),
                    false,
                )
            })?;
        Ok(format!("Bearer {}", token.token.expose()))
    }

    /// Register `schema` in `group` under its full name, or find it there: its id.
    pub async fn register(&self, group: &str, schema: &str) -> Result<String, RegistryError> {
        let name = apache_avro::Schema::parse_str(schema)
            .ok()
            .and_then(|s| s.name().map(|n| n.fullname(None)))
            .ok_or_else(|| {
                RegistryError::new("the schema has no name to register it under", false)
            })?;
        let url = format!(
            "{}/$schemaGroups/{}/schemas/{}?api-version={API_VERSION}",
            self.endpoint,
            path_segment(group),
            path_segment(&name)
        );
        let response = self
            .http
            .put(&url)
            .header("authorization", self.authorization().await?)
            .header("content-type", AVRO_SCHEMA_CONTENT_TYPE)
            .body(schema.to_string())
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint, e))?;
        let response = success(
            response,
            &format!("registering `{name}` in group `{group}`"),
        )
        .await?;
        response
            .headers()
            .get("schema-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_schema_id(id))
            .map(str::to_string)
            .ok_or_else(|| {
                RegistryError::new(
                    format!("registering `{name}` in group `{group}`: the answer has no Schema-Id"),
                    false,
                )
            })
    }

    /// The schema of `id`, fetched once. A failed lookup is not remembered.
    pub async fn schema(&self, id: &str) -> Result<Arc<CompiledSchema>, RegistryError> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        if !is_schema_id(id) {
            return Err(RegistryError::new(
                format!("`{id}` is not a schema id"),
                false,
            ));
        }
        let url = format!(
            "{}/$schemaGroups/$schemas/{id}?api-version={API_VERSION}",
            self.endpoint
        );
        let response = self
            .http
            .get(&url)
            .header("authorization", self.authorization().await?)
            .header("accept", AVRO_SCHEMA_CONTENT_TYPE)
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint, e))?;
        let what = format!("fetching schema {id}");
        let response = success(response, &what).await?;
        let text = response
            .text()
            .await
            .map_err(|e| RegistryError::new(format!("{what}: {e}"), true))?;
        let compiled = Arc::new(CompiledSchema::parse(&text).map_err(|e| {
            RegistryError::new(
                format!("{what}: the registry's schema is not usable Avro: {e}"),
                false,
            )
        })?);
        self.lock().insert(id.to_string(), compiled.clone());
        Ok(compiled)
    }

    /// The schema of `id` if it was fetched already (no waiting, no network).
    pub fn cached(&self, id: &str) -> Option<Arc<CompiledSchema>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompiledSchema>>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Percent-encodes what is not safe in one path segment (group and schema names are letters,
/// digits, dots, dashes and underscores in Azure, but a name is input).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn unreachable(endpoint: &str, e: reqwest::Error) -> RegistryError {
    // reqwest's text names the URL: the endpoint, group and schema name, no secret.
    RegistryError::new(
        format!("cannot reach the Azure Schema Registry at {endpoint}: {e}"),
        true,
    )
}

/// The response if it succeeded, else Azure's reason (`error.code`: `error.message`).
async fn success(
    response: reqwest::Response,
    what: &str,
) -> Result<reqwest::Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let reason = match (
        json["error"]["code"].as_str(),
        json["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (None, Some(message)) => message.to_string(),
        _ => "no reason given".to_string(),
    };
    let hint = match status.as_u16() {
        401 => {
            " (the token was refused: is it for this tenant, with scope https://eventhubs.azure.net/.default?)"
        }
        403 => {
            " (the principal needs Schema Registry Reader, or Contributor to register, on the namespace)"
        }
        _ => "",
    };
    Err(RegistryError::new(
        format!("{what}: the Azure Schema Registry answered {status}: {reason}{hint}"),
        status.is_server_error() || status.as_u16() == 429,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_ids_come_from_the_content_type_and_cannot_name_another_path() {
        assert_eq!(
            schema_id("avro/binary+0123456789abcdef0123456789abcdef"),
            Ok("0123456789abcdef0123456789abcdef")
        );
        assert!(schema_id("avro/binary+../../x").is_err());
        assert!(schema_id("avro/binary+").is_err());
        assert!(schema_id("application/json").is_err());
        assert_eq!(content_type("abc"), "avro/binary+abc");
        assert_eq!(
            path_segment("com.example.Telemetry"),
            "com.example.Telemetry"
        );
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
