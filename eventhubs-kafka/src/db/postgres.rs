//! PostgreSQL backend (production). Events go in by binary `COPY` (`pgcopy.rs`);
//! connections follow libpq's rules ([`super::pgconnect`]), TLS through OpenSSL as
//! `sslmode` asks (Azure requires it).

use anyhow::Context;
use postgres::{Client, Transaction};

use super::pgcopy::insert_events;

use super::{
    DeclaredMissing, EventRow, FailedFile, FileRecord, FileStatus, KnownFile, LoadMinute, Loaded,
    LoadedFile, MinuteCount, PartitionKey, PartitionStatus, ReportData, SensorRow, Status, Store,
    StreamBatch, StreamPosition, status_of,
};
use super::{ExpectedMissing, FileRange};

pub struct PostgresStore {
    client: Client,
}

impl PostgresStore {
    pub fn open(url: &str, entra: Option<&crate::identity::TokenCache>) -> anyhow::Result<Self> {
        // libpq's rules (sslmode, PG* variables, the password file); errors name the cause,
        // never the URL (it holds the password).
        let mut target = super::pgconnect::resolve(url, &super::pgconnect::Environment::process())
            .map_err(anyhow::Error::msg)?;
        if let Some(tokens) = entra {
            if target.url_has_password {
                anyhow::bail!(
                    "--db-auth entra uses a Microsoft Entra ID token as the password: leave the password out of the URL"
                );
            }
            let token = tokens
                .token()
                .context("getting a Microsoft Entra ID token for PostgreSQL")?;
            target.config.password(token.token.expose());
        }
        tracing::debug!(?target, "connecting to PostgreSQL");
        let client = super::pgconnect::connect(&target).map_err(anyhow::Error::msg)?;
        let mut store = Self { client };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        // One migrator at a time, however many loaders start together.
        tx.execute("SELECT pg_advisory_xact_lock(727274)", &[])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        super::migrations::run(super::migrations::POSTGRES, |m| {
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[&m.version],
                )?
                .is_some();
            if !applied {
                tx.batch_execute(m.sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&m.version],
                )?;
            }
            Ok(!applied)
        })?;
        tx.commit()?;
        Ok(())
    }
}

fn upsert_file(
    tx: &mut Transaction<'_>,
    file: &FileRecord,
    status: FileStatus,
    error: Option<&str>,
) -> Result<u64, postgres::Error> {
    tx.execute(
        "INSERT INTO capture_files (source, size_bytes, etag, namespace, event_hub, partition_id, event_count, first_sequence_number, last_sequence_number, status, error, loaded_at, first_enqueued_time, last_enqueued_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), $12, $13)
         ON CONFLICT (source) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, etag = EXCLUDED.etag,
             namespace = EXCLUDED.namespace, event_hub = EXCLUDED.event_hub, partition_id = EXCLUDED.partition_id,
             event_count = EXCLUDED.event_count, first_sequence_number = EXCLUDED.first_sequence_number,
             last_sequence_number = EXCLUDED.last_sequence_number, status = EXCLUDED.status,
             error = EXCLUDED.error, loaded_at = now(),
             first_enqueued_time = EXCLUDED.first_enqueued_time, last_enqueued_time = EXCLUDED.last_enqueued_time",
        &[
            &file.source,
            &file.size,
            &file.etag,
            &file.namespace,
            &file.event_hub,
            &file.partition_id,
            &file.event_count,
            &file.first_sequence_number,
            &file.last_sequence_number,
            &status.as_str(),
            &error,
            &file.first_enqueued_time,
            &file.last_enqueued_time,
        ],
    )
}

fn partition_key(r: &postgres::Row, first: usize) -> PartitionKey {
    PartitionKey {
        namespace: r.get(first),
        event_hub: r.get(first + 1),
        partition_id: r.get(first + 2),
    }
}

/// The advisory lock that claims `source`: 64 bits of its CRC-64, so two files share a lock
/// with a chance of 2^-64 (and then only wait for each other).
fn claim_key(source: &str) -> i64 {
    crate::encoding::single_object::crc64_avro(source.as_bytes()) as i64
}

