//! The capture-loader as a process, on Azure's own Capture files laid out as Capture lays
//! them out, into SQLite and into the running PostgreSQL.
//!
//! Fixtures come from ../shared/fixtures: absent in a user's clone (these tests say so and
//! pass), an error in CI. PostgreSQL: `LOADER_TEST_POSTGRES` (default
//! postgres://eventhubs_test:eventhubs_test@127.0.0.1:5432/eventhubs_test, the role
//! scripts/test creates); a fresh database per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::fixtures;
use serde_json::Value;
use test_support::PgDatabase;

/// Copy a fixture to `{ns}/{hub}/{partition}/yyyy/MM/dd/HH/mm/ss.avro` under `root`.
pub(crate) fn place(root: &Path, fixture: &str, partition: u32, minute: u32) -> PathBuf {
    let src = fixtures().unwrap().join(fixture);
    let dir = root.join(format!(
        "ns1/telemetry/{partition}/2017/10/16/18/{minute:02}"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("00.avro");
    std::fs::copy(src, &dst).unwrap();
    dst
}

/// The four fixtures, one partition each, as Capture would have written them.
pub(crate) fn capture_tree(root: &Path) {
    place(root, "telemetry-380-events.avro", 0, 18);
    place(root, "empty-window.avro", 1, 18);
    place(root, "legacy-2016-schema.avro", 2, 18);
    place(root, "partition-key-1-event.avro", 3, 18);
}

pub(crate) fn loader(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(args)
        .env("DATABASE_URL", db)
        .env_remove("SCHEMA_REGISTRY_URL")
        .output()
        .unwrap()
}

pub(crate) fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub(crate) fn load(db: &str, root: &Path) -> (Option<i32>, Value) {
    let out = loader(db, &["load", root.to_str().unwrap(), "--summary-json"]);
    (out.status.code(), summary(&out))
}

pub(crate) fn sqlite(path: &Path, sql: &str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            let v: rusqlite::types::Value = r.get(0)?;
            Ok(match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Real(f) => f.to_string(),
                rusqlite::types::Value::Text(t) => t,
                rusqlite::types::Value::Null => "null".into(),
                rusqlite::types::Value::Blob(b) => format!("{} bytes", b.len()),
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.join("\n")
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn fixtures_load_into_sqlite_once_and_a_second_run_inserts_nothing() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    capture_tree(&root);
    let db_path = dir.path().join("capture.db");
    let db = format!("sqlite://{}", db_path.display());

    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["events_inserted"], 382, "{s}");
    assert_eq!(s["files_loaded"], 3);
    assert_eq!(s["files_empty"], 1);
    assert_eq!(s["undecodable_bodies"], 0, "every fixture body is JSON");

    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(0));
    assert_eq!(
        (s["events_inserted"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(4)),
        "{s}"
    );

    assert_eq!(
        sqlite(&db_path, "SELECT count(*) FROM capture_events"),
        "382"
    );
    assert_eq!(
        sqlite(
            &db_path,
            "SELECT status || ':' || event_count FROM capture_files ORDER BY source"
        ),
        "loaded:380\nempty:0\nloaded:1\nloaded:1"
    );
    // Enqueue time: x-opt-enqueued-time when present, else EnqueuedTimeUtc.
    assert_eq!(
        sqlite(
            &db_path,
            "SELECT enqueued_time FROM capture_events WHERE partition_id = '3'"
        ),
        "2022-12-09T16:51:25.193Z"
    );
    assert_eq!(
        sqlite(
            &db_path,
            "SELECT partition_key FROM capture_events WHERE partition_id = '3'"
        ),
        "d8b14c3c-fcfa-4bf4-d034-be8c3f3ecab5"
    );
    // Pretty-printed JSON bodies are stored as JSON; the raw bytes too.
    assert_eq!(
        sqlite(
            &db_path,
            "SELECT json_extract(body_json, '$.type') FROM capture_events WHERE partition_id = '3'"
        ),
        "UsageReported"
    );
    assert_eq!(
        sqlite(&db_path, "SELECT sum(events) FROM events_per_minute"),
        "382"
    );

    let out = loader(&db, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p0 = &status["partitions"][0];
    assert_eq!(
        (p0["events"].as_i64(), p0["last_sequence_number"].as_i64()),
        (Some(380), Some(8559))
    );
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn fixtures_load_into_postgres_with_copy_and_exactly_once() {
    if fixtures().is_none() {
        return;
    }
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    capture_tree(&root);
    let out = loader(
        &pg.url,
        &[
            "load",
            "--jobs",
            "2",
            root.to_str().unwrap(),
            "--summary-json",
        ],
    );
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert_eq!(s["events_inserted"], 382, "{s}");
    let (_, s) = load(&pg.url, &root);
    assert_eq!(s["events_inserted"], 0, "{s}");
    assert_eq!(pg.query("SELECT count(*) FROM capture_events"), "382");
    assert_eq!(
        pg.query("SELECT enqueued_time AT TIME ZONE 'UTC' FROM capture_events WHERE sequence_number = 8180"),
        "2017-10-16 18:18:55"
    );
    assert_eq!(
        pg.query("SELECT body_json->>'type' FROM capture_events WHERE partition_id = '3'"),
        "UsageReported"
    );
    assert_eq!(pg.query("SELECT sum(events) FROM events_per_minute"), "382");
    assert_eq!(
        pg.query("SELECT count(*) FROM capture_files WHERE status = 'empty'"),
        "1"
    );
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn a_damaged_file_fails_alone_with_its_reason_and_a_changed_file_is_not_reloaded() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    capture_tree(&root);
    // A truncated copy of the telemetry file in a fifth partition.
    let damaged = place(&root, "telemetry-380-events.avro", 4, 19);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let db_path = dir.path().join("c.db");
    let db = format!("sqlite://{}", db_path.display());

    let out = loader(&db, &["load", root.to_str().unwrap(), "--summary-json"]);
    let s = summary(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed file makes the exit status 1"
    );
    assert_eq!(
        (s["files_failed"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(382)),
        "{s}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("4/2017/10/16/18/19/00.avro"), "{log}");
    assert!(log.contains("damaged or truncated"), "{log}");
    let status: Value = serde_json::from_slice(&loader(&db, &["status", "--json"]).stdout).unwrap();
    assert!(
        status["failed_files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );

    // Repaired: the failed file loads on the next run.
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(
        (s["files_loaded"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(380)),
        "{s}"
    );

    // Changed after loading: reported, not loaded again.
    std::fs::copy(
        fixtures().unwrap().join("legacy-2016-schema.avro"),
        &damaged,
    )
    .unwrap();
    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(1));
    assert_eq!(
        (s["files_changed"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn killed_at_any_moment_and_run_again_gives_exactly_the_right_rows() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    // 150 partitions of 380 events each: enough work to be killed in the middle of.
    for p in 0..150 {
        place(&root, "telemetry-380-events.avro", p, 18);
    }
    let db_path = dir.path().join("k.db");
    let db = format!("sqlite://{}", db_path.display());
    for delay_ms in [150, 400] {
        // Parallel workers, killed mid-flight: still whole files or nothing.
        let mut child = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
            .args(["load", "--jobs", "3", root.to_str().unwrap()])
            .env("DATABASE_URL", &db)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let partial: u64 = sqlite(&db_path, "SELECT count(*) FROM capture_events")
        .parse()
        .unwrap();
    assert!(
        partial < 150 * 380,
        "the kills came too late to test anything ({partial} rows)"
    );
    let files: u64 = sqlite(&db_path, "SELECT count(*) FROM capture_files")
        .parse()
        .unwrap();
    assert_eq!(
        partial,
        files * 380,
        "a file's rows and its record commit together"
    );

    let (code, s) = load(&db, &root);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(
        s["events_inserted"].as_u64(),
        Some(150 * 380 - partial),
        "{s}"
    );
    assert_eq!(s["duplicates"], 0);
    assert_eq!(
        sqlite(&db_path, "SELECT count(*) FROM capture_events"),
        (150 * 380).to_string()
    );
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn watch_loads_files_as_they_appear_and_stops_on_sigterm() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    std::fs::create_dir_all(&root).unwrap();
    let db_path = dir.path().join("w.db");
    let child = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args([
            "watch",
            "--interval",
            "200ms",
            "--summary-json",
            root.to_str().unwrap(),
        ])
        .env("DATABASE_URL", format!("sqlite://{}", db_path.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Files arrive while it watches.
    capture_tree(&root);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = if db_path.exists() {
            sqlite(&db_path, "SELECT count(*) FROM capture_events")
        } else {
            String::new()
        };
        if rows == "382" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watch never loaded the new files ({rows})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summaries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let inserted: u64 = summaries
        .iter()
        .map(|s| s["events_inserted"].as_u64().unwrap())
        .sum();
    assert_eq!(inserted, 382, "{summaries:?}");
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn since_and_until_select_files_by_the_time_in_their_path() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("capture");
    // Windows at 18:17, 18:18 and 18:19 of the same day, in three partitions.
    place(&root, "legacy-2016-schema.avro", 0, 17);
    place(&root, "partition-key-1-event.avro", 1, 18);
    place(&root, "telemetry-380-events.avro", 2, 19);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = loader(
        &db,
        &[
            "load",
            root.to_str().unwrap(),
            "--summary-json",
            "--since",
            "2017-10-16T18:18:00Z",
            "--until",
            "2017-10-16T18:19:00Z",
        ],
    );
    let s = summary(&out);
    assert_eq!(
        (s["files_loaded"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let out = loader(
        &db,
        &[
            "load",
            root.to_str().unwrap(),
            "--summary-json",
            "--since",
            "2017-10-17",
        ],
    );
    assert_eq!(summary(&out)["events_inserted"], 0);
    let out = loader(
        &db,
        &["load", root.to_str().unwrap(), "--since", "yesterday"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("neither an RFC 3339 time nor a YYYY-MM-DD date")
    );
}
