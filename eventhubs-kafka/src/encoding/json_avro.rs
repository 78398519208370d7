//! JSON ↔ Avro values, guided by the schema.
//!
//! Input JSON is validated strictly against the value schema (unknown fields, missing
//! required fields, out-of-range numbers and bad logical values are errors that name the
//! field), because a line that does not fit the schema must be rejected before it is sent.
//! Output JSON is what a person or `jq` wants: unions unwrapped, timestamps as RFC 3339,
//! UUIDs as strings, bytes as base64.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate};
use serde_json::Value as Json;

use super::json_text::{self, TimeUnit};

/// A parsed schema with its named types, ready for conversions.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    pub schema: Schema,
    names: HashMap<Name, Schema>,
    /// Every record field name is letters, digits and underscores (as the Avro specification
    /// requires and apache-avro's parser checks): written into JSON without escaping.
    pub(crate) plain_field_names: bool,
}

impl CompiledSchema {
    pub fn new(schema: Schema) -> Result<Self, apache_avro::Error> {
        let names = ResolvedSchema::try_from(&schema)?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect::<HashMap<_, _>>();
        // Every record is named, so every record is among the names.
        let plain_field_names = names.values().all(|s| match s {
            Schema::Record(r) => r.fields.iter().all(|f| {
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }),
            _ => true,
        });
        Ok(Self {
            schema,
            names,
            plain_field_names,
        })
    }

    pub fn parse(text: &str) -> Result<Self, apache_avro::Error> {
        Self::new(Schema::parse_str(text)?)
    }

    /// Convert JSON to an Avro value of this schema, or say which field is wrong and why.
    pub fn json_to_avro(&self, json: &Json) -> Result<Value, ConversionError> {
        let mut path = Vec::new();
        self.convert(json, &self.schema, &mut path)
    }

