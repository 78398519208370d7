//! `capture-loader report`: one self-contained HTML page about the load: events per minute
//! per partition with the gaps drawn on that timeline, per-sensor statistics, files per
//! status, and the loader's own throughput.
//!
//! Who calls what: `report` and `serve`'s `GET /report` read [`ReportData`] and a
//! [`Health`] from the store, and [`render`] (pure) turns them into the page. The page loads
//! nothing: no scripts, fonts or styles from elsewhere, charts as inline SVG, and a
//! Content-Security-Policy that forbids every request, so it can be mailed or archived.
//!
//! Aggregation, so that a day of a 32-partition hub stays readable: the timeline has at most
//! [`MAX_COLUMNS`] columns; the bucket is the smallest of 1, 2, 5, 10, 15, 30 minutes, 1, 2,
//! 3, 6, 12 hours or a day that fits (a day → 10-minute buckets, 144 columns), each cell the
//! sum of its minutes. Partitions are rows of a heat map (one row each: 32 rows is about
//! 400 px), the gaps red bands over their row at the time window around them. The sensor
//! table shows the busiest [`SENSOR_ROWS`] sensors and says how many more the
//! `sensor_stats` view holds.

mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};

use crate::db::{PartitionKey, ReportData};
use crate::health::Health;

/// Columns of the timeline at most.
pub(crate) const MAX_COLUMNS: i64 = 240;
/// Rows of the sensor table at most.
pub(crate) const SENSOR_ROWS: i64 = 500;
const BUCKET_MINUTES: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

/// The timeline's grid: from `start`, `columns` buckets of `minutes` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    pub start: DateTime<Utc>,
    pub minutes: i64,
    pub columns: i64,
}

impl Timeline {
    /// The grid for events enqueued from `first` to `last` (minutes).
    pub(crate) fn covering(first: DateTime<Utc>, last: DateTime<Utc>) -> Self {
        let span = (last - first).num_minutes().max(0) + 1;
        let minutes = BUCKET_MINUTES
            .into_iter()
            .find(|m| (span + m - 1) / m <= MAX_COLUMNS)
            .unwrap_or_else(|| (span + MAX_COLUMNS - 1) / MAX_COLUMNS);
        // Buckets start on a multiple of their size (10-minute buckets at :00, :10, ...).
        let offset = first.timestamp().div_euclid(60).rem_euclid(minutes);
        let start = first - Duration::minutes(offset);
        let columns = ((last - start).num_minutes() / minutes + 1).max(1);
        Self {
            start,
            minutes,
            columns,
        }
    }

    /// The column of time `t`, clamped to the grid.
    pub(crate) fn column(&self, t: DateTime<Utc>) -> i64 {
        ((t - self.start).num_minutes().div_euclid(self.minutes)).clamp(0, self.columns - 1)
    }

    pub(crate) fn end(&self) -> DateTime<Utc> {
        self.start + Duration::minutes(self.minutes * self.columns)
    }
}

/// Events per partition per column of the timeline.
pub(crate) struct Heat {
    pub timeline: Timeline,
    pub rows: Vec<(PartitionKey, Vec<i64>)>,
}

pub(crate) fn heat(data: &ReportData) -> Option<Heat> {
    let first = data.events_per_minute.iter().map(|m| m.minute).min()?;
    let last = data.events_per_minute.iter().map(|m| m.minute).max()?;
    let timeline = Timeline::covering(first, last);
    // Keyed so that partitions sort numerically where they are numbers (Event Hubs' are).
    type Order = (String, String, i64, String);
    let mut rows: BTreeMap<Order, (PartitionKey, Vec<i64>)> = BTreeMap::new();
    for m in &data.events_per_minute {
        let p = &m.partition;
        let order = (
            p.namespace.clone(),
            p.event_hub.clone(),
            p.partition_id.parse().unwrap_or(i64::MAX),
            p.partition_id.clone(),
        );
        let row = rows
            .entry(order)
            .or_insert_with(|| (p.clone(), vec![0; timeline.columns as usize]));
        row.1[timeline.column(m.minute) as usize] += m.events;
    }
    Some(Heat {
        timeline,
        rows: rows.into_values().collect(),
    })
}

