//! Avro binary → JSON text in one pass, guided by the writer's schema.
//!
//! The consumer's hot path: no `Value` tree, no JSON tree, one output buffer. The JSON it
//! writes is the same as [`super::avro_to_json`] of the decoded value (unions unwrapped,
//! timestamps as RFC 3339, UUIDs as strings, bytes as base64), which the tests check
//! against apache-avro's own decoder.

use std::io::Write;

use apache_avro::Schema;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::json_avro::CompiledSchema;

/// Why a datum could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Nesting beyond this is refused (the telemetry schema nests 4 deep).
const MAX_DEPTH: usize = 64;
/// Items of zero bytes accepted in one block beyond one per remaining byte.
const MAX_EMPTY_ITEMS: u64 = 4096;

fn err(message: impl Into<String>) -> ReadError {
    ReadError(message.into())
}

/// Avro binary primitives over a byte slice (also used for container headers).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| err(format!("truncated: needed {n} bytes at byte {}", self.pos)))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn long(&mut self) -> Result<i64, ReadError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| err(format!("truncated: a number at byte {}", self.pos)))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(err(format!(
            "a number longer than 10 bytes at byte {}",
            self.pos
        )))
    }

    pub(crate) fn double(&mut self) -> Result<f64, ReadError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(a))
    }

    fn len(&mut self) -> Result<usize, ReadError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| err(format!("negative length {n}")))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.len()?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, ReadError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| err("a string that is not UTF-8"))
    }
}

impl CompiledSchema {
    /// Decode one datum of this schema from `datum` and append it to `out` as JSON. The whole
    /// input must be one datum: bytes left over are an error.
    pub fn datum_to_json(&self, datum: &[u8], out: &mut Vec<u8>) -> Result<(), ReadError> {
        let mut reader = Reader::new(datum);
        self.write_json(&self.schema, &mut reader, out, 0)?;
        if reader.pos != datum.len() {
            return Err(err(format!(
                "{} bytes left over after the datum",
                datum.len() - reader.pos
            )));
        }
        Ok(())
    }

    fn write_json(
        &self,
        schema: &Schema,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ReadError> {
        // Recursive schemas with deep data would otherwise overflow the stack.
        if depth > MAX_DEPTH {
            return Err(err(format!(
                "the datum nests deeper than {MAX_DEPTH} levels"
            )));
        }
        let depth = depth + 1;
        match schema {
            Schema::Null => out.extend_from_slice(b"null"),
            Schema::Boolean => match r.take(1)?[0] {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                b => return Err(err(format!("boolean byte {b}"))),
            },
            Schema::Int | Schema::Long | Schema::TimeMillis | Schema::TimeMicros => {
                number(out, r.long()?)
            }
            Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => number(out, r.long()?),
            Schema::Float => {
                let b = r.take(4)?;
                float(out, f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            }
            Schema::Double => float(out, r.double()?),
            Schema::String | Schema::Uuid(apache_avro::schema::UuidSchema::String) => {
                string(out, r.str()?)
            }
            Schema::Uuid(_) => {
                let bytes = r.take(16)?;
                let uuid = uuid::Uuid::from_slice(bytes).map_err(|_| err("bad uuid"))?;
                string(out, &uuid.to_string());
            }
            Schema::Bytes | Schema::Decimal(_) | Schema::BigDecimal => {
                let b = r.bytes()?;
                string(out, &BASE64.encode(b));
            }
            Schema::Fixed(f) => {
                let b = r.take(f.size)?;
                string(out, &BASE64.encode(b));
            }
            Schema::Duration(_) => {
                let b = r.take(12)?;
                let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let _ = write!(
                    out,
                    "{{\"months\":{},\"days\":{},\"millis\":{}}}",
                    part(0),
                    part(4),
                    part(8)
                );
            }
            Schema::Date => {
                let days = r.long()?;
                match json_text::date(days) {
                    Some(d) => string(out, &d),
                    None => number(out, days),
                }
            }
            Schema::TimestampMillis => json_text::timestamp(out, r.long()?, TimeUnit::Millis),
            Schema::TimestampMicros => json_text::timestamp(out, r.long()?, TimeUnit::Micros),
            Schema::TimestampNanos => json_text::timestamp(out, r.long()?, TimeUnit::Nanos),
            Schema::Enum(e) => {
                let i = r.long()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| err(format!("enum index {i} out of range")))?;
                string(out, symbol);
            }
            Schema::Union(u) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| err(format!("union index {i} out of range")))?;
                self.write_json(branch, r, out, depth)?;
            }
            Schema::Array(a) => {
                out.push(b'[');
                let mut first = true;
                blocks(r, |r| {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    self.write_json(&a.items, r, out, depth)
                })?;
                out.push(b']');
            }
            Schema::Map(m) => {
                out.push(b'{');
                let mut first = true;
                blocks(r, |r| {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    string(out, r.str()?);
                    out.push(b':');
                    self.write_json(&m.types, r, out, depth)
                })?;
                out.push(b'}');
            }
            Schema::Record(rec) => {
                out.push(b'{');
                for (i, field) in rec.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if self.plain_field_names {
                        out.push(b'"');
                        out.extend_from_slice(field.name.as_bytes());
                        out.extend_from_slice(b"\":");
                    } else {
                        string(out, &field.name);
                        out.push(b':');
                    }
                    self.write_json(&field.schema, r, out, depth)?;
                }
                out.push(b'}');
            }
            Schema::Ref { name } => {
                let target = self
                    .named(name)
                    .ok_or_else(|| err(format!("unknown type {name}")))?;
                self.write_json(target, r, out, depth)?;
            }
        }
        Ok(())
    }
}