    /// A named type (record, enum, fixed) of this schema.
    pub fn named(&self, name: &Name) -> Option<&Schema> {
        self.names.get(name)
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(name).unwrap_or(schema),
            other => other,
        }
    }

    fn convert(
        &self,
        json: &Json,
        schema: &Schema,
        path: &mut Vec<String>,
    ) -> Result<Value, ConversionError> {
        let schema = self.resolve(schema);
        let fail = |path: &Vec<String>, expected: &str| ConversionError {
            path: display_path(path),
            reason: format!("expected {expected}, got {}", describe(json)),
        };
        Ok(match schema {
            Schema::Null => match json {
                Json::Null => Value::Null,
                _ => return Err(fail(path, "null")),
            },
            Schema::Boolean => {
                Value::Boolean(json.as_bool().ok_or_else(|| fail(path, "a boolean"))?)
            }
            Schema::Int => {
                let n = json.as_i64().ok_or_else(|| fail(path, "an integer"))?;
                Value::Int(i32::try_from(n).map_err(|_| fail(path, "an integer within 32 bits"))?)
            }
            Schema::Long => Value::Long(json.as_i64().ok_or_else(|| fail(path, "an integer"))?),
            Schema::Float => {
                Value::Float(json.as_f64().ok_or_else(|| fail(path, "a number"))? as f32)
            }
            Schema::Double => Value::Double(json.as_f64().ok_or_else(|| fail(path, "a number"))?),
            Schema::String => Value::String(
                json.as_str()
                    .ok_or_else(|| fail(path, "a string"))?
                    .to_string(),
            ),
            Schema::Bytes => {
                Value::Bytes(decode_base64(json).ok_or_else(|| fail(path, "a base64 string"))?)
            }
            Schema::Fixed(f) => {
                let bytes = decode_base64(json).ok_or_else(|| fail(path, "a base64 string"))?;
                if bytes.len() != f.size {
                    return Err(fail(path, &format!("{} bytes (base64)", f.size)));
                }
                Value::Fixed(f.size, bytes)
            }
            Schema::Uuid(_) => {
                let text = json.as_str().ok_or_else(|| fail(path, "a UUID string"))?;
                Value::Uuid(uuid::Uuid::parse_str(text).map_err(|_| fail(path, "a UUID string"))?)
            }
            Schema::Date => match json {
                Json::String(s) => {
                    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map_err(|_| fail(path, "a date YYYY-MM-DD"))?;
                    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                    Value::Date((date - epoch).num_days() as i32)
                }
                _ => Value::Date(
                    json.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| fail(path, "a date YYYY-MM-DD or days since 1970"))?,
                ),
            },
            Schema::TimeMillis => Value::TimeMillis(
                json.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| fail(path, "milliseconds after midnight"))?,
            ),
            Schema::TimeMicros => Value::TimeMicros(
                json.as_i64()
                    .ok_or_else(|| fail(path, "microseconds after midnight"))?,
            ),
            Schema::TimestampMillis => Value::TimestampMillis(
                timestamp(json, 1_000)
                    .ok_or_else(|| fail(path, "an RFC 3339 time or epoch milliseconds"))?,
            ),
            Schema::TimestampMicros => Value::TimestampMicros(
                timestamp(json, 1_000_000)
                    .ok_or_else(|| fail(path, "an RFC 3339 time or epoch microseconds"))?,
            ),
            Schema::TimestampNanos => Value::TimestampNanos(
                timestamp(json, 1_000_000_000)
                    .ok_or_else(|| fail(path, "an RFC 3339 time or epoch nanoseconds"))?,
            ),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(
                json.as_i64()
                    .ok_or_else(|| fail(path, "epoch milliseconds"))?,
            ),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(
                json.as_i64()
                    .ok_or_else(|| fail(path, "epoch microseconds"))?,
            ),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(
                json.as_i64()
                    .ok_or_else(|| fail(path, "epoch nanoseconds"))?,
            ),
            Schema::Enum(e) => {
                let symbol = json.as_str().ok_or_else(|| fail(path, "an enum symbol"))?;
                let index = e
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .ok_or_else(|| fail(path, &format!("one of {:?}", e.symbols)))?;
                Value::Enum(index as u32, symbol.to_string())
            }
            Schema::Array(a) => {
                let items = json.as_array().ok_or_else(|| fail(path, "an array"))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    out.push(self.convert(item, &a.items, path)?);
                    path.pop();
                }
                Value::Array(out)
            }
            Schema::Map(m) => {
                let object = json.as_object().ok_or_else(|| fail(path, "an object"))?;
                let mut out = HashMap::with_capacity(object.len());
                for (k, v) in object {
                    path.push(k.clone());
                    out.insert(k.clone(), self.convert(v, &m.types, path)?);
                    path.pop();
                }
                Value::Map(out)
            }
            Schema::Record(r) => {
                let object = json.as_object().ok_or_else(|| fail(path, "an object"))?;
                if let Some(unknown) = object
                    .keys()
                    .find(|k| !r.fields.iter().any(|f| &f.name == *k))
                {
                    path.push(unknown.clone());
                    let known: Vec<_> = r.fields.iter().map(|f| f.name.as_str()).collect();
                    let err = ConversionError {
                        path: display_path(path),
                        reason: format!("unknown field; {} has {}", r.name, known.join(", ")),
                    };
                    return Err(err);
                }
                let mut fields = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    path.push(field.name.clone());
                    let value = match (object.get(&field.name), &field.default) {
                        (Some(v), _) => self.convert(v, &field.schema, path)?,
                        (None, Some(default)) => {
                            self.convert_default(default, &field.schema, path)?
                        }
                        (None, None) => {
                            return Err(ConversionError {
                                path: display_path(path),
                                reason: "required field is missing".into(),
                            });
                        }
                    };
                    path.pop();
                    fields.push((field.name.clone(), value));
                }
                Value::Record(fields)
            }
            Schema::Union(u) => self.convert_union(json, u.variants(), path)?,
            Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration(_) => {
                return Err(ConversionError {
                    path: display_path(path),
                    reason: "decimal and duration fields cannot be given as JSON input".into(),
                });
            }
            Schema::Ref { name } => {
                return Err(ConversionError {
                    path: display_path(path),
                    reason: format!("the schema refers to an unknown type {name}"),
                });
            }
        })
    }

    /// A field default: for a union it is a value of the first branch (Avro spec).
    fn convert_default(
        &self,
        default: &Json,
        schema: &Schema,
        path: &mut Vec<String>,
    ) -> Result<Value, ConversionError> {
        match self.resolve(schema) {
            Schema::Union(u) => {
                let first = u.variants().first().ok_or_else(|| ConversionError {
                    path: display_path(path),
                    reason: "empty union".into(),
                })?;
                Ok(Value::Union(
                    0,
                    Box::new(self.convert(default, first, path)?),
                ))
            }
            other => self.convert(default, other, path),
        }
    }

    fn convert_union(
        &self,
        json: &Json,
        variants: &[Schema],
        path: &mut Vec<String>,
    ) -> Result<Value, ConversionError> {
        if json.is_null()
            && let Some(i) = variants.iter().position(|s| matches!(s, Schema::Null))
        {
            return Ok(Value::Union(i as u32, Box::new(Value::Null)));
        }
        // Avro's JSON encoding of a union: {"<type name>": value}.
        if let Some((branch, inner)) = json
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            && let Some(i) = variants
                .iter()
                .position(|s| branch_name(self.resolve(s)) == *branch)
        {
            let value = self.convert(inner, &variants[i], path)?;
            return Ok(Value::Union(i as u32, Box::new(value)));
        }
        let mut reasons = Vec::new();
        for (i, variant) in variants.iter().enumerate() {
            match self.convert(json, variant, path) {
                Ok(value) => return Ok(Value::Union(i as u32, Box::new(value))),
                Err(e) => reasons.push(e.reason),
            }
        }
        Err(ConversionError {
            path: display_path(path),
            reason: format!("matches no branch of the union ({})", reasons.join("; ")),
        })
    }
}

fn branch_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Ref { name } => name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

fn timestamp(json: &Json, per_second: i64) -> Option<i64> {
    match json {
        Json::String(s) => {
            let t = DateTime::parse_from_rfc3339(s).ok()?;
            let nanos = i64::from(t.timestamp_subsec_nanos());
            t.timestamp()
                .checked_mul(per_second)?
                .checked_add(nanos / (1_000_000_000 / per_second))
        }
        other => other.as_i64(),
    }
}

