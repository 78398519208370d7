//! Loading from Azure Blob Storage, against Azurite (Microsoft's storage emulator, npm
//! `azurite`), with the blobs uploaded by an independent client (Python azure-storage-blob).
//! Without Azurite or the fixtures these tests say so and pass; in CI both are required.

use std::process::{Command, Output};

use crate::common::{Azurite, KEY, azurite_bin, fixtures};
use serde_json::Value;

fn load(az: &Azurite, db: &str, source: &str) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["load", source, "--summary-json"])
        .env("DATABASE_URL", db)
        .env("AZURE_STORAGE_CONNECTION_STRING", &az.connection_string)
        .output()
        .unwrap();
    let summary = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out, summary)
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn capture_blobs_load_once_from_a_container_and_a_prefix() {
    let (Some(fixtures), Some(bin)) = (fixtures(), azurite_bin()) else {
        return;
    };
    let az = Azurite::start(&bin);
    let names = [
        "telemetry-380-events.avro",
        "empty-window.avro",
        "legacy-2016-schema.avro",
        "partition-key-1-event.avro",
    ];
    let blobs: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(p, f)| {
            (
                format!("ns1/telemetry/{p}/2017/10/16/18/18/00.avro"),
                fixtures.join(f),
            )
        })
        .collect();
    az.upload("capture", &blobs);
    let dir = tempfile::tempdir().unwrap();

    // A prefix: only partition 0.
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let (out, s) = load(&az, &db, "az://capture/ns1/telemetry/0/");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (s["files_loaded"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(380)),
        "{s}"
    );

    // The whole container, by its path-style URL; twice.
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let url = format!("{}/capture", az.endpoint);
    let (_, s) = load(&az, &db, &url);
    assert_eq!(
        (s["events_inserted"].as_u64(), s["files_empty"].as_u64()),
        (Some(382), Some(1)),
        "{s}"
    );
    let (_, s) = load(&az, &db, &url);
    assert_eq!(
        (s["events_inserted"].as_u64(), s["files_skipped"].as_u64()),
        (Some(0), Some(4)),
        "{s}"
    );

    // A blob replaced after loading (new ETag): reported, not loaded again.
    az.upload(
        "capture",
        &[(
            blobs[2].0.clone(),
            fixtures.join("partition-key-1-event.avro"),
        )],
    );
    let (out, s) = load(&az, &db, &url);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        (s["files_changed"].as_u64(), s["events_inserted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );

    // Blobs are named by URL in capture_files.
    let status = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["status", "--json"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["partitions"][0]["events"], 380);
}

#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn a_missing_container_or_account_is_a_clear_error() {
    let Some(bin) = azurite_bin() else { return };
    let az = Azurite::start(&bin);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["load", "az://no-such-container"])
        .env("DATABASE_URL", &db)
        .env("AZURE_STORAGE_CONNECTION_STRING", &az.connection_string)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listing"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_capture-loader"))
        .args(["load", "az://capture"])
        .env("DATABASE_URL", &db)
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AZURE_STORAGE_ACCOUNT_NAME"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_replaced_after_its_listing_is_not_read_under_the_old_etag() {
    let (Some(fixture_dir), Some(bin)) = (fixtures(), azurite_bin()) else {
        return;
    };
    let az = Azurite::start(&bin);
    let name = "ns1/hub/0/2017/10/16/18/18/00.avro".to_string();
    az.upload(
        "capture",
        &[(name.clone(), fixture_dir.join("telemetry-380-events.avro"))],
    );
    let cs = az.connection_string.clone();
    let source =
        capture_loader::blob::BlobSource::parse(&format!("{}/capture", az.endpoint), |k| {
            (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| cs.clone())
        })
        .unwrap();
    let listed = source.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    // Read under the listed ETag: fine.
    assert!(!source.get(&listed[0]).await.unwrap().is_empty());
    // Replaced between the listing and the read: refused, not read under the old ETag.
    az.upload(
        "capture",
        &[(name, fixture_dir.join("partition-key-1-event.avro"))],
    );
    let e = source.get(&listed[0]).await.unwrap_err().to_string();
    assert!(e.contains("changed while it was being read"), "{e}");
}

/// No key and no SAS: the loader signs in to Blob Storage with Microsoft Entra ID through
/// the same credential chain as the Kafka side (here a client secret against test-support's
/// token service), and Azurite (HTTPS, `--oauth basic`) checks the token's lifetime, issuer
/// and audience. The connection string only names the endpoint.
#[cfg_attr(
    not(has_fixtures),
    ignore = "needs ../shared/fixtures (Azure's own Capture files)"
)]
#[test]
fn a_container_is_read_with_an_entra_id_token_from_the_credential_chain() {
    use test_support::{TokenService, TokenServiceOptions};
    let (Some(fixtures), Some(bin)) = (fixtures(), azurite_bin()) else {
        return;
    };
    let az = Azurite::start_https_oauth(&bin);
    az.upload(
        "capture",
        &[(
            "ns1/telemetry/0/2017/10/16/18/18/00.avro".to_string(),
            fixtures.join("telemetry-380-events.avro"),
        )],
    );
    let service = TokenService::start(TokenServiceOptions {
        sign: true,
        issuer: Some("https://sts.windows.net/tenant-1/".into()),
        ..TokenServiceOptions::client_secret("tenant-1", "loader-app", "loader-secret", "")
    });
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("entra.db").display());
    let loader = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_capture-loader"))
            .args(["load", "az://capture/ns1/", "--summary-json"])
            .env("DATABASE_URL", &db)
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                format!("BlobEndpoint={};", az.endpoint),
            )
            .env("SSL_CERT_FILE", az.certificate.as_ref().unwrap())
            .env("AZURE_TENANT_ID", "tenant-1")
            .env("AZURE_CLIENT_ID", "loader-app")
            .env("AZURE_CLIENT_SECRET", secret)
            .env("AZURE_AUTHORITY_HOST", service.authority_host())
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let out = loader("loader-secret");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["files_loaded"], 1, "{summary}");
    assert_eq!(summary["events_inserted"], 380, "{summary}");
    let requests = service.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.scope == "https://storage.azure.com/.default" && r.granted),
        "{requests:?}"
    );

    // A wrong secret: the chain's reasons, and no secret in them.
    let out = loader("wrong-secret");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
}
