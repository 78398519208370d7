//! The HTTP side of the token flows: one blocking exchange on a thread of its own, the
//! form encoding, Entra's token answer, and which authority hosts are acceptable.

use std::time::{Duration, SystemTime};

use super::{AccessToken, CredentialError, DEFAULT_AUTHORITY_HOST};
use crate::secret::Secret;

/// `AZURE_AUTHORITY_HOST` (sovereign clouds, tests), https only except on loopback.
pub(super) fn authority_host(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, CredentialError> {
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

pub(crate) fn is_loopback_http(url: &str) -> bool {
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

/// The token endpoint's answer: a token and its lifetime, or Entra's error description.
pub(super) fn token_response(status: u16, body: &[u8]) -> Result<AccessToken, String> {
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
pub(super) fn form(pairs: &[(&str, &str)]) -> String {
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
pub(super) fn post_form(url: &str, body: String) -> Result<(u16, Vec<u8>), String> {
    http(
        Request::PostForm(body),
        url,
        Vec::new(),
        Duration::from_secs(30),
    )
}

pub(super) enum Request {
    Get,
    PostForm(String),
}

/// One HTTP exchange: the status and body. Blocking, callable from any thread: the request
/// runs on a thread of its own with its own small runtime, so it never blocks or nests
/// inside the caller's async runtime.
pub(super) fn http(
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
