//! Every numeric and duration flag is checked when the command line is parsed: a bad value
//! is a usage error (exit 2) naming the flag, never a panic later or a silent surprise
//! (`--rate 0` meaning "unlimited", a zero commit interval, a NaN rate).

use std::process::Command;

use test_support::bin;

#[test]
fn bad_numbers_and_durations_are_usage_errors_naming_the_flag() {
    let producer = [
        "--topic",
        "t",
        "--generate",
        "1",
        "--bootstrap-servers",
        "127.0.0.1:1",
    ];
    let consumer = [
        "--topic",
        "t",
        "--group",
        "g",
        "--bootstrap-servers",
        "127.0.0.1:1",
    ];
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("producer", &producer, &["--rate", "NaN"]),
        ("producer", &producer, &["--rate", "1e-20"]),
        ("producer", &producer, &["--rate", "0"]),
        ("producer", &producer, &["--rate", "-5"]),
        ("producer", &producer, &["--sensors", "0"]),
        ("producer", &producer, &["--max-event-bytes", "0"]),
        ("producer", &producer, &["--partitions", "0"]),
        ("producer", &producer, &["--partition", "-1"]),
        ("producer", &producer, &["--replication-factor", "0"]),
        ("producer", &producer, &["--flush-timeout", "0s"]),
        ("producer", &producer, &["--connect-timeout", "100000y"]),
        ("consumer", &consumer, &["--commit-interval", "0s"]),
        ("consumer", &consumer, &["--max-events", "0"]),
        ("consumer", &consumer, &["--idle-timeout", "0ms"]),
        ("consumer", &consumer, &["--capture-window", "0s"]),
        ("consumer", &consumer, &["--capture-size-limit", "0"]),
        (
            "consumer",
            &["lag", "--group", "g", "--bootstrap-servers", "127.0.0.1:1"],
            &["--timeout", "0s"],
        ),
        ("capture-loader", &["watch", "x"], &["--interval", "0s"]),
        ("capture-loader", &["status"], &["--stale-after", "0s"]),
    ];
    for (tool, base, bad) in cases {
        // `--flag=value`, so that a negative number is read as the flag's value.
        let out = Command::new(bin(tool))
            .args(*base)
            .arg(format!("{}={}", bad[0], bad[1]))
            .env_remove("EVENTHUB_CONNECTION_STRING")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tool} {bad:?}: {err}");
        assert!(
            err.contains(&format!("for '{}", bad[0])) && !err.contains("panicked"),
            "{tool} {bad:?} is not a usage error naming the flag: {err}"
        );
    }
}
