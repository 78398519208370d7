//! Hostile input, surface by surface, each case with its exact expected outcome: exit
//! status, the message a user sees, what reaches the database and what is committed. The
//! tools are run as processes, the way users (and attackers) reach them. Cases: 12
//! connection strings, 11 producer inputs and flags, 9 kinds of garbage on a topic, 8
//! damaged Capture files, 10 webhook requests (50 in all).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use eventhubs_kafka::capture::write::{CapturedRecord, encode_capture};
use test_support::{Broker, bin, json_lines, run, stderr, tool, unique};

const KEY: &str = "S0VZLXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVk";

#[test]
fn connection_strings() {
    let ns = "Endpoint=sb://myns.servicebus.windows.net/";
    let with_key =
        |rest: &str| format!("{ns};SharedAccessKeyName=send;SharedAccessKey={KEY}{rest}");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "is empty"),
        ("   ".into(), "is empty"),
        (
            format!("SharedAccessKeyName=send;SharedAccessKey={KEY}"),
            "no `Endpoint`",
        ),
        (
            format!("{ns};SharedAccessKey={KEY}"),
            "no `SharedAccessKeyName`",
        ),
        (
            format!("{ns};SharedAccessKeyName=send"),
            "no `SharedAccessKey`",
        ),
        (
            format!("{ns};SharedAccessSignature=SharedAccessSignature sr=x&sig={KEY}"),
            "generated SAS tokens",
        ),
        (
            with_key("").replace("sb://", "https://"),
            "expected `sb://`",
        ),
        (with_key(";Bogus=1"), "unknown key `Bogus`"),
        (
            format!("{ns};SharedAccessKeyName=send;SharedAccessKey:{KEY}="),
            "segment 3",
        ),
        (
            with_key(";EntityPath=a;EntityPath=b"),
            "appears more than once",
        ),
        (with_key(";UseDevelopmentEmulator=yes"), "`true` or `false`"),
        (
            with_key("").replace("windows.net/", "windows.net:x/"),
            "port is not a number",
        ),
    ];
    for (cs, message) in &cases {
        let out = Command::new(bin("producer"))
            .args(["--generate", "1", "--topic", "t"])
            .env("EVENTHUB_CONNECTION_STRING", cs)
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cs:?}: {err}");
        assert!(
            err.contains(message),
            "{cs:?}: expected {message:?} in {err}"
        );
        assert!(!err.contains(KEY), "{cs:?}: the key was echoed: {err}");
        assert!(!err.contains("panicked"), "{cs:?}: {err}");
    }
}

#[test]
fn producer_input_and_flags() {
    let broker = Broker::plaintext();
    let dir = tempfile::tempdir().unwrap();
    let good = |i: usize| {
        format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{i:012}","sensor_id":"s","timestamp":1795334400000,"temperature":1.5}}"#
        )
        .into_bytes()
    };
    // (bad line, message): each between two good lines, with --skip-invalid: exit 0, two
    // sent, one invalid, named by its line number.
    let lines: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not valid JSON"),
        (b"[1,2,3]".to_vec(), "input line 2"),
        (
            br#"{"sensor_id":"s","timestamp":1,"temperature":1}"#.to_vec(),
            "event_id",
        ),
        (
            br#"{"event_id":"00000000-0000-4000-8000-000000000999","sensor_id":"s","timestamp":1,"temperature":"hot"}"#.to_vec(),
            "temperature",
        ),
        (b"{\"event_id\":\"\xff\"}".to_vec(), "not valid UTF-8"),
        (
            format!(r#"{{"event_id":"{}"}}"#, "x".repeat(2 << 20)).into_bytes(),
            "over the event limit",
        ),
        (
            br#"{"event_id":"00000000-0000-4000-8000-000000000998","sensor_id":"s","timestamp":"yesterday","temperature":1}"#.to_vec(),
            "timestamp",
        ),
    ];
    for (i, (bad, message)) in lines.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.jsonl"));
        let mut text = good(i * 10);
        text.push(b'\n');
        text.extend_from_slice(bad);
        text.push(b'\n');
        text.extend_from_slice(&good(i * 10 + 1));
        text.push(b'\n');
        std::fs::write(&path, text).unwrap();
        let out = run(tool("producer", &broker)
            .args([
                "--topic",
                &unique("hostile-in"),
                "--ensure-topic",
                "--summary-json",
                "--skip-invalid",
            ])
            .arg("--input")
            .arg(&path));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "case {i}: {err}");
        let s = summary(&out);
        assert_eq!(
            (s["sent"].as_u64(), s["invalid"].as_u64()),
            (Some(2), Some(1)),
            "case {i}: {s}"
        );
        assert!(
            err.contains(message),
            "case {i}: expected {message:?} in {err}"
        );
    }
    // Flags: usage errors before anything runs.
    for flag in [
        "--rate=NaN",
        "--sensors=0",
        "--partition=-1",
        "--max-event-bytes=0",
    ] {
        let out = run(tool("producer", &broker).args(["--topic", "t", "--generate", "1", flag]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("invalid value"), "{flag}: {err}");
    }
}

