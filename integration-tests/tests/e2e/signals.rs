//! SIGTERM: the producer stops reading, delivers what it read and reports it; the consumer
//! commits what it wrote and exits cleanly.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use test_support::{Broker, json_lines, stderr, tool, unique};

fn term(child: &std::process::Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
}

#[test]
fn sigterm_makes_the_producer_deliver_what_it_read_and_report() {
    let broker = Broker::plaintext();
    let topic = unique("term");
    produce(&broker, &topic, &["--partitions", "2", "--generate", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = write_events(dir.path(), 100, 5);
    let mut child = tool("producer", &broker)
        .args(["--topic", &topic, "--summary-json", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 100 lines, and stdin left open: the producer waits for more until the signal.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&input).unwrap()).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    term(&child);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json_lines(&out).pop().unwrap();
    assert_eq!(summary["sent"], 100, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert!(
        stderr(&out).contains("stopped by signal"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sigterm_makes_the_consumer_commit_what_it_wrote_and_exit_cleanly() {
    let broker = Broker::plaintext();
    let topic = unique("term");
    let group = unique("g");
    produce(&broker, &topic, &["--partitions", "2", "--generate", "300"]);
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let err_file = tempfile::NamedTempFile::new().unwrap();
    // A long commit interval: only the shutdown commit can record the position.
    let mut child = crate::common::group_member(&broker, &topic, &group, "1h")
        .stdout(out_file.reopen().unwrap())
        .stderr(err_file.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(err_file.path())
        .unwrap_or_default()
        .contains("partitions assigned")
    {
        assert!(
            Instant::now() < deadline,
            "the consumer was never assigned partitions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // 300 events take far less than this to read.
    std::thread::sleep(Duration::from_secs(3));
    term(&child);
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(err_file.path()).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let lines = std::fs::read_to_string(out_file.path()).unwrap();
    assert_eq!(
        lines.lines().count(),
        300,
        "everything read was written out"
    );
    let report = lag(&broker, &group, &topic);
    let committed = total_committed(&report);
    assert_eq!(
        committed, 300,
        "the shutdown commit recorded every event written: {report}"
    );
    assert!(log.contains("consumer: 300 consumed"), "{log}");
}
