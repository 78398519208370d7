//! Microsoft Entra ID access tokens, for every place the tools authenticate without a key.
//!
//! Who calls what: a tool asks a [`TokenCache`] for a token of one scope (PostgreSQL:
//! `https://ossrdbms-aad.database.windows.net/.default`); the cache hands out its token while
//! it has more than [`REFRESH_MARGIN`] left, else asks its [`TokenCredential`], by default the
//! [`ChainedTokenCredential`] of [`default_credential`], which tries its sources in the order
//! the Azure SDKs' default credential does and, when all fail, says why each one did.
//!
//! Sources, in the chain's order (each one's variables are the Azure SDKs'):
//! 1. [`ClientSecretCredential`]: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`;
//! 2. [`WorkloadIdentityCredential`]: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_FEDERATED_TOKEN_FILE` (re-read at every request: Kubernetes rotates it);
//! 3. [`ManagedIdentityCredential`]: App Service / Functions / Container Apps
//!    (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), else IMDS (`169.254.169.254`, overridable
//!    with `AZURE_POD_IDENTITY_AUTHORITY_HOST`); a user-assigned identity through
//!    `AZURE_CLIENT_ID`;
//! 4. [`AzureCliCredential`]: `az account get-access-token`, `az` found on `PATH`.
//!
//! The token service is `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com`;
//! sovereign clouds set theirs).
//!
//! Why our own client rather than the `azure_identity` crate: its 1.x has no default chain
//! any more, is async-only (librdkafka's refresh callback and the synchronous database
//! clients call from plain threads) and accepts only https authority hosts (tests run a
//! token service on loopback http). These flows are a form POST or a GET each.
//!
//! Tokens are [`Secret`]s: they never reach a log, an error or a `Debug` output. Every
//! endpoint is overridable, and plain `http` is accepted only on loopback (test services).

use std::time::{Duration, SystemTime};

use crate::secret::Secret;

mod http;
pub(crate) use http::is_loopback_http;
mod sources;

pub use sources::{
    AzureCliCredential, ClientSecretCredential, IMDS_HOST, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};

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

    /// How another Kafka client could get the same tokens itself (`config-export`). For a
    /// chain: the first source that gives a token now.
    fn export(&self, scope: &str) -> Result<CredentialExport, CredentialError> {
        let _ = scope;
        Ok(CredentialExport::Unsupported {
            source: self.name(),
        })
    }
}

/// A credential as other Kafka clients can be told to use it.
#[derive(Debug, Clone)]
pub enum CredentialExport {
    /// OAuth 2.0 client credentials with a secret: librdkafka's `sasl.oauthbearer.method=oidc`
    /// and Kafka's OIDC login callback handler both do this.
    ClientSecret {
        token_endpoint: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    /// A VM's managed identity through IMDS: librdkafka 2.12 and later
    /// (`sasl.oauthbearer.metadata.authentication.type=azure_imds`). `token_endpoint` is set
    /// only where IMDS's address was overridden; `query` is what follows `?`.
    Imds {
        token_endpoint: Option<String>,
        query: String,
    },
    /// No other client can get these tokens by itself (a federated token file, App Service's
    /// identity endpoint, the Azure CLI).
    Unsupported { source: &'static str },
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

    fn export(&self, scope: &str) -> Result<CredentialExport, CredentialError> {
        let mut why = Vec::new();
        for source in &self.sources {
            match source {
                Ok(credential) => match credential.get_token(scope) {
                    Ok(_) => return credential.export(scope),
                    Err(e) => why.push(e.to_string()),
                },
                Err(unavailable) => why.push(unavailable.to_string()),
            }
        }
        Err(CredentialError::Chain(why))
    }
}

/// The chain in the Azure SDKs' order: environment client secret, workload identity,
/// managed identity, Azure CLI.
pub fn default_credential(env: &dyn Fn(&str) -> Option<String>) -> ChainedTokenCredential {
    fn boxed<C: TokenCredential + 'static>(
        c: Result<C, CredentialError>,
    ) -> Result<Box<dyn TokenCredential>, CredentialError> {
        c.map(|c| Box::new(c) as Box<dyn TokenCredential>)
    }
    ChainedTokenCredential {
        sources: vec![
            boxed(ClientSecretCredential::from_env(env)),
            boxed(WorkloadIdentityCredential::from_env(env)),
            boxed(ManagedIdentityCredential::from_env(env)),
            boxed(AzureCliCredential::from_env(env)),
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

    /// How another client could get this scope's tokens (see [`TokenCredential::export`]).
    pub fn export(&self) -> Result<CredentialExport, CredentialError> {
        self.credential.export(&self.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::http::{form, is_loopback_http, token_response};
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
        // IMDS at a closed loopback port: nothing leaves this machine.
        let imds = |k: &str| {
            (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| "http://127.0.0.1:9".to_string())
        };
        let err = default_credential(&imds).get_token("s").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AZURE_TENANT_ID"), "{text}");
        assert!(text.contains("AZURE_FEDERATED_TOKEN_FILE"), "{text}");
        assert!(text.contains("managed identity (IMDS)"), "{text}");
        assert!(text.contains("`az` is not on PATH"), "{text}");
        let env = |k: &str| match k {
            "AZURE_POD_IDENTITY_AUTHORITY_HOST" => Some("http://127.0.0.1:9".to_string()),
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
