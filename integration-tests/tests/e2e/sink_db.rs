//! `consumer --sink-db`: events straight from the topic into `capture_events`, exactly once,
//! on PostgreSQL and SQLite, through SIGKILLs at random moments and a rebalance between two
//! consumers of one group; Kafka's committed offsets never ahead of the database's
//! positions; Capture files of the same events loaded later are duplicates, not conflicts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{lag, produce, write_events};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use test_support::{Broker, PgDatabase, bin, run, stderr, tool, unique};

/// A database under test: its URL and a way to ask it one number or rows of text.
struct Db {
    url: String,
    query: Box<dyn Fn(&str) -> String>,
}

impl Db {
    /// One number; 0 while the tables do not exist yet (before the consumer opened it).
    fn number(&self, sql: &str) -> i64 {
        let text = (self.query)(sql);
        if text.trim().is_empty() {
            return 0;
        }
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: `{text}`: {e}"))
    }

    /// The group's next offset per partition, as the database has it.
    fn positions(&self, group: &str) -> BTreeMap<i64, i64> {
        let rows = (self.query)(&format!(
            "SELECT partition_id || ':' || next_offset FROM consumer_positions WHERE consumer_group = '{group}'"
        ));
        rows.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (p, o) = l.split_once(':').unwrap();
                (p.parse().unwrap(), o.parse().unwrap())
            })
            .collect()
    }
}

fn postgres() -> Option<(PgDatabase, Db)> {
    let pg = PgDatabase::create()?;
    let url = pg.url.clone();
    let query_url = pg.url.clone();
    Some((
        pg,
        Db {
            url,
            query: Box::new(move |sql| {
                let out = Command::new("psql")
                    .args([query_url.as_str(), "-qAtc", sql])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            }),
        },
    ))
}

