//! Several loaders on one database split the work: each file is loaded by exactly one of
//! them, the others report it as loaded elsewhere (never as duplicates), and the files of a
//! loader that dies are finished by the others. Capture files are generated here (80 files
//! of 1000 events), so these tests need no fixtures; PostgreSQL as in load.rs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use eventhubs_kafka::capture::write::{CapturedRecord, capture_path, write_capture_file};
use serde_json::Value;
use test_support::PgDatabase;

const FILES: u64 = 80;
const EVENTS: u64 = 1000;

/// 80 Capture files: 8 partitions × 10 one-minute windows, 1000 events each.
fn capture_tree(root: &Path) {
    for partition in 0..8 {
        for window in 0..10i64 {
            let start = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
                + chrono::Duration::minutes(window);
            let records: Vec<CapturedRecord> = (0..EVENTS as i64)
                .map(|i| {
                    let seq = window * EVENTS as i64 + i;
                    CapturedRecord {
                        sequence_number: seq,
                        offset: (seq * 200).to_string(),
                        enqueued_time: start + chrono::Duration::milliseconds(i * 50),
                        partition_key: Some(format!("sensor-{}", i % 17)),
                        kafka_key: None,
                        properties: vec![(
                            "content-type".into(),
                            Some(b"application/json".to_vec()),
                        )],
                        body: Some(
                            format!(
                                r#"{{"sensor_id":"sensor-{}","temperature":{}.5}}"#,
                                i % 17,
                                i % 40
                            )
                            .into_bytes(),
                        ),
                    }
                })
                .collect();
            let path = capture_path(root, "ns1", "telemetry", partition, start);
            write_capture_file(&path, &records).unwrap();
        }
    }
}

fn spawn_loader(db: &str, root: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["load", root.to_str().unwrap(), "--summary-json"])
        .env("DATABASE_URL", db)
        .env_remove("SCHEMA_REGISTRY_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("already loaded from another file"),
        "files loaded by another loader are not duplicates: {stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no summary ({e}): {stdout}\n{stderr}"))
}

fn field(summaries: &[Value], name: &str) -> u64 {
    summaries.iter().map(|s| s[name].as_u64().unwrap()).sum()
}

/// Three loaders started together: every file loaded by exactly one of them.
fn three_loaders_split_the_files(db: &str, rows: impl Fn() -> u64) {
    let dir = tempfile::tempdir().unwrap();
    capture_tree(dir.path());
    let children: Vec<Child> = (0..3).map(|_| spawn_loader(db, dir.path())).collect();
    let summaries: Vec<Value> = children.into_iter().map(finish).collect();
    assert_eq!(field(&summaries, "files_loaded"), FILES, "{summaries:?}");
    assert_eq!(field(&summaries, "duplicates"), 0, "{summaries:?}");
    assert_eq!(
        field(&summaries, "events_inserted"),
        FILES * EVENTS,
        "{summaries:?}"
    );
    for s in &summaries {
        // Each loader saw every file once: loaded by it or by another one meanwhile.
        assert_eq!(
            s["files_loaded"].as_u64().unwrap()
                + s["files_loaded_elsewhere"].as_u64().unwrap()
                + s["files_skipped"].as_u64().unwrap(),
            FILES,
            "{s}"
        );
    }
    assert_eq!(rows(), FILES * EVENTS);

    // Run again: everything is already loaded, nothing is "elsewhere".
    let again = finish(spawn_loader(db, dir.path()));
    assert_eq!(again["files_skipped"].as_u64(), Some(FILES), "{again}");
    assert_eq!(again["files_loaded_elsewhere"].as_u64(), Some(0), "{again}");
}

#[test]
fn three_loaders_on_postgres_load_each_file_once() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    three_loaders_split_the_files(&pg.url, || {
        pg.query("SELECT count(*) FROM capture_events")
            .parse()
            .unwrap()
    });
}

#[test]
fn three_loaders_on_sqlite_load_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let db = format!("sqlite://{}", path.display());
    three_loaders_split_the_files(&db, || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT count(*) FROM capture_events", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
    });
}

#[test]
fn a_loader_killed_mid_load_leaves_its_files_to_the_others() {
    let Some(pg) = PgDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    capture_tree(dir.path());
    // The schema first (a load of nothing), so that the files can be counted from the start.
    let empty = tempfile::tempdir().unwrap();
    finish(spawn_loader(&pg.url, empty.path()));
    let files = || -> u64 {
        pg.query("SELECT count(*) FROM capture_files")
            .parse()
            .unwrap()
    };
    // The victim starts alone and loads a few files, the others join; then, while all
    // three are loading (each holding a file), the victim is SIGKILLed.
    let mut victim = spawn_loader(&pg.url, dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while files() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let children: Vec<Child> = (0..2).map(|_| spawn_loader(&pg.url, dir.path())).collect();
    std::thread::sleep(Duration::from_millis(300));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let at_kill = files();
    assert!(at_kill < FILES, "the kill came too late to test anything");
    let summaries: Vec<Value> = children.into_iter().map(finish).collect();
    // The survivors loaded everything the victim had not committed, its held file too.
    assert_eq!(
        pg.query("SELECT count(*) FROM capture_files WHERE status = 'loaded'"),
        FILES.to_string()
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM capture_events"),
        (FILES * EVENTS).to_string()
    );
    assert_eq!(field(&summaries, "duplicates"), 0, "{summaries:?}");
    let victims = pg
        .query("SELECT count(*) FROM capture_files")
        .parse::<u64>()
        .unwrap()
        - field(&summaries, "files_loaded");
    assert!(
        (2..=at_kill).contains(&victims),
        "{victims} files by the killed loader, {summaries:?}"
    );
}
