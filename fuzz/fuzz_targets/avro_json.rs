//! Any bytes as an Avro datum of the telemetry schema, and of a schema with every logical
//! type and a recursive record: JSON text or a reason, never a panic (dates out of range,
//! deep nesting, huge block counts).
#![no_main]

use std::sync::LazyLock;

use eventhubs_kafka::encoding::CompiledSchema;

static SCHEMAS: LazyLock<Vec<CompiledSchema>> = LazyLock::new(|| {
    let every_logical_type = r#"{"type":"record","name":"All","fields":[
        {"name":"date","type":{"type":"int","logicalType":"date"}},
        {"name":"time_ms","type":{"type":"int","logicalType":"time-millis"}},
        {"name":"time_us","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"ts_ms","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"ts_us","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"ts_ns","type":{"type":"long","logicalType":"timestamp-nanos"}},
        {"name":"local_ms","type":{"type":"long","logicalType":"local-timestamp-millis"}},
        {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":4}},
        {"name":"fixed_dec","type":{"type":"fixed","name":"F","size":8,"logicalType":"decimal","precision":18,"scale":2}},
        {"name":"dur","type":{"type":"fixed","name":"D","size":12,"logicalType":"duration"}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
        {"name":"m","type":{"type":"map","values":["null","double","string"]}},
        {"name":"a","type":{"type":"array","items":"float"}},
        {"name":"next","type":["null","All"]}
    ]}"#;
    vec![
        CompiledSchema::parse(eventhubs_kafka::schemas::TELEMETRY).expect("telemetry schema"),
        CompiledSchema::parse(every_logical_type).expect("logical types schema"),
    ]
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    for schema in SCHEMAS.iter() {
        out.clear();
        if schema.datum_to_json(data, &mut out).is_ok() {
            // What it writes is JSON.
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok(),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
});