fn sqlite(dir: &Path) -> Db {
    let path = dir.join("sink.db");
    Db {
        url: format!("sqlite://{}", path.display()),
        query: Box::new(move |sql| {
            let Ok(conn) = rusqlite::Connection::open(&path) else {
                return String::new();
            };
            let Ok(mut stmt) = conn.prepare(sql) else {
                return String::new();
            };
            let rows: Vec<String> = stmt
                .query_map([], |r| {
                    Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.join("\n")
        }),
    }
}

/// A consumer writing into the database. Static membership: a restarted run takes its
/// partitions back at once instead of waiting out the killed one's session.
fn sink_consumer(broker: &Broker, topic: &str, group: &str, db: &Db, member: &str) -> Command {
    let mut cmd = tool("consumer", broker);
    cmd.args(["--topic", topic, "--group", group, "--sink-db", &db.url])
        .args(["--sink-batch", "2000", "--sink-interval", "200ms"])
        .args(["--commit-interval", "100ms"])
        .args(["-X", &format!("group.instance.id={member}")])
        .args(["-X", "session.timeout.ms=6000"]);
    cmd
}

/// Kafka's committed offsets never ahead of the database's positions.
fn kafka_not_ahead(broker: &Broker, group: &str, topic: &str, db: &Db) {
    let report = lag(broker, group, topic);
    let positions = db.positions(group);
    for p in report["partitions"].as_array().unwrap() {
        let partition = p["partition"].as_i64().unwrap();
        let Some(committed) = p["committed"].as_i64() else {
            continue;
        };
        let stored = positions.get(&partition).copied().unwrap_or(0);
        assert!(
            committed <= stored,
            "partition {partition}: Kafka has {committed} committed, the database only {stored}"
        );
    }
}

fn exactly_once_through_kills(db: &Db) {
    const EVENTS: usize = 100_000;
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), EVENTS, 50);
    let topic = unique("sink");
    let group = unique("g");
    produce(
        &broker,
        &topic,
        &["--partitions", "3", "--input", input.to_str().unwrap()],
    );
    let count = || db.number("SELECT count(*) FROM capture_events");
    let mut seed = std::process::id() as u64;
    let mut kills = 0;
    for round in 0..5 {
        let before = if round == 0 { 0 } else { count() };
        let mut child = sink_consumer(&broker, &topic, &group, db, "m1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A random moment once this run has written something.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let extra = Duration::from_millis(50 + (seed >> 33) % 400);
        let deadline = Instant::now() + Duration::from_secs(60);
        while count() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(extra);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let _ = child.wait();
        kills += 1;
        let now = count();
        eprintln!("round {round}: killed at {now} rows");
        assert!(now > before, "round {round} wrote nothing");
        kafka_not_ahead(&broker, &group, &topic, db);
        if now as usize >= EVENTS {
            break;
        }
    }
    assert!(kills >= 2, "the kills came too late to test anything");
    // The last run reads to the end.
    let out = run(sink_consumer(&broker, &topic, &group, db, "m1").args(["--idle-timeout", "5s"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count() as usize, EVENTS, "{}", stderr(&out));
    // It started where the database says, not at Kafka's (possibly older) commits: nothing
    // was read twice.
    assert!(
        stderr(&out).contains(" already there, in "),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(" events inserted, 0 already there"),
        "the last run re-read events the database had: {}",
        stderr(&out)
    );
    let ids_in_table = (db.query)("SELECT body_json FROM capture_events");
    let mut seen: Vec<String> = ids_in_table
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event_id"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "every event exactly once");
    // Positions and Kafka's commits agree at the end: lag reports the progress.
    let report = lag(&broker, &group, &topic);
    assert_eq!(
        crate::common::total_committed(&report),
        EVENTS as i64,
        "{report}"
    );
    assert_eq!(db.positions(&group).values().sum::<i64>(), EVENTS as i64);
    // Rows as Capture would record them.
    let one = (db.query)(
        "SELECT source_file || '|' || namespace || '|' || partition_key FROM capture_events LIMIT 1",
    );
    assert!(
        one.starts_with(&format!("kafka:{group}|local|sensor-")),
        "{one}"
    );
}

#[test]
fn sink_db_is_exactly_once_through_sigkills_on_postgres() {
    let Some((_pg, db)) = postgres() else {
        return;
    };
    exactly_once_through_kills(&db);
}

#[test]
fn sink_db_is_exactly_once_through_sigkills_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exactly_once_through_kills(&sqlite(dir.path()));
}

#[test]
fn two_sink_consumers_split_the_partitions_exactly_once() {
    let Some((_pg, db)) = postgres() else {
        return;
    };
    const EVENTS: usize = 40_000;
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let (input, ids) = write_events(dir.path(), EVENTS, 40);
    let topic = unique("split");
    let group = unique("g");
    produce(
        &broker,
        &topic,
        &["--partitions", "4", "--input", input.to_str().unwrap()],
    );
    let spawn = |member: &str| -> Child {
        sink_consumer(&broker, &topic, &group, &db, member)
            .args(["--idle-timeout", "8s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("a");
    // The second joins mid-stream: the group rebalances while the first is writing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.number("SELECT count(*) FROM capture_events") < 5000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = spawn("b");
    let logs: Vec<String> = [first, second]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let log = stderr(&out);
            assert!(out.status.success(), "{log}");
            log
        })
        .collect();
    assert!(
        logs[1].contains("partitions assigned"),
        "the second consumer took partitions: {}",
        logs[1]
    );
    assert_eq!(
        db.number("SELECT count(*) FROM capture_events") as usize,
        EVENTS
    );
    assert_eq!(
        db.number("SELECT count(DISTINCT body_json->>'event_id') FROM capture_events") as usize,
        ids.len()
    );
    kafka_not_ahead(&broker, &group, &topic, &db);
    assert_eq!(db.positions(&group).values().sum::<i64>(), EVENTS as i64);
}

/// The same events through Capture files (the consumer's own `--capture-dir`, with the
/// Kafka offsets as Capture offsets) after the sink wrote them: duplicates, no conflict.
#[test]
fn capture_files_of_events_the_sink_wrote_are_duplicates() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    let (input, _) = write_events(dir.path(), 3000, 10);
    let topic = unique("both");
    produce(
        &broker,
        &topic,
        &["--partitions", "2", "--input", input.to_str().unwrap()],
    );
    let out =
        run(sink_consumer(&broker, &topic, &unique("g"), &db, "s").args(["--idle-timeout", "5s"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3000 events inserted, 0 already there"),
        "{}",
        stderr(&out)
    );
    let capture = crate::common::capture_locally(&broker, &topic, 3000, dir.path());
    let out = Command::new(bin("capture-loader"))
        .args(["load", "--summary-json"])
        .arg(&capture)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["events_inserted"], 0, "{s}");
    assert_eq!(s["duplicates"], 3000, "{s}");
    assert_eq!(s["files_failed"], 0, "{s}");
    assert_eq!(db.number("SELECT count(*) FROM capture_events"), 3000);
}
