//! Event Hubs Capture files: Avro object container files of
//! `Microsoft.ServiceBus.Messaging.EventData` records, one file per partition per window.
//!
//! The capture-loader (and anything else) reads them through [`read_capture`]: both schema
//! variants seen in the wild (the 2016 one has no `"null"` in the `Properties` value union),
//! the `null` and `deflate` codecs, any number of blocks, empty files. A truncated or corrupt
//! file, or one with a foreign schema, is an error saying what is wrong; never a panic.

mod fast;
pub mod path;
pub mod write;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::encoding::avro_json::Reader;
use crate::encoding::json_text;

/// The record Capture writes.
pub const RECORD_NAME: &str = "Microsoft.ServiceBus.Messaging.EventData";

/// One captured event.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureEvent {
    pub sequence_number: i64,
    /// The Event Hubs offset, a decimal string.
    pub offset: String,
    /// When the service enqueued the event: `x-opt-enqueued-time` (epoch ms) when present,
    /// else `EnqueuedTimeUtc` (.NET `M/d/yyyy h:mm:ss tt`, UTC, whole seconds).
    pub enqueued_time: DateTime<Utc>,
    /// `EnqueuedTimeUtc` as written.
    pub enqueued_time_utc: String,
    /// `x-opt-partition-key`, the partition key (for Kafka producers: the key).
    pub partition_key: Option<String>,
    /// Service-set properties; bytes values as `{"base64": …}`.
    pub system_properties: Map<String, Json>,
    /// Application properties (Kafka headers arrive here as bytes: UTF-8 text stays text).
    pub properties: Map<String, Json>,
    pub body: Option<Vec<u8>>,
}

/// A whole capture file.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureFile {
    pub events: Vec<CaptureEvent>,
    /// `null`, `deflate`, …, as the file header says.
    pub codec: String,
}

/// Why a capture file cannot be read. Says what is wrong, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("not an Avro container file, or its header is damaged: {0}")]
    NotAvro(String),
    #[error("not an Event Hubs Capture file: {0}")]
    ForeignSchema(String),
    #[error("damaged or truncated after {events} events: {reason}")]
    Damaged { events: usize, reason: String },
    #[error("event {index} (sequence number {sequence_number:?}): {reason}")]
    BadEvent {
        index: usize,
        sequence_number: Option<i64>,
        reason: String,
    },
}

/// Read a capture file held in memory.
pub fn read_capture(bytes: &[u8]) -> Result<CaptureFile, CaptureError> {
    let reader =
        apache_avro::Reader::new(bytes).map_err(|e| CaptureError::NotAvro(e.to_string()))?;
    check_schema(reader.writer_schema())?;
    let header = Header::read(bytes);
    let codec = header
        .as_ref()
        .map_or_else(|| "null".to_string(), Header::codec);
    // Capture's own layouts decode straight from the bytes; anything else through
    // apache-avro's values.
    if let Some(events) = header
        .as_ref()
        .and_then(|h| fast::read_events(bytes, h, reader.writer_schema()))
    {
        return Ok(CaptureFile {
            events: events?,
            codec,
        });
    }
    read_values(reader, codec)
}

/// [`read_capture`] through apache-avro's values for every file, whatever its layout: the
/// reference the direct reader is checked against.
pub fn read_capture_reference(bytes: &[u8]) -> Result<CaptureFile, CaptureError> {
    let reader =
        apache_avro::Reader::new(bytes).map_err(|e| CaptureError::NotAvro(e.to_string()))?;
    check_schema(reader.writer_schema())?;
    let codec = Header::read(bytes).map_or_else(|| "null".to_string(), |h| h.codec());
    read_values(reader, codec)
}

fn read_values(
    reader: apache_avro::Reader<'_, &[u8]>,
    codec: String,
) -> Result<CaptureFile, CaptureError> {
    let mut events = Vec::new();
    for (index, item) in reader.enumerate() {
        let value = item.map_err(|e| CaptureError::Damaged {
            events: index,
            reason: e.to_string(),
        })?;
        events.push(event_from(index, value)?);
    }
    Ok(CaptureFile { events, codec })
}

/// An Avro container header: `Obj\x01`, the metadata map ((string key, bytes value) pairs
/// in blocks ending with a zero count), the sync marker; the blocks follow.
struct Header {
    metadata: Vec<(String, Vec<u8>)>,
    sync: [u8; 16],
    /// Where the first block starts.
    data_start: usize,
}

impl Header {
    fn read(bytes: &[u8]) -> Option<Self> {
        const MAGIC: &[u8] = b"Obj\x01";
        let mut r = Reader::new(bytes.strip_prefix(MAGIC)?);
        let mut metadata = Vec::new();
        crate::encoding::avro_json::blocks(&mut r, |r| {
            let key = r.str()?.to_string();
            metadata.push((key, r.bytes()?.to_vec()));
            Ok(())
        })
        .ok()?;
        let sync = <[u8; 16]>::try_from(r.take(16).ok()?).ok()?;
        Some(Self {
            metadata,
            sync,
            data_start: bytes.len() - r.remaining(),
        })
    }

    /// The codec named in the header (`avro.codec`; absent means `null`).
    fn codec(&self) -> String {
        self.metadata
            .iter()
            .find(|(k, _)| k == "avro.codec")
            .map_or_else(
                || "null".into(),
                |(_, v)| String::from_utf8_lossy(v).into_owned(),
            )
    }
}

const REQUIRED: [&str; 6] = [
    "SequenceNumber",
    "Offset",
    "EnqueuedTimeUtc",
    "SystemProperties",
    "Properties",
    "Body",
];

