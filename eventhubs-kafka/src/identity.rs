//! Microsoft Entra ID access tokens, for every place the tools authenticate without a key.
//!
//! Who calls what: a tool asks a [`TokenCache`] for a token of one scope (PostgreSQL:
//! `https://ossrdbms-aad.database.windows.net/.default`); the cache hands out its token while
//! it has more than [`REFRESH_MARGIN`] left, else asks its [`TokenCredential`], by default the
//! [`ChainedTokenCredential`] of [`default_credential`], which tries its sources in the order
//! the Azure SDKs' default credential does and, when all fail, says why each one did.
//!
//! Sources today: the environment's client secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`, against `AZURE_AUTHORITY_HOST`, default
//! `https://login.microsoftonline.com`). Workload identity, managed identity and the Azure
//! CLI are further [`TokenCredential`]s for the same chain (the Entra ID issue).
//!
//! Tokens are [`Secret`]s: they never reach a log, an error or a `Debug` output. Every
//! endpoint is overridable, and plain `http` is accepted only on loopback (test services).

use std::time::{Duration, SystemTime};

use crate::secret::Secret;

/// A cached token is replaced once it has less than this left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The Azure public cloud's token service.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

#[derive(Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_on: SystemTime,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &self.token)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Why a token could not be had. Never carries a secret or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The source is not set up here (its variables are missing): the chain moves on.
    #[error("{0}")]
    Unavailable(String),
    /// The source is set up but failed.
    #[error("{0}")]
    Failed(String),
    #[error("no Microsoft Entra ID credential worked: {}", .0.join("; "))]
    Chain(Vec<String>),
}

/// A source of access tokens.
pub trait TokenCredential: Send + Sync {
    /// A short name for messages ("environment client secret", ...).
    fn name(&self) -> &'static str;
    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError>;
}

/// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`: OAuth 2.0 client
/// credentials against `{authority}/{tenant}/oauth2/v2.0/token`.
pub struct ClientSecretCredential {
    authority_host: String,
    tenant_id: String,
    client_id: String,
    client_secret: Secret,
}

impl ClientSecretCredential {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let (Some(tenant_id), Some(client_id), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) else {
            return Err(CredentialError::Unavailable(
                "environment client secret: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not all set".into(),
            ));
        };
        let authority_host = authority_host(env)?;
        Ok(Self {
            authority_host,
            tenant_id,
            client_id,
            client_secret: Secret::new(secret),
        })
    }
}

/// `AZURE_AUTHORITY_HOST` (sovereign clouds, tests), https only except on loopback.
fn authority_host(env: &dyn Fn(&str) -> Option<String>) -> Result<String, CredentialError> {
    let host = env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.into());
    let host = host.trim_end_matches('/').to_string();
    if host.starts_with("https://") || is_loopback_http(&host) {
        Ok(host)
    } else {
        Err(CredentialError::Failed(format!(
            "AZURE_AUTHORITY_HOST `{host}` must be an https URL (plain http only on 127.0.0.1, [::1] or localhost)"
        )))
    }
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    matches!(host, "127.0.0.1" | "::1" | "localhost")
}

impl TokenCredential for ClientSecretCredential {
    fn name(&self) -> &'static str {
        "environment client secret"
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        );
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
            ("scope", scope),
        ]);
        let fail = |what: String| CredentialError::Failed(format!("{}: {what}", self.name()));
        let (status, bytes) = post_form(&url, body).map_err(fail)?;
        token_response(status, &bytes).map_err(fail)
    }
}

/// The token endpoint's answer: a token and its lifetime, or Entra's error description.
fn token_response(status: u16, body: &[u8]) -> Result<AccessToken, String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("the token service answered {status} with a body that is not JSON"))?;
    if !(200..300).contains(&status) {
        let reason = json["error_description"]
            .as_str()
            .or(json["error"].as_str())
            .unwrap_or("no reason given");
        // Entra's descriptions carry trace ids over several lines: the first says why.
        let reason = reason.lines().next().unwrap_or_default();
        return Err(format!("the token service refused ({status}): {reason}"));
    }
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the token service's answer has no access_token")?;
    let lifetime = json["expires_in"]
        .as_u64()
        .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .ok_or("the token service's answer has no expires_in")?;
    Ok(AccessToken {
        token: Secret::new(token),
        expires_on: SystemTime::now() + Duration::from_secs(lifetime),
    })
}

/// `application/x-www-form-urlencoded`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POST a form and return the status and body. Blocking, callable from any thread: the
/// request runs on a thread of its own with its own small runtime, so it never blocks or
/// nests inside the caller's async runtime.
fn post_form(url: &str, body: String) -> Result<(u16, Vec<u8>), String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the HTTP client: {e}"))?;
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| format!("starting the HTTP client: {e}"))?;
            let response = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                // reqwest's error names the URL, which holds no secret here (the tenant).
                .map_err(|e| format!("cannot reach the token service: {e}"))?;
            let status = response.status().as_u16();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| format!("reading the token service's answer: {e}"))?;
            Ok((status, bytes.to_vec()))
        })
    })
    .join()
    .map_err(|_| "the token request's thread failed".to_string())?
}