/// Array and map blocks: a count, negative when a byte size follows, until a zero count.
/// Counts that cannot fit in the bytes left are refused before any item is read.
pub(crate) fn blocks(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    loop {
        let count = r.long()?;
        if count == 0 {
            return Ok(());
        }
        // Items of zero bytes (nulls) would let a few bytes declare 2^63 of them.
        let remaining = r.remaining() as u64;
        if count.unsigned_abs() > remaining.saturating_add(MAX_EMPTY_ITEMS) {
            return Err(err(format!(
                "a block of {} items in {remaining} bytes",
                count.unsigned_abs()
            )));
        }
        if count < 0 {
            r.long()?; // block size in bytes, not needed when reading every item
        }
        for _ in 0..count.unsigned_abs() {
            item(r)?;
        }
    }
}

use super::json_text::{self, TimeUnit, float, integer as number, string};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::avro_to_json;
    use crate::schemas;
    use crate::telemetry::Generator;
    use std::sync::Arc;

    /// The fast path writes exactly what apache-avro's decoder plus `avro_to_json` give.
    #[test]
    fn matches_apache_avro_on_generated_telemetry() {
        let schema = Arc::new(CompiledSchema::parse(schemas::TELEMETRY).unwrap());
        let mut generator = Generator::new(13, 3);
        for i in 0..500 {
            let value = generator.next_event(1_700_000_000_000 + i).value;
            let datum = crate::encoding::tests::apache_encode(&schema.schema, &value);
            let mut out = Vec::new();
            schema.datum_to_json(&datum, &mut out).unwrap();
            let fast: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(fast, avro_to_json(&value));
        }
    }

    /// Avro's zig-zag varint of `n`.
    fn varint(n: i64) -> Vec<u8> {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn hostile_datums_are_errors_never_panics_or_stalls() {
        // A date billions of years away: a number, not a panic in chrono.
        let date = CompiledSchema::parse(r#"{"type":"int","logicalType":"date"}"#).unwrap();
        let mut out = Vec::new();
        date.datum_to_json(&varint(i64::MAX / 4), &mut out).unwrap();
        assert_eq!(out, (i64::MAX / 4).to_string().as_bytes());

        // A recursive schema with data nested 100,000 deep: refused, not a stack overflow.
        let list = CompiledSchema::parse(
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
        )
        .unwrap();
        let mut deep = vec![2u8; 100_000]; // union branch 1 ("Node"), again and again
        deep.push(0); // then null
        let e = list.datum_to_json(&deep, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("deeper than"), "{e}");
        // Nesting within the limit still decodes.
        let mut shallow = vec![2u8; 20];
        shallow.push(0);
        list.datum_to_json(&shallow, &mut Vec::new()).unwrap();

        // 2^62 nulls declared in a few bytes: refused at once.
        let nulls = CompiledSchema::parse(r#"{"type":"array","items":"null"}"#).unwrap();
        let started = std::time::Instant::now();
        let e = nulls
            .datum_to_json(&varint(1 << 62), &mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("items in"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A real array of nulls is fine.
        let mut few = varint(3);
        few.push(0);
        nulls.datum_to_json(&few, &mut out).unwrap();
    }

    #[test]
    fn covers_every_type_the_writer_can_produce() {
        let text = r#"{"type":"record","name":"All","namespace":"t","fields":[
            {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
            {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
            {"name":"by","type":"bytes"},{"name":"s","type":"string"},
            {"name":"fx","type":{"type":"fixed","name":"F","size":3}},
            {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
            {"name":"a","type":{"type":"array","items":"long"}},
            {"name":"m","type":{"type":"map","values":["null","string"]}},
            {"name":"u","type":["null","E"]},
            {"name":"date","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"nested","type":{"type":"record","name":"In","fields":[{"name":"x","type":"F"}]}}
        ]}"#;
        let schema = CompiledSchema::parse(text).unwrap();
        let json = serde_json::json!({
            "n": null, "b": true, "i": -5, "l": 1i64 << 40, "f": 1.5, "d": -2.25,
            "by": "AAEC", "s": "é\"\n", "fx": "AQID", "e": "B", "a": [1, -2, 300],
            "m": {"k": "v", "z": null}, "u": "A", "date": "2026-11-22",
            "tm": "2026-11-22T08:00:00.000001Z", "nested": {"x": "BAUG"},
        });
        let value = schema.json_to_avro(&json).unwrap();
        let datum = crate::encoding::tests::apache_encode(&schema.schema, &value);
        let mut out = Vec::new();
        schema.datum_to_json(&datum, &mut out).unwrap();
        let fast: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(fast, avro_to_json(&value));
        assert_eq!(fast, json);

        let mut out = Vec::new();
        assert!(
            schema
                .datum_to_json(&datum[..datum.len() - 1], &mut out)
                .is_err()
        );
        let mut longer = datum.clone();
        longer.push(0);
        let e = schema.datum_to_json(&longer, &mut Vec::new()).unwrap_err();
        assert_eq!(e.0, "1 bytes left over after the datum");
    }
}
