//! From an input item to librdkafka: validation, encoding, the key and the size limit
//! ([`prepare`]), the hand-over with backpressure ([`enqueue`]), pacing ([`pace`]) and the
//! final flush ([`finish`]). Delivery reports are served by polling between events.

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use eventhubs_kafka::encoding::{Encoder, avro_to_json};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use tokio_util::sync::CancellationToken;

use crate::ProduceOptions;
use crate::delivery::{DeliveryContext, Origin, Pending};

/// Parse one input line as JSON and validate it against the schema.
pub(crate) fn parse_line(encoder: &Encoder, text: &str) -> Result<Value, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    encoder
        .schema()
        .json_to_avro(&json)
        .map_err(|e| e.to_string())
}

/// Key and encoded value of a valid event, or why it cannot be sent.
pub(crate) fn prepare(
    encoder: &Encoder,
    value: Value,
    options: &ProduceOptions,
) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    let key = if options.key_field.is_empty() {
        None
    } else {
        Some(key_of(&value, &options.key_field)?)
    };
    let payload = encoder.encode(value).map_err(|e| e.to_string())?;
    within_limit(key.as_deref(), &payload, options.max_event_bytes)?;
    Ok((key, payload))
}

/// An event (key + value) no larger than `max` bytes, or why it cannot be sent.
pub(crate) fn within_limit(key: Option<&[u8]>, payload: &[u8], max: usize) -> Result<(), String> {
    let size = payload.len() + key.map_or(0, <[u8]>::len);
    if size > max {
        return Err(format!(
            "the event is {size} bytes (key + value), more than --max-event-bytes {max}; Event Hubs rejects events over 1 MB"
        ));
    }
    Ok(())
}

pub(crate) fn key_of(value: &Value, field: &str) -> Result<Vec<u8>, String> {
    let Value::Record(fields) = value else {
        return Err(format!("--key-field {field}: the event is not a record"));
    };
    let Some((_, v)) = fields.iter().find(|(name, _)| name == field) else {
        return Err(format!("--key-field {field}: the schema has no such field"));
    };
    let key = match avro_to_json(v) {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => return Err(format!("key field `{field}` is null")),
        other => other.to_string(),
    };
    Ok(key.into_bytes())
}

/// Why librdkafka did not take an event.
pub(crate) enum Refused {
    /// This event only.
    Event { origin: Origin, reason: String },
    /// The producer is in a fatal state: nothing more can be sent.
    Fatal { origin: Origin, reason: String },
}

/// Hand one event to librdkafka, waiting while its queue is full (backpressure).
pub(crate) fn enqueue(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: &[u8],
    content_type: Option<&str>,
    origin: Origin,
) -> Result<(), Refused> {
    let pending = Box::new(Pending {
        origin,
        enqueued: origin.timed().then(Instant::now),
    });
    let mut record = BaseRecord::with_opaque_to(topic, pending).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(content_type) = content_type {
        record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
            rdkafka::message::Header {
                key: "content-type",
                value: Some(content_type),
            },
        ));
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                // Serve delivery reports until there is room.
                producer.poll(Duration::from_millis(10));
            }
            Err((e, back)) => {
                let origin = back.delivery_opaque.origin;
                return Err(match producer.client().fatal_error() {
                    Some((_, fatal)) => Refused::Fatal {
                        origin,
                        reason: format!("refused by librdkafka: {e} (fatal: {fatal})"),
                    },
                    None => Refused::Event {
                        origin,
                        reason: format!("refused by librdkafka: {e}"),
                    },
                });
            }
        }
    }
}

pub(crate) fn pace(
    producer: &BaseProducer<DeliveryContext>,
    started: Instant,
    sent: u64,
    rate: f64,
    cancel: &CancellationToken,
) {
    if rate <= 0.0 {
        return;
    }
    let due = started + Duration::from_secs_f64(sent as f64 / rate);
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now >= due {
            return;
        }
        // Waiting is polling: delivery reports keep being served.
        producer.poll((due - now).min(Duration::from_millis(100)));
    }
}

/// Flush with a deadline; purge whatever is still queued so that each such event gets its
/// (failed) delivery report. Returns how many were still in flight at the deadline.
pub(crate) fn finish(producer: &BaseProducer<DeliveryContext>, timeout: Duration) -> i32 {
    if producer.flush(timeout).is_ok() {
        return 0;
    }
    let left = producer.in_flight_count();
    tracing::error!(
        in_flight = left,
        ?timeout,
        "flush deadline passed; purging undelivered events"
    );
    producer.purge(PurgeConfig::default().queue().inflight());
    // Purged events come back through the delivery callback as failures.
    let _ = producer.flush(Duration::from_secs(5));
    left
}
