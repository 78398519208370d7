//! A real Kafka-protocol broker per test: `tansu` on a free loopback port, optionally with
//! SCRAM authentication and with TLS terminated by `stunnel` in front of it.
//!
//! tansu 0.6.0 notes that shape this harness: users are created with `tansu user create`
//! against a broker running *without* `--authentication` on durable storage, which is then
//! restarted with it; its own `--cert/--key` cannot be combined (a CLI bug), hence stunnel;
//! it has no SASL PLAIN, so SCRAM-SHA-512 stands in for Event Hubs' PLAIN.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The tansu binary: `$TANSU_BIN`, else `tansu` on the PATH or in ~/.cargo/bin.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    if let Some(found) = find_on_path("tansu") {
        return found;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo = home.join(".cargo/bin/tansu");
    assert!(
        cargo.exists(),
        "tansu is not installed: run scripts/test (it installs tansu 0.6.0) or set TANSU_BIN"
    );
    cargo
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

/// A SCRAM user the broker accepts.
#[derive(Debug, Clone)]
pub struct ScramUser {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Require SCRAM-SHA-512 with this user.
    pub scram: Option<ScramUser>,
    /// Put TLS (stunnel, self-signed CA) in front of the broker.
    pub tls: bool,
}

/// A running broker; killed (with its stunnel) when dropped.
pub struct Broker {
    /// What clients put in `bootstrap.servers`.
    pub bootstrap: String,
    /// PEM of the CA that signed the TLS certificate, when `tls` was asked for.
    pub ca_file: Option<PathBuf>,
    pub options: BrokerOptions,
    tansu: Child,
    stunnel: Option<Child>,
    dir: TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        for child in [Some(&mut self.tansu), self.stunnel.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Broker {
    /// Plain broker on in-memory storage.
    pub fn start() -> Self {
        Self::start_with(BrokerOptions::default())
    }

    pub fn start_with(options: BrokerOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker_port = free_port();
        let tls_port = options.tls.then(free_port);
        let advertised_port = tls_port.unwrap_or(broker_port);
        let storage = if options.scram.is_some() {
            // Users must survive the restart that turns authentication on. tansu 0.6.0 reads
            // the path relative to its working directory (it drops a leading slash).
            "sqlite://tansu.db".to_string()
        } else {
            "memory://tansu/".to_string()
        };
        let log = dir.path().join("tansu.log");
        let spawn = |auth: bool| {
            let mut cmd = Command::new(tansu_bin());
            cmd.arg("broker")
                .arg("--listener-url")
                .arg(format!("tcp://127.0.0.1:{broker_port}"))
                .arg("--advertised-listener-url")
                .arg(format!("tcp://127.0.0.1:{advertised_port}"))
                .arg("--storage-engine")
                .arg(&storage)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("broker log"));
            if auth {
                cmd.arg("--authentication");
            }
            let mut child = cmd.spawn().expect("start tansu");
            wait_for_port(broker_port, &mut child, "tansu", &log);
            child
        };
        let tansu = match &options.scram {
            None => spawn(false),
            Some(user) => {
                let mut setup = spawn(false);
                let status = Command::new(tansu_bin())
                    .args(["user", "create", "--broker"])
                    .arg(format!("tcp://127.0.0.1:{broker_port}"))
                    .args(["--mechanism", "scram512"])
                    .arg(&user.name)
                    .arg(&user.password)
                    .stdout(Stdio::null())
                    .status()
                    .expect("run tansu user create");
                assert!(status.success(), "tansu user create failed");
                let _ = setup.kill();
                let _ = setup.wait();
                spawn(true)
            }
        };
        let (stunnel, ca_file) = match tls_port {
            Some(port) => {
                let (child, ca) = start_stunnel(dir.path(), port, broker_port);
                (Some(child), Some(ca))
            }
            None => (None, None),
        };
        Self {
            bootstrap: format!("127.0.0.1:{advertised_port}"),
            ca_file,
            options,
            tansu,
            stunnel,
            dir,
        }
    }

    /// Environment that points the tools at this broker (secrets via the environment only).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "KAFKA_BOOTSTRAP_SERVERS".to_string(),
            self.bootstrap.clone(),
        )];
        let protocol = match (self.options.scram.is_some(), self.options.tls) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SSL",
            (true, false) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        };
        env.push(("KAFKA_SECURITY_PROTOCOL".into(), protocol.into()));
        if let Some(user) = &self.options.scram {
            env.push(("KAFKA_SASL_MECHANISM".into(), "SCRAM-SHA-512".into()));
            env.push(("KAFKA_SASL_USERNAME".into(), user.name.clone()));
            env.push(("KAFKA_SASL_PASSWORD".into(), user.password.clone()));
        }
        if let Some(ca) = &self.ca_file {
            env.push(("KAFKA_SSL_CA_LOCATION".into(), ca.display().to_string()));
        }
        env
    }

    /// The broker's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

/// A CA and a server certificate for 127.0.0.1/localhost, then stunnel from `accept` to
/// the broker.
fn start_stunnel(dir: &Path, accept: u16, connect: u16) -> (Child, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 4\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    )
    .expect("write stunnel.conf");
    let log = dir.join("stunnel.log");
    let stunnel = find_on_path("stunnel")
        .or_else(|| find_on_path("stunnel4"))
        .expect("stunnel is not installed (Debian package stunnel4)");
    let mut child = Command::new(stunnel)
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("stunnel log"))
        .spawn()
        .expect("start stunnel");
    wait_for_port(accept, &mut child, "stunnel", &log);
    (child, dir.join("ca.pem"))
}
