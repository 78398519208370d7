//! Avro value → binary, guided by the schema, without re-resolving the schema per event
//! (apache-avro's writers build a name table on every call: the producer's hot path).
//! A value that does not match the schema is an error, never unreadable bytes.

use apache_avro::Schema;
use apache_avro::types::Value;

use super::json_avro::CompiledSchema;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value does not match the schema at `{0}`")]
pub struct WriteError(pub String);

/// Avro's `long` (and `int`): zig-zag, then base-128 varint.
pub(crate) fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro's `bytes` and `string`: the length, then the bytes.
pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

impl CompiledSchema {
    /// Append the Avro binary encoding of `value` to `out`.
    pub fn write_datum(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), WriteError> {
        self.write(&self.schema, value, out, "")
    }

    fn write(
        &self,
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
        path: &str,
    ) -> Result<(), WriteError> {
        let mismatch = || {
            WriteError(if path.is_empty() {
                "(the event)".into()
            } else {
                path.to_string()
            })
        };
        match (schema, value) {
            (Schema::Ref { name }, _) => {
                let target = self.named(name).ok_or_else(mismatch)?;
                return self.write(target, value, out, path);
            }
            (Schema::Union(u), Value::Union(i, inner)) => {
                let branch = u.variants().get(*i as usize).ok_or_else(mismatch)?;
                long(out, i64::from(*i));
                return self.write(branch, inner, out, path);
            }
            (Schema::Null, Value::Null) => {}
            (Schema::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
            (Schema::Int, Value::Int(n))
            | (Schema::Date, Value::Date(n))
            | (Schema::TimeMillis, Value::TimeMillis(n)) => long(out, i64::from(*n)),
            (Schema::Long, Value::Long(n))
            | (Schema::TimeMicros, Value::TimeMicros(n))
            | (Schema::TimestampMillis, Value::TimestampMillis(n))
            | (Schema::TimestampMicros, Value::TimestampMicros(n))
            | (Schema::TimestampNanos, Value::TimestampNanos(n))
            | (Schema::LocalTimestampMillis, Value::LocalTimestampMillis(n))
            | (Schema::LocalTimestampMicros, Value::LocalTimestampMicros(n))
            | (Schema::LocalTimestampNanos, Value::LocalTimestampNanos(n)) => long(out, *n),
            (Schema::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
            (Schema::Double, Value::Double(f)) => out.extend_from_slice(&f.to_le_bytes()),
            (Schema::Bytes, Value::Bytes(b)) => bytes(out, b),
            (Schema::String, Value::String(s)) => bytes(out, s.as_bytes()),
            (Schema::Uuid(apache_avro::schema::UuidSchema::String), Value::Uuid(u)) => bytes(
                out,
                u.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .as_bytes(),
            ),
            (Schema::Uuid(apache_avro::schema::UuidSchema::String), Value::String(s)) => {
                bytes(out, s.as_bytes())
            }
            (Schema::Uuid(_), Value::Uuid(u)) => out.extend_from_slice(u.as_bytes()),
            (Schema::Fixed(f), Value::Fixed(size, b)) if *size == f.size && b.len() == f.size => {
                out.extend_from_slice(b)
            }
            (Schema::Enum(e), Value::Enum(i, symbol)) => {
                if e.symbols.get(*i as usize) != Some(symbol) {
                    return Err(mismatch());
                }
                long(out, i64::from(*i));
            }
            (Schema::Array(a), Value::Array(items)) => {
                if !items.is_empty() {
                    long(out, items.len() as i64);
                    for item in items {
                        self.write(&a.items, item, out, path)?;
                    }
                }
                out.push(0);
            }
            (Schema::Map(m), Value::Map(entries)) => {
                if !entries.is_empty() {
                    long(out, entries.len() as i64);
                    for (k, v) in entries {
                        bytes(out, k.as_bytes());
                        self.write(&m.types, v, out, path)?;
                    }
                }
                out.push(0);
            }
            (Schema::Record(r), Value::Record(fields)) => {
                if fields.len() != r.fields.len() {
                    return Err(mismatch());
                }
                for (i, field) in r.fields.iter().enumerate() {
                    // Values built from the schema have their fields in schema order.
                    let v = match fields.get(i) {
                        Some((name, v)) if *name == field.name => v,
                        _ => {
                            &fields
                                .iter()
                                .find(|(n, _)| *n == field.name)
                                .ok_or_else(mismatch)?
                                .1
                        }
                    };
                    let child = if path.is_empty() {
                        field.name.clone()
                    } else {
                        format!("{path}.{}", field.name)
                    };
                    self.write(&field.schema, v, out, &child)?;
                }
            }
            (Schema::Decimal(_), Value::Decimal(d)) => {
                let b = <Vec<u8>>::try_from(d).map_err(|_| mismatch())?;
                bytes(out, &b);
            }
            (Schema::Duration(_), Value::Duration(d)) => {
                out.extend_from_slice(&u32::from(d.months()).to_le_bytes());
                out.extend_from_slice(&u32::from(d.days()).to_le_bytes());
                out.extend_from_slice(&u32::from(d.millis()).to_le_bytes());
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas;
    use crate::telemetry::Generator;

    #[test]
    fn writes_the_same_bytes_as_apache_avro() {
        let schema = CompiledSchema::parse(schemas::TELEMETRY).unwrap();
        let mut generator = Generator::new(9, 11);
        for i in 0..300 {
            let value = generator.next_event(1_700_000_000_000 + i).value;
            let mut ours = Vec::new();
            schema.write_datum(&value, &mut ours).unwrap();
            // Maps may be written in any order; decode both and compare.
            let theirs = crate::encoding::tests::apache_encode(&schema.schema, &value);
            let decode = |b: &[u8]| {
                let mut out = Vec::new();
                schema.datum_to_json(b, &mut out).unwrap();
                serde_json::from_slice::<serde_json::Value>(&out).unwrap()
            };
            assert_eq!(decode(&ours), decode(&theirs));
            assert_eq!(ours.len(), theirs.len());
        }
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_an_error() {
        let schema = CompiledSchema::parse(schemas::TELEMETRY).unwrap();
        let wrong = Value::Record(vec![("event_id".into(), Value::Long(1))]);
        assert!(schema.write_datum(&wrong, &mut Vec::new()).is_err());
    }
}
