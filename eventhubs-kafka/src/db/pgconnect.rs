//! Connecting to PostgreSQL the way libpq (psql) does, so a URL that works with psql works
//! here with the same security.
//!
//! - `sslmode` exactly as libpq: `disable`; `allow` (plain first, TLS if that fails);
//!   `prefer`, the default (TLS first, plain if that fails); `require` (TLS, no verification,
//!   unless a root certificate is there: then as `verify-ca`); `verify-ca` (the chain);
//!   `verify-full` (the chain and the host name). `sslrootcert` (a file, or `system` for the
//!   system's store, which as in libpq 16 demands `verify-full`), `sslcert`/`sslkey` (client
//!   certificate; `~/.postgresql/postgresql.{crt,key}` when present).
//! - What the URL leaves out comes from libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`,
//!   `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) and the
//!   password file (`PGPASSFILE`, else `~/.pgpass`; ignored, with a warning, when group or
//!   others can read it, as libpq does).
//! - A failure says why: OpenSSL's verification result (self-signed, host name mismatch, ...)
//!   and the server's message, never only "error performing TLS handshake"; each attempt's
//!   reason when `allow`/`prefer` tried twice. Never the URL or a password.
//!
//! tokio-postgres knows only disable/prefer/require and refuses unknown parameters, so the TLS
//! parameters are taken out of the URL here and the attempts are made here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use postgres::config::{Host, SslMode as WireSslMode};
use postgres::{Client, Config};
use postgres_openssl::MakeTlsConnector;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode `{other}`: expected disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// No root certificate: nothing can be verified.
    None,
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

/// A resolved connection target: what to connect to, how, and as whom.
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub sslmode: SslMode,
    pub root_cert: RootCert,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The URL itself carried a password (not PGPASSWORD or the password file).
    pub url_has_password: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's Debug redacts the password.
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("sslmode", &self.sslmode)
            .field("root_cert", &self.root_cert)
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

/// Where libpq looks for things: the environment and the home directory. A struct so that
/// tests can give their own.
pub struct Environment<'a> {
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
    /// The operating-system user: libpq's default user name.
    pub os_user: Option<String>,
}

impl Environment<'_> {
    pub fn process() -> Environment<'static> {
        Environment {
            var: &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            os_user: std::env::var("USER")
                .ok()
                .or_else(|| std::env::var("LOGNAME").ok()),
        }
    }

    fn postgresql_file(&self, name: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".postgresql").join(name))
    }
}

/// Parse `url` (postgres:// or postgresql://) and fill what it leaves out as libpq would.
pub fn resolve(url: &str, env: &Environment<'_>) -> Result<Target, String> {
    let (rest, ssl) = split_ssl_parameters(url)?;
    // tokio-postgres' own errors never echo the URL.
    let mut config: Config = rest
        .parse()
        .map_err(|e| format!("the PostgreSQL URL is not valid: {e}"))?;
    let url_has_password = config.get_password().is_some();
    fill_from_environment(&mut config, env)?;
    let tls = tls_settings(ssl, env)?;
    Ok(Target {
        config,
        sslmode: tls.sslmode,
        root_cert: tls.root_cert,
        client_cert: tls.client_cert,
        url_has_password,
    })
}

/// The URL's `ssl*` parameters (libpq's, which tokio-postgres does not know), as given.
#[derive(Default)]
struct SslParameters {
    sslmode: Option<SslMode>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// The URL without its `ssl*` parameters, and those parameters.
fn split_ssl_parameters(url: &str) -> Result<(String, SslParameters), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut ssl = SslParameters::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || String::from_utf8_lossy(&crate::percent::decode_lenient(v)).into_owned();
        match k {
            "sslmode" => ssl.sslmode = Some(SslMode::parse(&value())?),
            "sslrootcert" => ssl.rootcert = Some(value()),
            "sslcert" => ssl.cert = Some(value()),
            "sslkey" => ssl.key = Some(value()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, ssl))
}

