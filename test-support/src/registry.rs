//! `TestSchemaRegistry`: an in-process, Confluent-compatible schema registry for tests.
//!
//! No Confluent registry can be installed on the machines this project is tested on, so
//! this implements the REST endpoints the tools and the Confluent clients use, with the
//! registry's ids, versions, status codes, error codes and BACKWARD/FORWARD/FULL
//! compatibility checks (apache-avro's schema resolution rules). Test support only: it is
//! never built into the shipped binaries.

// Helpers return the HTTP response to send as their error; boxing it would only add noise
// to a test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::task::JoinHandle;

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    Forward,
    Full,
}

impl Compatibility {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Some(Self::None),
            "BACKWARD" | "BACKWARD_TRANSITIVE" => Some(Self::Backward),
            "FORWARD" | "FORWARD_TRANSITIVE" => Some(Self::Forward),
            "FULL" | "FULL_TRANSITIVE" => Some(Self::Full),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::Forward => "FORWARD",
            Self::Full => "FULL",
        }
    }
}

#[derive(Default)]
struct Store {
    /// id → schema text as registered.
    schemas: BTreeMap<u32, String>,
    /// canonical form → id, so the same schema gets the same id in every subject.
    ids_by_canonical: HashMap<String, u32>,
    /// subject → ids, in version order (version = index + 1).
    subjects: BTreeMap<String, Vec<u32>>,
    global: Option<Compatibility>,
    per_subject: HashMap<String, Compatibility>,
    requests: u64,
    /// Answer every request with 503, as a registry behind a gateway does while it is down.
    unavailable: bool,
}

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    basic_auth: Option<String>,
}

/// A running registry; stops when dropped.
pub struct TestSchemaRegistry {
    pub url: String,
    store: Arc<Mutex<Store>>,
    task: JoinHandle<()>,
}

impl Drop for TestSchemaRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestSchemaRegistry {
    /// Start on a free loopback port.
    pub async fn start() -> Self {
        Self::start_with_auth(None).await
    }

    /// Start requiring HTTP basic auth `user:password`.
    pub async fn start_with_auth(credentials: Option<(&str, &str)>) -> Self {
        use base64::Engine;
        let store = Arc::new(Mutex::new(Store::default()));
        let shared = Shared {
            store: store.clone(),
            basic_auth: credentials.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
        };
        let app = Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}", post(lookup))
            .route(
                "/subjects/{subject}/versions",
                post(register).get(list_versions),
            )
            .route("/subjects/{subject}/versions/{version}", get(get_version))
            .route("/schemas/ids/{id}", get(get_by_id))
            .route("/config", get(get_global_config).put(put_global_config))
            .route(
                "/config/{subject}",
                get(get_subject_config).put(put_subject_config),
            )
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(check_compatibility),
            )
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a loopback port for the test registry");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, store, task }
    }

    /// How many requests the registry has answered (to prove caching).
    pub fn requests(&self) -> u64 {
        self.store.lock().unwrap().requests
    }

    /// Take the registry down (every request answered 503) or bring it back.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.store.lock().unwrap().unavailable = unavailable;
    }

    /// Subjects and their schema ids in version order.
    pub fn subjects(&self) -> BTreeMap<String, Vec<u32>> {
        self.store.lock().unwrap().subjects.clone()
    }
}

fn reply(status: StatusCode, body: Json) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    reply(status, json!({"error_code": code, "message": message}))
}

fn subject_not_found(subject: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        40401,
        &format!("Subject '{subject}' not found."),
    )
}

/// Count the request and check basic auth; `Err` is the response to send instead.
fn admit<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
) -> Result<std::sync::MutexGuard<'a, Store>, Response> {
    if let Some(expected) = &shared.basic_auth {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return Err(error(StatusCode::UNAUTHORIZED, 401, "Unauthorized"));
        }
    }
    let mut store = shared.store.lock().unwrap();
    store.requests += 1;
    if store.unavailable {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            50301,
            "Service Unavailable",
        ));
    }
    Ok(store)
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

fn parse_body(body: &str) -> Result<(String, Schema), Response> {
    let body: SchemaBody = serde_json::from_str(body).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            &format!("Invalid request: {e}"),
        )
    })?;
    if body
        .schema_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("AVRO"))
    {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Only AVRO schemas are supported by this registry",
        ));
    }
    let parsed = Schema::parse_str(&body.schema).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            &format!("Invalid schema: {e}"),
        )
    })?;
    Ok((body.schema, parsed))
}

fn compatible(level: Compatibility, existing: &Schema, new: &Schema) -> bool {
    let backward = || SchemaCompatibility::can_read(existing, new).is_ok();
    let forward = || SchemaCompatibility::can_read(new, existing).is_ok();
    match level {
        Compatibility::None => true,
        Compatibility::Backward => backward(),
        Compatibility::Forward => forward(),
        Compatibility::Full => backward() && forward(),
    }
}

