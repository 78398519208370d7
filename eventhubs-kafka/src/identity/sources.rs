//! The credential sources of the chain, each from the environment variables the Azure SDKs
//! read: a client secret, workload identity, managed identity (App Service or IMDS), the
//! Azure CLI.

use std::time::{Duration, SystemTime};

use super::http::{
    Request, authority_host, form, http, is_loopback_http, post_form, token_response,
};
use super::{AccessToken, CredentialError, CredentialExport, TokenCredential};
use crate::secret::Secret;

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

impl TokenCredential for ClientSecretCredential {
    fn name(&self) -> &'static str {
        "environment client secret"
    }

    fn get_token(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let url = self.token_endpoint();
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

    fn export(&self, scope: &str) -> Result<CredentialExport, CredentialError> {
        Ok(CredentialExport::ClientSecret {
            token_endpoint: self.token_endpoint(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scope: scope.to_string(),
        })
    }
}

impl ClientSecretCredential {
    fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        )
    }
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
        let query = self.query(scope);
        let (url, headers, connect_timeout) = match &self.endpoint {
            ManagedEndpoint::AppService { url, header } => (
                format!("{url}?{query}"),
                vec![("X-IDENTITY-HEADER", header.expose().to_string())],
                Duration::from_secs(10),
            ),
            // Off Azure nothing answers at IMDS: give up on connecting quickly, as the
            // Azure SDKs' probe does.
            ManagedEndpoint::Imds { url } => (
                format!("{url}?{query}"),
                vec![("Metadata", "true".to_string())],
                Duration::from_secs(2),
            ),
        };
        let (status, bytes) = http(Request::Get, &url, headers, connect_timeout).map_err(fail)?;
        managed_token_response(status, &bytes).map_err(fail)
    }

    fn export(&self, scope: &str) -> Result<CredentialExport, CredentialError> {
        Ok(match &self.endpoint {
            ManagedEndpoint::AppService { .. } => CredentialExport::Unsupported {
                source: self.name(),
            },
            ManagedEndpoint::Imds { url } => CredentialExport::Imds {
                token_endpoint: (!url.starts_with(IMDS_HOST)).then(|| url.clone()),
                query: self.query(scope),
            },
        })
    }
}

impl ManagedIdentityCredential {
    /// The endpoint's query: its api-version, the resource (the scope without `/.default`)
    /// and, for a user-assigned identity, its client id.
    fn query(&self, scope: &str) -> String {
        let api_version = match self.endpoint {
            ManagedEndpoint::AppService { .. } => "2019-08-01",
            ManagedEndpoint::Imds { .. } => "2018-02-01",
        };
        let resource = scope.trim_end_matches("/.default");
        let mut pairs = vec![("api-version", api_version), ("resource", resource)];
        if let Some(id) = &self.client_id {
            pairs.push(("client_id", id));
        }
        form(&pairs)
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
