//! What the consumer writes: one JSON line per event on stdout (or nothing, for
//! benchmarks). Lines are built as text in a reused buffer, straight from the message and
//! the decoder's JSON. The writer is shared with the rebalance callback, which must flush
//! it before committing the positions of revoked partitions.

use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use eventhubs_kafka::encoding::json_text::{integer, string as json_str};
use rdkafka::message::{BorrowedMessage, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per event on stdout
    Json,
    /// Count only (benchmarks)
    None,
}

/// Where consumed events go: JSON lines, Capture files, or the capture tables.
#[derive(Clone)]
pub(crate) enum Sink {
    Lines(Output),
    Capture(std::sync::Arc<crate::capture::CaptureSink>),
    Database(std::sync::Arc<crate::sink_db::DbSink>),
}

impl Sink {
    /// Make what was written durable (lines flushed; capture windows that are over, or
    /// all of them, written), advancing positions where the sink owns them.
    pub(crate) fn flush(
        &self,
        all: bool,
        positions: &crate::positions::Positions,
    ) -> std::io::Result<()> {
        match self {
            Self::Lines(output) => output.flush(),
            Self::Capture(capture) => capture.close(all, positions).map(|_| ()),
            Self::Database(db) => db
                .flush(positions)
                .map_err(|e| std::io::Error::other(format!("{e:#}"))),
        }
    }
}

/// Where event lines go. Cloning shares the same writer.
#[derive(Clone)]
pub(crate) struct Output {
    format: OutputFormat,
    writer: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
}

impl Output {
    pub(crate) fn stdout(format: OutputFormat) -> Self {
        Self::new(format, Box::new(std::io::stdout()))
    }

    pub(crate) fn new(format: OutputFormat, sink: Box<dyn Write + Send>) -> Self {
        Self {
            format,
            writer: Arc::new(Mutex::new(BufWriter::with_capacity(1 << 16, sink))),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.format != OutputFormat::None
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<Box<dyn Write + Send>>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write one complete line (ending in a newline).
    pub(crate) fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        self.lock().write_all(line)
    }

    /// Make everything written so far reach stdout; called before every commit.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

/// Text if it is UTF-8, else `{"base64": ...}`, so binary keys and headers survive.
fn json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => json_str(out, s),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            out.extend_from_slice(BASE64.encode(bytes).as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Start a line with the fields every line has, up to and including `"headers":{...}`;
/// the caller ends it with [`finish_decoded`] or [`finish_undecodable`].
pub(crate) fn start_line(
    out: &mut Vec<u8>,
    message: &BorrowedMessage<'_>,
    headers: &crate::headers::HeaderList<'_>,
) {
    out.clear();
    out.extend_from_slice(b"{\"topic\":");
    json_str(out, message.topic());
    out.extend_from_slice(b",\"partition\":");
    integer(out, message.partition());
    out.extend_from_slice(b",\"offset\":");
    integer(out, message.offset());
    out.extend_from_slice(b",\"timestamp\":");
    match message.timestamp().to_millis() {
        Some(ms) => integer(out, ms),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"key\":");
    match message.key() {
        Some(k) => json_bytes(out, k),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (key, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, key);
        out.push(b':');
        match value {
            Some(v) => json_bytes(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// `,"encoding":"…","value":<json>}` + newline.
pub(crate) fn finish_decoded(out: &mut Vec<u8>, encoding: &str, value: &[u8]) {
    out.extend_from_slice(b",\"encoding\":");
    json_str(out, encoding);
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(value);
    out.extend_from_slice(b"}\n");
}

/// `,"encoding":null,"error":"…","raw":"<base64>"}` + newline.
pub(crate) fn finish_undecodable(out: &mut Vec<u8>, error: &str, message: &BorrowedMessage<'_>) {
    out.extend_from_slice(b",\"encoding\":null,\"error\":");
    json_str(out, error);
    out.extend_from_slice(b",\"raw\":");
    match message.payload() {
        Some(p) => json_str(out, &BASE64.encode(p)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}