/// What the URL leaves out, from PG* variables and libpq's defaults: hosts, port, user,
/// database, and the password (PGPASSWORD, else the password file).
fn fill_from_environment(config: &mut Config, env: &Environment<'_>) -> Result<(), String> {
    let var = env.var;
    if config.get_hosts().is_empty() {
        match var("PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',') {
                    if h.starts_with('/') {
                        config.host_path(h);
                    } else {
                        config.host(h);
                    }
                }
            }
            // libpq's default on Debian: the Unix socket directory, else localhost.
            None if Path::new("/var/run/postgresql").is_dir() => {
                config.host_path("/var/run/postgresql");
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = var("PGPORT")
    {
        let port = port
            .parse()
            .map_err(|_| format!("PGPORT `{port}` is not a port number"))?;
        config.port(port);
    }
    if config.get_user().is_none() {
        match var("PGUSER").or_else(|| env.os_user.clone()) {
            Some(user) => {
                config.user(&user);
            }
            None => return Err("no user name: put one in the URL or set PGUSER".into()),
        }
    }
    if config.get_dbname().is_none()
        && let Some(db) = var("PGDATABASE")
    {
        config.dbname(&db);
    }
    if config.get_password().is_none() {
        if let Some(password) = var("PGPASSWORD") {
            config.password(password);
        } else if let Some(password) = pgpass_password(config, env) {
            config.password(password);
        }
    }
    Ok(())
}

/// How a connection's TLS is set up.
struct TlsSettings {
    sslmode: SslMode,
    root_cert: RootCert,
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// sslmode, the root certificate and the client certificate: the URL's parameters, else
/// PGSSL* variables, else libpq's defaults (`~/.postgresql/root.crt`, `postgresql.crt`).
fn tls_settings(ssl: SslParameters, env: &Environment<'_>) -> Result<TlsSettings, String> {
    let var = env.var;
    let sslmode = match ssl.sslmode {
        Some(m) => m,
        None => match var("PGSSLMODE") {
            Some(m) => SslMode::parse(&m)?,
            None if ssl.rootcert.as_deref().or(var("PGSSLROOTCERT").as_deref())
                == Some("system") =>
            {
                SslMode::VerifyFull
            }
            None => SslMode::Prefer,
        },
    };
    let root_cert = match ssl.rootcert.or_else(|| var("PGSSLROOTCERT")) {
        Some(s) if s == "system" => RootCert::System,
        Some(path) => RootCert::File(PathBuf::from(path)),
        None => env
            .postgresql_file("root.crt")
            .map_or(RootCert::None, RootCert::File),
    };
    if root_cert == RootCert::System && sslmode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode `{}` may not be used with sslrootcert=system (use verify-full)",
            mode_name(sslmode)
        ));
    }
    let cert = ssl
        .cert
        .or_else(|| var("PGSSLCERT"))
        .map(PathBuf::from)
        .or_else(|| env.postgresql_file("postgresql.crt"));
    let key = ssl
        .key
        .or_else(|| var("PGSSLKEY"))
        .map(PathBuf::from)
        .or_else(|| env.postgresql_file("postgresql.key"));
    // The default client certificate counts only when it is there, as in libpq.
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) if c.exists() => Some((c, k)),
        _ => None,
    };
    Ok(TlsSettings {
        sslmode,
        root_cert,
        client_cert,
    })
}