impl Store for PostgresStore {
    fn write_stream(&mut self, batch: &StreamBatch<'_>) -> anyhow::Result<Loaded> {
        let mut tx = self.client.transaction()?;
        let inserted = insert_events(&mut tx, batch.rows, &batch.source(), false)?;
        let upsert = tx.prepare(
            "INSERT INTO consumer_positions (consumer_group, namespace, event_hub, partition_id, next_offset)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (consumer_group, namespace, event_hub, partition_id) DO UPDATE
             SET next_offset = greatest(consumer_positions.next_offset, EXCLUDED.next_offset),
                 updated_at = now()",
        )?;
        for p in batch.positions {
            tx.execute(
                &upsert,
                &[
                    &batch.group,
                    &batch.namespace,
                    &batch.event_hub,
                    &p.partition_id,
                    &p.next_offset,
                ],
            )?;
        }
        tx.commit()?;
        Ok(Loaded {
            inserted,
            duplicates: batch.rows.len() as u64 - inserted,
            elsewhere: false,
        })
    }

    fn stream_positions(
        &mut self,
        group: &str,
        namespace: &str,
        event_hub: &str,
    ) -> anyhow::Result<Vec<StreamPosition>> {
        let rows = self.client.query(
            "SELECT partition_id, next_offset FROM consumer_positions
             WHERE consumer_group = $1 AND namespace = $2 AND event_hub = $3",
            &[&group, &namespace, &event_hub],
        )?;
        Ok(rows
            .iter()
            .map(|r| StreamPosition {
                partition_id: r.get(0),
                next_offset: r.get(1),
            })
            .collect())
    }

    fn claim(&mut self, source: &str, wait: bool) -> anyhow::Result<bool> {
        // A session lock: held across this connection's transactions, freed by the server
        // when the connection ends however the loader ends.
        let key = claim_key(source);
        if wait {
            self.client
                .execute("SELECT pg_advisory_lock($1)", &[&key])?;
            return Ok(true);
        }
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?;
        Ok(row.get(0))
    }

