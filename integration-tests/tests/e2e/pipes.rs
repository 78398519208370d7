//! A closed stdout (`… | head`) ends a tool quietly, as ripgrep does, and the consumer
//! commits nothing it could not write; a fatal error is printed once, as JSON under
//! `--log-format json`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use test_support::{Broker, tool, unique};

fn quiet(stderr: &str) -> bool {
    !stderr.contains("panicked") && !stderr.contains("error:") && !stderr.contains("ERROR")
}

#[test]
fn lag_into_a_closed_pipe_ends_quietly() {
    let broker = Broker::plaintext();
    let topic = unique("pipe-lag");
    produce(&broker, &topic, &["--partitions", "3", "--generate", "30"]);
    for args in [
        vec!["lag", "--group", "nobody", "--topic", &topic],
        vec!["lag", "--json", "--group", "nobody", "--topic", &topic],
    ] {
        let mut child = tool("consumer", &broker)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| head -0`: the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(quiet(&err), "{args:?}: {err}");
    }
}

#[test]
fn consumer_into_a_closed_pipe_ends_quietly_and_commits_only_what_it_wrote() {
    let broker = Broker::plaintext();
    let topic = unique("pipe");
    let group = unique("g");
    produce(
        &broker,
        &topic,
        &["--partitions", "2", "--generate", "50000"],
    );
    let mut child = crate::common::group_member(&broker, &topic, &group, "100ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"offset\""), "{first}");
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not notice the closed pipe"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(quiet(&err), "{err}");
    // What reached the pipe is at most its buffer plus ours (~128 KiB, a few hundred
    // lines); it read far more than that from the broker.
    let committed = total_committed(&lag(&broker, &group, &topic));
    assert!(
        committed < 5_000,
        "committed {committed} events it could not have written"
    );
}

#[test]
fn a_fatal_error_is_printed_once_as_text_or_as_json() {
    let broker = Broker::plaintext();
    let run = |format: &str| {
        test_support::run(
            tool("producer", &broker)
                .args(["--topic", &unique("missing"), "--generate", "1"])
                .args(["--log-format", format]),
        )
    };
    let out = run("text");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
    assert!(err.contains("error: "), "{err}");
    let out = run("json");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for line in err.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
}
