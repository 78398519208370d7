//! Any bytes as an event payload, with and without a content type: the consumer's encoding
//! detection and decoding (single-object Avro, Confluent framing, JSON) give JSON text or a
//! reason, never a panic. "JSON" is the grammar (RFC 8259): a JSON body's number beyond
//! f64's range passes through verbatim, as its producer wrote it (found by fuzzing; kept).
#![no_main]

use std::sync::LazyLock;

use eventhubs_kafka::encoding::{Decoder, SchemaSet};

static DECODER: LazyLock<Decoder> =
    LazyLock::new(|| Decoder::new(SchemaSet::embedded().expect("embedded schemas"), None));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let content_type = match data.first() {
        Some(b) if b % 7 == 0 => Some("avro/binary+0123456789abcdef0123456789abcdef"),
        Some(b) if b % 7 == 1 => Some("application/json"),
        _ => None,
    };
    let mut out = Vec::new();
    // No registry: nothing here waits on I/O.
    if futures::executor::block_on(DECODER.decode_into(Some(data), content_type, &mut out)).is_ok()
    {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok());
    }
});
