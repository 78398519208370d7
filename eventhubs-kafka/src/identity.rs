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

/// POST a form and return the status and body.
fn post_form(url: &str, body: String) -> Result<(u16, Vec<u8>), String> {
    http(
        Request::PostForm(body),
        url,
        Vec::new(),
        Duration::from_secs(30),
    )
}

enum Request {
    Get,
    PostForm(String),
}

/// One HTTP exchange: the status and body. Blocking, callable from any thread: the request
/// runs on a thread of its own with its own small runtime, so it never blocks or nests
/// inside the caller's async runtime.
fn http(
    request: Request,
    url: &str,
    headers: Vec<(&'static str, String)>,
    connect_timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the HTTP client: {e}"))?;
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(connect_timeout)
                .build()
                .map_err(|e| format!("starting the HTTP client: {e}"))?;
            let mut builder = match request {
                Request::Get => client.get(&url),
                Request::PostForm(body) => client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
            };
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let response = builder
                .send()
                .await
                // reqwest's error names the URL, which holds no secret here (the tenant, the
                // resource).
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

/// Workload identity (AKS and other federations): the federated token in
/// `AZURE_FEDERATED_TOKEN_FILE` is exchanged for an access token (client credentials with a
/// `client_assertion`). The file is read at every request: it is rotated under us.
pub struct WorkloadIdentityCredential {
    authority_host: String,
    tenant_id: String,
    client_id: String,
    token_file: std::path::PathBuf,
}

impl WorkloadIdentityCredential {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let (Some(tenant_id), Some(client_id), Some(file)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_FEDERATED_TOKEN_FILE"),
        ) else {
            return Err(CredentialError::Unavailable(
                "workload identity: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE are not all set".into(),
            ));
        };
        Ok(Self {
            authority_host: authority_host(env)?,
            tenant_id,
            client_id,
            token_file: file.into(),
        })
    }
}

impl TokenCredential for WorkloadIdentityCredential {
    fn name(&self) -> &'static str {
        "workload identity"
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let fail = |what: String| CredentialError::Failed(format!("{}: {what}", self.name()));
        let assertion = std::fs::read_to_string(&self.token_file).map_err(|e| {
            fail(format!(
                "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                self.token_file.display()
            ))
        })?;
        let assertion = assertion.trim();
        if assertion.is_empty() {
            return Err(fail(format!(
                "AZURE_FEDERATED_TOKEN_FILE {} is empty",
                self.token_file.display()
            )));
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        );
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ]);
        let (status, bytes) = post_form(&url, body).map_err(fail)?;
        token_response(status, &bytes).map_err(fail)
    }
}

/// The IMDS address on every Azure VM (and what AKS pod identity replaced).
pub const IMDS_HOST: &str = "http://169.254.169.254";

/// A managed identity: App Service's (and Functions', Container Apps') local identity
/// endpoint when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else the VM's IMDS. A
/// user-assigned identity is chosen with `AZURE_CLIENT_ID`. These endpoints take a resource,
/// the scope without `/.default`.
pub struct ManagedIdentityCredential {
    endpoint: ManagedEndpoint,
    client_id: Option<String>,
}

enum ManagedEndpoint {
    AppService { url: String, header: Secret },
    Imds { url: String },
}

impl ManagedIdentityCredential {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let endpoint = match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
            (Some(url), Some(header)) => ManagedEndpoint::AppService {
                url,
                header: Secret::new(header),
            },
            _ => {
                let host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or_else(|| IMDS_HOST.to_string());
                let host = host.trim_end_matches('/').to_string();
                if !(host == IMDS_HOST || host.starts_with("https://") || is_loopback_http(&host)) {
                    return Err(CredentialError::Failed(format!(
                        "managed identity: AZURE_POD_IDENTITY_AUTHORITY_HOST `{host}` must be https (plain http only on loopback)"
                    )));
                }
                ManagedEndpoint::Imds {
                    url: format!("{host}/metadata/identity/oauth2/token"),
                }
            }
        };
        Ok(Self {
            endpoint,
            client_id: env("AZURE_CLIENT_ID"),
        })
    }
}

