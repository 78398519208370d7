//! The report's charts as inline SVG, drawn here: a line of all events per column, the
//! partitions' heat map with the gaps over it, files per status, and the loader's throughput.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Heat, Timeline, escape, thousands};
use crate::db::LoadMinute;
use crate::health::Health;

const LABEL_WIDTH: i64 = 150;
const CHART_WIDTH: i64 = 960;
const ROW_HEIGHT: i64 = 12;

pub(super) fn duration_label(minutes: i64) -> String {
    match minutes {
        m if m % 1440 == 0 => format!("{} day{}", m / 1440, if m == 1440 { "" } else { "s" }),
        m if m % 60 == 0 => format!("{} hour{}", m / 60, if m == 60 { "" } else { "s" }),
        1 => "1 minute".to_string(),
        m => format!("{m} minutes"),
    }
}

fn cell_width(timeline: &Timeline) -> f64 {
    CHART_WIDTH as f64 / timeline.columns as f64
}

/// Time labels under a timeline, about every 120 px.
fn time_axis(out: &mut String, timeline: &Timeline, y: i64) {
    let width = cell_width(timeline);
    let every = ((120.0 / width).ceil() as i64).max(1);
    let day_long = timeline.minutes * timeline.columns > 1440;
    for column in (0..timeline.columns).step_by(every as usize) {
        let t = timeline.start + chrono::Duration::minutes(column * timeline.minutes);
        let label = if day_long {
            t.format("%m-%d %H:%M")
        } else {
            t.format("%H:%M")
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{y}">{label}</text>"#,
            LABEL_WIDTH as f64 + column as f64 * width
        );
    }
}

/// All partitions together: events per column as a line.
pub(super) fn total_chart(heat: &Heat) -> String {
    let columns = heat.timeline.columns as usize;
    let mut totals = vec![0i64; columns];
    for (_, cells) in &heat.rows {
        for (total, cell) in totals.iter_mut().zip(cells) {
            *total += cell;
        }
    }
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let height = 120;
    let width = cell_width(&heat.timeline);
    let mut out = format!(
        r#"<svg id="events-total" role="img" aria-label="Events per column, all partitions" width="{}" height="{}" viewBox="0 0 {} {}">"#,
        LABEL_WIDTH + CHART_WIDTH + 10,
        height + 30,
        LABEL_WIDTH + CHART_WIDTH + 10,
        height + 30
    );
    let _ = write!(
        out,
        r#"<text x="0" y="12">all partitions</text><text x="0" y="28">max {} / column</text>"#,
        thousands(max)
    );
    let points: Vec<String> = totals
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                LABEL_WIDTH as f64 + (i as f64 + 0.5) * width,
                10.0 + (height - 10) as f64 * (1.0 - *v as f64 / max as f64)
            )
        })
        .collect();
    let _ = write!(
        out,
        r##"<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{}"/>"##,
        points.join(" ")
    );
    let _ = write!(
        out,
        r##"<line x1="{LABEL_WIDTH}" y1="{height}" x2="{}" y2="{height}" stroke="#d0d7de"/>"##,
        LABEL_WIDTH + CHART_WIDTH
    );
    time_axis(&mut out, &heat.timeline, height + 20);
    out.push_str("</svg>\n");
    out
}

/// One row per partition, a cell per column shaded by its events; gaps as red bands.
pub(super) fn heatmap(heat: &Heat, health: &Health) -> String {
    let timeline = &heat.timeline;
    let width = cell_width(timeline);
    let max = heat
        .rows
        .iter()
        .flat_map(|(_, cells)| cells)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let height = heat.rows.len() as i64 * ROW_HEIGHT + 24;
    let mut out = format!(
        r#"<svg id="events-heatmap" role="img" aria-label="Events per minute per partition, with gaps" width="{}" height="{height}" viewBox="0 0 {} {height}">"#,
        LABEL_WIDTH + CHART_WIDTH + 10,
        LABEL_WIDTH + CHART_WIDTH + 10,
    );
    for (row, (partition, cells)) in heat.rows.iter().enumerate() {
        let y = row as i64 * ROW_HEIGHT;
        let name = format!(
            "{}/{}/{}",
            partition.namespace, partition.event_hub, partition.partition_id
        );
        let _ = write!(
            out,
            r#"<text x="0" y="{}">{}</text>"#,
            y + ROW_HEIGHT - 2,
            escape(&shorten(&name, 24))
        );
        for (column, events) in cells.iter().enumerate() {
            // Square-root shading keeps quiet partitions visible beside busy ones.
            let level = (*events as f64 / max as f64).sqrt();
            let shade = |from: f64, to: f64| (from + (to - from) * level).round() as u8;
            let _ = write!(
                out,
                r##"<rect class="cell" x="{:.1}" y="{y}" width="{:.1}" height="{}" fill="#{:02x}{:02x}{:02x}"><title>{}: {} events</title></rect>"##,
                LABEL_WIDTH as f64 + column as f64 * width,
                width + 0.05,
                ROW_HEIGHT - 1,
                shade(246.0, 9.0),
                shade(248.0, 105.0),
                shade(250.0, 218.0),
                escape(&name),
                thousands(*events)
            );
        }
        let Some(p) = health.partitions.iter().find(|p| {
            p.status.namespace == partition.namespace
                && p.status.event_hub == partition.event_hub
                && p.status.partition_id == partition.partition_id
        }) else {
            continue;
        };
        for gap in &p.gaps {
            let (from, to) = gap.window();
            let first = from.map_or(0, |t| timeline.column(t));
            let last = to.map_or(timeline.columns - 1, |t| timeline.column(t));
            let x = LABEL_WIDTH as f64 + first as f64 * width;
            let w = ((last - first + 1) as f64 * width).max(3.0);
            let _ = write!(
                out,
                r##"<rect class="gap-marker" data-first="{}" data-last="{}" x="{x:.1}" y="{}" width="{w:.1}" height="{}" fill="#cf222e" fill-opacity="0.8"><title>{}: sequence numbers {}–{} missing ({} events), enqueued between {} and {}</title></rect>"##,
                gap.first_missing,
                gap.last_missing,
                y - 1,
                ROW_HEIGHT + 1,
                escape(&name),
                gap.first_missing,
                gap.last_missing,
                thousands(gap.missing),
                time_or(from, "the start"),
                time_or(to, "?")
            );
        }
    }
    time_axis(&mut out, timeline, height - 6);
    out.push_str("</svg>\n");
    out
}

