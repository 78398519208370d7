//! Test support shared by the integration tests: real broker processes, a test schema
//! registry, and helpers that run the tools as separate processes, the way users run them.

pub mod azure_registry;
pub mod broker;
pub mod postgres;
pub mod registry;
pub mod token;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub use azure_registry::AzureSchemaRegistry;
pub use broker::{Broker, BrokerInfo, Listener, PrivateKafka};
pub use postgres::PgDatabase;
pub use registry::TestSchemaRegistry;
pub use token::{TokenService, TokenServiceOptions};

/// Environment variables the tools read; cleared before each run so that the developer's
/// own settings never leak into a test.
pub const TOOL_ENV: &[&str] = &[
    "EVENTHUB_CONNECTION_STRING",
    "EVENTHUB_NAME",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CA_LOCATION",
    "EVENTHUB_KAFKA_ENDPOINT",
    "KAFKA_GROUP_ID",
    "SCHEMA_REGISTRY_URL",
    "SCHEMA_REGISTRY_USERNAME",
    "SCHEMA_REGISTRY_PASSWORD",
    "LOG_FORMAT",
];

/// Path of a workspace binary (`producer`, `consumer`, ...), built by
/// `cargo build --workspace --bins` (scripts/test does that before the tests).
pub fn bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("{}_BIN", name.to_uppercase().replace('-', "_"))) {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins), as scripts/test does",
        path.display()
    );
    path
}

/// A name no other test uses: topics and groups are fresh per test.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:08x}", std::process::id())
}

/// A command for one of the tools, with a clean environment pointing at `broker`.
pub fn tool(name: &str, broker: &Broker) -> Command {
    let mut cmd = Command::new(bin(name));
    for var in TOOL_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(broker.env());
    cmd.env("RUST_LOG", "info");
    cmd.stdin(Stdio::null());
    cmd
}

/// Run to completion and return its output; panics with stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run tool")
}

/// stdout as JSON lines.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
