//! `status` and `report`: what is loaded, what is missing, what failed. Both read one
//! [`Health`] assessment; `status` prints it (table or JSON) and exits 1 when a scheduler
//! should alert, `report` draws it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::db::{DeclaredMissing, PartitionKey, Store};
use crate::gaps::ExpectedMissing;
use crate::health::{self, Health};
use crate::report;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: crate::DbArgs,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    /// Declare sequence numbers that will never be loaded, so they are not reported as a
    /// gap (events that expired before Capture was enabled):
    /// NAMESPACE/EVENT_HUB/PARTITION:FIRST-LAST. Kept in the database; repeatable
    #[arg(long, value_name = "RANGE", value_parser = parse_expected)]
    pub expect_missing: Vec<DeclaredMissing>,

    /// Why those ranges are missing, recorded with them
    #[arg(
        long,
        default_value = "declared expected-missing",
        requires = "expect_missing"
    )]
    pub reason: String,

    /// A partition whose newest event is older than this is stale (Capture or the loader
    /// has stopped), which makes the exit status 1 too
    #[arg(long, value_name = "DURATION", value_parser = eventhubs_kafka::cli::values::duration)]
    pub stale_after: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: crate::DbArgs,

    /// The HTML file to write (self-contained: it loads nothing)
    #[arg(long, value_name = "FILE.html")]
    pub output: std::path::PathBuf,

    /// Mark partitions whose newest event is older than this as stale
    #[arg(long, value_name = "DURATION", value_parser = eventhubs_kafka::cli::values::duration)]
    pub stale_after: Option<Duration>,

    /// The page's title
    #[arg(long, default_value = "Event Hubs Capture: what was loaded")]
    pub title: String,
}

/// `NAMESPACE/EVENT_HUB/PARTITION:FIRST-LAST` (Event Hubs names contain no `/` or `:`).
fn parse_expected(spec: &str) -> Result<DeclaredMissing, String> {
    let usage = "expected NAMESPACE/EVENT_HUB/PARTITION:FIRST-LAST, e.g. myns/telemetry/0:0-8179";
    let (partition, range) = spec.rsplit_once(':').ok_or(usage)?;
    let parts: Vec<&str> = partition.split('/').collect();
    let [namespace, event_hub, partition_id] = parts[..] else {
        return Err(usage.into());
    };
    if [namespace, event_hub, partition_id]
        .iter()
        .any(|s| s.is_empty())
    {
        return Err(usage.into());
    }
    let (first, last) = range.split_once('-').ok_or(usage)?;
    let number = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not a sequence number; {usage}"))
    };
    let (first, last) = (number(first)?, number(last)?);
    if first < 0 || last < first {
        return Err(format!(
            "the range {first}-{last} is empty or negative; {usage}"
        ));
    }
    Ok(DeclaredMissing {
        partition: PartitionKey {
            namespace: namespace.into(),
            event_hub: event_hub.into(),
            partition_id: partition_id.into(),
        },
        range: ExpectedMissing {
            first_sequence_number: first,
            last_sequence_number: last,
            // Set from --reason when recorded.
            reason: String::new(),
        },
    })
}

pub(crate) fn run_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut store = args.db.database()?.open()?;
    for declared in &args.expect_missing {
        let mut declared = declared.clone();
        declared.range.reason.clone_from(&args.reason);
        store
            .declare_missing(&declared)
            .context("recording the expected-missing range")?;
    }
    let health = health::assess(store.as_mut(), chrono::Utc::now(), args.stale_after)
        .context("reading the load status")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&health)?)?;
    } else {
        print_table(&mut out, &health)?;
    }
    out.flush()?;
    Ok(if health.is_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(out: &mut impl Write, health: &Health) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<20} {:>9} {:>6} {:>10} {:>14}  LAST ENQUEUED",
        "NAMESPACE", "EVENT HUB", "PARTITION", "FILES", "EVENTS", "LAST SEQUENCE"
    )?;
    for p in &health.partitions {
        writeln!(
            out,
            "{:<24} {:<20} {:>9} {:>6} {:>10} {:>14}  {}{}",
            p.status.namespace,
            p.status.event_hub,
            p.status.partition_id,
            p.status.files,
            p.status.events,
            p.status
                .last_sequence_number
                .map_or("-".into(), |n| n.to_string()),
            p.status.last_enqueued_time.as_deref().unwrap_or("-"),
            if p.stale { "  STALE" } else { "" }
        )?;
    }
    for p in &health.partitions {
        let name = format!(
            "{}/{}/{}",
            p.status.namespace, p.status.event_hub, p.status.partition_id
        );
        for g in &p.gaps {
            let (from, to) = g.window();
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("?".to_string(), |t| t.to_rfc3339())
            };
            writeln!(
                out,
                "GAP {name}: sequence numbers {}-{} missing ({} events), enqueued between {} and {}; after {}, before {}",
                g.first_missing,
                g.last_missing,
                g.missing,
                time(from),
                time(to),
                g.after
                    .as_ref()
                    .map_or("(the start of the partition)", |n| n.source.as_str()),
                g.before.source
            )?;
        }
        for e in &p.expected_missing {
            writeln!(
                out,
                "expected missing {name}: {}-{} ({})",
                e.first_sequence_number, e.last_sequence_number, e.reason
            )?;
        }
    }
    for f in &health.failed_files {
        writeln!(out, "FAILED {}: {}", f.source, f.error)?;
    }
    if health.gaps > 0 {
        writeln!(
            out,
            "{} gap(s), {} events missing: load the files named around them, or declare the range with --expect-missing if it will never exist",
            health.gaps, health.missing_events
        )?;
    }
    Ok(())
}

/// The report page for the database behind `store`.
pub(crate) fn report_page(
    store: &mut dyn Store,
    stale_after: Option<Duration>,
    title: &str,
) -> anyhow::Result<String> {
    let health = health::assess(store, chrono::Utc::now(), stale_after)?;
    let data = store
        .report_data(report::SENSOR_ROWS)
        .context("reading the reporting views")?;
    Ok(report::render(&data, &health, title))
}

pub(crate) fn run_report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let mut store = args.db.database()?.open()?;
    let page = report_page(store.as_mut(), args.stale_after, &args.title)?;
    std::fs::write(&args.output, page)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_missing_ranges_parse_strictly() {
        let d = parse_expected("myns/telemetry/3:0-8179").unwrap();
        assert_eq!(d.partition.partition_id, "3");
        assert_eq!(
            (d.range.first_sequence_number, d.range.last_sequence_number),
            (0, 8179)
        );
        for bad in [
            "myns/telemetry:0-9",
            "myns/telemetry/3",
            "myns/telemetry/3:9-0",
            "myns/telemetry/3:-1-5",
            "myns/telemetry/3:a-b",
            "//3:0-1",
        ] {
            assert!(parse_expected(bad).is_err(), "{bad}");
        }
    }
}
