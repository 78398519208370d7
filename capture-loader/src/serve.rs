//! `capture-loader serve`: the Event Grid webhook that replaces the Function App.
//!
//! Accepts the Event Grid schema and CloudEvents 1.0 (a single event or a batch), answers the
//! SubscriptionValidation handshake and CloudEvents' OPTIONS handshake, and for each
//! `Microsoft.EventHub.CaptureFileCreated` loads `data.fileUrl`, then checks the loaded file
//! against `eventCount` and the first/last sequence numbers. It answers 200 only once every
//! file of the request is committed, so Event Grid retries a failure; redelivered or
//! reordered notifications are harmless (a loaded file is skipped). A shared secret is
//! required (header `x-capture-loader-key`, or query parameter `code`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use eventhubs_kafka::secret::Secret;
use serde_json::{Value, json};

use crate::Loader;

pub const KEY_HEADER: &str = "x-capture-loader-key";

pub struct Webhook {
    pub loader: Loader,
    pub key: Secret,
    /// Where notified files may be (see [`crate::allow`]).
    pub allowed: crate::allow::AllowList,
    pub max_body_bytes: usize,
    /// One load at a time: notifications are small and a file's load is one transaction.
    pub lock: tokio::sync::Mutex<()>,
}

pub async fn serve(listen: SocketAddr, webhook: Webhook) -> anyhow::Result<()> {
    let state = Arc::new(webhook);
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving the Event Grid webhook");
    let cancel = eventhubs_kafka::shutdown::on_signal();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    reply(status, json!({ "error": message }))
}

fn authorized(state: &Webhook, headers: &HeaderMap, uri: &Uri) -> bool {
    let expected = state.key.expose().as_bytes();
    let from_header = headers.get(KEY_HEADER).map(|v| v.as_bytes());
    // Event Grid sends the URL as configured: a key with `+`, `/` or `=` arrives
    // percent-encoded in `?code=`.
    let from_query = uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "code")
            .map(|(_, v)| eventhubs_kafka::percent::decode_lenient(v))
    });
    from_header.is_some_and(|given| constant_time_eq(given, expected))
        || from_query.is_some_and(|given| constant_time_eq(&given, expected))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    State(state): State<Arc<Webhook>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method == Method::OPTIONS {
        // CloudEvents webhook validation: allow the origin that asks.
        let origin = headers
            .get("webhook-request-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("*")
            .to_string();
        return (
            StatusCode::OK,
            [
                ("webhook-allowed-origin", origin),
                ("allow", "POST".to_string()),
            ],
        )
            .into_response();
    }
    if method == Method::GET && uri.path() == "/report" {
        if !authorized(&state, &headers, &uri) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong webhook key");
        }
        return report(&state).await;
    }
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST Event Grid events here (GET /report for the report)",
        );
    }
    let bytes = match to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let request = parse_request(&bytes);
    if let Ok(Request::Validation(code)) = &request {
        // The validation handshake is answered without the key: Event Grid may send it
        // without the delivery headers that carry the key, and echoing its code grants
        // nothing.
        tracing::info!("Event Grid subscription validated");
        return reply(StatusCode::OK, json!({ "validationResponse": code }));
    }
    if !authorized(&state, &headers, &uri) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong webhook key");
    }
    let notifications = match request {
        Ok(Request::Files(files)) => files,
        Ok(Request::Validation(_)) => Vec::new(),
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    // Every file of the request is checked before any is read.
    let mut files = Vec::new();
    for (url, data) in &notifications {
        match state.allowed.check(url) {
            Ok(canonical) => files.push((canonical, data)),
            Err(why) => {
                tracing::warn!(file = %url, "notification refused: {why}");
                return error(StatusCode::FORBIDDEN, &format!("fileUrl refused: {why}"));
            }
        }
    }
    let mut loaded = Vec::new();
    for (url, data) in files {
        let url = url.as_str();
        match load_file(&state, url, data).await {
            Ok(()) => loaded.push(url.to_string()),
            Err(e) => {
                tracing::error!(file = url, "not loaded: {e:#}");
                // Event Grid retries, then dead-letters: nothing is lost silently.
                return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{url}: {e:#}"));
            }
        }
    }
    reply(StatusCode::OK, json!({ "loaded": loaded }))
}

/// What a webhook request body asks for.
#[derive(Debug)]
pub enum Request {
    /// Event Grid's subscription validation: answer with this code.
    Validation(String),
    /// `Microsoft.EventHub.CaptureFileCreated` notifications: each file's URL and `data`.
    Files(Vec<(String, Value)>),
}

/// Parse a request body (Event Grid schema or CloudEvents 1.0, one event or a batch). Pure:
/// no key, no network, no database; `Err` is the 400 message.
pub fn parse_request(body: &[u8]) -> Result<Request, String> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let events = match parsed {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err("expected an event or an array of events".into()),
    };
    let kind = |e: &Value| {
        e.get("eventType")
            .or_else(|| e.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(validation) = events
        .iter()
        .find(|e| kind(e) == "Microsoft.EventGrid.SubscriptionValidationEvent")
    {
        return match validation["data"]["validationCode"].as_str() {
            Some(code) => Ok(Request::Validation(code.to_string())),
            None => Err("validation event without data.validationCode".into()),
        };
    }
    let mut files = Vec::new();
    for event in events
        .iter()
        .filter(|e| kind(e) == "Microsoft.EventHub.CaptureFileCreated")
    {
        let data = &event["data"];
        let url = data["fileUrl"]
            .as_str()
            .ok_or("CaptureFileCreated without data.fileUrl")?;
        files.push((url.to_string(), data.clone()));
    }
    Ok(Request::Files(files))
}

/// `GET /report`: the same page as `capture-loader report`, made afresh.
async fn report(state: &Webhook) -> Response {
    let db = state.loader.db.clone();
    let page = tokio::task::spawn_blocking(move || {
        let mut store = db.open()?;
        crate::status::report_page(store.as_mut(), None, "Event Hubs Capture: what was loaded")
    })
    .await;
    match page {
        Ok(Ok(html)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, crate::report::CSP),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!("report failed: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be made (see the log)",
            )
        }
        Err(e) => {
            tracing::error!("report task failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be made (see the log)",
            )
        }
    }
}

/// Load one notified file and check it against the notification.
async fn load_file(state: &Webhook, url: &str, data: &Value) -> anyhow::Result<()> {
    let _guard = state.lock.lock().await;
    let summary = state.loader.run_sources(vec![url.to_string()]).await?;
    if summary.files_failed > 0 || summary.files_changed > 0 {
        anyhow::bail!("the file failed to load or changed since it was loaded (see the log)");
    }
    let known = state
        .loader
        .known_file(url)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the notified file was not found at its URL"))?;
    let mut mismatches = Vec::new();
    let mut check = |field: &str, actual: Option<i64>| {
        if let Some(expected) = data[field].as_i64()
            && Some(expected) != actual
        {
            mismatches.push(format!(
                "{field} {expected} notified, {actual:?} in the file"
            ));
        }
    };
    check("eventCount", Some(known.event_count));
    check("firstSequenceNumber", known.first_sequence_number);
    check("lastSequenceNumber", known.last_sequence_number);
    if !mismatches.is_empty() {
        anyhow::bail!(
            "the file does not match its notification: {}",
            mismatches.join("; ")
        );
    }
    Ok(())
}
