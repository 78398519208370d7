//! Capture files written by Azure itself (../shared/fixtures), and variants of them written
//! by an independent writer (Python fastavro: deflate codec, many blocks) or damaged here.
//!
//! Where the fixtures are absent (a user's clone) these tests say so and pass; in CI
//! (`CI=true`) their absence is an error, so they can never be skipped silently there.

use std::path::PathBuf;
use std::process::Command;

use eventhubs_kafka::capture::path::NameFormat;
use eventhubs_kafka::capture::{CaptureError, read_capture, read_capture_reference};

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("EVENTHUBS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if dir.join("capture").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the shared fixtures are missing at {} (CI must have ../shared beside the checkout)",
        dir.display()
    );
    eprintln!(
        "SKIPPED: no fixtures at {} (set EVENTHUBS_FIXTURES)",
        dir.display()
    );
    None
}

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = fixtures()?;
    Some(std::fs::read(dir.join("capture").join(name)).unwrap())
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn telemetry_fixture_has_380_events_in_sequence() {
    let Some(bytes) = fixture("telemetry-380-events.avro") else {
        return;
    };
    let file = read_capture(&bytes).unwrap();
    assert_eq!(file.codec, "null");
    assert_eq!(file.events.len(), 380);
    let seq: Vec<i64> = file.events.iter().map(|e| e.sequence_number).collect();
    assert_eq!(seq, (8180..=8559).collect::<Vec<_>>());
    let first = &file.events[0];
    assert_eq!(first.offset, "2743296");
    assert_eq!(first.enqueued_time_utc, "10/16/2017 6:18:55 PM");
    assert_eq!(
        first.enqueued_time.to_rfc3339(),
        "2017-10-16T18:18:55+00:00"
    );
    assert!(first.system_properties.is_empty());
    let body: serde_json::Value = serde_json::from_slice(first.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["ID"], 122921);
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn empty_window_fixture_has_no_events() {
    let Some(bytes) = fixture("empty-window.avro") else {
        return;
    };
    assert_eq!(read_capture(&bytes).unwrap().events.len(), 0);
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn legacy_2016_schema_is_accepted() {
    let Some(bytes) = fixture("legacy-2016-schema.avro") else {
        return;
    };
    let file = read_capture(&bytes).unwrap();
    assert_eq!(file.events.len(), 1);
    let e = &file.events[0];
    assert_eq!(e.sequence_number, 0);
    assert_eq!(e.system_properties["x-opt-publisher"], "buddy1234");
    assert_eq!(e.enqueued_time.to_rfc3339(), "2016-11-16T16:44:11+00:00");
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn enqueued_time_in_system_properties_wins_and_gives_the_partition_key() {
    let Some(bytes) = fixture("partition-key-1-event.avro") else {
        return;
    };
    let file = read_capture(&bytes).unwrap();
    let e = &file.events[0];
    assert_eq!(e.sequence_number, 1);
    assert_eq!(
        e.partition_key.as_deref(),
        Some("d8b14c3c-fcfa-4bf4-d034-be8c3f3ecab5")
    );
    // 1670604685193 ms, more precise than "12/9/2022 4:51:25 PM".
    assert_eq!(e.enqueued_time.timestamp_millis(), 1_670_604_685_193);
    assert_eq!(e.enqueued_time_utc, "12/9/2022 4:51:25 PM");
}

/// Rewrite a fixture with fastavro: same records, another codec and block size.
fn rewrite(name: &str, codec: &str, sync_interval: usize) -> Option<Vec<u8>> {
    let dir = fixtures()?;
    let out = tempfile::NamedTempFile::new().unwrap();
    let script = r#"
import sys, fastavro
src, dst, codec, interval = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(src, "rb") as f:
    reader = fastavro.reader(f)
    schema, records = reader.writer_schema, list(reader)
with open(dst, "wb") as f:
    fastavro.writer(f, schema, records, codec=codec, sync_interval=interval)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("capture").join(name))
        .arg(out.path())
        .args([codec, &sync_interval.to_string()])
        .status()
        .expect("python3 with fastavro (scripts/test installs it)");
    assert!(status.success(), "fastavro rewrite failed");
    Some(std::fs::read(out.path()).unwrap())
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn deflate_and_multi_block_files_from_an_independent_writer_read_the_same() {
    let Some(original) = fixture("telemetry-380-events.avro") else {
        return;
    };
    let expected = read_capture(&original).unwrap().events;
    let deflate = rewrite("telemetry-380-events.avro", "deflate", 16_000).unwrap();
    let file = read_capture(&deflate).unwrap();
    assert_eq!(file.codec, "deflate");
    assert_eq!(file.events, expected);
    // Small sync interval: dozens of blocks.
    let blocks = rewrite("telemetry-380-events.avro", "null", 2_000).unwrap();
    assert!(
        blocks.len() > original.len(),
        "more blocks, more sync markers"
    );
    assert_eq!(read_capture(&blocks).unwrap().events, expected);
    // The 2016 schema through deflate too.
    let legacy = rewrite("legacy-2016-schema.avro", "deflate", 16_000).unwrap();
    assert_eq!(read_capture(&legacy).unwrap().events.len(), 1);
}

/// The direct reader and apache-avro's values agree: the same events, or an error of the
/// same kind, for every Azure file, every rewrite, and truncated and byte-flipped copies.
#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn the_direct_reader_reads_what_apache_avro_reads() {
    let Some(dir) = fixtures() else {
        return;
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("capture")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "avro") {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            files.push(std::fs::read(&path).unwrap());
            for (codec, interval) in [("deflate", 16_000), ("null", 2_000), ("deflate", 500)] {
                files.push(rewrite(&name, codec, interval).unwrap());
            }
        }
    }
    assert!(files.len() >= 8, "{} files", files.len());
    let kind = |r: &Result<_, CaptureError>| match r {
        Ok(_) => "ok",
        Err(CaptureError::NotAvro(_)) => "not avro",
        Err(CaptureError::ForeignSchema(_)) => "foreign",
        Err(CaptureError::Damaged { .. }) => "damaged",
        Err(CaptureError::BadEvent { .. }) => "bad event",
    };
    let mut compared = 0;
    let mut tally = std::collections::BTreeMap::new();
    for file in &files {
        let mut variants = vec![file.clone()];
        for cut in [
            file.len() / 3,
            file.len() / 2,
            file.len() - 20,
            file.len() - 1,
        ] {
            variants.push(file[..cut].to_vec());
        }
        for i in (0..file.len()).step_by(211) {
            let mut flipped = file.clone();
            flipped[i] ^= 0x5a;
            variants.push(flipped);
        }
        for bytes in variants {
            let direct = read_capture(&bytes);
            let reference = read_capture_reference(&bytes);
            // The same events, or the same kind of error.
            match (&direct, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                _ => assert_eq!(kind(&direct), kind(&reference), "{direct:?} {reference:?}"),
            }
            compared += 1;
            *tally
                .entry(format!(
                    "direct {} / apache-avro {}",
                    kind(&direct),
                    kind(&reference)
                ))
                .or_insert(0) += 1;
        }
    }
    eprintln!("{compared} files compared: {tally:?}");
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn truncated_and_corrupt_files_fail_with_a_reason_and_never_panic() {
    let Some(bytes) = fixture("telemetry-380-events.avro") else {
        return;
    };
    let multi = rewrite("telemetry-380-events.avro", "null", 2_000).unwrap();
    for source in [&bytes, &multi] {
        for cut in [
            3,
            40,
            200,
            700,
            source.len() / 2,
            source.len() - 17,
            source.len() - 1,
        ] {
            let err = read_capture(&source[..cut]).expect_err("a truncated file must fail");
            assert!(!err.to_string().is_empty());
        }
    }
    // A damaged sync marker between blocks.
    let mut damaged = multi.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert!(matches!(
        read_capture(&damaged),
        Err(CaptureError::Damaged { .. })
    ));
    // Flipped bytes anywhere: an error or a file that still reads, but never a panic.
    for i in (0..bytes.len()).step_by(97) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x55;
        let _ = read_capture(&flipped);
    }
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn a_foreign_avro_file_is_refused_with_its_record_name() {
    if fixtures().is_none() {
        return;
    }
    let out = tempfile::NamedTempFile::new().unwrap();
    let script = r#"
import sys, fastavro
schema = {"type": "record", "name": "Other", "namespace": "acme", "fields": [{"name": "a", "type": "long"}]}
with open(sys.argv[1], "wb") as f:
    fastavro.writer(f, schema, [{"a": 1}])
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let err = read_capture(&std::fs::read(out.path()).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an Event Hubs Capture file: its records are `acme.Other`, not `Microsoft.ServiceBus.Messaging.EventData`"
    );
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn fixtures_placed_in_the_capture_layout_are_located() {
    let f = NameFormat::default();
    let loc = f
        .locate("/tmp/x/capture/ns1/telemetry/0/2017/10/16/18/18/55.avro")
        .unwrap();
    assert_eq!(
        (loc.namespace.as_str(), loc.partition_id.as_str()),
        ("ns1", "0")
    );
}

/// Where the fixtures must be (CI, which puts ../shared beside the clone), their absence is an
/// error, not a row of skipped tests.
#[test]
fn fixtures_are_present_in_ci() {
    // fixtures() fails under CI=true when they are missing.
    let _ = fixtures();
}
