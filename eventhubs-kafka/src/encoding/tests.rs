//! Tests of the decoder and encoder (mod.rs), and the reference encoder other tests use.
use super::*;
use crate::schemas;
use serde_json::json;

/// apache-avro's own encoding, the reference the fast paths are checked against.
pub(crate) fn apache_encode(schema: &apache_avro::Schema, value: &Value) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value.clone())
        .unwrap()
}

fn sample() -> Json {
    json!({
        "event_id": "5f0c6c1e-2f6b-4c43-9a57-1f6d2f7f9b10",
        "sensor_id": "sensor-0001",
        "timestamp": "2026-11-22T08:00:00.123Z",
        "temperature": 21.5,
        "humidity": 40.0,
        "properties": {"site": "north"},
    })
}

fn telemetry() -> Arc<CompiledSchema> {
    Arc::new(CompiledSchema::parse(schemas::TELEMETRY).unwrap())
}

#[tokio::test]
async fn single_object_and_json_round_trip_and_are_detected() {
    let decoder = Decoder::new(SchemaSet::embedded().unwrap(), None);
    for encoder in [
        Encoder::single_object(telemetry()),
        Encoder::json(telemetry()),
    ] {
        let bytes = encoder.encode_json(&sample()).unwrap();
        let decoded = decoder.decode(Some(&bytes), None).await.unwrap();
        assert_eq!(decoded.encoding, encoder.encoding());
        assert_eq!(decoded.value, sample());
    }
}

#[test]
fn confluent_frame_has_magic_and_big_endian_id() {
    let bytes = Encoder::confluent(telemetry(), 258)
        .encode_json(&sample())
        .unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 1, 2]);
    assert_eq!(sniff(&bytes, None), Framing::Confluent { schema_id: 258 });
}

#[tokio::test]
async fn confluent_without_registry_is_a_clear_error() {
    let decoder = Decoder::new(SchemaSet::embedded().unwrap(), None);
    let bytes = Encoder::confluent(telemetry(), 7)
        .encode_json(&sample())
        .unwrap();
    let err = decoder.decode(Some(&bytes), None).await.unwrap_err();
    assert!(
        matches!(err, DecodeError::NoRegistry { schema_id: 7 }),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_unknown_fingerprints_and_azure_payloads_are_errors() {
    let decoder = Decoder::new(SchemaSet::embedded().unwrap(), None);
    let garbage = [0xffu8, 0xfe, 0x01];
    assert!(matches!(
        decoder.decode(Some(&garbage), None).await,
        Err(DecodeError::Unrecognised)
    ));
    let unknown = [0xc3u8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    assert!(matches!(
        decoder.decode(Some(&unknown), None).await,
        Err(DecodeError::UnknownFingerprint { .. })
    ));
    let mut truncated = Encoder::single_object(telemetry())
        .encode_json(&sample())
        .unwrap();
    truncated.truncate(20);
    assert!(matches!(
        decoder.decode(Some(&truncated), None).await,
        Err(DecodeError::BadAvro { .. })
    ));
    assert!(matches!(
        decoder
            .decode(
                Some(b"\x02abc"),
                Some("avro/binary+0123456789abcdef0123456789abcdef")
            )
            .await,
        Err(DecodeError::NoAzureRegistry { .. })
    ));
    assert!(matches!(
        decoder
            .decode(Some(b"\x02abc"), Some("avro/binary+../x"))
            .await,
        Err(DecodeError::BadContentType(_))
    ));
    assert!(matches!(
        decoder.decode(Some(b"{not json"), None).await,
        Err(DecodeError::BadJson(_))
    ));
    assert!(matches!(
        decoder.decode(None, None).await,
        Err(DecodeError::Empty)
    ));
}
