//! Value encodings on the wire, shared by the producer, the consumer and the capture loader.
//!
//! - `avro-confluent`: `0x00`, 4-byte big-endian schema id, Avro binary (registry needed);
//! - `avro-single-object`: `0xC3 0x01`, 8-byte little-endian CRC-64-AVRO fingerprint, Avro
//!   binary (resolved against the embedded schemas, no registry);
//! - `avro-azure`: the bare Avro datum, its schema id in the event's content type
//!   (`avro/binary+<id>`, the Kafka header `content-type`), as Microsoft's Azure Schema
//!   Registry encoders write it (registry needed);
//! - `json`: UTF-8 JSON.
//!
//! The three are told apart from the first bytes alone: a Confluent frame starts with a NUL
//! and a single-object frame with `C3 01`, neither of which can begin valid UTF-8 JSON.
//! Azure Schema Registry payloads carry no prefix; they are recognised by their content type.

pub mod avro_json;
pub mod avro_write;
pub mod json_avro;
pub mod json_text;
pub mod single_object;

use std::sync::Arc;

use apache_avro::types::Value;
use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value as Json;

use crate::registry::azure::AzureRegistry;
use crate::registry::{ConfluentDecoder, RegistryError};
pub use json_avro::{CompiledSchema, ConversionError, avro_to_json};
pub use single_object::SchemaSet;

/// How event values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    AvroConfluent,
    AvroSingleObject,
    AvroAzure,
    Json,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AvroConfluent => "avro-confluent",
            Self::AvroSingleObject => "avro-single-object",
            Self::AvroAzure => "avro-azure",
            Self::Json => "json",
        }
    }
}

/// What the first bytes (and the content-type header) of a payload say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Confluent { schema_id: u32 },
    SingleObject { fingerprint: u64 },
    AzureSchemaRegistry,
    Json,
    Unknown,
}

/// Classify a payload without decoding it.
pub fn sniff(payload: &[u8], content_type: Option<&str>) -> Framing {
    if content_type.is_some_and(|ct| ct.starts_with("avro/binary+")) {
        return Framing::AzureSchemaRegistry;
    }
    match payload {
        [0x00, a, b, c, d, ..] => Framing::Confluent {
            schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
        },
        _ => {
            if let Some((fingerprint, _)) = single_object::split(payload) {
                return Framing::SingleObject { fingerprint };
            }
            let first = payload.iter().find(|b| !b.is_ascii_whitespace());
            if first.is_some() && std::str::from_utf8(payload).is_ok() {
                Framing::Json
            } else {
                Framing::Unknown
            }
        }
    }
}

/// A decoded event value.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub encoding: Encoding,
    pub value: Json,
}

/// Why a payload could not be decoded. The raw bytes are the caller's to keep.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the event has no value (a tombstone)")]
    Empty,
    /// Something around the value cannot be read (the consumer's headers).
    #[error("{0}")]
    Unreadable(String),
    #[error("Confluent-framed Avro (schema id {schema_id}) but no --schema-registry-url is set")]
    NoRegistry { schema_id: u32 },
    #[error("Confluent-framed Avro (schema id {schema_id}): {source}")]
    Registry {
        schema_id: u32,
        #[source]
        source: RegistryError,
    },
    #[error(
        "single-object Avro with fingerprint {fingerprint:016x}, which matches none of the known schemas"
    )]
    UnknownFingerprint { fingerprint: u64 },
    #[error(
        "single-object Avro (fingerprint {fingerprint:016x}) does not decode with its schema: {reason}"
    )]
    BadAvro { fingerprint: u64, reason: String },
    #[error(
        "Confluent-framed Avro (schema id {schema_id}) does not decode with its schema: {reason}"
    )]
    BadConfluentAvro { schema_id: u32, reason: String },
    #[error("{0}")]
    BadContentType(String),
    #[error(
        "Azure Schema Registry Avro (schema id {schema_id}) but no --schema-registry-url is set (the namespace's https://<namespace>.servicebus.windows.net)"
    )]
    NoAzureRegistry { schema_id: String },
    #[error("Azure Schema Registry Avro (schema id {schema_id}): {source}")]
    AzureRegistry {
        schema_id: String,
        #[source]
        source: RegistryError,
    },
    #[error(
        "Azure Schema Registry Avro (schema id {schema_id}) does not decode with its schema: {reason}"
    )]
    BadAzureAvro { schema_id: String, reason: String },
    #[error("text that is not valid JSON: {0}")]
    BadJson(String),
    #[error("neither Avro (Confluent or single-object framing) nor UTF-8 JSON")]
    Unrecognised,
}

