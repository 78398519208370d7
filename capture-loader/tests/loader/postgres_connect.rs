//! The loader connects to PostgreSQL as psql does: every `sslmode`, root certificates, the
//! `PG*` variables and the password file, checked case by case against psql itself on a
//! server with TLS and a certificate made here; and Debian's own cluster with its
//! self-signed certificate, which the default `sslmode=prefer` must accept.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::TlsPostgres;
use test_support::{TokenService, TokenServiceOptions};

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
        crate::common::required("the PostgreSQL service (scripts/test starts it)");
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

#[test]
fn entra_id_token_is_the_password_and_comes_from_the_credential_chain() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let scope = "https://ossrdbms-aad.database.windows.net/.default";
    let token = TokenService::unsigned_jwt(
        "https://ossrdbms-aad.database.windows.net",
        "tenant-1",
        "app-1",
        3600,
    );
    let service = TokenService::start(TokenServiceOptions::client_secret(
        "tenant-1",
        "app-1",
        "client-secret-value",
        &token,
    ));
    // Azure maps the Entra principal to a role that signs in with the token; here the
    // role's password is that token.
    pg.sql(&format!("CREATE ROLE entra_app LOGIN PASSWORD '{token}'"));
    pg.sql("CREATE DATABASE entra_app OWNER entra_app");
    let home = tempfile::tempdir().unwrap();
    let authority = service.authority_host();
    let env = [
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_CLIENT_SECRET", "client-secret-value"),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("RUST_LOG", "debug"),
    ];
    // As Azure wants it: verify-full, no password anywhere.
    let url = format!(
        "postgres://entra_app@localhost:{}/entra_app?sslmode=verify-full&sslrootcert={}",
        pg.port,
        pg.ca.display()
    );
    let run = |env: &[(&str, &str)], url: &str, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capture-loader"));
        cmd.args(["status", "--db", url, "--db-auth", "entra"])
            .args(extra);
        with_env(cmd, home.path(), env)
    };
    let out = run(&env, &url, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains(&token) && !err.contains("client-secret-value"),
        "a secret reached the log: {err}"
    );
    let requests = service.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].scope.as_str(), requests[0].granted),
        (scope, true)
    );

    // Each new process gets a token of its own (one per run; reused within it).
    let out = run(&env, &url, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(service.requests().len(), 2);

    // Without the token the role cannot sign in: the password path fails.
    let out = with_env(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_capture-loader"));
            c.args(["status", "--db", &url]);
            c
        },
        home.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));

    // A wrong secret: Entra's reason, not the secret.
    let mut wrong = env.to_vec();
    wrong[2] = ("AZURE_CLIENT_SECRET", "not-the-secret");
    let out = run(&wrong, &url, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("AADSTS7000215: Invalid client secret provided."),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");

    // No credential at all: the chain says what it tried.
    let out = run(&[], &url, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("no Microsoft Entra ID credential worked") && err.contains("AZURE_TENANT_ID"),
        "{err}"
    );

    // A password in the URL as well is refused as ambiguous.
    let with_password = url.replace("entra_app@", "entra_app:pw@");
    let out = run(&env, &with_password, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("leave the password out of the URL"));
}
