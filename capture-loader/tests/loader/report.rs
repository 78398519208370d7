//! Gaps and the report, end to end: Capture files with deliberate holes are loaded into SQLite
//! and PostgreSQL; `status` must find every planted gap (and exit 1) and nothing else; the
//! report page, opened in headless Chromium, must show the charts, the gap markers and the
//! sensor table without making a single request.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eventhubs_kafka::capture::write::{CapturedRecord, capture_path, write_capture_file};
use serde_json::{Value, json};
use test_support::PgDatabase;

const NS: &str = "gapns";
const HUB: &str = "telemetry";

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_334_400, 0).unwrap()
}

/// A Capture file of partition `partition` holding sequence numbers `first..=last`, written
/// at window `window` (minutes after the base); event `n` is enqueued `n` seconds after it.
fn capture(root: &Path, partition: i32, window: i64, first: i64, last: i64) -> PathBuf {
    let records: Vec<CapturedRecord> = (first..=last)
        .map(|n| CapturedRecord {
            sequence_number: n,
            offset: (n * 100).to_string(),
            enqueued_time: base() + chrono::Duration::seconds(n),
            partition_key: Some(format!("sensor-{}", n % 7)),
            kafka_key: None,
            properties: vec![],
            body: Some(
                json!({
                    "event_id": format!("{partition}-{n}"),
                    "sensor_id": format!("sensor-{}", n % 7),
                    "temperature": 20.0 + (n % 10) as f64,
                    "humidity": 40.0 + (n % 5) as f64,
                })
                .to_string()
                .into_bytes(),
            ),
        })
        .collect();
    let path = capture_path(
        root,
        NS,
        HUB,
        partition,
        base() + chrono::Duration::minutes(window),
    );
    write_capture_file(&path, &records).unwrap();
    path
}

/// The planted layout (sequence numbers per partition):
/// - 0: 0–99, 200–299, 300–399: the middle file (100–199) is missing;
/// - 1: 100–199 only: 0–49 expired before Capture (to be declared), 50–99 is missing;
/// - 2: 0–99, then a damaged file (it held 100–199), then 200–249: a failed file;
/// - 3: 0–149, 100–249 (overlapping), 250–300: no gap at all.
fn plant(root: &Path) -> PathBuf {
    capture(root, 0, 0, 0, 99);
    capture(root, 0, 5, 200, 299);
    capture(root, 0, 6, 300, 399);
    capture(root, 1, 2, 100, 199);
    capture(root, 2, 0, 0, 99);
    let damaged = capture(root, 2, 2, 100, 199);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&damaged, bytes).unwrap();
    capture(root, 2, 4, 200, 249);
    capture(root, 3, 0, 0, 149);
    capture(root, 3, 1, 100, 249);
    capture(root, 3, 2, 250, 300);
    damaged
}

fn loader(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(args)
        .env("DATABASE_URL", db)
        .env_remove("SCHEMA_REGISTRY_URL")
        .output()
        .unwrap()
}