    fn release(&mut self, source: &str) -> anyhow::Result<()> {
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&claim_key(source)])?;
        Ok(())
    }

    fn now(&mut self) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        Ok(self.client.query_one("SELECT now()", &[])?.get(0))
    }

    fn known_file(&mut self, source: &str) -> anyhow::Result<Option<KnownFile>> {
        let row = self.client.query_opt(
            "SELECT size_bytes, etag, status, event_count, first_sequence_number, last_sequence_number, error, loaded_at FROM capture_files WHERE source = $1",
            &[&source],
        )?;
        Ok(row.map(|r| KnownFile {
            size: r.get(0),
            etag: r.get(1),
            status: FileStatus::parse(r.get(2)),
            event_count: r.get(3),
            first_sequence_number: r.get(4),
            last_sequence_number: r.get(5),
            error: r.get(6),
            loaded_at: r.get(7),
        }))
    }

    fn load_file(&mut self, file: &FileRecord, events: &[EventRow]) -> anyhow::Result<Loaded> {
        let mut tx = self.client.transaction()?;
        if tx
            .query_opt(
                "SELECT 1 FROM capture_files WHERE source = $1 AND status <> 'failed' FOR UPDATE",
                &[&file.source],
            )?
            .is_some()
        {
            return Ok(Loaded {
                elsewhere: true,
                ..Loaded::default()
            });
        }
        let inserted = insert_events(&mut tx, events, &file.source, true)?;
        upsert_file(&mut tx, file, status_of(file), None)?;
        tx.commit()?;
        Ok(Loaded {
            inserted,
            duplicates: events.len() as u64 - inserted,
            elsewhere: false,
        })
    }

    fn record_failure(&mut self, file: &FileRecord, error: &str) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        upsert_file(&mut tx, file, FileStatus::Failed, Some(error))?;
        tx.commit()?;
        Ok(())
    }

    fn status(&mut self) -> anyhow::Result<Status> {
        let rows = self.client.query(
            "SELECT f.namespace, f.event_hub, f.partition_id, count(*)::bigint,
                    coalesce(e.events, 0), e.last_seq,
                    to_char(e.last_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM capture_files f
             LEFT JOIN (SELECT namespace, event_hub, partition_id, count(*)::bigint AS events,
                               max(sequence_number) AS last_seq, max(enqueued_time) AS last_time
                        FROM capture_events GROUP BY 1, 2, 3) e
               USING (namespace, event_hub, partition_id)
             WHERE f.status <> 'failed'
             GROUP BY f.namespace, f.event_hub, f.partition_id, e.events, e.last_seq, e.last_time
             ORDER BY 1, 2,
                      CASE WHEN f.partition_id ~ '^[0-9]{1,18}$' THEN f.partition_id::bigint ELSE 0 END,
                      3",
            &[],
        )?;
        let partitions = rows
            .iter()
            .map(|r| PartitionStatus {
                namespace: r.get(0),
                event_hub: r.get(1),
                partition_id: r.get(2),
                files: r.get(3),
                events: r.get(4),
                last_sequence_number: r.get(5),
                last_enqueued_time: r.get(6),
            })
            .collect();
        let failed_files = self
            .client
            .query(
                "SELECT source, coalesce(error, '') FROM capture_files WHERE status = 'failed' ORDER BY source",
                &[],
            )?
            .iter()
            .map(|r| FailedFile {
                source: r.get(0),
                error: r.get(1),
            })
            .collect();
        Ok(Status {
            partitions,
            failed_files,
        })
    }

    fn loaded_files(&mut self) -> anyhow::Result<Vec<LoadedFile>> {
        let rows = self.client.query(
            "SELECT namespace, event_hub, partition_id, source, first_sequence_number, last_sequence_number,
                    first_enqueued_time, last_enqueued_time
             FROM capture_files
             WHERE status = 'loaded' AND namespace IS NOT NULL AND event_hub IS NOT NULL
               AND partition_id IS NOT NULL AND first_sequence_number IS NOT NULL
               AND last_sequence_number IS NOT NULL",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| LoadedFile {
                partition: partition_key(r, 0),
                range: FileRange {
                    source: r.get(3),
                    first_sequence_number: r.get(4),
                    last_sequence_number: r.get(5),
                    first_enqueued_time: r.get(6),
                    last_enqueued_time: r.get(7),
                },
            })
            .collect())
    }

    fn expected_missing(&mut self) -> anyhow::Result<Vec<DeclaredMissing>> {
        let rows = self.client.query(
            "SELECT namespace, event_hub, partition_id, first_sequence_number, last_sequence_number, reason
             FROM capture_expected_missing ORDER BY 1, 2, 3, 4",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| DeclaredMissing {
                partition: partition_key(r, 0),
                range: ExpectedMissing {
                    first_sequence_number: r.get(3),
                    last_sequence_number: r.get(4),
                    reason: r.get(5),
                },
            })
            .collect())
    }

    fn declare_missing(&mut self, d: &DeclaredMissing) -> anyhow::Result<()> {
        self.client.execute(
            "INSERT INTO capture_expected_missing (namespace, event_hub, partition_id, first_sequence_number, last_sequence_number, reason)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (namespace, event_hub, partition_id, first_sequence_number, last_sequence_number)
             DO UPDATE SET reason = EXCLUDED.reason, declared_at = now()",
            &[
                &d.partition.namespace,
                &d.partition.event_hub,
                &d.partition.partition_id,
                &d.range.first_sequence_number,
                &d.range.last_sequence_number,
                &d.range.reason,
            ],
        )?;
        Ok(())
    }

    fn report_data(&mut self, sensor_limit: i64) -> anyhow::Result<ReportData> {
        let events_per_minute = self
            .client
            .query(
                "SELECT namespace, event_hub, partition_id, minute, events FROM events_per_minute
                 ORDER BY minute, namespace, event_hub,
                          CASE WHEN partition_id ~ '^[0-9]{1,18}$' THEN partition_id::bigint ELSE 0 END,
                          partition_id",
                &[],
            )?
            .iter()
            .map(|r| MinuteCount {
                partition: partition_key(r, 0),
                minute: r.get(3),
                events: r.get(4),
            })
            .collect();
        let sensors = self
            .client
            .query(
                "SELECT sensor_id, events, min_temperature, avg_temperature, max_temperature,
                        min_humidity, avg_humidity, max_humidity
                 FROM sensor_stats ORDER BY events DESC, sensor_id LIMIT $1",
                &[&sensor_limit],
            )?
            .iter()
            .map(|r| SensorRow {
                sensor_id: r.get::<_, Option<String>>(0).unwrap_or_default(),
                events: r.get(1),
                min_temperature: r.get(2),
                avg_temperature: r.get(3),
                max_temperature: r.get(4),
                min_humidity: r.get(5),
                avg_humidity: r.get(6),
                max_humidity: r.get(7),
            })
            .collect();
        let sensor_count: i64 = self
            .client
            .query_one("SELECT count(*) FROM sensor_stats", &[])?
            .get(0);
        let files_by_status = self
            .client
            .query(
                "SELECT status, count(*) FROM capture_files GROUP BY status ORDER BY status",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let loads_per_minute = self
            .client
            .query(
                "SELECT date_trunc('minute', loaded_at), count(*), sum(event_count)::bigint
                 FROM capture_files WHERE status <> 'failed' GROUP BY 1 ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| LoadMinute {
                minute: r.get(0),
                files: r.get(1),
                events: r.get(2),
            })
            .collect();
        Ok(ReportData {
            events_per_minute,
            sensors,
            sensor_count,
            files_by_status,
            loads_per_minute,
        })
    }
}