/// Sources tried in order; the first that gives a token wins.
pub struct ChainedTokenCredential {
    sources: Vec<Result<Box<dyn TokenCredential>, CredentialError>>,
}

impl TokenCredential for ChainedTokenCredential {
    fn name(&self) -> &'static str {
        "default credential chain"
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let mut why = Vec::new();
        for source in &self.sources {
            match source {
                Ok(credential) => match credential.get_token(scope) {
                    Ok(token) => return Ok(token),
                    Err(e) => why.push(e.to_string()),
                },
                Err(unavailable) => why.push(unavailable.to_string()),
            }
        }
        Err(CredentialError::Chain(why))
    }
}

/// The chain in the Azure SDKs' order: environment, (workload identity, managed identity,
/// Azure CLI: to come, each one more entry here).
pub fn default_credential(env: &dyn Fn(&str) -> Option<String>) -> ChainedTokenCredential {
    ChainedTokenCredential {
        sources: vec![
            ClientSecretCredential::from_env(env).map(|c| Box::new(c) as Box<dyn TokenCredential>),
        ],
    }
}

/// One scope's token, reused while it has more than [`REFRESH_MARGIN`] left.
pub struct TokenCache {
    credential: Box<dyn TokenCredential>,
    scope: String,
    current: std::sync::Mutex<Option<AccessToken>>,
}

impl TokenCache {
    pub fn new(credential: Box<dyn TokenCredential>, scope: impl Into<String>) -> Self {
        Self {
            credential,
            scope: scope.into(),
            current: std::sync::Mutex::new(None),
        }
    }

    /// A token valid for at least [`REFRESH_MARGIN`] more (or as long as the service gives).
    pub fn token(&self) -> Result<AccessToken, CredentialError> {
        self.token_at(SystemTime::now())
    }

    fn token_at(&self, now: SystemTime) -> Result<AccessToken, CredentialError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = current.as_ref()
            && token.expires_on > now + REFRESH_MARGIN
        {
            return Ok(token.clone());
        }
        let fresh = self.credential.get_token(&self.scope)?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        calls: std::sync::Arc<AtomicU32>,
        lifetime: Duration,
    }

    impl TokenCredential for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn get_token(&self, _scope: &str) -> Result<AccessToken, CredentialError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken {
                token: Secret::new(format!("token-{n}")),
                expires_on: SystemTime::now() + self.lifetime,
            })
        }
    }

    #[test]
    fn the_cache_reuses_a_token_until_it_is_about_to_expire() {
        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let cache = TokenCache::new(
            Box::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(3600),
            }),
            "scope",
        );
        let now = SystemTime::now();
        assert_eq!(cache.token_at(now).unwrap().token.expose(), "token-0");
        assert_eq!(cache.token_at(now).unwrap().token.expose(), "token-0");
        // 56 minutes later less than five minutes are left: a new one.
        let later = now + Duration::from_secs(56 * 60);
        assert_eq!(cache.token_at(later).unwrap().token.expose(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A token shorter-lived than the margin is fetched each time.
        let short = TokenCache::new(
            Box::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(60),
            }),
            "scope",
        );
        short.token().unwrap();
        short.token().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn the_chain_says_why_every_source_failed_without_secrets() {
        let err = default_credential(&|_| None).get_token("s").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AZURE_TENANT_ID"), "{text}");
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some("t".to_string()),
            "AZURE_CLIENT_ID" => Some("c".to_string()),
            "AZURE_CLIENT_SECRET" => Some("very-secret".to_string()),
            "AZURE_AUTHORITY_HOST" => Some("http://login.example".to_string()),
            _ => None,
        };
        let text = default_credential(&env)
            .get_token("s")
            .unwrap_err()
            .to_string();
        assert!(text.contains("must be an https URL"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:8080"));
        assert!(is_loopback_http("http://[::1]:1/x"));
        assert!(is_loopback_http("http://localhost"));
        assert!(!is_loopback_http("http://127.0.0.1.example.com"));
        assert!(!is_loopback_http("http://metadata.example"));
        assert!(!is_loopback_http("https://127.0.0.1"));
    }

    #[test]
    fn token_answers_and_refusals_are_read() {
        let ok = token_response(
            200,
            br#"{"access_token":"abc","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(ok.token.expose(), "abc");
        let as_text =
            token_response(200, br#"{"access_token":"abc","expires_in":"3599"}"#).unwrap();
        assert!(as_text.expires_on > SystemTime::now() + Duration::from_secs(3500));
        let refused = token_response(
            401,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#,
        )
        .unwrap_err();
        assert!(
            refused.contains("(401): AADSTS7000215: Invalid client secret provided."),
            "{refused}"
        );
        assert!(!refused.contains("Trace ID"), "{refused}");
        assert_eq!(
            form(&[("scope", "https://x/.default a")]),
            "scope=https%3A%2F%2Fx%2F.default+a"
        );
    }
}
