//! Apache Kafka for the tests, started by `scripts/kafka` (KRaft, one combined node) with the
//! listeners Event Hubs users meet: PLAINTEXT, SASL_SSL + PLAIN with `$ConnectionString`
//! (Event Hubs' own way), and SASL_SSL + SCRAM-SHA-512.
//!
//! A JVM takes seconds to start, so one broker serves the whole run: every test process
//! (nextest runs each test in its own) finds it through `scripts/kafka ensure`, under a file
//! lock, in `$EHK_TEST_KAFKA_DIR` (scripts/test sets it and stops the broker at the end) or
//! else `target/test-kafka` (left running for the next `cargo nextest run`; stop it with
//! `scripts/kafka stop target/test-kafka`). Tests keep apart by unique topics and groups.
//! A test that stops its broker gets a [`PrivateKafka`] of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use tempfile::TempDir;

/// What `scripts/kafka` writes to `<state dir>/broker.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BrokerInfo {
    pub version: String,
    /// PLAINTEXT listener.
    pub plaintext: String,
    /// SASL_SSL + PLAIN, Event Hubs style.
    pub eventhubs: String,
    /// SASL_SSL + SCRAM-SHA-512.
    pub scram: String,
    /// SASL_SSL + OAUTHBEARER, validating Entra-style JWTs against a JWKS: only on a
    /// [`PrivateKafka::start_with_oauth`] broker.
    #[serde(default)]
    pub oauth: Option<String>,
    /// PEM of the CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// `Endpoint=sb://localhost/;SharedAccessKeyName=…;SharedAccessKey=…` (no EntityPath).
    pub connection_string: String,
    pub scram_user: String,
    pub scram_password: String,
    /// The broker's log file.
    pub log: PathBuf,
    /// Kafka's command-line tools (`kafka-console-consumer.sh`, ...).
    pub bin: PathBuf,
}

/// Which listener a [`Broker`] handle points the tools at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plaintext,
    /// SASL_SSL + PLAIN with user `$ConnectionString`: the tools get a connection string,
    /// redirected to the local listener by `EVENTHUB_KAFKA_ENDPOINT` and trusting the test CA
    /// through `KAFKA_SSL_CA_LOCATION`.
    EventHubs,
    /// SASL_SSL + SCRAM-SHA-512.
    Scram,
}

/// One listener of a running Kafka: what the tests hand to the tools.
#[derive(Debug, Clone)]
pub struct Broker {
    pub info: BrokerInfo,
    pub listener: Listener,
    /// What clients put in `bootstrap.servers`.
    pub bootstrap: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `scripts/kafka <cmd> <dir>`, its output kept for the failure message.
fn launcher(cmd: &str, dir: &Path) -> Output {
    launcher_with(cmd, dir, &[])
}

fn launcher_with(cmd: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/kafka"))
        .arg(cmd)
        .arg(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/kafka");
    if !out.status.success() {
        // The broker's own reason is in its log, which the temporary folder takes away.
        let log = std::fs::read_to_string(dir.join("logs/server.log")).unwrap_or_default();
        let reasons: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("Exception"))
            .take(10)
            .collect();
        panic!(
            "scripts/kafka {cmd} {} failed ({}):\n{}\nbroker log:\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            reasons.join("\n")
        );
    }
    out
}

fn read_info(dir: &Path) -> BrokerInfo {
    let path = dir.join("broker.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()))
}

fn shared_info() -> &'static BrokerInfo {
    static SHARED: OnceLock<BrokerInfo> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = std::env::var_os("EHK_TEST_KAFKA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/test-kafka"));
        std::fs::create_dir_all(&dir).expect("create the test broker's folder");
        // One process starts it; the others wait here, then find it running.
        let lock = std::fs::File::create(dir.with_extension("lock")).expect("lock file");
        lock.lock().expect("lock the test broker's folder");
        launcher("ensure", &dir);
        let info = read_info(&dir);
        let _ = lock.unlock();
        info
    })
}

impl Broker {
    /// The run's shared broker, PLAINTEXT listener.
    pub fn plaintext() -> Self {
        Self::shared(Listener::Plaintext)
    }

    /// The run's shared broker, Event Hubs-style SASL_SSL + PLAIN listener.
    pub fn event_hubs() -> Self {
        Self::shared(Listener::EventHubs)
    }