impl Store {
    fn level(&self, subject: &str) -> Compatibility {
        self.per_subject
            .get(subject)
            .copied()
            .or(self.global)
            .unwrap_or(Compatibility::Backward)
    }

    fn parsed(&self, id: u32) -> Option<Schema> {
        Schema::parse_str(self.schemas.get(&id)?).ok()
    }

    fn version_json(&self, subject: &str, version_index: usize) -> Json {
        let id = self.subjects[subject][version_index];
        json!({
            "subject": subject,
            "version": version_index + 1,
            "id": id,
            "schema": self.schemas[&id],
        })
    }

    fn resolve_version(&self, subject: &str, version: &str) -> Result<usize, Response> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?;
        if version == "latest" {
            return Ok(versions.len() - 1);
        }
        match version.parse::<usize>() {
            Ok(v) if v >= 1 && v <= versions.len() => Ok(v - 1),
            Ok(_) => Err(error(StatusCode::NOT_FOUND, 40402, "Version not found.")),
            Err(_) => Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
                "The specified version is not a valid version id.",
            )),
        }
    }
}

async fn register(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (text, parsed) = match parse_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let canonical = parsed.canonical_form();
    let existing_id = store.ids_by_canonical.get(&canonical).copied();
    let versions = store.subjects.get(&subject).cloned().unwrap_or_default();
    if let Some(id) = existing_id.filter(|id| versions.contains(id)) {
        return reply(StatusCode::OK, json!({"id": id}));
    }
    if let Some(latest) = versions.last().and_then(|id| store.parsed(*id)) {
        let level = store.level(&subject);
        if !compatible(level, &latest, &parsed) {
            return error(
                StatusCode::CONFLICT,
                409,
                &format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" (compatibility {})",
                    level.name()
                ),
            );
        }
    }
    let id = existing_id.unwrap_or_else(|| store.schemas.keys().last().map_or(1, |k| k + 1));
    store.schemas.insert(id, text);
    store.ids_by_canonical.insert(canonical, id);
    store.subjects.entry(subject).or_default().push(id);
    reply(StatusCode::OK, json!({"id": id}))
}

async fn lookup(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (_, parsed) = match parse_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(versions) = store.subjects.get(&subject) else {
        return subject_not_found(&subject);
    };
    let id = store.ids_by_canonical.get(&parsed.canonical_form());
    match id.and_then(|id| versions.iter().position(|v| v == id)) {
        Some(index) => reply(StatusCode::OK, store.version_json(&subject, index)),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn list_subjects(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    reply(
        StatusCode::OK,
        json!(store.subjects.keys().collect::<Vec<_>>()),
    )
}

async fn list_versions(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.subjects.get(&subject) {
        Some(v) => reply(StatusCode::OK, json!((1..=v.len()).collect::<Vec<_>>())),
        None => subject_not_found(&subject),
    }
}

async fn get_version(
    State(shared): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.resolve_version(&subject, &version) {
        Ok(index) => reply(StatusCode::OK, store.version_json(&subject, index)),
        Err(r) => r,
    }
}

async fn get_by_id(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match id.parse::<u32>().ok().and_then(|id| store.schemas.get(&id)) {
        Some(schema) => reply(StatusCode::OK, json!({"schema": schema})),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn parse_config(body: &str) -> Result<Compatibility, Response> {
    serde_json::from_str::<ConfigBody>(body)
        .ok()
        .and_then(|c| Compatibility::parse(&c.compatibility))
        .ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                42203,
                "Invalid compatibility level",
            )
        })
}

async fn get_global_config(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let level = store.global.unwrap_or(Compatibility::Backward);
    reply(StatusCode::OK, json!({"compatibilityLevel": level.name()}))
}

async fn put_global_config(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match parse_config(&body) {
        Ok(level) => {
            store.global = Some(level);
            reply(StatusCode::OK, json!({"compatibility": level.name()}))
        }
        Err(r) => r,
    }
}

async fn get_subject_config(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.per_subject.get(&subject) {
        Some(level) => reply(StatusCode::OK, json!({"compatibilityLevel": level.name()})),
        None => error(
            StatusCode::NOT_FOUND,
            40408,
            &format!("Subject '{subject}' does not have subject-level compatibility configured"),
        ),
    }
}

async fn put_subject_config(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match parse_config(&body) {
        Ok(level) => {
            store.per_subject.insert(subject, level);
            reply(StatusCode::OK, json!({"compatibility": level.name()}))
        }
        Err(r) => r,
    }
}

async fn check_compatibility(
    State(shared): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let store = match admit(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (_, parsed) = match parse_body(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let index = match store.resolve_version(&subject, &version) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(existing) = store.parsed(store.subjects[&subject][index]) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            "stored schema unreadable",
        );
    };
    let ok = compatible(store.level(&subject), &existing, &parsed);
    reply(StatusCode::OK, json!({"is_compatible": ok}))
}