fn status(db: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    let out = loader(db, &args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

/// `(partition, first missing, last missing)` for every gap.
fn gaps(status: &Value) -> Vec<(String, i64, i64)> {
    let mut found = Vec::new();
    for p in status["partitions"].as_array().unwrap() {
        for g in p["gaps"].as_array().unwrap() {
            found.push((
                p["partition_id"].as_str().unwrap().to_string(),
                g["first_missing"].as_i64().unwrap(),
                g["last_missing"].as_i64().unwrap(),
            ));
        }
    }
    found.sort();
    found
}

/// Every planted gap found, nothing else; declarations and repairs close them one by one.
fn finds_every_planted_gap(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    let damaged = plant(&root);
    let root_arg = root.to_str().unwrap();
    let out = loader(db, &["load", root_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the damaged file fails the load"
    );

    let (code, s) = status(db, &[]);
    assert_eq!(code, Some(1), "gaps make the exit status 1: {s}");
    let p = |id: &str| id.to_string();
    assert_eq!(
        gaps(&s),
        vec![(p("0"), 100, 199), (p("1"), 0, 99), (p("2"), 100, 199),],
        "{s}"
    );
    // The gap's neighbours and time window.
    let p0 = &s["partitions"][0];
    let gap = &p0["gaps"][0];
    assert!(
        gap["after"]["source"]
            .as_str()
            .unwrap()
            .ends_with("/00/00.avro"),
        "{gap}"
    );
    assert!(
        gap["before"]["source"]
            .as_str()
            .unwrap()
            .ends_with("/05/00.avro"),
        "{gap}"
    );
    assert_eq!(
        gap["after"]["enqueued_time"], "2026-11-22T08:01:39Z",
        "{gap}"
    );
    assert_eq!(
        gap["before"]["enqueued_time"], "2026-11-22T08:03:20Z",
        "{gap}"
    );
    assert_eq!(s["failed_files"].as_array().unwrap().len(), 1);
    assert_eq!(s["partitions"][3]["overlaps"].as_array().unwrap().len(), 1);
    assert_eq!(s["missing_events"], 300);

    // The table says the same, in words.
    let table = String::from_utf8_lossy(&loader(db, &["status"]).stdout).into_owned();
    assert!(
        table.contains("GAP gapns/telemetry/0: sequence numbers 100-199 missing (100 events)"),
        "{table}"
    );
    assert!(table.contains("FAILED "), "{table}");

    // Retention expired before Capture: declared, 0–49 is no longer a gap, 50–99 still is.
    let (code, s) = status(
        db,
        &[
            "--expect-missing",
            "gapns/telemetry/1:0-49",
            "--reason",
            "retention expired",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(gaps(&s)[1], (p("1"), 50, 99), "{s}");
    assert_eq!(
        s["partitions"][1]["expected_missing"][0]["reason"],
        "retention expired"
    );

    // Repairs: the missing file appears, the damaged one is rewritten, the lost range is
    // declared. Then nothing is left to alert on.
    capture(&root, 0, 3, 100, 199);
    std::fs::remove_file(&damaged).unwrap();
    capture(&root, 2, 2, 100, 199);
    let out = loader(db, &["load", root_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, s) = status(db, &["--expect-missing", "gapns/telemetry/1:50-99"]);
    assert_eq!(code, Some(0), "{s}");
    assert!(gaps(&s).is_empty(), "{s}");
    assert!(s["failed_files"].as_array().unwrap().is_empty(), "{s}");

    // Staleness: the newest event is from 2026-11-22, far older than a minute.
    let (code, s) = status(db, &["--stale-after", "1m"]);
    assert_eq!(code, Some(1));
    assert_eq!(s["stale_partitions"], 4, "{s}");
}

#[test]
fn status_finds_every_planted_gap_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    finds_every_planted_gap(&format!("sqlite://{}", dir.path().join("c.db").display()));
}

#[test]
fn status_finds_every_planted_gap_in_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    finds_every_planted_gap(&db.url);
    assert_eq!(
        db.query("SELECT count(*) FROM capture_expected_missing"),
        "2"
    );
}

fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    if !path.exists() {
        crate::common::required("chromium (Debian package chromium)");
        return None;
    }
    // Chromium contacts Google's services by itself whatever its flags say: it runs in a
    // network namespace with nothing but loopback, so nothing can leave this machine.
    let isolated = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    (isolated || crate::common::required("a loopback-only network namespace (unshare -n, as root)"))
        .then_some(path)
}

/// Headless Chromium on `url`, in a loopback-only network namespace, plus `action`.
fn headless(chromium: &Path, profile: &Path, url: &str, action: &[&str]) -> Output {
    Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium")
}

#[test]
fn report_renders_in_chromium_with_the_gaps_and_loads_nothing() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    plant(&root);
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    loader(&db, &["load", root.to_str().unwrap()]);
    let page = dir.path().join("report.html");
    let out = loader(&db, &["report", "--output", page.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for external in [
        "http:", "https:", "src=", "href=", "url(", "@import", "<script",
    ] {
        assert!(!html.contains(external), "the page refers to `{external}`");
    }

    // The DOM as Chromium built it, with a log of every network request it made.
    let url = format!("file://{}", page.display());
    let netlog = dir.path().join("netlog.json");
    let out = headless(
        &chromium,
        &dir.path().join("profile-dom"),
        &url,
        &["--dump-dom", &format!("--log-net-log={}", netlog.display())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    for id in [
        "events-total",
        "events-heatmap",
        "gaps-table",
        "failed-files",
        "sensor-table",
        "files-by-status",
        "load-throughput",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "no #{id} in the DOM");
    }
    // One marker per gap, on the right partitions' rows.
    assert_eq!(
        dom.matches("class=\"gap-marker\"").count(),
        3,
        "gap markers"
    );
    assert!(dom.contains("data-first=\"100\" data-last=\"199\""));
    assert_eq!(dom.matches("class=\"gap-row\"").count(), 3);
    // 4 partitions × 7 one-minute columns (the events span 00:00:00 to 00:06:39).
    assert_eq!(dom.matches("class=\"cell\"").count(), 4 * 7);
    // Seven sensors, each with its statistics.
    let sensors = dom.split("id=\"sensor-table\"").nth(1).unwrap();
    let sensors = sensors.split("</table>").next().unwrap();
    assert_eq!(sensors.matches("<tr>").count(), 1 + 7, "{sensors}");
    assert!(sensors.contains("<td>sensor-0</td>"));

    // Nothing left the page: the net log holds no request of the page's own.
    let requested = page_requests(&netlog);
    assert!(
        requested.is_empty(),
        "the page made requests: {requested:?}"
    );
    // The check sees a request when a page makes one (a planted image).
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )
    .unwrap();
    let control_log = dir.path().join("control-netlog.json");
    headless(
        &chromium,
        &dir.path().join("profile-control"),
        &format!("file://{}", control.display()),
        &[
            "--dump-dom",
            &format!("--log-net-log={}", control_log.display()),
        ],
    );
    assert_eq!(
        page_requests(&control_log),
        vec!["http://127.0.0.1:9/x.png".to_string()]
    );

    // A screenshot to look at (kept out of the repository, under target/tmp).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capture-report.png");
    let out = headless(
        &chromium,
        &dir.path().join("profile-shot"),
        &url,
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// URLs the page itself requested, from a Chromium net log: requests made for a document
/// loaded from `file://` carry that in their network isolation key; the browser's own
/// background requests (updates, accounts; they fail in the namespace) carry `null null`.
fn page_requests(netlog: &Path) -> Vec<String> {
    let log: Value = serde_json::from_slice(&std::fs::read(netlog).expect("the net log"))
        .expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == start_job)
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.contains("file://"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}

/// `GET path` with optional headers; the status code and body.
fn http_get(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let key = key.map_or(String::new(), |k| format!("x-capture-loader-key: {k}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

#[test]
fn serve_answers_get_report_behind_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    plant(&root);
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    loader(&db, &["load", root.to_str().unwrap()]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--allow-location",
            "https://acme.blob.core.windows.net/capture",
        ])
        .env("DATABASE_URL", &db)
        .env("CAPTURE_LOADER_WEBHOOK_KEY", "report-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = http_get(port, "/report", None);
    assert_eq!(code, 401);
    let (code, _) = http_get(port, "/report", Some("wrong"));
    assert_eq!(code, 401);
    let (code, body) = http_get(port, "/report", Some("report-key"));
    assert_eq!(code, 200);
    assert!(body.contains("id=\"events-heatmap\""));
    assert_eq!(body.matches("class=\"gap-marker\"").count(), 3);
    let (code, body) = http_get(port, "/report?code=report-key", None);
    assert_eq!((code, body.contains("id=\"sensor-table\"")), (200, true));
    let _ = child.kill();
    let _ = child.wait();
}