    /// The run's shared broker, SASL_SSL + SCRAM-SHA-512 listener.
    pub fn scram() -> Self {
        Self::shared(Listener::Scram)
    }

    pub fn shared(listener: Listener) -> Self {
        Self::of(shared_info().clone(), listener)
    }

    fn of(info: BrokerInfo, listener: Listener) -> Self {
        let bootstrap = match listener {
            Listener::Plaintext => info.plaintext.clone(),
            Listener::EventHubs => info.eventhubs.clone(),
            Listener::Scram => info.scram.clone(),
        };
        Self {
            info,
            listener,
            bootstrap,
        }
    }

    /// The same broker through another listener.
    pub fn via(&self, listener: Listener) -> Self {
        Self::of(self.info.clone(), listener)
    }

    /// The namespace's connection string scoped to one event hub, as the portal gives it
    /// for an entity-level policy.
    pub fn connection_string_for(&self, topic: &str) -> String {
        format!("{};EntityPath={topic}", self.info.connection_string)
    }

    /// Environment that points the tools at this listener (secrets via the environment only).
    pub fn env(&self) -> Vec<(String, String)> {
        let ca = self.info.ca_file.display().to_string();
        let pairs: Vec<(&str, String)> = match self.listener {
            Listener::Plaintext => vec![
                ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.clone()),
                ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT".into()),
            ],
            Listener::EventHubs => vec![
                (
                    "EVENTHUB_CONNECTION_STRING",
                    self.info.connection_string.clone(),
                ),
                ("EVENTHUB_KAFKA_ENDPOINT", self.bootstrap.clone()),
                ("KAFKA_SSL_CA_LOCATION", ca),
            ],
            Listener::Scram => vec![
                ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.clone()),
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".into()),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
                ("KAFKA_SASL_USERNAME", self.info.scram_user.clone()),
                ("KAFKA_SASL_PASSWORD", self.info.scram_password.clone()),
                ("KAFKA_SSL_CA_LOCATION", ca),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Create a topic through the PLAINTEXT listener with Kafka's own `kafka-topics.sh`, the
    /// way terraform creates an event hub before any client uses it.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = self
            .kafka_tool("kafka-topics.sh")
            .args(["--bootstrap-server", &self.info.plaintext, "--create"])
            .args(["--topic", topic, "--partitions", &partitions.to_string()])
            .output()
            .expect("run kafka-topics.sh");
        assert!(
            out.status.success(),
            "kafka-topics.sh --create {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One of Kafka's command-line tools (`kafka-console-consumer.sh`, ...).
    pub fn kafka_tool(&self, script: &str) -> Command {
        let mut cmd = Command::new(self.info.bin.join(script));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The broker's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.info.log).unwrap_or_default()
    }
}

/// A broker of one test's own, for tests that stop and restart it. Its state folder (log
/// directory included) survives [`PrivateKafka::stop`]; the broker is stopped on drop.
pub struct PrivateKafka {
    dir: TempDir,
    info: BrokerInfo,
}

impl PrivateKafka {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        launcher("start", dir.path());
        let info = read_info(dir.path());
        Self { dir, info }
    }

    /// With a SASL_SSL + OAUTHBEARER listener as well ([`BrokerInfo::oauth`]), accepting
    /// tokens signed by a key of `jwks_url` for `audience` (Kafka's
    /// `OAuthBearerValidatorCallbackHandler`: signature, expiry, audience).
    pub fn start_with_oauth(jwks_url: &str, audience: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        launcher_with(
            "start",
            dir.path(),
            &[
                ("KAFKA_OAUTH_JWKS_URL", jwks_url),
                ("KAFKA_OAUTH_AUDIENCE", audience),
            ],
        );
        let info = read_info(dir.path());
        Self { dir, info }
    }

    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    pub fn broker(&self, listener: Listener) -> Broker {
        Broker::of(self.info.clone(), listener)
    }

    /// Controlled shutdown (SIGTERM), waiting until the process has exited.
    pub fn stop(&self) {
        launcher("stop", self.dir.path());
    }

    /// Start again on the same ports and log directory.
    pub fn restart(&self) {
        launcher("start", self.dir.path());
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/kafka"))
            .arg("stop")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output();
    }
}
