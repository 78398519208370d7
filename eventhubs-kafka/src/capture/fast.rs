//! Capture's records decoded straight from the file's bytes: no `Value` tree per event, no
//! field names allocated per record. Used when the writer schema is laid out as Capture
//! writes it (both variants: `Properties` values with or without `"null"`) and the codec is
//! `null` or `deflate`; anything else goes through apache-avro ([`super::read_capture`]).
//! The same events come out either way (tested on Azure's files and on written variants);
//! damaged bytes are errors, never panics.

use std::borrow::Cow;

use apache_avro::Schema;
use serde_json::{Map, Value as Json};

use super::{CaptureError, CaptureEvent, Header};
use crate::encoding::avro_json::{ReadError, Reader, blocks};
use crate::encoding::json_text;

/// A block may inflate to this much at most (a Capture block holds a few MB).
const MAX_INFLATED_BLOCK: usize = 1 << 30;

/// One field of the writer's record, in the writer's order.
enum Field {
    SequenceNumber,
    Offset,
    EnqueuedTimeUtc,
    SystemProperties(Vec<Branch>),
    Properties(Vec<Branch>),
    Body,
}

/// A branch of a property value union.
#[derive(Clone, Copy)]
enum Branch {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Bytes,
}

/// The events of a Capture file, or `None` when its schema or codec is not one this reader
/// knows (then apache-avro reads it).
pub(super) fn read_events(
    bytes: &[u8],
    header: &Header,
    schema: &Schema,
) -> Option<Result<Vec<CaptureEvent>, CaptureError>> {
    let inflate = match header.codec().as_str() {
        "null" => false,
        "deflate" => true,
        _ => return None,
    };
    let fields = plan(schema)?;
    Some(read_blocks(
        bytes.get(header.data_start..)?,
        &header.sync,
        inflate,
        &fields,
    ))
}

fn plan(schema: &Schema) -> Option<Vec<Field>> {
    let Schema::Record(record) = schema else {
        return None;
    };
    record
        .fields
        .iter()
        .map(|f| match (f.name.as_str(), &f.schema) {
            ("SequenceNumber", Schema::Long) => Some(Field::SequenceNumber),
            ("Offset", Schema::String) => Some(Field::Offset),
            ("EnqueuedTimeUtc", Schema::String) => Some(Field::EnqueuedTimeUtc),
            ("SystemProperties", Schema::Map(m)) => branches(&m.types).map(Field::SystemProperties),
            ("Properties", Schema::Map(m)) => branches(&m.types).map(Field::Properties),
            ("Body", Schema::Union(u)) if matches!(u.variants(), [Schema::Null, Schema::Bytes]) => {
                Some(Field::Body)
            }
            _ => None,
        })
        .collect()
}

fn branches(schema: &Schema) -> Option<Vec<Branch>> {
    let Schema::Union(union) = schema else {
        return None;
    };
    union
        .variants()
        .iter()
        .map(|v| {
            Some(match v {
                Schema::Null => Branch::Null,
                Schema::Boolean => Branch::Boolean,
                Schema::Int => Branch::Int,
                Schema::Long => Branch::Long,
                Schema::Float => Branch::Float,
                Schema::Double => Branch::Double,
                Schema::String => Branch::String,
                Schema::Bytes => Branch::Bytes,
                _ => return None,
            })
        })
        .collect()
}

/// The container's blocks: a count, a size, the (maybe deflated) data, the sync marker.
fn read_blocks(
    data: &[u8],
    sync: &[u8; 16],
    inflate: bool,
    fields: &[Field],
) -> Result<Vec<CaptureEvent>, CaptureError> {
    let mut r = Reader::new(data);
    let mut events = Vec::new();
    while r.remaining() > 0 {
        let damaged = |events: &Vec<CaptureEvent>, reason: String| CaptureError::Damaged {
            events: events.len(),
            reason,
        };
        let (count, block) = match block(&mut r, sync) {
            Ok(b) => b,
            Err(e) => return Err(damaged(&events, e.0)),
        };
        let block: Cow<'_, [u8]> = if inflate {
            match miniz_oxide::inflate::decompress_to_vec_with_limit(block, MAX_INFLATED_BLOCK) {
                Ok(inflated) => Cow::Owned(inflated),
                Err(e) => return Err(damaged(&events, format!("a block does not inflate: {e}"))),
            }
        } else {
            Cow::Borrowed(block)
        };
        // Every event takes a byte at least: a count beyond the block's bytes is a lie.
        if count > block.len() as u64 {
            return Err(damaged(
                &events,
                format!("a block of {count} events in {} bytes", block.len()),
            ));
        }
        let mut d = Reader::new(&block);
        for _ in 0..count {
            let index = events.len();
            let event = event(&mut d, fields).map_err(|e| damaged(&events, e.0))?;
            events.push(event.finish(index)?);
        }
    }
    Ok(events)
}

/// One block's event count and data, its sync marker checked.
fn block<'a>(r: &mut Reader<'a>, sync: &[u8; 16]) -> Result<(u64, &'a [u8]), ReadError> {
    let count = r.long()?;
    let size = r.long()?;
    let (Ok(count), Ok(size)) = (u64::try_from(count), usize::try_from(size)) else {
        return Err(ReadError(format!(
            "a block of {count} events and {size} bytes"
        )));
    };
    let data = r.take(size)?;
    if r.take(16)? != sync {
        return Err(ReadError(
            "a block's sync marker does not match the file's".into(),
        ));
    }
    Ok((count, data))
}

