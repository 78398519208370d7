//! An Azure Schema Registry on loopback, over HTTPS (a self-signed certificate for
//! 127.0.0.1), answering the REST API 2022-10 as Event Hubs' registry does and as Microsoft's
//! SDKs call it:
//! - `PUT /$schemaGroups/{group}/schemas/{name}` (body: the schema, content type
//!   `application/json; serialization=Avro`): registers, or finds the same content's id;
//! - `POST /$schemaGroups/{group}/schemas/{name}:get-id`: the id of that content, or 404;
//! - `GET /$schemaGroups/$schemas/{id}`: the schema text.
//!
//! Every request needs `Authorization: Bearer <JWT>` whose `aud` is
//! `https://eventhubs.azure.net` and which has not expired (the claims are checked, not the
//! signature); groups must exist beforehand, as in Azure. Each request is recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use serde_json::json;

/// The audience the registry's tokens must have.
pub const SCHEMA_REGISTRY_AUDIENCE: &str = "https://eventhubs.azure.net";

/// One request as received.
#[derive(Debug, Clone)]
pub struct RegistryRequest {
    pub method: String,
    pub path: String,
    pub api_version: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Registered {
    id: String,
    group: String,
    name: String,
    version: u32,
    content: String,
}

#[derive(Default)]
struct Shared {
    groups: Vec<String>,
    schemas: Mutex<Vec<Registered>>,
    requests: Mutex<Vec<RegistryRequest>>,
}

/// A running registry; stops with the test process.
pub struct AzureSchemaRegistry {
    pub address: SocketAddr,
    certificate: PathBuf,
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
}

impl AzureSchemaRegistry {
    /// A registry with these schema groups (Azure's groups are made beforehand, with their
    /// format and compatibility, by the namespace's owner).
    pub fn start(groups: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed_for_loopback();
        let certificate = dir.path().join("registry-ca.pem");
        std::fs::write(&certificate, cert.to_pem().expect("PEM")).expect("write the certificate");
        let mut acceptor =
            openssl::ssl::SslAcceptor::mozilla_intermediate_v5(openssl::ssl::SslMethod::tls())
                .expect("TLS acceptor");
        acceptor.set_private_key(&key).expect("key");
        acceptor.set_certificate(&cert).expect("certificate");
        let acceptor = acceptor.build();

        let shared = Arc::new(Shared {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Shared::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the registry");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let address = listener.local_addr().expect("its address");
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("registry runtime");
            runtime.block_on(async move {
                let app = Router::new()
                    .route(
                        "/$schemaGroups/{group}/schemas/{name}",
                        put(register).post(get_id),
                    )
                    .route("/$schemaGroups/$schemas/{id}", get(schema_by_id))
                    .with_state(state);
                let listener = TlsListener {
                    tcp: tokio::net::TcpListener::from_std(listener).expect("registry listener"),
                    acceptor,
                };
                let _ = axum::serve(listener, app).await;
            });
        });
        Self {
            address,
            certificate,
            _dir: dir,
            shared,
        }
    }

    /// What to give as `--schema-registry-url`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The PEM certificate to trust (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`).
    pub fn certificate(&self) -> &std::path::Path {
        &self.certificate
    }

    pub fn requests(&self) -> Vec<RegistryRequest> {
        lock(&self.shared.requests).clone()
    }

    /// `(group, name, version, id)` of every registered schema.
    pub fn schemas(&self) -> Vec<(String, String, u32, String)> {
        lock(&self.shared.schemas)
            .iter()
            .map(|s| (s.group.clone(), s.name.clone(), s.version, s.id.clone()))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A certificate for `127.0.0.1` (and `localhost`), signed by its own key.
fn self_signed_for_loopback() -> (
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
) {
    use openssl::x509::extension::SubjectAlternativeName;
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("RSA key"))
        .expect("key");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "127.0.0.1").expect("CN");
    let name = name.build();
    let mut builder = openssl::x509::X509::builder().expect("certificate builder");
    builder.set_version(2).expect("v3");
    let serial = openssl::bn::BigNum::from_u32(1)
        .and_then(|n| n.to_asn1_integer())
        .expect("serial");
    builder.set_serial_number(&serial).expect("serial");
    builder.set_subject_name(&name).expect("subject");
    builder.set_issuer_name(&name).expect("issuer");
    builder.set_pubkey(&key).expect("public key");
    builder
        .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    builder
        .set_not_after(&openssl::asn1::Asn1Time::days_from_now(2).expect("time"))
        .expect("not after");
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&builder.x509v3_context(None, None))
        .expect("subjectAltName");
    builder.append_extension(san).expect("extension");
    builder
        .sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("self-signature");
    (builder.build(), key)
}

/// TLS over loopback TCP for `axum::serve`; a failed handshake is dropped and the next
/// connection accepted.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: openssl::ssl::SslAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_openssl::SslStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            let Ok(ssl) = openssl::ssl::Ssl::new(self.acceptor.context()) else {
                continue;
            };
            let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, tcp) else {
                continue;
            };
            if std::pin::Pin::new(&mut stream).accept().await.is_ok() {
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Azure's error body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

/// `None` when the bearer token is acceptable, else the 401.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let refuse = |why: &str| Some(error(StatusCode::UNAUTHORIZED, "Unauthorized", why));
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return refuse("Authorization header with a bearer token is required.");
    };
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(claims) = claims else {
        return refuse("The bearer token is not a JWT.");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let audience = claims["aud"].as_str().unwrap_or_default();
    if audience.trim_end_matches('/') != SCHEMA_REGISTRY_AUDIENCE {
        return refuse(&format!(
            "InvalidAudience: the token's audience `{audience}` is not {SCHEMA_REGISTRY_AUDIENCE}."
        ));
    }
    if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
        return refuse("ExpiredToken: the token has expired.");
    }
    None
}

