//! A database of its own per test on the PostgreSQL that scripts/test starts
//! (`LOADER_TEST_POSTGRES`, default
//! postgres://eventhubs_test:eventhubs_test@127.0.0.1:5432/eventhubs_test), through `psql`.

use std::process::Command;

/// A database of its own on the running PostgreSQL, dropped at the end.
pub struct PgDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Option<Self> {
        let admin = std::env::var("LOADER_TEST_POSTGRES").unwrap_or_else(|_| {
            "postgres://eventhubs_test:eventhubs_test@127.0.0.1:5432/eventhubs_test".into()
        });
        let name = format!(
            "loader_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let ok = Command::new("psql")
            .args([&admin, "-qAtc", &format!("CREATE DATABASE {name}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is not reachable at {admin} (CI starts it)"
            );
            eprintln!("SKIPPED: no PostgreSQL at {admin}");
            return None;
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }

    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([self.url.split('?').next().unwrap(), "-qAtc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}
