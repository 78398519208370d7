//! What the consumer writes: one JSON line per event on stdout (or nothing, for
//! benchmarks). The writer is shared with the rebalance callback, which must flush it
//! before committing the offsets of revoked partitions.

use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use serde_json::{Map, Value as Json, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per event on stdout
    Json,
    /// Count only (benchmarks)
    None,
}

/// Where event lines go. Cloning shares the same writer.
#[derive(Clone)]
pub struct Output {
    format: OutputFormat,
    writer: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
}

impl Output {
    pub fn stdout(format: OutputFormat) -> Self {
        Self::new(format, Box::new(std::io::stdout()))
    }

    pub fn new(format: OutputFormat, sink: Box<dyn Write + Send>) -> Self {
        Self {
            format,
            writer: Arc::new(Mutex::new(BufWriter::with_capacity(1 << 16, sink))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<Box<dyn Write + Send>>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self, line: &Json) -> std::io::Result<()> {
        if self.format == OutputFormat::None {
            return Ok(());
        }
        let mut w = self.lock();
        serde_json::to_writer(&mut *w, line)?;
        w.write_all(b"\n")
    }

    /// Make everything written so far reach stdout; called before every commit.
    pub fn flush(&self) -> std::io::Result<()> {
        self.lock().flush()
    }
}

/// Text if it is UTF-8, else `{"base64": ...}`, so binary keys and headers survive.
fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => json!({ "base64": BASE64.encode(bytes) }),
    }
}

pub fn headers_json(message: &BorrowedMessage<'_>) -> Json {
    let mut map = Map::new();
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            map.insert(h.key.to_string(), h.value.map_or(Json::Null, bytes_json));
        }
    }
    Json::Object(map)
}

/// The `content-type` header, which marks Azure Schema Registry payloads.
pub fn content_type<'m>(message: &'m BorrowedMessage<'_>) -> Option<&'m str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case("content-type"))
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The envelope every line shares.
pub fn envelope(message: &BorrowedMessage<'_>) -> Map<String, Json> {
    let mut line = Map::new();
    line.insert("topic".into(), Json::String(message.topic().to_string()));
    line.insert("partition".into(), Json::from(message.partition()));
    line.insert("offset".into(), Json::from(message.offset()));
    line.insert(
        "timestamp".into(),
        message
            .timestamp()
            .to_millis()
            .map_or(Json::Null, Json::from),
    );
    line.insert("key".into(), message.key().map_or(Json::Null, bytes_json));
    line.insert("headers".into(), headers_json(message));
    line
}

pub fn raw_base64(message: &BorrowedMessage<'_>) -> Json {
    message
        .payload()
        .map_or(Json::Null, |p| Json::String(BASE64.encode(p)))
}