fn time_or(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or(none.to_string(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(max - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// Horizontal bars: files loaded, empty and failed.
pub(super) fn files_by_status(counts: &[(String, i64)]) -> String {
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let mut out = format!(
        r#"<svg id="files-by-status" role="img" aria-label="Files per status" width="520" height="{}" viewBox="0 0 520 {}">"#,
        counts.len() * 22 + 4,
        counts.len() * 22 + 4
    );
    for (i, (status, n)) in counts.iter().enumerate() {
        let y = i * 22;
        let color = match status.as_str() {
            "failed" => "#cf222e",
            "empty" => "#8c959f",
            _ => "#1a7f37",
        };
        let _ = write!(
            out,
            r#"<text x="0" y="{}">{}</text><rect class="status-bar" x="80" y="{}" width="{:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{}">{}</text>"#,
            y + 14,
            escape(status),
            y + 2,
            360.0 * *n as f64 / max as f64,
            86.0 + 360.0 * *n as f64 / max as f64,
            y + 14,
            thousands(*n)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Events the loader committed per column of its own wall-clock time.
pub(super) fn throughput(loads: &[LoadMinute]) -> String {
    let (Some(first), Some(last)) = (
        loads.iter().map(|l| l.minute).min(),
        loads.iter().map(|l| l.minute).max(),
    ) else {
        return "<p>Nothing loaded yet.</p>\n".to_string();
    };
    let timeline = Timeline::covering(first, last);
    let mut events = vec![0i64; timeline.columns as usize];
    for l in loads {
        events[timeline.column(l.minute) as usize] += l.events;
    }
    let total: i64 = loads.iter().map(|l| l.events).sum();
    let files: i64 = loads.iter().map(|l| l.files).sum();
    let peak = loads.iter().map(|l| l.events).max().unwrap_or(0);
    let max = events.iter().copied().max().unwrap_or(0).max(1);
    let width = cell_width(&timeline);
    let height = 100;
    let mut out = format!(
        "<p class=\"meta\">{} events read from {} files (events already loaded from another file included), loaded between {} and {}; busiest minute {} events ({}/s); each bar {}.</p>\n",
        thousands(total),
        thousands(files),
        first.format("%Y-%m-%d %H:%M UTC"),
        (last + chrono::Duration::minutes(1)).format("%Y-%m-%d %H:%M UTC"),
        thousands(peak),
        thousands(peak / 60),
        duration_label(timeline.minutes)
    );
    let _ = write!(
        out,
        r#"<svg id="load-throughput" role="img" aria-label="Events loaded per minute" width="{}" height="{}" viewBox="0 0 {} {}">"#,
        LABEL_WIDTH + CHART_WIDTH + 10,
        height + 30,
        LABEL_WIDTH + CHART_WIDTH + 10,
        height + 30
    );
    let _ = write!(
        out,
        r#"<text x="0" y="12">events loaded</text><text x="0" y="28">max {} / bar</text>"#,
        thousands(max)
    );
    for (i, n) in events.iter().enumerate() {
        let h = (height - 10) as f64 * *n as f64 / max as f64;
        let _ = write!(
            out,
            r##"<rect class="load-bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#8250df"><title>{} events</title></rect>"##,
            LABEL_WIDTH as f64 + i as f64 * width,
            height as f64 - h,
            (width - 1.0).max(1.0),
            thousands(*n)
        );
    }
    time_axis(&mut out, &timeline, height + 20);
    out.push_str("</svg>\n");
    out
}