impl DecodeError {
    /// True when the same bytes may decode later (the registry was unreachable).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Registry { source, .. } | Self::AzureRegistry { source, .. } => {
                source.is_retriable()
            }
            _ => false,
        }
    }
}

/// The decoder could not be set up (the embedded schemas, the registry's settings).
#[derive(Debug, thiserror::Error)]
#[error("setting up the decoder: {0}")]
pub struct ToolDecoderError(String);

/// Decodes any of the encodings.
#[derive(Clone)]
pub struct Decoder {
    schemas: Arc<SchemaSet>,
    registry: Option<Arc<ConfluentDecoder>>,
    azure: Option<Arc<AzureRegistry>>,
}

impl Decoder {
    pub fn new(schemas: SchemaSet, registry: Option<ConfluentDecoder>) -> Self {
        Self {
            schemas: Arc::new(schemas),
            registry: registry.map(Arc::new),
            azure: None,
        }
    }

    /// Also decode Azure Schema Registry events, with the schemas of `azure`.
    pub fn with_azure(mut self, azure: Option<AzureRegistry>) -> Self {
        self.azure = azure.map(Arc::new);
        self
    }

    /// The tools' decoder: the embedded schemas and, with `--schema-registry-url`, that
    /// registry for both Confluent-framed events and Azure Schema Registry events (tokens
    /// from the credential chain, asked for only when such an event comes).
    pub fn for_tools(
        registry: Option<&crate::registry::RegistrySettings>,
    ) -> Result<Self, ToolDecoderError> {
        let schemas = SchemaSet::embedded().map_err(|e| ToolDecoderError(e.to_string()))?;
        let Some(registry) = registry else {
            return Ok(Self::new(schemas, None));
        };
        let confluent = registry
            .decoder()
            .map_err(|e| ToolDecoderError(e.to_string()))?;
        let azure = registry
            .azure(&|k| std::env::var(k).ok())
            .map_err(|e| ToolDecoderError(e.to_string()))?;
        Ok(Self::new(schemas, Some(confluent)).with_azure(Some(azure)))
    }