fn mode_name(m: SslMode) -> &'static str {
    match m {
        SslMode::Disable => "disable",
        SslMode::Allow => "allow",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// The password file's password for this host, port, database and user (libpq's rules:
/// first matching line, `*` matches anything, `\` escapes `:` and `\`; `localhost` also
/// matches a Unix socket; ignored when group or others may read it).
fn pgpass_password(config: &Config, env: &Environment<'_>) -> Option<String> {
    let path = (env.var)("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "password file has group or world access; permissions should be u=rw (0600) or less: ignored, as libpq does"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(h) => h.clone(),
        Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user()?.to_string();
    let db = config.get_dbname().map_or(user.clone(), str::to_string);
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, password] = &fields[..] else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, &host) && matches(p, &port) && matches(d, &db) && matches(u, &user))
                .then(|| password.clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// Why OpenSSL refused the server's certificate, recorded by the verify callback.
type VerifyFailure = Arc<Mutex<Option<String>>>;

fn tls_connector(
    target: &Target,
    verify: bool,
    verify_host: bool,
) -> Result<(MakeTlsConnector, VerifyFailure), String> {
    let mut builder =
        SslConnector::builder(SslMethod::tls()).map_err(|e| format!("setting up TLS: {e}"))?;
    let failure: VerifyFailure = Arc::default();
    if verify {
        // Exactly the given roots, as libpq: SslConnector starts from OpenSSL's default
        // paths, and on Debian /etc/ssl/certs links the machine's own self-signed "snakeoil"
        // certificate, which would then pass verify-full against any sslrootcert.
        let mut store = X509StoreBuilder::new().map_err(|e| format!("setting up TLS: {e}"))?;
        match &target.root_cert {
            RootCert::File(path) => {
                let pem = std::fs::read(path).map_err(|_| {
                    format!(
                        "root certificate file \"{}\" does not exist or cannot be read: provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification",
                        path.display()
                    )
                })?;
                let certs = X509::stack_from_pem(&pem)
                    .map_err(|e| format!("reading the root certificate {}: {e}", path.display()))?;
                for cert in certs {
                    store.add_cert(cert).map_err(|e| {
                        format!("reading the root certificate {}: {e}", path.display())
                    })?;
                }
            }
            RootCert::System => store
                .set_default_paths()
                .map_err(|e| format!("loading the system's trusted roots: {e}"))?,
            RootCert::None => {
                return Err("no root certificate to verify the server with: set sslrootcert (or ~/.postgresql/root.crt), or use sslmode=require to encrypt without verifying".into());
            }
        }
        builder.set_cert_store(store.build());
        let record = failure.clone();
        builder.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            if !ok
                && let Ok(mut slot) = record.lock()
                && slot.is_none()
            {
                *slot = Some(ctx.error().error_string().to_string());
            }
            ok
        });
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if let Some((cert, key)) = &target.client_cert {
        builder
            .set_certificate_chain_file(cert)
            .map_err(|e| format!("reading the client certificate {}: {e}", cert.display()))?;
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| format!("reading the client key {}: {e}", key.display()))?;
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    if !verify_host {
        connector.set_callback(|config, _| {
            config.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok((connector, failure))
}

/// A postgres error with its causes; for a refused certificate, OpenSSL's verification
/// result in plain words instead of its error stack.
fn describe(e: &postgres::Error, failure: &VerifyFailure) -> String {
    if let Some(reason) = failure.lock().ok().and_then(|f| f.clone()) {
        return format!("{e}: certificate verify failed: {reason}");
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[derive(Clone, Copy)]
enum Attempt {
    Plain,
    Tls { verify: bool, verify_host: bool },
}

fn attempt(target: &Target, how: Attempt) -> Result<Client, String> {
    let mut config = target.config.clone();
    match how {
        Attempt::Plain => {
            config.ssl_mode(WireSslMode::Disable);
            config
                .connect(postgres::NoTls)
                .map_err(|e| describe(&e, &VerifyFailure::default()))
        }
        Attempt::Tls {
            verify,
            verify_host,
        } => {
            config.ssl_mode(WireSslMode::Require);
            let (connector, failure) = tls_connector(target, verify, verify_host)?;
            config
                .connect(connector)
                .map_err(|e| describe(&e, &failure))
        }
    }
}

/// Connect as libpq would for `target.sslmode`.
pub fn connect(target: &Target) -> Result<Client, String> {
    let unverified = Attempt::Tls {
        verify: false,
        verify_host: false,
    };
    let verify_ca = Attempt::Tls {
        verify: true,
        verify_host: false,
    };
    let sequence: &[(Attempt, &str)] = match target.sslmode {
        SslMode::Disable => &[(Attempt::Plain, "without TLS")],
        SslMode::Allow => &[(Attempt::Plain, "without TLS"), (unverified, "with TLS")],
        SslMode::Prefer => &[(unverified, "with TLS"), (Attempt::Plain, "without TLS")],
        // libpq: with a root certificate present, require verifies as verify-ca does.
        SslMode::Require if matches!(&target.root_cert, RootCert::File(p) if p.exists()) => {
            &[(verify_ca, "with TLS")]
        }
        SslMode::Require => &[(unverified, "with TLS")],
        SslMode::VerifyCa => &[(verify_ca, "with TLS")],
        SslMode::VerifyFull => &[(
            Attempt::Tls {
                verify: true,
                verify_host: true,
            },
            "with TLS",
        )],
    };
    let mut failures = Vec::new();
    for (how, label) in sequence {
        match attempt(target, *how) {
            Ok(client) => return Ok(client),
            Err(reason) => failures.push(if sequence.len() > 1 {
                format!("{label}: {reason}")
            } else {
                reason
            }),
        }
    }
    Err(format!(
        "connecting to PostgreSQL (sslmode={}) failed: {}",
        mode_name(target.sslmode),
        failures.join("; then ")
    ))
}

#[cfg(test)]
#[path = "pgconnect_tests.rs"]
mod tests;
