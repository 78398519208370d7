//! A Microsoft Entra ID token endpoint on loopback: `POST /{tenant}/oauth2/v2.0/token` with
//! the client-credentials form, answering as Entra does (a token and `expires_in`, or an
//! `AADSTS…` error). It issues the token it was given, so a test can make a server (a
//! PostgreSQL role's password) accept exactly that token, and it records every request.
//! The tokens are JWT-shaped but unsigned (`alg: none`); the Entra ID issue adds RS256
//! signing and a JWKS for brokers that validate them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
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
}

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub tenant: String,
    pub client_id: String,
    pub scope: String,
    pub granted: bool,
}

struct Shared {
    options: TokenServiceOptions,
    requests: Mutex<Vec<TokenRequest>>,
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
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the token service");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let address = listener.local_addr().expect("its address");
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("token service runtime");
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/{tenant}/oauth2/v2.0/token", post(token))
                    .with_state(state);
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("token service listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        Self { address, shared }
    }

    /// What to put in `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        format!("http://{}", self.address)
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
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

async fn token(
    State(state): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> impl IntoResponse {
    let body = String::from_utf8_lossy(&body);
    let field = |k: &str| form_value(&body, k).unwrap_or_default();
    let o = &state.options;
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
    } else if field("client_secret") != o.client_secret {
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
        None => (
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": o.lifetime_secs, "ext_expires_in": o.lifetime_secs, "access_token": o.token}).to_string(),
        ),
    }
}