fn check_schema(schema: &Schema) -> Result<(), CaptureError> {
    let Schema::Record(record) = schema else {
        return Err(CaptureError::ForeignSchema(
            "the file's schema is not a record".into(),
        ));
    };
    let name = record.name.fullname(None);
    if name != RECORD_NAME {
        return Err(CaptureError::ForeignSchema(format!(
            "its records are `{name}`, not `{RECORD_NAME}`"
        )));
    }
    for field in REQUIRED {
        if !record.fields.iter().any(|f| f.name == field) {
            return Err(CaptureError::ForeignSchema(format!(
                "`{RECORD_NAME}` has no `{field}` field"
            )));
        }
    }
    Ok(())
}

pub(crate) fn event_from(index: usize, value: Value) -> Result<CaptureEvent, CaptureError> {
    let Value::Record(fields) = value else {
        return Err(bad(index, None, "not a record"));
    };
    let mut raw = RawEvent::default();
    for (name, value) in fields {
        let value = unwrap_union(value);
        let sequence_number = raw.sequence_number;
        match name.as_str() {
            "SequenceNumber" => match value {
                Value::Long(n) => raw.sequence_number = Some(n),
                _ => return Err(bad(index, None, "SequenceNumber is not a long")),
            },
            "Offset" => {
                raw.offset = Some(
                    string(value)
                        .ok_or_else(|| bad(index, sequence_number, "Offset is not a string"))?,
                )
            }
            "EnqueuedTimeUtc" => {
                raw.enqueued_time_utc = Some(string(value).ok_or_else(|| {
                    bad(index, sequence_number, "EnqueuedTimeUtc is not a string")
                })?)
            }
            "SystemProperties" => raw.system_properties = map(value),
            "Properties" => raw.properties = map(value),
            "Body" => {
                raw.body = match value {
                    Value::Bytes(b) => Some(b),
                    Value::Null => None,
                    _ => return Err(bad(index, sequence_number, "Body is not bytes")),
                }
            }
            _ => {}
        }
    }
    raw.finish(index)
}

/// An event's fields as read from its record, by either reader.
#[derive(Default)]
struct RawEvent {
    sequence_number: Option<i64>,
    offset: Option<String>,
    enqueued_time_utc: Option<String>,
    system_properties: Map<String, Json>,
    properties: Map<String, Json>,
    body: Option<Vec<u8>>,
}

impl RawEvent {
    /// The event, its enqueue time and partition key taken from its properties.
    fn finish(self, index: usize) -> Result<CaptureEvent, CaptureError> {
        let Self {
            sequence_number,
            offset,
            enqueued_time_utc,
            system_properties,
            properties,
            body,
        } = self;
        let sequence_number =
            sequence_number.ok_or_else(|| bad(index, None, "no SequenceNumber"))?;
        let enqueued_time_utc = enqueued_time_utc.unwrap_or_default();
        let enqueued_time = match system_properties.get("x-opt-enqueued-time") {
            Some(Json::Number(ms)) => ms
                .as_i64()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| {
                    bad(
                        index,
                        Some(sequence_number),
                        "x-opt-enqueued-time is out of range",
                    )
                })?,
            _ => parse_dotnet_utc(&enqueued_time_utc).ok_or_else(|| {
                bad(
                    index,
                    Some(sequence_number),
                    &format!(
                        "EnqueuedTimeUtc `{enqueued_time_utc}` is not in M/d/yyyy h:mm:ss tt form"
                    ),
                )
            })?,
        };
        let partition_key = match system_properties.get("x-opt-partition-key") {
            Some(Json::String(s)) => Some(s.clone()),
            _ => None,
        };
        Ok(CaptureEvent {
            sequence_number,
            offset: offset.unwrap_or_default(),
            enqueued_time,
            enqueued_time_utc,
            partition_key,
            system_properties,
            properties,
            body,
        })
    }
}

fn bad(index: usize, sequence_number: Option<i64>, reason: &str) -> CaptureError {
    CaptureError::BadEvent {
        index,
        sequence_number,
        reason: reason.to_string(),
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

fn string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn map(value: Value) -> Map<String, Json> {
    let Value::Map(entries) = value else {
        return Map::new();
    };
    let mut keys: Vec<_> = entries.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.into_iter()
        .map(|(k, v)| (k, property_json(unwrap_union(v))))
        .collect()
}

/// Property values: numbers and strings as they are; bytes as text when they are UTF-8
/// (Kafka headers), else `{"base64": …}`.
fn property_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Long(n) => Json::from(n),
        Value::Int(n) => Json::from(n),
        Value::Double(f) => json_text::float_value(f),
        Value::Float(f) => json_text::float_value(f64::from(f)),
        Value::String(s) => Json::String(s),
        Value::Boolean(b) => Json::Bool(b),
        Value::Bytes(b) => json_text::text_or_base64(&b),
        other => crate::encoding::avro_to_json(&other),
    }
}

/// .NET's `M/d/yyyy h:mm:ss tt` in UTC, e.g. `10/16/2017 6:18:55 PM`.
pub fn parse_dotnet_utc(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), "%m/%d/%Y %I:%M:%S %p")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_times_parse_as_utc() {
        let t = parse_dotnet_utc("10/16/2017 6:18:55 PM").unwrap();
        assert_eq!(t.to_rfc3339(), "2017-10-16T18:18:55+00:00");
        let t = parse_dotnet_utc("1/2/2023 12:00:01 AM").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-01-02T00:00:01+00:00");
        assert!(parse_dotnet_utc("2017-10-16T18:18:55Z").is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"Obj", b"Obj\x01\x00\x00", b"{\"json\": true}"] {
            assert!(read_capture(bytes).is_err(), "{bytes:?}");
        }
    }
}