#[test]
fn garbage_on_a_topic() {
    let broker = Broker::plaintext();
    let topic = unique("garbage");
    produce(&broker, &topic, &["--partitions", "1", "--generate", "1"]);
    // Garbage by an independent client, one event each, offsets 1..
    let garbage: &[(&str, &str)] = &[
        ("", "neither Avro"),
        ("fffefdfc", "neither Avro"),
        ("000000002a0102", "no --schema-registry-url"),
        (
            "c3010102030405060708aa",
            "matches none of the known schemas",
        ),
        ("7b22", "not valid JSON"),
        ("7b2261223a317d", ""), // {"a":1}: JSON, decodes
        ("00000000", "not valid JSON"),
    ];
    let hex: Vec<&str> = garbage.iter().map(|(h, _)| *h).collect();
    let out = Command::new("python3")
        .arg(interop_script())
        .args(["produce-raw", &broker.bootstrap, &topic])
        .args(&hex)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A header key that is not UTF-8, and a single-object frame of the telemetry schema
    // whose datum is cut short.
    let raw = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/raw_produce.py");
    let out = Command::new("python3")
        .arg(&raw)
        .args([&broker.bootstrap, topic.as_str(), "0", "80ff", "{}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = 1 + garbage.len() + 1;
    let group = unique("g");
    let out = run(tool("consumer", &broker)
        .args([
            "--topic",
            &topic,
            "--group",
            &group,
            "--max-events",
            &total.to_string(),
        ])
        .args(["--idle-timeout", "15s"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), total);
    for (i, (_, message)) in garbage.iter().enumerate() {
        let line = &lines[i + 1];
        match *message {
            "" => assert!(line.get("error").is_none(), "offset {}: {line}", i + 1),
            m => assert!(
                line["error"].as_str().unwrap_or_default().contains(m),
                "offset {}: expected {m:?}: {line}",
                i + 1
            ),
        }
    }
    assert!(
        lines[total - 1]["error"]
            .as_str()
            .unwrap()
            .contains("header key is not UTF-8")
    );
    // Everything was written out, so everything is committed: the group moves on.
    assert_eq!(total_committed(&lag(&broker, &group, &topic)), total as i64);
}

#[test]
fn damaged_capture_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = chrono::DateTime::from_timestamp(1_795_334_400, 0).unwrap();
    let records: Vec<CapturedRecord> = (0..20)
        .map(|n| CapturedRecord {
            sequence_number: n,
            offset: n.to_string(),
            enqueued_time: base,
            partition_key: None,
            kafka_key: None,
            properties: vec![],
            body: Some(b"{}".to_vec()),
        })
        .collect();
    let good = encode_capture(&records).unwrap();
    let mut bad_block = good.clone();
    let last = bad_block.len() - 8;
    bad_block[last] ^= 0xff; // inside the 16-byte sync marker that ends the block
    let mut foreign = Vec::new();
    {
        // An Avro file, but not Capture's schema.
        let schema = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"X","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let mut w = apache_avro::Writer::new(&schema, &mut foreign).unwrap();
        w.append_value(apache_avro::types::Value::Record(vec![(
            "a".into(),
            apache_avro::types::Value::Int(1),
        )]))
        .unwrap();
        w.flush().unwrap();
    }
    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "damaged or truncated",
        ),
        ("zero bytes", Vec::new(), "not an Avro"),
        (
            "header only",
            good[..good.len().min(300)].to_vec(),
            "header is damaged",
        ),
        ("wrong magic", wrong_magic, "not an Avro"),
        ("broken sync marker", bad_block, "damaged"),
        ("foreign schema", foreign, "Capture"),
        (
            "text",
            b"SequenceNumber,Offset\n1,2\n".to_vec(),
            "not an Avro",
        ),
        (
            "block count lies",
            {
                let mut v = good.clone();
                let at = good.len() / 3;
                v[at] = 0xfe;
                v[at + 1] = 0xff;
                v
            },
            "",
        ),
    ];
    let root = dir.path().join("capture");
    for (i, (name, bytes, _)) in cases.iter().enumerate() {
        let path =
            eventhubs_kafka::capture::write::capture_path(&root, "ns", "hub", i as i32, base);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // One good file beside them.
    let ok = eventhubs_kafka::capture::write::capture_path(&root, "ns", "hub", 99, base);
    std::fs::create_dir_all(ok.parent().unwrap()).unwrap();
    std::fs::write(&ok, &good).unwrap();
    let db_path = dir.path().join("c.db");
    let db = format!("sqlite://{}", db_path.display());
    let out = run(Command::new(bin("capture-loader"))
        .args(["load", root.to_str().unwrap(), "--summary-json"])
        .env("DATABASE_URL", &db));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let s = summary(&out);
    assert_eq!(s["files_loaded"], 1, "{s}");
    assert_eq!(s["events_inserted"], 20, "only the good file's events: {s}");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    for (i, (name, _, message)) in cases.iter().enumerate() {
        let (status, error): (String, Option<String>) = conn
            .query_row(
                "SELECT status, error FROM capture_files WHERE partition_id = ?1",
                [i.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("{name}: no capture_files row: {e}"));
        assert_eq!(status, "failed", "{name}");
        let error = error.unwrap_or_default();
        assert!(
            error.contains(message),
            "{name}: expected {message:?} in {error}"
        );
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM capture_events WHERE partition_id = ?1",
                [i.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "{name}: a failed file leaves no rows");
    }
}

/// One HTTP request; the status code and body.
fn request(port: u16, raw: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(raw).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (
        code,
        text.split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string()),
    )
}

fn post(path: &str, key: Option<&str>, body: &[u8]) -> Vec<u8> {
    let key = key.map_or(String::new(), |k| format!("x-capture-loader-key: {k}\r\n"));
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[test]
fn webhook_requests() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin("capture-loader"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-body-bytes",
            "4096",
        ])
        .args([
            "--allow-location",
            "https://acme.blob.core.windows.net/capture",
        ])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("w.db").display()),
        )
        .env("CAPTURE_LOADER_WEBHOOK_KEY", "hook-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let created = |url: &str| {
        serde_json::json!([{"eventType": "Microsoft.EventHub.CaptureFileCreated", "data": {"fileUrl": url}}])
            .to_string()
            .into_bytes()
    };
    let validation = br#"[{"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc"}}]"#;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "no key",
            post(
                "/api",
                None,
                &created("https://acme.blob.core.windows.net/capture/x.avro"),
            ),
            401,
            "key",
        ),
        (
            "wrong key",
            post(
                "/api",
                Some("nope"),
                &created("https://acme.blob.core.windows.net/capture/x.avro"),
            ),
            401,
            "key",
        ),
        (
            "malformed JSON",
            post("/api", Some("hook-key"), b"{\"eventType\":"),
            400,
            "malformed JSON",
        ),
        (
            "a number",
            post("/api", Some("hook-key"), b"42"),
            400,
            "an event or an array",
        ),
        (
            "no fileUrl",
            post(
                "/api",
                Some("hook-key"),
                br#"[{"eventType":"Microsoft.EventHub.CaptureFileCreated","data":{}}]"#,
            ),
            400,
            "fileUrl",
        ),
        (
            "local file",
            post("/api", Some("hook-key"), &created("/etc/passwd")),
            403,
            "refused",
        ),
        (
            "another host",
            post(
                "/api",
                Some("hook-key"),
                &created("https://evil.example/capture/x.avro"),
            ),
            403,
            "refused",
        ),
        (
            "too large",
            post("/api", Some("hook-key"), &vec![b' '; 10_000]),
            413,
            "too large",
        ),
        (
            "validation without the key",
            post("/api", None, validation),
            200,
            "abc",
        ),
        (
            "GET elsewhere",
            b"GET /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "POST",
        ),
    ];
    for (name, raw, status, message) in &cases {
        let (code, body) = request(port, raw);
        assert_eq!(code, *status, "{name}: {body}");
        assert!(
            body.contains(message),
            "{name}: expected {message:?} in {body}"
        );
    }
    // Nothing reached the database.
    let _ = child.kill();
    let _ = child.wait();
    let conn = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
    let files: i64 = conn
        .query_row("SELECT count(*) FROM capture_files", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(files, 0);
}