/// The page.
pub(crate) fn render(data: &ReportData, health: &Health, title: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let total_events: i64 = health.partitions.iter().map(|p| p.status.events).sum();
    let heat = heat(data);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style></head><body>
<h1>{title}</h1>
<p class="meta">Generated {generated} · {partitions} partitions · {events} events · {gaps} · {failed} · {stale}</p>
"#,
        title = escape(title),
        generated = health.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        partitions = health.partitions.len(),
        events = thousands(total_events),
        gaps = match health.gaps {
            0 => "<span class=\"ok\">no gaps</span>".to_string(),
            n => format!(
                "<span class=\"bad\">{n} gap{} ({} events missing)</span>",
                plural(n),
                thousands(health.missing_events)
            ),
        },
        failed = match health.failed_files.len() {
            0 => "<span class=\"ok\">no failed files</span>".to_string(),
            n => format!("<span class=\"bad\">{n} failed file{}</span>", plural(n)),
        },
        stale = match health.stale_partitions {
            0 => "no stale partitions".to_string(),
            n => format!(
                "<span class=\"bad\">{n} stale partition{}</span>",
                plural(n)
            ),
        },
    );

    out.push_str("<h2>Events per minute</h2>\n");
    match &heat {
        Some(heat) => {
            let _ = writeln!(
                out,
                "<p class=\"meta\">{} to {}; each column {} (sum of its minutes). Red bands: gaps, at the time around the missing events.</p>",
                heat.timeline.start.format("%Y-%m-%d %H:%M UTC"),
                heat.timeline.end().format("%Y-%m-%d %H:%M UTC"),
                svg::duration_label(heat.timeline.minutes)
            );
            out.push_str(&svg::total_chart(heat));
            out.push_str(&svg::heatmap(heat, health));
        }
        None => out.push_str("<p>No events loaded yet.</p>\n"),
    }

    gaps_section(&mut out, health);
    sensor_section(&mut out, data);
    out.push_str("<h2>Files</h2>\n");
    out.push_str(&svg::files_by_status(&data.files_by_status));
    out.push_str("<h2>Loader throughput</h2>\n");
    out.push_str(&svg::throughput(&data.loads_per_minute));
    out.push_str("</body></html>\n");
    out
}

fn gaps_section(out: &mut String, health: &Health) {
    out.push_str("<h2>Gaps and failed files</h2>\n");
    let gaps: Vec<_> = health
        .partitions
        .iter()
        .flat_map(|p| p.gaps.iter().map(move |g| (p, g)))
        .collect();
    if gaps.is_empty() {
        out.push_str("<p class=\"ok\" id=\"no-gaps\">Every partition's loaded files cover one unbroken range of sequence numbers (or the holes are declared expected-missing).</p>\n");
    } else {
        out.push_str("<table id=\"gaps-table\"><thead><tr><th>Partition</th><th>Missing sequence numbers</th><th>Events</th><th>Enqueued between</th><th>File before</th><th>File after</th></tr></thead><tbody>\n");
        for (p, g) in gaps {
            let (from, to) = g.window();
            let time = |t: Option<DateTime<Utc>>| {
                t.map_or("?".to_string(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                })
            };
            let _ = writeln!(
                out,
                "<tr class=\"gap-row\"><td>{}/{}/{}</td><td>{}–{}</td><td>{}</td><td class=\"time\">{}<br>{}</td><td class=\"path\">{}</td><td class=\"path\">{}</td></tr>",
                escape(&p.status.namespace),
                escape(&p.status.event_hub),
                escape(&p.status.partition_id),
                g.first_missing,
                g.last_missing,
                thousands(g.missing),
                time(from),
                time(to),
                g.after
                    .as_ref()
                    .map_or("(none: from sequence number 0)".into(), |n| escape(
                        &n.source
                    )),
                escape(&g.before.source),
            );
        }
        out.push_str("</tbody></table>\n");
    }
    if !health.failed_files.is_empty() {
        out.push_str("<table id=\"failed-files\"><thead><tr><th>Failed file</th><th>Reason</th></tr></thead><tbody>\n");
        for f in &health.failed_files {
            let _ = writeln!(
                out,
                "<tr class=\"failed-row\"><td class=\"path\">{}</td><td class=\"path\">{}</td></tr>",
                escape(&f.source),
                escape(&f.error)
            );
        }
        out.push_str("</tbody></table>\n");
    }
}

