//! Tests of libpq's connection rules (pgconnect.rs).
use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)], home: Option<PathBuf>) -> Environment<'a> {
    let lookup = move |k: &str| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    Environment {
        var: Box::leak(Box::new(lookup)),
        home,
        os_user: Some("osuser".into()),
    }
}

#[test]
fn tls_parameters_are_taken_out_and_modes_parsed() {
    let t = resolve(
        "postgres://u:p@db.example:6432/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        &env(&[], None),
    )
    .unwrap();
    assert_eq!(t.sslmode, SslMode::VerifyFull);
    assert_eq!(t.root_cert, RootCert::File("/tmp/ca.pem".into()));
    assert_eq!(t.config.get_ports(), &[6432]);
    assert_eq!(t.config.get_application_name(), Some("x"));
    assert!(!format!("{t:?}").contains(":p@"));
    let bad = resolve("postgres://u@h/d?sslmode=verify", &env(&[], None)).unwrap_err();
    assert!(bad.contains("invalid sslmode `verify`"), "{bad}");
    let weak = resolve(
        "postgres://u@h/d?sslmode=require&sslrootcert=system",
        &env(&[], None),
    )
    .unwrap_err();
    assert!(weak.contains("sslrootcert=system"), "{weak}");
    let system = resolve("postgres://u@h/d?sslrootcert=system", &env(&[], None)).unwrap();
    assert_eq!(system.sslmode, SslMode::VerifyFull);
}

#[test]
fn the_environment_fills_what_the_url_leaves_out() {
    let vars = [
        ("PGHOST", "pg.example"),
        ("PGPORT", "6543"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpass"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "require"),
    ];
    let t = resolve("postgres://", &env(&vars, None)).unwrap();
    assert_eq!(t.config.get_hosts(), &[Host::Tcp("pg.example".into())]);
    assert_eq!(t.config.get_ports(), &[6543]);
    assert_eq!(t.config.get_user(), Some("envuser"));
    assert_eq!(t.config.get_password(), Some(&b"envpass"[..]));
    assert_eq!(t.config.get_dbname(), Some("envdb"));
    assert_eq!(t.sslmode, SslMode::Require);
    // The URL wins over the environment.
    let t = resolve(
        "postgres://urluser@urlhost:1/urldb?sslmode=disable",
        &env(&vars, None),
    )
    .unwrap();
    assert_eq!(t.config.get_user(), Some("urluser"));
    assert_eq!(t.config.get_hosts(), &[Host::Tcp("urlhost".into())]);
    assert_eq!(t.sslmode, SslMode::Disable);
    // No user anywhere: the operating system's, as libpq does.
    let t = resolve("postgres://h/d", &env(&[], None)).unwrap();
    assert_eq!(t.config.get_user(), Some("osuser"));
}

#[test]
fn the_password_file_is_read_like_libpq_reads_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".pgpass");
    std::fs::write(
        &file,
        "# comment\nother:5432:*:u:wrong\ndb.example:5432:app:u:pa\\:ss\\\\word\n*:*:*:u:fallback\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home = Some(dir.path().to_path_buf());
    let t = resolve("postgres://u@db.example/app", &env(&[], home.clone())).unwrap();
    assert_eq!(t.config.get_password(), Some(&b"pa:ss\\word"[..]));
    let t = resolve("postgres://u@elsewhere/app", &env(&[], home.clone())).unwrap();
    assert_eq!(t.config.get_password(), Some(&b"fallback"[..]));
    // Readable by others: ignored, as libpq ignores it.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let t = resolve("postgres://u@db.example/app", &env(&[], home)).unwrap();
    assert_eq!(t.config.get_password(), None);
    // PGPASSFILE names another file.
    let other = dir.path().join("pass");
    std::fs::write(&other, "*:*:*:*:fromfile\n").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = other.display().to_string();
    let vars = [("PGPASSFILE", path.as_str())];
    let t = resolve("postgres://u@h/d", &env(&vars, None)).unwrap();
    assert_eq!(t.config.get_password(), Some(&b"fromfile"[..]));
}
