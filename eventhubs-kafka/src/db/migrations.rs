//! The database schema: ordered `.sql` files per dialect (`migrations/<dialect>/NNNN_name.sql`),
//! the same versions in both, and one runner.
//!
//! Who calls what: each store opens its database and hands [`run`] its dialect's list and a
//! function that applies one migration if its version is not recorded yet, inside that
//! store's lock (PostgreSQL: one transaction under an advisory lock; SQLite: one IMMEDIATE
//! transaction per migration). The runner keeps the order, names the failing migration and
//! logs what it applied.

use anyhow::Context;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

macro_rules! migrations {
    ($dialect:literal: $($version:literal $name:literal),+ $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/", $dialect, "/", $name, ".sql")),
        }),+]
    };
}

pub(crate) const POSTGRES: &[Migration] = migrations!("postgres":
    1 "0001_capture_tables",
    2 "0002_gaps_and_report",
    3 "0003_consumer_positions",
);

pub(crate) const SQLITE: &[Migration] = migrations!("sqlite":
    1 "0001_capture_tables",
    2 "0002_gaps_and_report",
    3 "0003_consumer_positions",
);

/// Apply `migrations` in order. `apply_if_new` applies one (and records its version) unless
/// it is recorded already, and says whether it did.
pub(crate) fn run(
    migrations: &[Migration],
    mut apply_if_new: impl FnMut(&Migration) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    for migration in migrations {
        let applied = apply_if_new(migration).with_context(|| {
            format!(
                "applying migration {} ({})",
                migration.version, migration.name
            )
        })?;
        if applied {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "database migrated"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_have_the_same_migrations_in_order() {
        let versions = |m: &[Migration]| m.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(versions(POSTGRES), versions(SQLITE));
        for list in [POSTGRES, SQLITE] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
                assert!(
                    m.name.starts_with(&format!("{:04}_", m.version)),
                    "{}",
                    m.name
                );
                assert!(!m.sql.trim().is_empty(), "{}", m.name);
            }
        }
    }
}
