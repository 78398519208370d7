//! Where events come from: the telemetry generator, or JSON lines from a file or stdin.
//!
//! Lines are read on their own thread into a channel bounded by bytes ([`IN_FLIGHT_BYTES`]),
//! so a producer waiting on a quiet stdin still notices a signal, and a slow broker slows the
//! reader instead of filling memory. A line longer than the event limit is skipped to its end
//! without being kept, and a line that is not UTF-8 is reported as invalid: either way only
//! that line is lost, and `--skip-invalid` goes on past it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use apache_avro::types::Value;
use eventhubs_kafka::telemetry::Generator;
use tokio_util::sync::CancellationToken;

use crate::delivery::Origin;

/// One unit of input, before validation.
pub(crate) enum Item<'a> {
    /// A generated record, already shaped by the telemetry schema.
    Record(Origin, Value),
    /// A generated event already encoded (see [`Direct`]): its key and value.
    Encoded {
        origin: Origin,
        key: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    /// A line of text that should hold one JSON event.
    Line(u64, String),
    /// A line that cannot be an event (too long, not UTF-8), with why.
    Invalid(Origin, String),
}

/// Lines read ahead of the producer, in bytes at most (one longer line still passes alone).
pub(crate) const IN_FLIGHT_BYTES: usize = 32 << 20;

/// What the reader thread sends: a line, or why line `n` is not one.
type Read = std::io::Result<(u64, Result<String, String>)>;

/// A byte budget shared by the reader (which waits for room) and the producer (which frees
/// it as it takes lines).
#[derive(Default)]
pub(crate) struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, n: usize) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + n > IN_FLIGHT_BYTES {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
    }

    fn give(&self, n: usize) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(n);
        self.freed.notify_one();
    }
}

/// Generated telemetry written straight into its encoding: the bytes before each datum (the
/// encoder's prefix) and whether the sensor id is the key. What the encoder would write for
/// the same event, without a value tree per event (the producer's hot path).
pub(crate) struct Direct {
    pub(crate) prefix: Vec<u8>,
    pub(crate) keyed: bool,
}

/// Readings are stamped with a clock read once per this many events (at hundreds of
/// thousands per second, well within the millisecond the timestamp has): a clock read costs
/// more than the rest of an event on some virtual machines.
const CLOCK_EVERY: u64 = 64;

pub(crate) enum Source {
    Generator {
        generator: Generator,
        remaining: u64,
        next_index: u64,
        direct: Option<Direct>,
        buf: Vec<u8>,
        now_ms: i64,
    },
    Lines {
        rx: Receiver<Read>,
        budget: Arc<Budget>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("reading the input failed at {0}")]
pub(crate) struct ReadError(#[source] std::io::Error);

impl Source {
    pub(crate) fn generator(count: u64, sensors: usize, seed: u64, direct: Option<Direct>) -> Self {
        Self::Generator {
            generator: Generator::new(sensors, seed),
            remaining: count,
            next_index: 1,
            direct,
            buf: Vec::with_capacity(256),
            now_ms: 0,
        }
    }

    /// Read `path` (`-` for stdin) line by line on a background thread; lines longer than
    /// `max_line` bytes are refused without being kept.
    pub(crate) fn lines(path: PathBuf, max_line: usize) -> std::io::Result<Self> {
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
        let budget = Arc::new(Budget::default());
        let reader_budget = budget.clone();
        std::thread::Builder::new()
            .name("input".into())
            .spawn(move || read_lines(reader, tx, max_line, &reader_budget))?;
        Ok(Self::Lines { rx, budget })
    }

    /// The next item; `None` at the end of input or once `cancel` fires.
    /// `idle` runs every 100 ms while the input is quiet.
    pub(crate) fn next(
        &mut self,
        cancel: &CancellationToken,
        idle: &mut dyn FnMut(),
    ) -> Option<Result<Item<'_>, ReadError>> {
        match self {
            Self::Generator {
                generator,
                remaining,
                next_index,
                direct,
                buf,
                now_ms,
            } => {
                if *remaining == 0 {
                    return None;
                }
                let index = *next_index;
                if index % CLOCK_EVERY == 1 {
                    // (The token's check takes a lock: with the clock, not per event.)
                    if cancel.is_cancelled() {
                        return None;
                    }
                    *now_ms = chrono_now_ms();
                }
                *remaining -= 1;
                *next_index += 1;
                let origin = Origin::Generated(index);
                let Some(direct) = direct else {
                    let event = generator.next_event(*now_ms);
                    return Some(Ok(Item::Record(origin, event.value)));
                };
                buf.clear();
                buf.extend_from_slice(&direct.prefix);
                let key = generator.next_datum(*now_ms, buf);
                Some(Ok(Item::Encoded {
                    origin,
                    key: direct.keyed.then_some(key.as_bytes()),
                    payload: buf,
                }))
            }
            Self::Lines { rx, budget } => loop {
                if cancel.is_cancelled() {
                    return None;
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok((n, Ok(line)))) => {
                        budget.give(line.len());
                        return Some(Ok(Item::Line(n, line)));
                    }
                    Ok(Ok((n, Err(why)))) => return Some(Ok(Item::Invalid(Origin::Line(n), why))),
                    Ok(Err(e)) => return Some(Err(ReadError(e))),
                    Err(RecvTimeoutError::Disconnected) => return None,
                    Err(RecvTimeoutError::Timeout) if cancel.is_cancelled() => return None,
                    Err(RecvTimeoutError::Timeout) => idle(),
                }
            },
        }
    }
}

fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    tx: SyncSender<Read>,
    max_line: usize,
    budget: &Budget,
) {
    let mut n = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let (complete, too_long) = match read_capped(&mut reader, &mut line, max_line) {
            Ok(read) => read,
            Err(e) => {
                let e = std::io::Error::new(e.kind(), format!("line {}: {e}", n + 1));
                let _ = tx.send(Err(e));
                return;
            }
        };
        if !complete && line.is_empty() && too_long == 0 {
            return; // end of input
        }
        n += 1;
        let sent = if too_long > 0 {
            tx.send(Ok((
                n,
                Err(format!(
                    "the line is {too_long} bytes or more, over the event limit of {max_line} bytes (--max-event-bytes); skipped without reading it whole"
                )),
            )))
        } else {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match String::from_utf8(std::mem::take(&mut line)) {
                Ok(text) => {
                    budget.take(text.len());
                    tx.send(Ok((n, Ok(text))))
                }
                Err(_) => tx.send(Ok((n, Err("the line is not valid UTF-8".to_string())))),
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Read one line into `line`, keeping at most `max` bytes. Returns whether a newline ended
/// it, and, when it was longer than `max`, how many bytes it had (then `line` is emptied and
/// the rest of the line consumed without being kept).
fn read_capped(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(bool, usize)> {
    let mut seen = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            let too_long = if seen > max { seen } else { 0 };
            return Ok((false, too_long));
        }
        let (chunk, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let len = chunk.len();
        seen += len;
        if seen <= max.saturating_add(2) {
            line.extend_from_slice(chunk);
        } else {
            line.clear();
        }
        reader.consume(len);
        if ends {
            // The newline (and a CR before it) do not count against the limit.
            let content = seen
                - 1
                - usize::from(seen >= 2 && line.len() >= 2 && line[line.len() - 2] == b'\r');
            let too_long = if content > max { seen } else { 0 };
            if too_long > 0 {
                line.clear();
            }
            return Ok((true, too_long));
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