fn sensor_section(out: &mut String, data: &ReportData) {
    out.push_str("<h2>Sensors</h2>\n");
    if data.sensors.is_empty() {
        out.push_str("<p>No telemetry events (JSON bodies with a sensor_id) loaded.</p>\n");
        return;
    }
    let shown = data.sensors.len() as i64;
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} sensor{}{}.</p>",
        thousands(data.sensor_count),
        plural(data.sensor_count as usize),
        if data.sensor_count > shown {
            format!(
                "; the {shown} with the most events are shown, the rest are in the sensor_stats view"
            )
        } else {
            String::new()
        }
    );
    out.push_str("<table id=\"sensor-table\"><thead><tr><th>Sensor</th><th>Events</th><th>Temperature min</th><th>mean</th><th>max</th><th>Humidity min</th><th>mean</th><th>max</th></tr></thead><tbody>\n");
    let num = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    for s in &data.sensors {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.sensor_id),
            thousands(s.events),
            num(s.min_temperature),
            num(s.avg_temperature),
            num(s.max_temperature),
            num(s.min_humidity),
            num(s.avg_humidity),
            num(s.max_humidity),
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Nothing may be fetched: no scripts at all, styles only inline.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1b1f24;max-width:1400px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d0d7de}\
.meta{color:#57606a}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}\
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}\
td.path{text-align:left;word-break:break-all;max-width:420px;font-size:12px}td.time{white-space:nowrap}\
svg{display:block;margin:8px 0}svg text{font:11px system-ui,sans-serif;fill:#57606a}";

/// Text for HTML (elements and quoted attributes alike).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::MinuteCount;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_334_400 + minutes * 60, 0).unwrap()
    }

    #[test]
    fn buckets_fit_the_column_limit() {
        let hour = Timeline::covering(at(0), at(59));
        assert_eq!((hour.minutes, hour.columns), (1, 60));
        let day = Timeline::covering(at(0), at(1439));
        assert_eq!((day.minutes, day.columns), (10, 144));
        let week = Timeline::covering(at(0), at(7 * 1440 - 1));
        assert!(week.columns <= MAX_COLUMNS, "{week:?}");
        assert_eq!(day.column(at(0)), 0);
        assert_eq!(day.column(at(1439)), 143);
        assert_eq!(day.column(at(99_999)), 143, "clamped");
    }

    #[test]
    fn a_day_of_a_32_partition_hub_stays_small_and_sums_every_event() {
        let mut data = ReportData::default();
        for p in 0..32 {
            for m in 0..1440 {
                data.events_per_minute.push(MinuteCount {
                    partition: PartitionKey {
                        namespace: "ns".into(),
                        event_hub: "hub".into(),
                        partition_id: p.to_string(),
                    },
                    minute: at(m),
                    events: 60,
                });
            }
        }
        let heat = heat(&data).unwrap();
        assert_eq!(heat.rows.len(), 32);
        // Numeric partition order: 0, 1, 2, ..., 10, not 0, 1, 10, 11.
        assert_eq!(heat.rows[2].0.partition_id, "2");
        let total: i64 = heat.rows.iter().flat_map(|(_, cells)| cells).sum();
        assert_eq!(total, 32 * 1440 * 60);
        let health = Health {
            generated_at: at(1440),
            partitions: vec![],
            failed_files: vec![],
            gaps: 0,
            missing_events: 0,
            stale_partitions: 0,
        };
        let page = render(&data, &health, "A day");
        eprintln!("a day of 32 partitions: {} bytes", page.len());
        assert!(page.len() < 1_500_000, "{} bytes", page.len());
        assert_eq!(page.matches("class=\"cell\"").count(), 32 * 144);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(12), "12");
    }
}
