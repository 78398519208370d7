//! Events into PostgreSQL by binary COPY: straight into `capture_events` under a savepoint,
//! or, when some of them are there already, through a temporary staging table and one
//! `INSERT … SELECT … ON CONFLICT DO NOTHING`, whose row count says how many were new:
//! COPY speed, with duplicates counted and never written.

use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::EventRow;

/// Columns in COPY order, and their types in `capture_events`. The staging table holds the
/// JSON columns as text (cast when moved), and has no `source_file` (given when moved).
const COLUMNS: &str = "namespace, event_hub, partition_id, sequence_number, \"offset\", enqueued_time, partition_key, system_properties, properties, body, body_json";
const TYPES: [Type; 11] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::BYTEA,
    Type::JSONB,
];

/// [`TYPES`] as the staging table has them.
fn stage_types() -> [Type; 11] {
    TYPES.map(|t| if t == Type::JSONB { Type::TEXT } else { t })
}

/// [`TYPES`] and `source_file`, for the COPY straight into `capture_events`.
fn direct_types() -> [Type; 12] {
    let mut types = [const { Type::TEXT }; 12];
    types[..11].clone_from_slice(&TYPES);
    types
}

/// Stage `events` with binary COPY, move the new ones into `capture_events` (as coming
/// from `source`), and return how many were new. A key already taken by an event with other
/// content is a [`super::Conflict`]; `from_file` rows also compare offset and enqueue time
/// with rows from files (not with rows from the topic, see [`super::STREAM_SOURCE_PREFIX`]).
pub(super) fn insert_events(
    tx: &mut Transaction<'_>,
    events: &[EventRow],
    source: &str,
    from_file: bool,
) -> anyhow::Result<u64> {
    // Nearly every load is of events not in the table yet: COPY them straight in, as
    // `\copy` would, under a savepoint. A key already taken fails that COPY (and any other
    // refusal too): the savepoint takes it back, and the staged path below sorts new rows
    // from duplicates and conflicts and gives the refusals their usual wording.
    let mut direct = tx.savepoint("direct_copy")?;
    if copy_direct(&mut direct, events, source).is_ok() {
        direct.commit()?;
        return Ok(events.len() as u64);
    }
    direct.rollback()?;
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS capture_events_stage (
                namespace TEXT, event_hub TEXT, partition_id TEXT, sequence_number BIGINT,
                \"offset\" TEXT, enqueued_time TIMESTAMPTZ, partition_key TEXT,
                system_properties TEXT, properties TEXT, body BYTEA, body_json TEXT
             ) ON COMMIT DELETE ROWS",
    )?;
    copy_rows(tx, "capture_events_stage", &stage_types(), events, None)?;
    let inserted = tx.execute(
            &format!(
                "INSERT INTO capture_events ({COLUMNS}, source_file)
                 SELECT namespace, event_hub, partition_id, sequence_number, \"offset\", enqueued_time,
                        partition_key, system_properties::jsonb, properties::jsonb, body, body_json::jsonb, $1
                 FROM capture_events_stage
                 ON CONFLICT DO NOTHING"
            ),
            &[&source],
        )?;
    // A key already taken is a duplicate only when the content is the same. Asked only
    // when some rows were not inserted (rows just inserted match themselves); the loads
    // with nothing already there, nearly all of them, skip this join.
    if inserted < events.len() as u64 {
        let conflict = tx.query_one(
            "SELECT count(*)::bigint, min(s.sequence_number)
                 FROM capture_events_stage s
                 JOIN capture_events e USING (namespace, event_hub, partition_id, sequence_number)
                 WHERE e.body IS DISTINCT FROM s.body
                    OR ($1 AND e.source_file NOT LIKE 'kafka:%'
                        AND (e.\"offset\" <> s.\"offset\" OR e.enqueued_time <> s.enqueued_time))",
            &[&from_file],
        )?;
        let (conflicts, first): (i64, Option<i64>) = (conflict.get(0), conflict.get(1));
        if let Some(first) = first.filter(|_| conflicts > 0) {
            // Dropping the transaction rolls every row of this file back.
            return Err(super::Conflict {
                count: conflicts as u64,
                first,
            }
            .into());
        }
    }
    Ok(inserted)
}

/// COPY `events` straight into `capture_events`: fails as a whole on any key already taken.
fn copy_direct(
    tx: &mut Transaction<'_>,
    events: &[EventRow],
    source: &str,
) -> Result<(), postgres::Error> {
    copy_rows(tx, "capture_events", &direct_types(), events, Some(source))
}

/// Binary COPY of `events` into `table`: as `capture_events` holds them (JSON as jsonb,
/// with `source`), or as the staging table does (JSON as text, no source). A body_json
/// that jsonb would refuse is left out (the body's bytes stay).
fn copy_rows(
    tx: &mut Transaction<'_>,
    table: &str,
    types: &[Type],
    events: &[EventRow],
    source: Option<&str>,
) -> Result<(), postgres::Error> {
    let columns = match source {
        Some(_) => format!("{COLUMNS}, source_file"),
        None => COLUMNS.to_string(),
    };
    let sink = tx.copy_in(&format!(
        "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    let source = source.unwrap_or_default();
    for e in events {
        let body_json = e
            .body_json
            .as_deref()
            .filter(|j| jsonb_accepts(j))
            .map(JsonText);
        let row: [&(dyn ToSql + Sync); 12] = [
            &e.namespace,
            &e.event_hub,
            &e.partition_id,
            &e.sequence_number,
            &e.offset,
            &e.enqueued_time,
            &e.partition_key,
            &JsonText(&e.system_properties),
            &JsonText(&e.properties),
            &e.body,
            &body_json,
            &source,
        ];
        writer.write(&row[..types.len()])?;
    }
    writer.finish()?;
    Ok(())
}

/// JSON text for a `text` column as it is, for a `jsonb` column in jsonb's binary form:
/// the format version (1), then the text, which the server parses as it would `text::jsonb`.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::TEXT
    }

    postgres::types::to_sql_checked!();
}

/// Whether PostgreSQL's jsonb takes `json`, a JSON text the decoder produced: jsonb refuses
/// `\u0000`, unpaired surrogate escapes and numbers beyond its range, which a structural
/// check lets through. A full parse runs only for texts with an escape or an exponent; the
/// body's bytes are stored either way.
fn jsonb_accepts(json: &str) -> bool {
    let suspicious = json.contains("\\u")
        || json
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'));
    !suspicious
        || (!json.contains("\\u0000") && serde_json::from_str::<serde_json::Value>(json).is_ok())
}

#[cfg(test)]
mod tests {
    use super::jsonb_accepts;

    #[test]
    fn jsonb_refusals_are_recognised_cheaply() {
        assert!(jsonb_accepts(r#"{"sensor_id":"s-1","temperature":21.5}"#));
        assert!(jsonb_accepts(r#"{"x":"\ud83d\ude00","n":1e10}"#));
        assert!(!jsonb_accepts(r#"{"x":"\udead"}"#));
        assert!(!jsonb_accepts(r#"{"x":1e999999}"#));
        assert!(!jsonb_accepts(r#"{"x":"a\u0000b"}"#));
    }
}
