//! Azurite and fixtures for the capture-loader's storage tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub(crate) fn required(what: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is missing (CI installs it)"
    );
    eprintln!("SKIPPED: {what} is missing");
    false
}

pub(crate) fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("EVENTHUBS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    (dir.join("capture").is_dir() || required("../shared/fixtures")).then(|| dir.join("capture"))
}

pub(crate) fn azurite_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AZURITE_BLOB_BIN") {
        return Some(PathBuf::from(p));
    }
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let cached = home.join(".cache/eventhubs-kafka/azurite/node_modules/.bin/azurite-blob");
    (cached.exists() || required("azurite (npm)")).then_some(cached)
}

/// Whether the HTTP server on `port` answers with a `Server` header naming `name`.
pub(crate) fn serves_as(port: u16, name: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .lines()
        .take_while(|l| !l.is_empty())
        .any(|l| l.to_ascii_lowercase().starts_with("server:") && l.contains(name))
}

pub(crate) struct Azurite {
    child: Child,
    pub connection_string: String,
    pub endpoint: String,
    /// The self-signed certificate it serves HTTPS with, if it does.
    pub certificate: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    pub(crate) fn start(bin: &PathBuf) -> Self {
        Self::start_with(bin, false)
    }

    /// HTTPS with a self-signed certificate for 127.0.0.1, and Entra ID bearer tokens
    /// accepted (`--oauth basic`: lifetime, issuer and audience are checked, not signatures).
    pub(crate) fn start_https_oauth(bin: &PathBuf) -> Self {
        Self::start_with(bin, true)
    }

    fn start_with(bin: &PathBuf, https: bool) -> Self {
        // A port found free can be taken by another test's server before Azurite binds it:
        // only an answer from this Azurite counts, else try another port.
        for _ in 0..5 {
            if let Some(started) = Self::try_start(bin, https) {
                return started;
            }
        }
        panic!("azurite did not start on any of 5 ports");
    }

    fn try_start(bin: &PathBuf, https: bool) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(bin);
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--silent",
                "--skipApiVersionCheck",
                "--location",
            ])
            .arg(dir.path());
        let certificate = https.then(|| {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            command
                .arg("--cert")
                .arg(&cert)
                .arg("--key")
                .arg(&key)
                .args(["--oauth", "basic"]);
            cert
        });
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                return None;
            }
            // Over HTTPS the plain-HTTP probe cannot ask; a listening port of the live
            // child is this Azurite (another server on the port would have made it exit).
            let up = if https {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                serves_as(port, "Azurite")
            };
            if up {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("azurite did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let scheme = if https { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{port}/devstoreaccount1");
        Some(Self {
            child,
            connection_string: format!(
                "DefaultEndpointsProtocol={scheme};AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint={endpoint};"
            ),
            endpoint,
            certificate,
            _dir: dir,
        })
    }

    /// Upload with Python azure-storage-blob: (blob name, local file).
    pub(crate) fn upload(&self, container: &str, blobs: &[(String, PathBuf)]) {
        let script = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
svc = BlobServiceClient.from_connection_string(os.environ["CS"])
c = svc.get_container_client(sys.argv[1])
if not c.exists():
    c.create_container()
args = sys.argv[2:]
for name, path in zip(args[::2], args[1::2]):
    with open(path, "rb") as f:
        c.upload_blob(name, f, overwrite=True)
"#;
        let mut cmd = Command::new("python3");
        cmd.args(["-c", script, container])
            .env("CS", &self.connection_string);
        if let Some(cert) = &self.certificate {
            cmd.env("REQUESTS_CA_BUNDLE", cert);
        }
        for (name, path) in blobs {
            cmd.arg(name).arg(path);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "upload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A PostgreSQL server of the test's own, with TLS from a CA made here: its certificate names
/// `localhost` only (so `verify-full` to 127.0.0.1 is a host name mismatch). Roles, each with
/// a database of its name: `anyone` (TLS or not), `tls_only` (refused without TLS),
/// `plain_only` (refused with TLS); password `pw-<role>`. Runs as the `postgres` user
/// (needs root); stopped on drop.
pub(crate) struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server has.
    pub other_ca: PathBuf,
}

impl TlsPostgres {
    pub(crate) fn start() -> Option<Self> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .max()
        });
        let Some(bin) = versions else {
            required("PostgreSQL's server binaries (Debian package postgresql)");
            return None;
        };
        let root = Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .is_some_and(|o| o.stdout == b"0\n");
        if !root {
            required("root, to run a private PostgreSQL as the postgres user");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
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
        std::fs::write(tls.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
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
            "server.crt",
        ]);
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("chmod").arg("755").arg(dir.path()));
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()));
        run(Command::new("chmod").arg("600").arg(tls.join("server.key")));
        let data = dir.path().join("data");
        let as_postgres = |program: &str| {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(bin.join(program));
            cmd
        };
        run(as_postgres("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=reject",
        ]));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl   all tls_only   127.0.0.1/32 scram-sha-256\n\
             hostnossl all tls_only   127.0.0.1/32 reject\n\
             hostnossl all plain_only 127.0.0.1/32 scram-sha-256\n\
             hostssl   all plain_only 127.0.0.1/32 reject\n\
             host      all all        127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.path().display(),
            tls.join("server.crt").display(),
            tls.join("server.key").display()
        );
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-o", &options, "start"]));
        let server = Self {
            ca: tls.join("ca.pem"),
            other_ca: tls.join("other-ca.pem"),
            dir,
            bin,
            port,
        };
        let mut sql = String::new();
        for role in ["anyone", "tls_only", "plain_only"] {
            sql.push_str(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'; CREATE DATABASE {role} OWNER {role};"));
        }
        for statement in sql.split_inclusive(';') {
            run(Command::new("psql").args([
                "-h",
                &server.dir.path().display().to_string(),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-qAtc",
                statement,
            ]));
        }
        Some(server)
    }

    /// Run SQL as the superuser, over the server's Unix socket.
    pub(crate) fn sql(&self, statement: &str) {
        let out = Command::new("psql")
            .args([
                "-h",
                &self.dir.path().display().to_string(),
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "postgres", "-qAtc", statement])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://role:pw-role@host:port/role?query`.
    pub(crate) fn url(&self, role: &str, host: &str, query: &str) -> String {
        format!(
            "postgres://{role}:pw-{role}@{host}:{}/{role}{}{query}",
            self.port,
            if query.is_empty() { "" } else { "?" }
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
