//! The loader connects to PostgreSQL as psql does: every `sslmode`, root certificates, the
//! `PG*` variables and the password file, checked case by case against psql itself on a
//! server with TLS and a certificate made here; and Debian's own cluster with its
//! self-signed certificate, which the default `sslmode=prefer` must accept.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TlsPostgres;

/// Variables libpq reads: cleared so that only what a case sets applies.
const LIBPQ_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGPASSFILE",
    "PGSERVICE",
    "DATABASE_URL",
];

fn with_env(mut cmd: Command, home: &Path, env: &[(&str, &str)]) -> Output {
    for var in LIBPQ_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn psql(url: &str, home: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-qAtc", "SELECT 1"]);
    with_env(cmd, home, env)
}

fn loader(url: &str, home: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capture-loader"));
    cmd.args(["status", "--db", url]);
    with_env(cmd, home, env)
}

/// Run both; assert they agree on connecting; return the loader's stderr.
fn agree(case: &str, url: &str, home: &Path, env: &[(&str, &str)], connects: bool) -> String {
    let theirs = psql(url, home, env);
    let ours = loader(url, home, env);
    let err = String::from_utf8_lossy(&ours.stderr).into_owned();
    // status exits 0 or 1 (healthy or not) once connected, 2 when it could not run.
    let we_connected = matches!(ours.status.code(), Some(0 | 1));
    assert_eq!(
        theirs.status.success(),
        connects,
        "{case}: psql {} expected: {}",
        if connects {
            "refused, connect"
        } else {
            "connected, refuse"
        },
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert_eq!(
        we_connected, connects,
        "{case}: the loader disagrees with psql: {err}"
    );
    assert!(
        !err.contains("pw-"),
        "{case}: a password reached the output: {err}"
    );
    if !connects {
        assert!(
            !err.trim_end().ends_with("error performing TLS handshake"),
            "{case}: no reason given: {err}"
        );
    }
    err
}

#[test]
fn every_sslmode_connects_or_refuses_as_psql_does_and_says_why() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let ca = format!("sslrootcert={}", pg.ca.display());
    let other = format!("sslrootcert={}", pg.other_ca.display());
    let ip = "127.0.0.1";
    let cases: Vec<(&str, &str, &str, String, bool)> = vec![
        ("default is prefer", "anyone", ip, String::new(), true),
        ("disable", "anyone", ip, "sslmode=disable".into(), true),
        ("allow", "anyone", ip, "sslmode=allow".into(), true),
        (
            "require encrypts without verifying",
            "anyone",
            ip,
            "sslmode=require".into(),
            true,
        ),
        (
            "verify-ca without a root certificate",
            "anyone",
            ip,
            "sslmode=verify-ca".into(),
            false,
        ),
        (
            "verify-ca with the CA",
            "anyone",
            ip,
            format!("sslmode=verify-ca&{ca}"),
            true,
        ),
        (
            "verify-full by name",
            "anyone",
            "localhost",
            format!("sslmode=verify-full&{ca}"),
            true,
        ),
        (
            "verify-full, name mismatch",
            "anyone",
            ip,
            format!("sslmode=verify-full&{ca}"),
            false,
        ),
        (
            "verify-ca, another CA",
            "anyone",
            ip,
            format!("sslmode=verify-ca&{other}"),
            false,
        ),
        (
            "require with a root certificate verifies",
            "anyone",
            ip,
            format!("sslmode=require&{other}"),
            false,
        ),
        (
            "TLS-only role, disable",
            "tls_only",
            ip,
            "sslmode=disable".into(),
            false,
        ),
        (
            "TLS-only role, allow retries with TLS",
            "tls_only",
            ip,
            "sslmode=allow".into(),
            true,
        ),
        ("TLS-only role, prefer", "tls_only", ip, String::new(), true),
        (
            "plain-only role, prefer falls back",
            "plain_only",
            ip,
            String::new(),
            true,
        ),
        (
            "plain-only role, require",
            "plain_only",
            ip,
            "sslmode=require".into(),
            false,
        ),
        (
            "plain-only role, allow",
            "plain_only",
            ip,
            "sslmode=allow".into(),
            true,
        ),
    ];
    let mut reasons = std::collections::BTreeMap::new();
    for (case, role, host, query, connects) in &cases {
        let url = pg.url(role, host, query);
        reasons.insert(*case, agree(case, &url, home, &[], *connects));
    }
    let reason = |case: &str| reasons[case].clone();
    // OpenSSL's words: "IP address mismatch" for an address, "hostname mismatch" for a name.
    assert!(
        reason("verify-full, name mismatch").contains("IP address mismatch"),
        "{}",
        reason("verify-full, name mismatch")
    );
    let other_ca = reason("verify-ca, another CA");
    assert!(
        other_ca.contains("certificate verify failed: unable to get local issuer certificate"),
        "{other_ca}"
    );
    assert!(
        reason("require with a root certificate verifies").contains("certificate verify failed")
    );
    assert!(reason("verify-ca without a root certificate").contains("root certificate file"));
    assert!(
        reason("TLS-only role, disable").contains("no encryption"),
        "{}",
        reason("TLS-only role, disable")
    );
    let plain = reason("plain-only role, require");
    assert!(
        plain.contains("pg_hba.conf rejects connection") && plain.contains("SSL encryption"),
        "{plain}"
    );
    // A root certificate in ~/.postgresql is found like libpq finds it.
    let dot = home.join(".postgresql");
    std::fs::create_dir_all(&dot).unwrap();
    std::fs::copy(&pg.other_ca, dot.join("root.crt")).unwrap();
    agree(
        "~/.postgresql/root.crt makes require verify",
        &pg.url("anyone", ip, "sslmode=require"),
        home,
        &[],
        false,
    );
    std::fs::copy(&pg.ca, dot.join("root.crt")).unwrap();
    agree(
        "~/.postgresql/root.crt for verify-full",
        &pg.url("anyone", "localhost", "sslmode=verify-full"),
        home,
        &[],
        true,
    );
}

#[test]
fn pg_variables_and_the_password_file_apply_as_in_psql() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let port = pg.port.to_string();
    let ca = pg.ca.display().to_string();
    let passfile = home.join("pgpass");
    std::fs::write(
        &passfile,
        format!("localhost:{port}:anyone:anyone:pw-anyone\n"),
    )
    .unwrap();
    let passfile_name = passfile.display().to_string();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = [
        ("PGHOST", "localhost"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "anyone"),
        ("PGDATABASE", "anyone"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", ca.as_str()),
        ("PGPASSFILE", passfile_name.as_str()),
    ];
    agree(
        "everything from PG* and the password file",
        "postgres://",
        home,
        &env,
        true,
    );
    // The URL wins over the variables: 127.0.0.1 is not the certificate's name.
    agree(
        "the URL's host wins",
        &format!("postgres://127.0.0.1:{port}"),
        home,
        &env,
        false,
    );
    // A password file others can read is ignored (libpq warns and ignores it).
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = agree(
        "a readable password file is ignored",
        "postgres://",
        home,
        &env,
        false,
    );
    assert!(err.contains("password"), "{err}");
    let mut with_password = env.to_vec();
    with_password.push(("PGPASSWORD", "pw-anyone"));
    agree("PGPASSWORD", "postgres://", home, &with_password, true);
    // ~/.pgpass when PGPASSFILE is not set.
    std::fs::write(
        home.join(".pgpass"),
        format!("*:{port}:*:anyone:pw-anyone\n"),
    )
    .unwrap();
    std::fs::set_permissions(home.join(".pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let without_passfile: Vec<_> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "PGPASSFILE")
        .collect();
    agree("~/.pgpass", "postgres://", home, &without_passfile, true);
}

#[test]
fn debian_self_signed_cluster_connects_with_the_default_sslmode() {
    // The machine's cluster, as scripts/test sets it up: Debian turns TLS on with its
    // self-signed "snakeoil" certificate.
    let url = std::env::var("LOADER_TEST_POSTGRES").unwrap_or_else(|_| {
        "postgres://eventhubs_test:eventhubs_test@127.0.0.1:5432/eventhubs_test".into()
    });
    let home = tempfile::tempdir().unwrap();
    let probe = psql(&url, home.path(), &[]);
    if !probe.status.success() {
        common::required("the PostgreSQL service (scripts/test starts it)");
        return;
    }
    let ssl = with_env(
        {
            let mut c = Command::new("psql");
            c.args([url.as_str(), "-qAtc", "SHOW ssl"]);
            c
        },
        home.path(),
        &[],
    );
    if String::from_utf8_lossy(&ssl.stdout).trim() != "on" {
        eprintln!("SKIPPED: this cluster has TLS off; the snakeoil case needs it on");
        return;
    }
    agree(
        "Debian's cluster, default sslmode",
        &url,
        home.path(),
        &[],
        true,
    );
    agree(
        "Debian's cluster, require",
        &format!("{url}?sslmode=require"),
        home.path(),
        &[],
        true,
    );
    // Verifying the snakeoil certificate fails, and says it is self-signed.
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", ca.path()).ok();
    let err = agree(
        "Debian's cluster, verify-ca against the system's CAs",
        &format!(
            "{url}?sslmode=verify-ca&sslrootcert={}",
            ca.path().display()
        ),
        home.path(),
        &[],
        false,
    );
    assert!(err.contains("self-signed certificate"), "{err}");
}
