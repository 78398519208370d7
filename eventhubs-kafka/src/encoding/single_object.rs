//! Avro single-object encoding (Avro specification): `C3 01`, the 8-byte little-endian
//! CRC-64-AVRO (Rabin) fingerprint of the schema's parsing canonical form, then the datum.
//! The reader needs no registry: it resolves the fingerprint against the schemas it knows.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;

use super::DecodeError;
use super::json_avro::CompiledSchema;
use crate::schemas;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// The CRC-64-AVRO fingerprint of a schema, as a number (its bytes on the wire are
/// little-endian).
pub fn fingerprint(schema: &Schema) -> u64 {
    crc64_avro(canonical_form(schema).as_bytes())
}

/// Parsing Canonical Form as Java and fastavro write it.
///
/// apache-avro 0.22 strips `logicalType` but leaves the primitive in its object form
/// (`{"type":"string"}` for a uuid) where Java's `SchemaNormalization` and fastavro write
/// `"string"` (apache/avro-rs#61). Fingerprints must agree with the other clients reading
/// the same topic, so the object forms of primitives are folded back here. In canonical form
/// such an object can only be a type: docs and defaults are stripped and names are
/// identifiers.
pub fn canonical_form(schema: &Schema) -> String {
    let mut form = schema.canonical_form();
    for primitive in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        form = form.replace(
            &format!("{{\"type\":\"{primitive}\"}}"),
            &format!("\"{primitive}\""),
        );
    }
    form
}

/// CRC-64-AVRO (the Rabin fingerprint of the Avro specification).
pub fn crc64_avro(data: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    // Slicing by 8: tables[0] is the byte-wise table, tables[k] advances a byte's effect by
    // k more bytes, so eight bytes are folded in per step (the same value as byte by byte,
    // several times faster on whole Capture files).
    static TABLES: std::sync::OnceLock<[[u64; 256]; 8]> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let mut tables = [[0u64; 256]; 8];
        for (i, slot) in tables[0].iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & 0u64.wrapping_sub(fp & 1));
            }
            *slot = fp;
        }
        for k in 1..8 {
            for i in 0..256 {
                let previous = tables[k - 1][i];
                tables[k][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            }
        }
        tables
    });
    let byte = |fp: u64, b: u8| (fp >> 8) ^ tables[0][((fp ^ u64::from(b)) & 0xff) as usize];
    let mut chunks = data.chunks_exact(8);
    let mut fp = EMPTY;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = fp ^ u64::from_le_bytes(word);
        let at = |shift: u32| ((x >> shift) & 0xff) as usize;
        fp = tables[7][at(0)]
            ^ tables[6][at(8)]
            ^ tables[5][at(16)]
            ^ tables[4][at(24)]
            ^ tables[3][at(32)]
            ^ tables[2][at(40)]
            ^ tables[1][at(48)]
            ^ tables[0][at(56)];
    }
    chunks.remainder().iter().fold(fp, |fp, &b| byte(fp, b))
}

pub fn header(fingerprint: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(&MAGIC);
    h[2..].copy_from_slice(&fingerprint.to_le_bytes());
    h
}

/// Fingerprint and datum of a single-object payload, or `None` if it is not one.
pub fn split(payload: &[u8]) -> Option<(u64, &[u8])> {
    if payload.len() < HEADER_LEN || payload[..2] != MAGIC {
        return None;
    }
    let mut le = [0u8; 8];
    le.copy_from_slice(&payload[2..HEADER_LEN]);
    Some((u64::from_le_bytes(le), &payload[HEADER_LEN..]))
}

/// Schemas known to a reader, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct SchemaSet {
    by_fingerprint: HashMap<u64, Arc<CompiledSchema>>,
}

impl SchemaSet {
    /// The schemas in `schemas/`, embedded in the binary.
    pub fn embedded() -> Result<Self, apache_avro::Error> {
        let mut set = Self::default();
        for (_, text) in schemas::ALL {
            set.add(Arc::new(CompiledSchema::parse(text)?));
        }
        Ok(set)
    }

    pub fn add(&mut self, schema: Arc<CompiledSchema>) -> u64 {
        let fp = fingerprint(&schema.schema);
        self.by_fingerprint.insert(fp, schema);
        fp
    }

    pub fn get(&self, fingerprint: u64) -> Option<&Arc<CompiledSchema>> {
        self.by_fingerprint.get(&fingerprint)
    }

    /// Decode a single-object payload and append its value to `out` as JSON.
    pub fn decode_into(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let (fingerprint, datum) = split(payload).ok_or(DecodeError::Unrecognised)?;
        let schema = self
            .get(fingerprint)
            .ok_or(DecodeError::UnknownFingerprint { fingerprint })?;
        schema
            .datum_to_json(datum, out)
            .map_err(|e| DecodeError::BadAvro {
                fingerprint,
                reason: e.0,
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc64_by_eight_bytes_equals_byte_by_byte() {
        const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
        let bytewise = |data: &[u8]| {
            data.iter().fold(EMPTY, |mut fp, &b| {
                fp ^= u64::from(b);
                for _ in 0..8 {
                    fp = (fp >> 1) ^ (EMPTY & 0u64.wrapping_sub(fp & 1));
                }
                fp
            })
        };
        let mut rng = fastrand::Rng::with_seed(3);
        for len in (0..40).chain([255, 256, 1000, 4097]) {
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            assert_eq!(super::crc64_avro(&data), bytewise(&data), "length {len}");
        }
    }

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn fingerprints_match_the_spec_and_fastavro() {
        // Avro specification test vector: "null" → 7195948357588979594.
        let null = Schema::parse_str("\"null\"").unwrap();
        assert_eq!(fingerprint(&null), 7_195_948_357_588_979_594);
        // fastavro (an independent implementation) prints the wire bytes of these.
        assert_eq!(hex(&header(fingerprint(&null))[2..]), "8a8f25cce724dd63");
        let int = Schema::parse_str("\"int\"").unwrap();
        assert_eq!(hex(&header(fingerprint(&int))[2..]), "8f5c393f1ad57572");
        // schemas/telemetry.avsc; logical types are not part of the canonical form.
        let telemetry = Schema::parse_str(schemas::TELEMETRY).unwrap();
        assert_eq!(
            hex(&header(fingerprint(&telemetry))[2..]),
            "416bc446d853e53e",
            "schemas/telemetry.avsc changed its canonical form: old data needs the old schema too"
        );
    }

    #[test]
    fn split_rejects_short_and_foreign_payloads() {
        assert_eq!(split(&[0xC3, 0x01, 1, 2]), None);
        assert_eq!(split(b"{\"a\":1}"), None);
        let h = header(42);
        assert_eq!(split(&h), Some((42, &[][..])));
    }
}
