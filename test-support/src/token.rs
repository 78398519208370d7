//! Microsoft Entra ID's token endpoints on loopback, answering as Azure does, each request
//! recorded:
//! - `POST /{tenant}/oauth2/v2.0/token`, client credentials with a client secret (in the form
//!   or as HTTP Basic authentication) or (workload identity) a federated `client_assertion`:
//!   a token and `expires_in`, or an `AADSTS…` error;
//! - `GET /metadata/identity/oauth2/token` (IMDS, header `Metadata: true`, api-version
//!   2018-02-01): the managed identity's token, `expires_in`/`expires_on` as strings;
//! - `GET /msi/token` (App Service / Functions, header `X-IDENTITY-HEADER`, api-version
//!   2019-08-01): the same with `expires_on` in epoch seconds;
//! - `GET /cli/token?scope=…`: what `az account get-access-token` prints, for the fake `az`
//!   that [`TokenService::install_fake_az`] writes (the test's signed-in user).
//!
//! It issues the token it was given, so a test can make a server (a PostgreSQL role's
//! password) accept exactly that token.
//! The tokens are JWT-shaped but unsigned (`alg: none`); the Entra ID issue adds RS256
//! signing and a JWKS for brokers that validate them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct TokenServiceOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The access token handed out.
    pub token: String,
    pub lifetime_secs: u64,
    /// The federated token (workload identity) accepted as `client_assertion`, if any.
    pub federated_token: Option<String>,
    /// App Service's `IDENTITY_HEADER` value; `None`: no App Service endpoint answers.
    pub identity_header: Option<String>,
    /// Hand out RS256-signed JWTs for the requested audience (the scope without
    /// `/.default`) instead of `token`, verifiable with the keys at [`TokenService::jwks_url`].
    pub sign: bool,
    /// The signed tokens' `iss`; `None`: this service's own URL. Azurite accepts only Entra's
    /// real issuers (`https://sts.windows.net/<tenant>/`).
    pub issuer: Option<String>,
}

impl TokenServiceOptions {
    /// One tenant and application with a client secret; no workload or managed identity.
    pub fn client_secret(tenant: &str, client: &str, secret: &str, token: &str) -> Self {
        Self {
            tenant_id: tenant.into(),
            client_id: client.into(),
            client_secret: secret.into(),
            token: token.into(),
            lifetime_secs: 3600,
            federated_token: None,
            identity_header: None,
            sign: false,
            issuer: None,
        }
    }
}

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `client_secret`, `workload_identity`, `imds` or `app_service`.
    pub kind: &'static str,
    pub tenant: String,
    pub client_id: String,
    /// The scope, or for the managed identity endpoints the resource.
    pub scope: String,
    pub granted: bool,
}

struct Shared {
    options: TokenServiceOptions,
    requests: Mutex<Vec<TokenRequest>>,
    key: openssl::rsa::Rsa<openssl::pkey::Private>,
    issuer: Mutex<String>,
}