fn decode_base64(json: &Json) -> Option<Vec<u8>> {
    BASE64.decode(json.as_str()?).ok()
}

fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => format!("boolean {b}"),
        Json::Number(n) => format!("number {n}"),
        Json::String(s) if s.chars().count() > 40 => {
            format!("string \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Json::String(s) => format!("string \"{s}\""),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        return "(the event)".into();
    }
    let mut out = String::new();
    for p in path {
        if !p.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(p);
    }
    out
}

/// A JSON value that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{path}`: {reason}")]
pub struct ConversionError {
    pub path: String,
    pub reason: String,
}

/// An Avro value as JSON for people and `jq`.
pub fn avro_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(n) => Json::from(*n),
        Value::Date(days) => {
            json_text::date(i64::from(*days)).map_or(Json::from(*days), Json::String)
        }
        Value::TimeMillis(n) => Json::from(*n),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => Json::from(*n),
        Value::TimestampMillis(ms) => json_text::timestamp_value(*ms, TimeUnit::Millis),
        Value::TimestampMicros(us) => json_text::timestamp_value(*us, TimeUnit::Micros),
        Value::TimestampNanos(ns) => json_text::timestamp_value(*ns, TimeUnit::Nanos),
        Value::Float(f) => json_text::float_value(f64::from(*f)),
        Value::Double(f) => json_text::float_value(*f),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(BASE64.encode(b)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), avro_to_json(&m[k])))
                    .collect(),
            )
        }
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect(),
        ),
        Value::Decimal(d) => match <Vec<u8>>::try_from(d) {
            Ok(bytes) => Json::String(BASE64.encode(bytes)),
            Err(_) => Json::Null,
        },
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas;
    use serde_json::json;

    fn telemetry() -> CompiledSchema {
        CompiledSchema::parse(schemas::TELEMETRY).unwrap()
    }

    #[test]
    fn telemetry_round_trips_with_defaults_filled() {
        let s = telemetry();
        let input = json!({
            "event_id": "5f0c6c1e-2f6b-4c43-9a57-1f6d2f7f9b10",
            "sensor_id": "sensor-0001",
            "timestamp": "2026-11-22T08:00:00.123Z",
            "temperature": 21.5,
        });
        let avro = s.json_to_avro(&input).unwrap();
        assert!(avro.validate(&s.schema));
        let back = avro_to_json(&avro);
        assert_eq!(
            back,
            json!({
                "event_id": "5f0c6c1e-2f6b-4c43-9a57-1f6d2f7f9b10",
                "sensor_id": "sensor-0001",
                "timestamp": "2026-11-22T08:00:00.123Z",
                "temperature": 21.5,
                "humidity": null,
                "properties": {},
            })
        );
        // Epoch milliseconds are accepted too, and the explicit union form.
        let input = json!({
            "event_id": "5f0c6c1e-2f6b-4c43-9a57-1f6d2f7f9b10",
            "sensor_id": "s", "timestamp": 1_795_334_400_123_i64, "temperature": 1,
            "humidity": {"double": 40.5}, "properties": {"site": "a"},
        });
        let back = avro_to_json(&s.json_to_avro(&input).unwrap());
        assert_eq!(back["timestamp"], "2026-11-22T08:00:00.123Z");
        assert_eq!(back["humidity"], 40.5);
        assert_eq!(back["properties"]["site"], "a");
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let s = telemetry();
        let base = json!({
            "event_id": "5f0c6c1e-2f6b-4c43-9a57-1f6d2f7f9b10",
            "sensor_id": "s", "timestamp": 0, "temperature": 1.0,
        });
        let cases = [
            (
                "temperature",
                json!("hot"),
                "field `temperature`: expected a number, got string \"hot\"",
            ),
            (
                "event_id",
                json!("nope"),
                "field `event_id`: expected a UUID string, got string \"nope\"",
            ),
            (
                "timestamp",
                json!("yesterday"),
                "field `timestamp`: expected an RFC 3339 time or epoch milliseconds, got string \"yesterday\"",
            ),
            (
                "properties",
                json!({"a": 1}),
                "field `properties.a`: expected a string, got number 1",
            ),
            (
                "colour",
                json!("red"),
                "field `colour`: unknown field; io.eventhubs.kafka.telemetry.TelemetryEvent has event_id, sensor_id, timestamp, temperature, humidity, properties",
            ),
        ];
        for (field, value, expected) in cases {
            let mut input = base.clone();
            input[field] = value;
            assert_eq!(s.json_to_avro(&input).unwrap_err().to_string(), expected);
        }
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("sensor_id");
        assert_eq!(
            s.json_to_avro(&missing).unwrap_err().to_string(),
            "field `sensor_id`: required field is missing"
        );
        assert_eq!(
            s.json_to_avro(&json!([1])).unwrap_err().to_string(),
            "field `(the event)`: expected an object, got an array"
        );
    }
}
