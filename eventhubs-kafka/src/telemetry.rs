//! The telemetry model (`schemas/telemetry.avsc`) and a generator of realistic readings:
//! each sensor drifts around its own baseline, some sensors have no hygrometer (humidity
//! null), and every sensor carries its site and firmware as properties.

use std::collections::HashMap;

use apache_avro::types::Value;

/// Generates telemetry events for `sensors` distinct sensor ids.
pub struct Generator {
    rng: fastrand::Rng,
    sensors: Vec<Sensor>,
}

struct Sensor {
    id: String,
    temperature: f64,
    humidity: Option<f64>,
    site: String,
    firmware: &'static str,
}

/// One generated event: its key (the sensor id), its id, and the Avro record.
pub struct GeneratedEvent {
    pub sensor_id: String,
    pub event_id: uuid::Uuid,
    pub value: Value,
}

const FIRMWARE: [&str; 3] = ["1.4.2", "1.5.0", "2.0.1"];

impl Generator {
    /// `seed` makes runs repeatable; event ids stay unique per seed.
    pub fn new(sensors: usize, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let sensors = (0..sensors.max(1))
            .map(|i| Sensor {
                id: format!("sensor-{i:05}"),
                temperature: 15.0 + rng.f64() * 15.0,
                // One sensor in ten has no hygrometer.
                humidity: (i % 10 != 9).then(|| 30.0 + rng.f64() * 40.0),
                site: format!("site-{:02}", i % 17),
                firmware: FIRMWARE[i % FIRMWARE.len()],
            })
            .collect();
        Self { rng, sensors }
    }

    /// Move a random sensor on by one reading: which sensor, and the new event's id.
    fn advance(&mut self) -> (usize, uuid::Uuid) {
        let index = self.rng.usize(..self.sensors.len());
        let step_t = (self.rng.f64() - 0.5) * 0.2;
        let step_h = (self.rng.f64() - 0.5) * 0.5;
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        let event_id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let sensor = &mut self.sensors[index];
        sensor.temperature = (sensor.temperature + step_t).clamp(-40.0, 85.0);
        if let Some(h) = sensor.humidity.as_mut() {
            *h = (*h + step_h).clamp(0.0, 100.0);
        }
        (index, event_id)
    }

    /// The next reading, appended to `out` as the telemetry schema's Avro datum (exactly what
    /// [`CompiledSchema::write_datum`](crate::encoding::CompiledSchema::write_datum) writes
    /// for [`Generator::next_event`]'s value, properties in a fixed order); returns its key,
    /// the sensor id. The producer's hot path: no [`Value`] tree, no allocation. The same
    /// seed gives the same events as [`Generator::next_event`].
    pub fn next_datum(&mut self, timestamp_ms: i64, out: &mut Vec<u8>) -> &str {
        use crate::encoding::avro_write::{bytes, long};
        let (index, event_id) = self.advance();
        let sensor = &self.sensors[index];
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        bytes(out, event_id.hyphenated().encode_lower(&mut id).as_bytes());
        bytes(out, sensor.id.as_bytes());
        long(out, timestamp_ms);
        out.extend_from_slice(&round2(sensor.temperature).to_le_bytes());
        match sensor.humidity {
            Some(h) => {
                long(out, 1);
                out.extend_from_slice(&round2(h).to_le_bytes());
            }
            None => long(out, 0),
        }
        // The map in one block of two entries, then the empty block that ends it.
        long(out, 2);
        bytes(out, b"site");
        bytes(out, sensor.site.as_bytes());
        bytes(out, b"firmware");
        bytes(out, sensor.firmware.as_bytes());
        long(out, 0);
        &sensor.id
    }

    /// The next reading of a random sensor, taken at `timestamp_ms`.
    pub fn next_event(&mut self, timestamp_ms: i64) -> GeneratedEvent {
        let (index, event_id) = self.advance();
        let sensor = &self.sensors[index];
        let humidity = match sensor.humidity {
            Some(h) => Value::Union(1, Box::new(Value::Double(round2(h)))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let properties = HashMap::from([
            ("site".to_string(), Value::String(sensor.site.clone())),
            (
                "firmware".to_string(),
                Value::String(sensor.firmware.to_string()),
            ),
        ]);
        let value = Value::Record(vec![
            ("event_id".into(), Value::Uuid(event_id)),
            ("sensor_id".into(), Value::String(sensor.id.clone())),
            ("timestamp".into(), Value::TimestampMillis(timestamp_ms)),
            (
                "temperature".into(),
                Value::Double(round2(sensor.temperature)),
            ),
            ("humidity".into(), humidity),
            ("properties".into(), Value::Map(properties)),
        ]);
        GeneratedEvent {
            sensor_id: sensor.id.clone(),
            event_id,
            value,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::CompiledSchema;
    use crate::schemas;

    #[test]
    fn generated_events_fit_the_schema_and_have_unique_ids() {
        let schema = CompiledSchema::parse(schemas::TELEMETRY).unwrap();
        let mut g = Generator::new(20, 7);
        let mut ids = std::collections::HashSet::new();
        let mut sensors = std::collections::HashSet::new();
        for i in 0..2000 {
            let e = g.next_event(1_700_000_000_000 + i);
            assert!(e.value.validate(&schema.schema));
            assert!(ids.insert(e.event_id));
            sensors.insert(e.sensor_id);
        }
        assert_eq!(sensors.len(), 20);
    }

    #[test]
    fn the_direct_datum_is_the_schema_writers_bytes_for_the_same_event() {
        let schema = CompiledSchema::parse(schemas::TELEMETRY).unwrap();
        let (mut slow, mut fast) = (Generator::new(30, 11), Generator::new(30, 11));
        for i in 0..5000 {
            let ts = 1_700_000_000_000 + i;
            let event = slow.next_event(ts);
            let mut direct = Vec::new();
            let key = fast.next_datum(ts, &mut direct).to_string();
            assert_eq!(key, event.sensor_id);
            // The map's entry order is the HashMap's in the slow path: compare values.
            let mut json = Vec::new();
            schema.datum_to_json(&direct, &mut json).unwrap();
            let decoded: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(decoded, crate::encoding::avro_to_json(&event.value));
            let mut written = Vec::new();
            schema.write_datum(&event.value, &mut written).unwrap();
            assert_eq!(written.len(), direct.len());
        }
    }
}
