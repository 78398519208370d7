//! The Event Grid webhook, fed the Event Grid payloads from ../shared/fixtures/eventgrid
//! (their fileUrl pointed at blobs in Azurite): validation handshakes, Event Grid and
//! CloudEvents batches, redelivery, a notification that does not match its file, bad keys,
//! bad JSON and oversized bodies.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Azurite, azurite_bin, fixtures};
use serde_json::Value;

const WEBHOOK_KEY: &str = "hook-secret-123";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(az: &Azurite, db: &Path) -> Server {
    start_server_with(az, db, WEBHOOK_KEY)
}

/// The webhook, allowed to load from Azurite's `capture` container only.
fn start_server_with(az: &Azurite, db: &Path, key: &str) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-body-bytes",
            "65536",
            "--allow-location",
            &format!("{}/capture", az.endpoint),
        ])
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("CAPTURE_LOADER_WEBHOOK_KEY", key)
        .env("AZURE_STORAGE_CONNECTION_STRING", &az.connection_string)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the webhook did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another test's server may hold the port: then this webhook has exited.
    std::thread::sleep(Duration::from_millis(100));
    if !matches!(child.try_wait(), Ok(None)) {
        return start_server_with(az, db, key);
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}/api/eventgrid"),
    }
}

fn payload(name: &str) -> Value {
    let dir = fixtures().unwrap().parent().unwrap().join("eventgrid");
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// Point a CaptureFileCreated payload (object or array) at `url`, with the file's real counts.
fn retarget(mut payload: Value, url: &str, count: i64, first: i64, last: i64) -> Value {
    let events: Vec<&mut Value> = match &mut payload {
        Value::Array(items) => items.iter_mut().collect(),
        one => vec![one],
    };
    for e in events {
        e["data"]["fileUrl"] = Value::from(url);
        e["data"]["eventCount"] = Value::from(count);
        e["data"]["firstSequenceNumber"] = Value::from(first);
        e["data"]["lastSequenceNumber"] = Value::from(last);
    }
    payload
}

/// POST `body` to the webhook with the right key.
async fn post_with_key(server: &Server, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(&server.url)
        .header("x-capture-loader-key", WEBHOOK_KEY)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM capture_events", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
async fn event_grid_notifications_load_files_once_and_handshakes_are_answered() {
    let (Some(fixture_dir), Some(bin)) = (fixtures(), azurite_bin()) else {
        return;
    };
    let az = Azurite::start(&bin);
    let blob = |p: u32| format!("ns1/telemetry/{p}/2017/10/16/18/18/00.avro");
    az.upload(
        "capture",
        &[
            (blob(0), fixture_dir.join("telemetry-380-events.avro")),
            (blob(2), fixture_dir.join("legacy-2016-schema.avro")),
            (blob(3), fixture_dir.join("partition-key-1-event.avro")),
        ],
    );
    let url = |p: u32| format!("{}/capture/{}", az.endpoint, blob(p));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hook.db");
    let server = start_server(&az, &db);
    let client = reqwest::Client::new();
    let post = |body: Value, key: Option<&str>| {
        let mut req = client.post(&server.url).body(body.to_string());
        if let Some(key) = key {
            req = req.header("x-capture-loader-key", key);
        }
        req.send()
    };

    // Event Grid's validation handshake.
    let resp = post(
        payload("eventgrid-docs-example-SubscriptionValidationEvent.json"),
        Some(WEBHOOK_KEY),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["validationResponse"],
        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    );

    // Keys: missing, wrong, and in the query string.
    let notification = retarget(
        payload("eventgrid-azure-sdk-for-java-EventHubCaptureFileCreatedEvent.json"),
        &url(0),
        380,
        8180,
        8559,
    );
    assert_eq!(
        post(notification.clone(), None)
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        post(notification.clone(), Some("wrong"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(rows(&db), 0, "nothing loaded without the key");

    // An Event Grid batch: loaded, answered 200 only after the commit.
    let resp = client
        .post(format!("{}?code={WEBHOOK_KEY}", server.url))
        .body(notification.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    assert_eq!(rows(&db), 380);
    // Redelivered: harmless.
    assert_eq!(
        post(notification, Some(WEBHOOK_KEY))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(rows(&db), 380);

    // CloudEvents: the OPTIONS handshake, then a batch.
    let resp = client
        .request(reqwest::Method::OPTIONS, &server.url)
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );
    assert_eq!(resp.headers()["allow"], "POST");
    let cloud = retarget(
        payload("eventgrid-docs-example-cloudevents.json"),
        &url(2),
        1,
        0,
        0,
    );
    assert_eq!(
        post(cloud, Some(WEBHOOK_KEY))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(rows(&db), 381);

    // A single event (no array) whose counts do not match the file: 500, so Event Grid
    // retries and finally dead-letters it. The file's events are in, once.
    let readme = payload("eventgrid-azure-event-hubs-EventHubsCaptureEventGridDemo-readme.json");
    let mut mismatched = readme.clone();
    mismatched["data"]["fileUrl"] = Value::from(url(3));
    let resp = post(mismatched, Some(WEBHOOK_KEY)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("eventCount 2800 notified")
    );
    assert_eq!(rows(&db), 382);

    // A file that does not exist: 500, nothing written.
    let missing = retarget(
        readme,
        &format!("{}/capture/nope/0.avro", az.endpoint),
        1,
        1,
        1,
    );
    assert_eq!(
        post(missing, Some(WEBHOOK_KEY))
            .await
            .unwrap()
            .status()
            .as_u16(),
        500
    );

    // Malformed JSON and oversized bodies are refused; the server is still up.
    let resp = client
        .post(&server.url)
        .header("x-capture-loader-key", WEBHOOK_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = client
        .post(&server.url)
        .header("x-capture-loader-key", WEBHOOK_KEY)
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let resp = post(
        payload("eventgrid-docs-example-SubscriptionValidationEvent.json"),
        Some(WEBHOOK_KEY),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
async fn file_urls_outside_the_allowed_locations_are_refused_before_any_access() {
    let (Some(fixture_dir), Some(bin)) = (fixtures(), azurite_bin()) else {
        return;
    };
    let az = Azurite::start(&bin);
    let blob = "ns1/telemetry/0/2017/10/16/18/18/00.avro";
    az.upload(
        "capture",
        &[(
            blob.to_string(),
            fixture_dir.join("telemetry-380-events.avro"),
        )],
    );
    az.upload(
        "private",
        &[(
            blob.to_string(),
            fixture_dir.join("telemetry-380-events.avro"),
        )],
    );
    // A canary on loopback: the webhook must never connect to it.
    let canary = TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let canary_port = canary.local_addr().unwrap().port();
    let local = fixture_dir.join("telemetry-380-events.avro");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hook.db");
    let server = start_server(&az, &db);
    let template = payload("eventgrid-azure-sdk-for-java-EventHubCaptureFileCreatedEvent.json");
    for url in [
        local.display().to_string(),
        format!("file://{}", local.display()),
        "az://private/ns1/telemetry/0/2017/10/16/18/18/00.avro".to_string(),
        format!("{}/private/{blob}", az.endpoint),
        format!("{}/capture/../private/{blob}", az.endpoint),
        format!("{}/capture/%2e%2e/private/{blob}", az.endpoint),
        format!("http://127.0.0.1:{canary_port}/devstoreaccount1/capture/{blob}"),
        format!("https://127.0.0.1:{canary_port}/devstoreaccount1/capture/{blob}"),
        format!(
            "https://devstoreaccount1.blob.core.windows.net@127.0.0.1:{canary_port}/capture/{blob}"
        ),
        "https://attacker.example/capture/x.avro".to_string(),
    ] {
        let body = retarget(template.clone(), &url, 380, 8180, 8559);
        let resp = post_with_key(&server, &body).await;
        assert_eq!(resp.status().as_u16(), 403, "{url}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("fileUrl refused"), "{url}: {text}");
    }
    // A batch with one allowed and one refused file loads neither.
    let mut batch = retarget(
        template.clone(),
        &format!("{}/capture/{blob}", az.endpoint),
        380,
        8180,
        8559,
    );
    let mut second = batch[0].clone();
    second["data"]["fileUrl"] = Value::from(format!("{}/private/{blob}", az.endpoint));
    batch.as_array_mut().unwrap().push(second);
    let resp = post_with_key(&server, &batch).await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(
        !db.exists() || rows(&db) == 0,
        "nothing may be loaded from a refused request"
    );
    assert!(
        matches!(canary.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the webhook connected to a host it was not allowed to"
    );
    // The allowed file itself loads.
    let ok = retarget(
        template,
        &format!("{}/capture/{blob}", az.endpoint),
        380,
        8180,
        8559,
    );
    let resp = post_with_key(&server, &ok).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(rows(&db), 380);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_needs_no_key_and_a_percent_encoded_code_is_decoded() {
    let Some(bin) = azurite_bin() else {
        return;
    };
    let az = Azurite::start(&bin);
    let dir = tempfile::tempdir().unwrap();
    let key = "k+y/with=specials";
    let server = start_server_with(&az, &dir.path().join("hook.db"), key);
    let client = reqwest::Client::new();
    // Event Grid may send the handshake without the delivery headers that carry the key.
    let validation = serde_json::json!([{
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x",
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2018-01-25T22:12:19.4556811Z",
        "metadataVersion": "1",
        "dataVersion": "1"
    }]);
    let resp = client
        .post(&server.url)
        .body(validation.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["validationResponse"],
        "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    );
    // Deliveries still need it; in ?code= it arrives percent-encoded.
    let nothing = serde_json::json!([]);
    let resp = client
        .post(&server.url)
        .body(nothing.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client
        .post(format!("{}?code=k%2By%2Fwith%3Dspecials", server.url))
        .body(nothing.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = client
        .post(format!("{}?code=k%2By%2Fwith%3Dspecial", server.url))
        .body(nothing.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn serve_refuses_to_start_without_allowed_locations() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .env("CAPTURE_LOADER_WEBHOOK_KEY", "k")
        .env_remove("CAPTURE_LOADER_ALLOWED_LOCATIONS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-location"));
}

#[test]
fn serve_refuses_to_start_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .env_remove("CAPTURE_LOADER_WEBHOOK_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAPTURE_LOADER_WEBHOOK_KEY"));
}
