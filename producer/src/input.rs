//! Where events come from: the telemetry generator, or JSON lines from a file or stdin.
//!
//! Lines are read on their own thread into a bounded channel, so a producer waiting on a
//! quiet stdin still notices a signal, and a slow broker slows the reader instead of
//! filling memory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use apache_avro::types::Value;
use eventhubs_kafka::telemetry::Generator;
use tokio_util::sync::CancellationToken;

use crate::delivery::Origin;

/// One unit of input, before validation.
pub enum Item {
    /// A generated record, already shaped by the telemetry schema.
    Record(Origin, Value),
    /// A line of text that should hold one JSON event.
    Line(u64, String),
}

pub enum Source {
    Generator {
        generator: Generator,
        remaining: u64,
        next_index: u64,
    },
    Lines {
        rx: Receiver<std::io::Result<(u64, String)>>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("reading the input failed at {0}")]
pub struct ReadError(#[source] std::io::Error);

impl Source {
    pub fn generator(count: u64, sensors: usize, seed: u64) -> Self {
        Self::Generator {
            generator: Generator::new(sensors, seed),
            remaining: count,
            next_index: 1,
        }
    }

    /// Read `path` (`-` for stdin) line by line on a background thread.
    pub fn lines(path: PathBuf) -> std::io::Result<Self> {
        let reader: Box<dyn BufRead + Send> = if path.as_os_str() == "-" {
            Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(&path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                })?,
            ))
        };
        let (tx, rx) = sync_channel(4096);
        std::thread::Builder::new()
            .name("input".into())
            .spawn(move || read_lines(reader, tx))?;
        Ok(Self::Lines { rx })
    }

    /// The next item; `None` at the end of input or once `cancel` fires.
    pub fn next(&mut self, cancel: &CancellationToken) -> Option<Result<Item, ReadError>> {
        if cancel.is_cancelled() {
            return None;
        }
        match self {
            Self::Generator {
                generator,
                remaining,
                next_index,
            } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                let index = *next_index;
                *next_index += 1;
                let now = chrono_now_ms();
                let event = generator.next_event(now);
                Some(Ok(Item::Record(Origin::Generated(index), event.value)))
            }
            Self::Lines { rx } => loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok((n, line))) => return Some(Ok(Item::Line(n, line))),
                    Ok(Err(e)) => return Some(Err(ReadError(e))),
                    Err(RecvTimeoutError::Disconnected) => return None,
                    Err(RecvTimeoutError::Timeout) if cancel.is_cancelled() => return None,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            },
        }
    }
}

fn read_lines(mut reader: Box<dyn BufRead + Send>, tx: SyncSender<std::io::Result<(u64, String)>>) {
    let mut n = 0u64;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                n += 1;
                let trimmed = line.trim_end_matches(['\n', '\r']);
                if trimmed.trim().is_empty() {
                    continue;
                }
                let text = if trimmed.len() == line.len() {
                    line
                } else {
                    trimmed.to_string()
                };
                if tx.send(Ok((n, text))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let e = std::io::Error::new(e.kind(), format!("line {}: {e}", n + 1));
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