    /// Decode a payload and append its value to `out` as JSON text: the consumer's hot
    /// path, with no intermediate trees. A schema not yet known is fetched from its
    /// registry (and kept).
    pub async fn decode_into(
        &self,
        payload: Option<&[u8]>,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Encoding, DecodeError> {
        let payload = payload.ok_or(DecodeError::Empty)?;
        match self.decode_known(payload, content_type, out) {
            Ok(done) => done,
            Err(Missing::Confluent {
                registry,
                schema_id,
            }) => {
                let schema = registry
                    .schema(schema_id)
                    .await
                    .map_err(|source| DecodeError::Registry { schema_id, source })?;
                confluent_datum(&schema, schema_id, payload, out)
            }
            Err(Missing::Azure {
                registry,
                schema_id,
            }) => {
                let schema = match registry.schema(schema_id).await {
                    Ok(schema) => schema,
                    Err(source) => {
                        return Err(DecodeError::AzureRegistry {
                            schema_id: schema_id.to_string(),
                            source,
                        });
                    }
                };
                azure_datum(&schema, schema_id, payload, out)
            }
        }
    }

    /// [`Decoder::decode_into`] without waiting: `None` when the event's schema must first
    /// be fetched from a registry (nothing was written to `out`). The consumer's poll
    /// thread decodes here and leaves only registry requests to the async runtime.
    pub fn decode_cached_into(
        &self,
        payload: Option<&[u8]>,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Option<Result<Encoding, DecodeError>> {
        let Some(payload) = payload else {
            return Some(Err(DecodeError::Empty));
        };
        self.decode_known(payload, content_type, out).ok()
    }

    /// Decode with the schemas at hand, or say which registry schema is missing.
    fn decode_known<'a>(
        &'a self,
        payload: &[u8],
        content_type: Option<&'a str>,
        out: &mut Vec<u8>,
    ) -> Result<Result<Encoding, DecodeError>, Missing<'a>> {
        Ok(match sniff(payload, content_type) {
            Framing::Confluent { schema_id } => {
                let Some(registry) = self.registry.as_deref() else {
                    return Ok(Err(DecodeError::NoRegistry { schema_id }));
                };
                let Some(schema) = registry.cached(schema_id) else {
                    return Err(Missing::Confluent {
                        registry,
                        schema_id,
                    });
                };
                confluent_datum(&schema, schema_id, payload, out)
            }
            Framing::SingleObject { .. } => self
                .schemas
                .decode_into(payload, out)
                .map(|()| Encoding::AvroSingleObject),
            Framing::AzureSchemaRegistry => {
                let schema_id =
                    match crate::registry::azure::schema_id(content_type.unwrap_or_default()) {
                        Ok(id) => id,
                        Err(reason) => return Ok(Err(DecodeError::BadContentType(reason))),
                    };
                let Some(registry) = self.azure.as_deref() else {
                    return Ok(Err(DecodeError::NoAzureRegistry {
                        schema_id: schema_id.to_string(),
                    }));
                };
                let Some(schema) = registry.cached(schema_id) else {
                    return Err(Missing::Azure {
                        registry,
                        schema_id,
                    });
                };
                azure_datum(&schema, schema_id, payload, out)
            }
            Framing::Json => json_into(payload, out).map(|()| Encoding::Json),
            Framing::Unknown => Err(DecodeError::Unrecognised),
        })
    }

    /// Decode a payload to a JSON value.
    pub async fn decode(
        &self,
        payload: Option<&[u8]>,
        content_type: Option<&str>,
    ) -> Result<Decoded, DecodeError> {
        let mut out = Vec::new();
        let encoding = self.decode_into(payload, content_type, &mut out).await?;
        let value =
            serde_json::from_slice(&out).map_err(|e| DecodeError::BadJson(e.to_string()))?;
        Ok(Decoded { encoding, value })
    }
}

/// A registry schema the decoder does not have yet, and the registry to ask.
enum Missing<'a> {
    Confluent {
        registry: &'a ConfluentDecoder,
        schema_id: u32,
    },
    Azure {
        registry: &'a AzureRegistry,
        schema_id: &'a str,
    },
}