impl TokenCredential for ManagedIdentityCredential {
    fn name(&self) -> &'static str {
        match self.endpoint {
            ManagedEndpoint::AppService { .. } => "managed identity (App Service)",
            ManagedEndpoint::Imds { .. } => "managed identity (IMDS)",
        }
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let fail = |what: String| CredentialError::Failed(format!("{}: {what}", self.name()));
        let resource = scope.trim_end_matches("/.default");
        let mut query = form(&[("resource", resource)]);
        if let Some(id) = &self.client_id {
            query.push('&');
            query.push_str(&form(&[("client_id", id)]));
        }
        let (url, headers, connect_timeout) = match &self.endpoint {
            ManagedEndpoint::AppService { url, header } => (
                format!("{url}?api-version=2019-08-01&{query}"),
                vec![("X-IDENTITY-HEADER", header.expose().to_string())],
                Duration::from_secs(10),
            ),
            // Off Azure nothing answers at IMDS: give up on connecting quickly, as the
            // Azure SDKs' probe does.
            ManagedEndpoint::Imds { url } => (
                format!("{url}?api-version=2018-02-01&{query}"),
                vec![("Metadata", "true".to_string())],
                Duration::from_secs(2),
            ),
        };
        let (status, bytes) = http(Request::Get, &url, headers, connect_timeout).map_err(fail)?;
        managed_token_response(status, &bytes).map_err(fail)
    }
}

/// IMDS and App Service answer with `expires_on` (epoch seconds) and/or `expires_in`, as
/// strings or numbers.
fn managed_token_response(status: u16, body: &[u8]) -> Result<AccessToken, String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        format!("the identity endpoint answered {status} with a body that is not JSON")
    })?;
    if !(200..300).contains(&status) {
        let reason = json["error_description"]
            .as_str()
            .or(json["message"].as_str())
            .or(json["error"].as_str())
            .unwrap_or("no reason given");
        return Err(format!(
            "the identity endpoint refused ({status}): {reason}"
        ));
    }
    let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the identity endpoint's answer has no access_token")?;
    let expires_on = match (number(&json["expires_on"]), number(&json["expires_in"])) {
        (Some(at), _) => SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        (None, Some(lifetime)) => SystemTime::now() + Duration::from_secs(lifetime),
        (None, None) => return Err("the identity endpoint's answer has no expiry".into()),
    };
    Ok(AccessToken {
        token: Secret::new(token),
        expires_on,
    })
}

/// The Azure CLI's signed-in account: `az account get-access-token --scope … -o json`.
pub struct AzureCliCredential {
    program: std::path::PathBuf,
}

impl AzureCliCredential {
    /// `az` from `PATH` (as `env` gives it).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let path = env("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("az"))
            .find(|candidate| candidate.is_file())
            .map(|program| Self { program })
            .ok_or_else(|| CredentialError::Unavailable("Azure CLI: `az` is not on PATH".into()))
    }
}

/// How long `az` may take (it may refresh its own tokens over the network).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

impl TokenCredential for AzureCliCredential {
    fn name(&self) -> &'static str {
        "Azure CLI"
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let fail = |what: String| CredentialError::Failed(format!("{}: {what}", self.name()));
        let mut child = std::process::Command::new(&self.program)
            .args([
                "account",
                "get-access-token",
                "--scope",
                scope,
                "--output",
                "json",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.program.display())))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < CLI_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!("`az` did not answer within {CLI_TIMEOUT:?}")));
                }
                Err(e) => return Err(fail(format!("waiting for `az`: {e}"))),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("reading `az`'s answer: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no reason given")
                .trim()
                .to_string();
            return Err(fail(reason));
        }
        cli_token(&out.stdout).map_err(fail)
    }
}

/// `az account get-access-token`'s JSON: `accessToken`, and `expires_on` (epoch seconds,
/// CLI ≥ 2.54) or `expiresOn` (local time, `YYYY-MM-DD HH:MM:SS.ffffff`).
fn cli_token(stdout: &[u8]) -> Result<AccessToken, String> {
    let json: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|_| "`az` did not print JSON".to_string())?;
    let token = json["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("`az`'s answer has no accessToken")?;
    let expires_on = if let Some(at) = json["expires_on"]
        .as_u64()
        .or_else(|| json["expires_on"].as_str()?.parse().ok())
    {
        SystemTime::UNIX_EPOCH + Duration::from_secs(at)
    } else {
        let text = json["expiresOn"]
            .as_str()
            .ok_or("`az`'s answer has no expiry")?;
        let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|_| format!("`az`'s expiresOn `{text}` is not a time"))?;
        let at = local
            .and_local_timezone(chrono::Local)
            .earliest()
            .ok_or_else(|| format!("`az`'s expiresOn `{text}` does not exist in this time zone"))?;
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).unwrap_or(0))
    };
    Ok(AccessToken {
        token: Secret::new(token),
        expires_on,
    })
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