/// An event's fields as read, before the checks every reader makes.
fn event(r: &mut Reader<'_>, fields: &[Field]) -> Result<super::RawEvent, ReadError> {
    let mut raw = super::RawEvent::default();
    for field in fields {
        match field {
            Field::SequenceNumber => raw.sequence_number = Some(r.long()?),
            Field::Offset => raw.offset = Some(r.str()?.to_string()),
            Field::EnqueuedTimeUtc => raw.enqueued_time_utc = Some(r.str()?.to_string()),
            Field::SystemProperties(branches) => raw.system_properties = map(r, branches)?,
            Field::Properties(branches) => raw.properties = map(r, branches)?,
            Field::Body => {
                raw.body = match r.long()? {
                    0 => None,
                    1 => Some(r.bytes()?.to_vec()),
                    i => return Err(ReadError(format!("Body's union index {i}"))),
                }
            }
        }
    }
    Ok(raw)
}

/// A property map, keys sorted (a key given twice keeps its last value, as apache-avro's
/// map does).
fn map(r: &mut Reader<'_>, branches: &[Branch]) -> Result<Map<String, Json>, ReadError> {
    let mut entries: Vec<(String, Json)> = Vec::new();
    blocks(r, |r| {
        let key = r.str()?.to_string();
        let value = property(r, branches)?;
        entries.push((key, value));
        Ok(())
    })?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries.into_iter().collect())
}

/// A property value as [`super::property_json`] gives it.
fn property(r: &mut Reader<'_>, branches: &[Branch]) -> Result<Json, ReadError> {
    let i = r.long()?;
    let branch = usize::try_from(i)
        .ok()
        .and_then(|i| branches.get(i))
        .ok_or_else(|| ReadError(format!("a property's union index {i}")))?;
    Ok(match branch {
        Branch::Null => Json::Null,
        Branch::Boolean => match r.take(1)?[0] {
            0 => Json::Bool(false),
            1 => Json::Bool(true),
            b => return Err(ReadError(format!("boolean byte {b}"))),
        },
        Branch::Int => {
            let n = r.long()?;
            Json::from(i32::try_from(n).map_err(|_| ReadError(format!("int {n} out of range")))?)
        }
        Branch::Long => Json::from(r.long()?),
        Branch::Float => {
            let b = r.take(4)?;
            json_text::float_value(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }
        Branch::Double => json_text::float_value(r.double()?),
        Branch::String => Json::String(r.str()?.to_string()),
        Branch::Bytes => json_text::text_or_base64(r.bytes()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both of Capture's schemas (the 2016 one has no "null" among the property values) are
    /// read here, not left to apache-avro; other layouts are.
    #[test]
    fn capture_layouts_are_planned_and_others_are_not() {
        let legacy = crate::capture::write::SCHEMA.replace(r#""bytes","null"]"#, r#""bytes"]"#);
        assert_ne!(legacy, crate::capture::write::SCHEMA);
        for text in [crate::capture::write::SCHEMA, legacy.as_str()] {
            assert!(plan(&Schema::parse_str(text).unwrap()).is_some(), "{text}");
        }
        let body_first =
            crate::capture::write::SCHEMA.replace(r#"["null","bytes"]"#, r#"["bytes","null"]"#);
        let extra = crate::capture::write::SCHEMA.replace(
            r#"{"name":"Body""#,
            r#"{"name":"Extra","type":"int"},{"name":"Body""#,
        );
        for text in [body_first, extra] {
            assert!(plan(&Schema::parse_str(&text).unwrap()).is_none(), "{text}");
        }
    }

    /// A file the tools write is read here, with the same events as through apache-avro.
    #[test]
    fn written_files_are_read_directly_with_the_same_events() {
        use crate::capture::write::{CapturedRecord, encode_capture};
        let records: Vec<CapturedRecord> = (0..50)
            .map(|i| CapturedRecord {
                sequence_number: i,
                offset: (i * 100).to_string(),
                enqueued_time: chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + i)
                    .unwrap(),
                partition_key: (i % 3 == 0).then(|| format!("sensor-{i}")),
                kafka_key: (i % 5 == 0).then(|| vec![0xfe, i as u8]),
                properties: vec![
                    ("content-type".into(), Some(b"application/json".to_vec())),
                    ("binary".into(), Some(vec![0xff, 0x00, i as u8])),
                    ("empty".into(), None),
                ],
                body: (i % 7 != 0).then(|| format!("{{\"n\":{i}}}").into_bytes()),
            })
            .collect();
        let bytes = encode_capture(&records).unwrap();
        let header = super::super::Header::read(&bytes).unwrap();
        let schema = Schema::parse_str(crate::capture::write::SCHEMA).unwrap();
        let direct = read_events(&bytes, &header, &schema)
            .expect("Capture's layout is read directly")
            .unwrap();
        let reference = crate::capture::read_capture_reference(&bytes)
            .unwrap()
            .events;
        assert_eq!(direct.len(), 50);
        assert_eq!(direct, reference);
    }
}