/// A Confluent-framed payload (magic byte and schema id, then the datum) as JSON text.
fn confluent_datum(
    schema: &CompiledSchema,
    schema_id: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<Encoding, DecodeError> {
    schema
        .datum_to_json(payload.get(5..).unwrap_or_default(), out)
        .map_err(|e| DecodeError::BadConfluentAvro {
            schema_id,
            reason: e.0,
        })?;
    Ok(Encoding::AvroConfluent)
}

/// An Azure Schema Registry payload (the bare datum; the id is in the content type).
fn azure_datum(
    schema: &CompiledSchema,
    schema_id: &str,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<Encoding, DecodeError> {
    schema
        .datum_to_json(payload, out)
        .map_err(|e| DecodeError::BadAzureAvro {
            schema_id: schema_id.to_string(),
            reason: e.0,
        })?;
    Ok(Encoding::AvroAzure)
}

/// A JSON payload, checked, as one line: copied as it is when it has no line breaks,
/// re-serialised compactly when it has (a pretty-printed body must not split the line).
fn json_into(payload: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let text = payload.trim_ascii();
    if text.contains(&b'\n') || text.contains(&b'\r') {
        let value: Json =
            serde_json::from_slice(text).map_err(|e| DecodeError::BadJson(e.to_string()))?;
        serde_json::to_writer(&mut *out, &value).map_err(|e| DecodeError::BadJson(e.to_string()))
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(text)
            .map_err(|e| DecodeError::BadJson(e.to_string()))?;
        out.extend_from_slice(text);
        Ok(())
    }
}

/// Writes values of one schema in one encoding. Avro encodings are a fixed prefix (the
/// Confluent schema id, or the single-object fingerprint; none for Azure's, whose id is in
/// the content type) followed by the Avro datum, so the registry is asked once, when the
/// encoder is built, never per event.
#[derive(Debug, Clone)]
pub struct Encoder {
    encoding: Encoding,
    schema: Arc<CompiledSchema>,
    prefix: Vec<u8>,
    content_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the value does not fit the schema: {0}")]
    Invalid(#[from] ConversionError),
    #[error("Avro encoding failed: {0}")]
    Avro(String),
}

impl Encoder {
    pub fn single_object(schema: Arc<CompiledSchema>) -> Self {
        let prefix = single_object::header(single_object::fingerprint(&schema.schema)).to_vec();
        Self {
            encoding: Encoding::AvroSingleObject,
            schema,
            prefix,
            content_type: None,
        }
    }

    /// Confluent framing with the id the registry gave the schema.
    pub fn confluent(schema: Arc<CompiledSchema>, schema_id: u32) -> Self {
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&schema_id.to_be_bytes());
        Self {
            encoding: Encoding::AvroConfluent,
            schema,
            prefix,
            content_type: None,
        }
    }

    /// Azure Schema Registry's format: the bare datum, `content-type: avro/binary+<id>`.
    pub fn azure(schema: Arc<CompiledSchema>, schema_id: &str) -> Self {
        Self {
            encoding: Encoding::AvroAzure,
            schema,
            prefix: Vec::new(),
            content_type: Some(crate::registry::azure::content_type(schema_id)),
        }
    }

    pub fn json(schema: Arc<CompiledSchema>) -> Self {
        Self {
            encoding: Encoding::Json,
            schema,
            prefix: Vec::new(),
            content_type: None,
        }
    }

    /// With the embedded telemetry schema in an Avro encoding: the bytes that go before each
    /// datum, so that the generator can write the datum itself
    /// ([`Generator::next_datum`](crate::telemetry::Generator::next_datum)) instead of
    /// building a value for [`Encoder::encode`]. `None` otherwise.
    pub fn telemetry_prefix(&self) -> Option<&[u8]> {
        let avro = matches!(
            self.encoding,
            Encoding::AvroConfluent | Encoding::AvroSingleObject | Encoding::AvroAzure
        );
        let telemetry = apache_avro::Schema::parse_str(crate::schemas::TELEMETRY).is_ok_and(|t| {
            single_object::fingerprint(&t) == single_object::fingerprint(&self.schema.schema)
        });
        (avro && telemetry).then_some(self.prefix.as_slice())
    }

    /// The content type each event must carry (Kafka header `content-type`), if any.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn schema(&self) -> &CompiledSchema {
        &self.schema
    }

    /// Validate JSON against the schema and encode it.
    pub fn encode_json(&self, json: &Json) -> Result<Vec<u8>, EncodeError> {
        let value = self.schema.json_to_avro(json)?;
        self.encode(value)
    }

    /// Encode a value already shaped by the schema.
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, EncodeError> {
        match self.encoding {
            Encoding::Json => serde_json::to_vec(&avro_to_json(&value))
                .map_err(|e| EncodeError::Avro(e.to_string())),
            Encoding::AvroConfluent | Encoding::AvroSingleObject | Encoding::AvroAzure => {
                let mut out = Vec::with_capacity(self.prefix.len() + 128);
                out.extend_from_slice(&self.prefix);
                self.schema
                    .write_datum(&value, &mut out)
                    .map_err(|e| EncodeError::Avro(e.to_string()))?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