/// The `kid` of the service's signing key.
pub const KEY_ID: &str = "test-signing-key";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Shared {
    /// The token to hand out for `audience` (a scope without `/.default`, or a resource).
    fn token_for(&self, audience: &str, subject: &str) -> String {
        let o = &self.options;
        if !o.sign {
            return o.token.clone();
        }
        let now = now_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": KEY_ID});
        let issuer = self
            .issuer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let claims = json!({
            "aud": audience, "iss": issuer, "sub": subject, "appid": subject,
            "tid": o.tenant_id, "iat": now, "nbf": now, "exp": now + o.lifetime_secs,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let key = openssl::pkey::PKey::from_rsa(self.key.clone()).expect("signing key");
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
            .expect("RS256 signer");
        signer
            .update(signing_input.as_bytes())
            .expect("signing input");
        let signature = signer.sign_to_vec().expect("signature");
        format!("{signing_input}.{}", b64url(&signature))
    }
}

/// A running token service; stops with the test process.
pub struct TokenService {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

impl TokenService {
    pub fn start(options: TokenServiceOptions) -> Self {
        let shared = Arc::new(Shared {
            options,
            requests: Mutex::default(),
            key: openssl::rsa::Rsa::generate(2048).expect("an RSA key"),
            issuer: Mutex::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the token service");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let address = listener.local_addr().expect("its address");
        *shared.issuer.lock().unwrap_or_else(|e| e.into_inner()) = shared
            .options
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{address}/{}/v2.0", shared.options.tenant_id));
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("token service runtime");
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/{tenant}/oauth2/v2.0/token", post(token))
                    .route("/metadata/identity/oauth2/token", get(imds))
                    .route("/msi/token", get(app_service))
                    .route("/cli/token", get(azure_cli))
                    .route("/{tenant}/discovery/v2.0/keys", get(jwks))
                    .layer(axum::middleware::map_response(json_content_type))
                    .with_state(state);
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("token service listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        Self { address, shared }
    }

    /// What to put in `AZURE_AUTHORITY_HOST` (and `AZURE_POD_IDENTITY_AUTHORITY_HOST`, the
    /// IMDS host).
    pub fn authority_host(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The JSON Web Key Set that verifies the signed tokens (Entra's path for it).
    pub fn jwks_url(&self) -> String {
        format!(
            "http://{}/{}/discovery/v2.0/keys",
            self.address, self.shared.options.tenant_id
        )
    }

    /// The `iss` of the signed tokens.
    pub fn issuer(&self) -> String {
        self.shared
            .issuer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What to put in `IDENTITY_ENDPOINT` (App Service).
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.address)
    }

    /// Writes an executable `az` into `dir` that answers `az account get-access-token
    /// --scope S` with a token of this service (request kind `azure_cli`), as the real CLI
    /// prints it. It runs on python3, which the test setup installs.
    pub fn install_fake_az(&self, dir: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        let script = format!(
            r#"#!/usr/bin/env python3
import sys, urllib.parse, urllib.request
args = sys.argv[1:]
if args[:2] != ["account", "get-access-token"] or "--scope" not in args:
    sys.exit("ERROR: unexpected arguments: " + " ".join(args))
scope = args[args.index("--scope") + 1]
url = "http://{address}/cli/token?scope=" + urllib.parse.quote(scope, safe="")
sys.stdout.write(urllib.request.urlopen(url, timeout=10).read().decode())
"#,
            address = self.address
        );
        let path = dir.join("az");
        std::fs::write(&path, script).expect("write the fake az");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the fake az executable");
    }

    /// A token for `audience` as this service would issue it, without a request (for a
    /// client that cannot ask, such as a Python one given a static credential).
    pub fn issue(&self, audience: &str) -> String {
        self.shared
            .token_for(audience, &self.shared.options.client_id)
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A JWT-shaped, unsigned token with the claims Entra puts in one.
    pub fn unsigned_jwt(audience: &str, tenant: &str, app: &str, lifetime_secs: u64) -> String {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let now = now_secs();
        format!(
            "{}.{}.",
            b64(json!({"typ": "JWT", "alg": "none"})),
            b64(
                json!({"aud": audience, "tid": tenant, "appid": app, "iat": now, "nbf": now, "exp": now + lifetime_secs})
            )
        )
    }
}

fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every answer of Entra ID and of the identity endpoints is JSON, and says so (librdkafka's
/// OIDC client refuses a body of another content type).
async fn json_content_type(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The client id and secret of an `Authorization: Basic` header (RFC 6749 2.3.1:
/// form-encoded, then base64), as librdkafka's and Kafka's OIDC clients send them and Entra
/// ID accepts (`client_secret_basic`).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode(id), decode(secret)))
}

async fn token(
    State(state): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body = String::from_utf8_lossy(&body);
    let basic = basic_credentials(&headers);
    let field = |k: &str| match (&basic, k) {
        (Some((id, _)), "client_id") => id.clone(),
        (Some((_, secret)), "client_secret") => secret.clone(),
        _ => form_value(&body, k).unwrap_or_default(),
    };
    let o = &state.options;
    let assertion =
        field("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let refusal = if tenant != o.tenant_id {
        Some((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("AADSTS90002: Tenant '{tenant}' not found."),
        ))
    } else if field("grant_type") != "client_credentials" {
        Some((
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The grant type is not supported.".to_string(),
        ))
    } else if field("client_id") != o.client_id {
        Some((
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.".to_string(),
        ))
    } else if assertion && o.federated_token.as_deref() != Some(field("client_assertion").as_str())
    {
        Some((
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "AADSTS700211: No matching federated identity record found for presented assertion."
                .to_string(),
        ))
    } else if !assertion && field("client_secret") != o.client_secret {
        Some((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.".to_string(),
        ))
    } else if !field("scope").ends_with("/.default") {
        Some((
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.".to_string(),
        ))
    } else {
        None
    };
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(TokenRequest {
            kind: if assertion {
                "workload_identity"
            } else {
                "client_secret"
            },
            tenant,
            client_id: field("client_id"),
            scope: field("scope"),
            granted: refusal.is_none(),
        });
    match refusal {
        Some((status, error, description)) => (
            status,
            json!({"error": error, "error_description": format!("{description}\r\nTrace ID: 00000000-0000-0000-0000-000000000000")}).to_string(),
        ),
        None => {
            let audience = field("scope").trim_end_matches("/.default").to_string();
            let token = state.token_for(&audience, &field("client_id"));
            (
                StatusCode::OK,
                json!({"token_type": "Bearer", "expires_in": o.lifetime_secs, "ext_expires_in": o.lifetime_secs, "access_token": token}).to_string(),
            )
        }
    }
}

pub(crate) fn query_map(uri: &axum::http::Uri) -> std::collections::HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The managed identity endpoints: the token for `resource`, or an error as Azure words it.
fn managed_identity(
    state: &Shared,
    kind: &'static str,
    query: &std::collections::HashMap<String, String>,
    authorized: bool,
    api_version: &str,
) -> (StatusCode, String) {
    let o = &state.options;
    let resource = query.get("resource").cloned().unwrap_or_default();
    // A user-assigned identity is chosen by client_id; the test's is o.client_id.
    let client_ok = query.get("client_id").is_none_or(|c| *c == o.client_id);
    let granted = authorized
        && query.get("api-version").map(String::as_str) == Some(api_version)
        && !resource.is_empty()
        && !resource.ends_with("/.default")
        && client_ok;
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(TokenRequest {
            kind,
            tenant: String::new(),
            client_id: query.get("client_id").cloned().unwrap_or_default(),
            scope: resource.clone(),
            granted,
        });
    if !authorized {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}).to_string(),
        );
    }
    if !granted {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Identity not found"})
                .to_string(),
        );
    }
    let expires_on = now_secs() + o.lifetime_secs;
    let token = state.token_for(&resource, &o.client_id);
    (
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_in": o.lifetime_secs.to_string(),
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

async fn imds(
    State(state): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    let query = query_map(&uri);
    let authorized = headers.get("metadata").and_then(|v| v.to_str().ok()) == Some("true");
    managed_identity(&state, "imds", &query, authorized, "2018-02-01")
}

async fn app_service(
    State(state): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    let query = query_map(&uri);
    let expected = state.options.identity_header.clone();
    let given = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let authorized = expected.is_some() && given == expected;
    managed_identity(&state, "app_service", &query, authorized, "2019-08-01")
}

/// The signed-in user's token as `az account get-access-token -o json` prints it (the
/// local-time `expiresOn` left out: `expires_on`, epoch seconds, is what CLI 2.54 and later
/// add and what is read first).
async fn azure_cli(State(state): State<Arc<Shared>>, uri: axum::http::Uri) -> impl IntoResponse {
    let query = query_map(&uri);
    let scope = query.get("scope").cloned().unwrap_or_default();
    let o = &state.options;
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(TokenRequest {
            kind: "azure_cli",
            tenant: o.tenant_id.clone(),
            client_id: String::new(),
            scope: scope.clone(),
            granted: true,
        });
    let expires_on = now_secs() + o.lifetime_secs;
    let token = state.token_for(scope.trim_end_matches("/.default"), "cli-user");
    json!({
        "accessToken": token,
        "expires_on": expires_on,
        "subscription": "00000000-0000-0000-0000-000000000000",
        "tenant": o.tenant_id,
        "tokenType": "Bearer",
    })
    .to_string()
}

async fn jwks(State(state): State<Arc<Shared>>) -> impl IntoResponse {
    let key = &state.key;
    let body = json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEY_ID,
        "n": b64url(&key.n().to_vec()), "e": b64url(&key.e().to_vec()),
    }]})
    .to_string();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}
