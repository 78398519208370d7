//! Finding Capture files: walk folders, list Blob Storage locations, keep the files that
//! are Capture's (`.avro`, or laid out by the archive name format), read what their paths
//! say, filter by time, order them, and group them by partition for the loader's workers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use eventhubs_kafka::capture::path::CaptureLocation;

use crate::blob::{BlobObject, BlobSource};
use crate::load::LoadOptions;

/// Where a candidate's bytes are.
pub(crate) enum Origin {
    Local(PathBuf),
    Blob {
        source: Arc<BlobSource>,
        object: BlobObject,
    },
}

/// A candidate file with what its path says.
pub(crate) struct Candidate {
    pub(crate) origin: Origin,
    /// Its name in `capture_files`: the file path or the blob URL.
    pub(crate) name: String,
    pub(crate) location: Option<CaptureLocation>,
}

/// `--since` / `--until`: RFC 3339, or a date (midnight UTC).
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

pub(crate) fn discover(
    options: &LoadOptions,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(Vec<Candidate>, u64)> {
    let overridden =
        options.namespace.is_some() && options.event_hub.is_some() && options.partition.is_some();
    // (origin, name, path to read the layout from)
    let mut found: Vec<(Origin, String, String)> = Vec::new();
    for source in &options.sources {
        if source.contains("://") {
            let blob = Arc::new(BlobSource::parse(source, |k| std::env::var(k).ok())?);
            for object in runtime.block_on(blob.list())? {
                let name = blob.url(&object.path);
                let path = object.path.to_string();
                found.push((
                    Origin::Blob {
                        source: blob.clone(),
                        object,
                    },
                    name,
                    path,
                ));
            }
            continue;
        }
        let path = PathBuf::from(source);
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read `{source}`"))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            walk(&path, &mut files)?;
        } else {
            files.push(path);
        }
        for f in files {
            let name = f.to_string_lossy().into_owned();
            found.push((Origin::Local(f), name.clone(), name));
        }
    }
    let mut ignored = 0;
    let mut candidates = Vec::new();
    for (origin, name, layout_path) in found {
        let location = options.name_format.locate(&layout_path);
        let is_avro = layout_path.ends_with(".avro");
        if location.is_none() && !is_avro && !overridden {
            ignored += 1;
            continue;
        }
        if let Some(loc) = &location {
            let before = options.since.is_some_and(|s| loc.window_start < s);
            let after = options.until.is_some_and(|u| loc.window_start >= u);
            if before || after {
                continue;
            }
        }
        candidates.push(Candidate {
            origin,
            name,
            location,
        });
    }
    // Per partition, in window order; partitions one after another.
    candidates.sort_by(|a, b| {
        let key = |c: &Candidate| {
            c.location.as_ref().map(|l| {
                (
                    l.namespace.clone(),
                    l.event_hub.clone(),
                    l.partition_id.parse::<u64>().unwrap_or(u64::MAX),
                    l.window_start,
                )
            })
        };
        key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
    Ok((candidates, ignored))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Candidates (already in order) grouped by partition; files without a known partition
/// form groups of one.
pub(crate) fn partition_groups(candidates: Vec<Candidate>) -> Vec<Vec<Candidate>> {
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    for c in candidates {
        let key = |c: &Candidate| {
            c.location.as_ref().map(|l| {
                (
                    l.namespace.clone(),
                    l.event_hub.clone(),
                    l.partition_id.clone(),
                )
            })
        };
        match groups.last_mut() {
            Some(g) if key(&c).is_some() && key(&g[0]) == key(&c) => g.push(c),
            _ => groups.push(vec![c]),
        }
    }
    groups
}