fn record(
    state: &Shared,
    method: &str,
    path: String,
    query: &HashMap<String, String>,
    status: u16,
) {
    lock(&state.requests).push(RegistryRequest {
        method: method.into(),
        path,
        api_version: query.get("api-version").cloned().unwrap_or_default(),
        status,
    });
}

/// Checks common to every call: the token, the api-version, the group.
fn refusal(
    state: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    group: Option<&str>,
) -> Option<Response> {
    if let Some(r) = unauthorized(headers) {
        return Some(r);
    }
    if query.get("api-version").map(String::as_str) != Some("2022-10") {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersion",
            "The api-version query parameter is missing or not supported.",
        ));
    }
    if let Some(g) = group
        && !state.groups.iter().any(|known| known == g)
    {
        return Some(error(
            StatusCode::NOT_FOUND,
            "ItemNotFound",
            &format!("Schema group {g} does not exist."),
        ));
    }
    None
}

/// The schema's headers, as the service sends them.
fn described(status: StatusCode, s: &Registered, body: Option<String>) -> Response {
    let mut response = match body {
        Some(b) => (status, b).into_response(),
        None => status.into_response(),
    };
    let headers = response.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("schema-id", s.id.clone());
    set(
        "schema-id-location",
        format!("/$schemaGroups/$schemas/{}?api-version=2022-10", s.id),
    );
    set("schema-group-name", s.group.clone());
    set("schema-name", s.name.clone());
    set("schema-version", s.version.to_string());
    set(
        "content-type",
        "application/json; serialization=Avro".to_string(),
    );
    response
}

fn avro_content_type(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.replace(' ', "")
                .eq_ignore_ascii_case("application/json;serialization=avro")
        })
}

async fn register(
    State(state): State<Arc<Shared>>,
    Path((group, name)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/$schemaGroups/{group}/schemas/{name}");
    let query = crate::token::query_map(&uri);
    let response = (|| {
        if let Some(r) = refusal(&state, &headers, &query, Some(&group)) {
            return r;
        }
        if !avro_content_type(&headers) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "InvalidSchemaType",
                "The group's format is Avro: content type application/json; serialization=Avro.",
            );
        }
        let content = String::from_utf8_lossy(&body).into_owned();
        if apache_avro::Schema::parse_str(&content).is_err() {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidSchema",
                "The schema is not valid Avro.",
            );
        }
        let mut schemas = lock(&state.schemas);
        if let Some(found) = schemas
            .iter()
            .find(|s| s.group == group && s.name == name && s.content == content)
        {
            return described(StatusCode::NO_CONTENT, found, None);
        }
        let version = schemas
            .iter()
            .filter(|s| s.group == group && s.name == name)
            .count() as u32
            + 1;
        let id = format!("{:032x}", rand_id(&group, &name, version));
        let registered = Registered {
            id,
            group: group.clone(),
            name: name.clone(),
            version,
            content,
        };
        schemas.push(registered.clone());
        described(StatusCode::NO_CONTENT, &registered, None)
    })();
    record(&state, "PUT", path, &query, response.status().as_u16());
    response
}

/// A schema id: 32 hex digits, as Azure's are (a GUID without dashes).
fn rand_id(group: &str, name: &str, version: u32) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(group.as_bytes());
    h.write(name.as_bytes());
    h.write_u32(version);
    let high = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(high);
    (u128::from(high) << 64) | u128::from(h.finish())
}

async fn get_id(
    State(state): State<Arc<Shared>>,
    Path((group, name)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/$schemaGroups/{group}/schemas/{name}");
    let query = crate::token::query_map(&uri);
    let response = (|| {
        let Some(name) = name.strip_suffix(":get-id") else {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "POST is for :get-id",
            );
        };
        if let Some(r) = refusal(&state, &headers, &query, Some(&group)) {
            return r;
        }
        let content = String::from_utf8_lossy(&body);
        let schemas = lock(&state.schemas);
        match schemas
            .iter()
            .find(|s| s.group == group && s.name == name && s.content == content)
        {
            Some(found) => described(StatusCode::NO_CONTENT, found, None),
            None => error(
                StatusCode::NOT_FOUND,
                "ItemNotFound",
                &format!("Schema {group}/{name} does not exist."),
            ),
        }
    })();
    record(&state, "POST", path, &query, response.status().as_u16());
    response
}

async fn schema_by_id(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let path = format!("/$schemaGroups/$schemas/{id}");
    let query = crate::token::query_map(&uri);
    let response = (|| {
        if let Some(r) = refusal(&state, &headers, &query, None) {
            return r;
        }
        let schemas = lock(&state.schemas);
        match schemas.iter().find(|s| s.id == id) {
            Some(found) => described(StatusCode::OK, found, Some(found.content.clone())),
            None => error(
                StatusCode::NOT_FOUND,
                "ItemNotFound",
                &format!("Schema id {id} does not exist."),
            ),
        }
    })();
    record(&state, "GET", path, &query, response.status().as_u16());
    response
}
