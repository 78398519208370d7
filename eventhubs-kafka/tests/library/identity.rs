//! Every Microsoft Entra ID credential source end to end against test-support's token
//! service on loopback (Entra's token endpoint, IMDS, App Service's identity endpoint) and a
//! fake `az`: tokens come back, refusals carry Azure's reason, no secret reaches a message.
//! IMDS is always pointed at loopback (`AZURE_POD_IDENTITY_AUTHORITY_HOST`): nothing here
//! sends anything to 169.254.169.254.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use eventhubs_kafka::identity::{
    AzureCliCredential, ManagedIdentityCredential, TokenCredential, WorkloadIdentityCredential,
    default_credential,
};
use test_support::{TokenService, TokenServiceOptions};

const SCOPE: &str = "https://ns1.servicebus.windows.net/.default";

fn service() -> TokenService {
    TokenService::start(TokenServiceOptions {
        federated_token: Some("federated-token-1".into()),
        identity_header: Some("identity-header-value".into()),
        ..TokenServiceOptions::client_secret(
            "tenant-1",
            "app-1",
            "client-secret-value",
            "the-token",
        )
    })
}

fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

/// A script named `az` in `dir` that prints `stdout` and exits with `code`.
fn fake_az(dir: &Path, stdout: &str, stderr: &str, code: i32) {
    let path = dir.join("az");
    std::fs::write(
        &path,
        format!("#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"account get-access-token --scope {SCOPE}\" ] || {{ echo \"ERROR: unexpected arguments: $*\" >&2; exit 2; }}\ncat <<'OUT'\n{stdout}\nOUT\ncat >&2 <<'ERR'\n{stderr}\nERR\nexit {code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn workload_identity_exchanges_the_federated_token_and_rereads_the_file() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "federated-token-1\n").unwrap();
    let env = env_of(&[
        ("AZURE_TENANT_ID", "tenant-1".into()),
        ("AZURE_CLIENT_ID", "app-1".into()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", svc.authority_host()),
    ]);
    let credential = WorkloadIdentityCredential::from_env(&env).unwrap();
    let token = credential.get_token(SCOPE).unwrap();
    assert_eq!(token.token.expose(), "the-token");
    assert!(token.expires_on > SystemTime::now() + Duration::from_secs(3000));
    // Rotated (here: to one the service does not know): read again, refused with the reason.
    std::fs::write(&file, "rotated-unknown").unwrap();
    let err = credential.get_token(SCOPE).unwrap_err().to_string();
    assert!(err.contains("AADSTS700211"), "{err}");
    assert!(!err.contains("rotated-unknown"), "{err}");
    let requests = svc.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.kind == "workload_identity" && r.scope == SCOPE)
    );
}

#[test]
fn app_service_managed_identity_sends_its_header_and_a_resource() {
    let svc = service();
    let env = env_of(&[
        ("IDENTITY_ENDPOINT", svc.identity_endpoint()),
        ("IDENTITY_HEADER", "identity-header-value".into()),
    ]);
    let credential = ManagedIdentityCredential::from_env(&env).unwrap();
    assert_eq!(credential.name(), "managed identity (App Service)");
    let token = credential.get_token(SCOPE).unwrap();
    assert_eq!(token.token.expose(), "the-token");
    let request = &svc.requests()[0];
    assert_eq!(
        (request.kind, request.scope.as_str()),
        ("app_service", "https://ns1.servicebus.windows.net")
    );

    let wrong = env_of(&[
        ("IDENTITY_ENDPOINT", svc.identity_endpoint()),
        ("IDENTITY_HEADER", "not-the-header".into()),
    ]);
    let err = ManagedIdentityCredential::from_env(&wrong)
        .unwrap()
        .get_token(SCOPE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused (400)"), "{err}");
    assert!(!err.contains("not-the-header"), "{err}");
}

#[test]
fn imds_managed_identity_with_a_user_assigned_client_id() {
    let svc = service();
    let env = env_of(&[
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", svc.authority_host()),
        ("AZURE_CLIENT_ID", "app-1".into()),
    ]);
    let credential = ManagedIdentityCredential::from_env(&env).unwrap();
    assert_eq!(credential.name(), "managed identity (IMDS)");
    let token = credential.get_token(SCOPE).unwrap();
    assert_eq!(token.token.expose(), "the-token");
    let request = &svc.requests()[0];
    assert_eq!(request.kind, "imds");
    assert_eq!(request.client_id, "app-1");
    // Another identity than the VM has: Azure's reason.
    let other = env_of(&[
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", svc.authority_host()),
        ("AZURE_CLIENT_ID", "someone-else".into()),
    ]);
    let err = ManagedIdentityCredential::from_env(&other)
        .unwrap()
        .get_token(SCOPE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Identity not found"), "{err}");
    // Plain http elsewhere than loopback is refused before any request.
    let err = ManagedIdentityCredential::from_env(&env_of(&[(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "http://imds.example".into(),
    )]))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("must be https"), "{err}");
}

#[test]
fn azure_cli_gives_its_token_or_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let expires = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    fake_az(
        dir.path(),
        &format!(
            r#"{{"accessToken": "cli-token", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": {expires}, "tokenType": "Bearer"}}"#
        ),
        "",
        0,
    );
    let env = env_of(&[("PATH", dir.path().display().to_string())]);
    let token = AzureCliCredential::from_env(&env)
        .unwrap()
        .get_token(SCOPE)
        .unwrap();
    assert_eq!(token.token.expose(), "cli-token");
    assert_eq!(
        token.expires_on,
        SystemTime::UNIX_EPOCH + Duration::from_secs(expires)
    );

    // An older CLI: local time only.
    fake_az(
        dir.path(),
        r#"{"accessToken": "cli-token", "expiresOn": "2099-01-01 00:00:00.000000"}"#,
        "",
        0,
    );
    let token = AzureCliCredential::from_env(&env)
        .unwrap()
        .get_token(SCOPE)
        .unwrap();
    assert!(token.expires_on > SystemTime::now() + Duration::from_secs(86400 * 365));

    fake_az(
        dir.path(),
        "",
        "ERROR: Please run 'az login' to setup account.",
        1,
    );
    let err = AzureCliCredential::from_env(&env)
        .unwrap()
        .get_token(SCOPE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Please run 'az login'"), "{err}");
}

#[test]
fn the_default_chain_takes_the_first_source_that_works_and_lists_every_failure() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    fake_az(
        dir.path(),
        r#"{"accessToken": "cli-token", "expires_on": 4102444800}"#,
        "",
        0,
    );
    // A client secret and the CLI: the secret comes first.
    let both = env_of(&[
        ("AZURE_TENANT_ID", "tenant-1".into()),
        ("AZURE_CLIENT_ID", "app-1".into()),
        ("AZURE_CLIENT_SECRET", "client-secret-value".into()),
        ("AZURE_AUTHORITY_HOST", svc.authority_host()),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http://127.0.0.1:9".into(),
        ),
        ("PATH", dir.path().display().to_string()),
    ]);
    let token = default_credential(&both).get_token(SCOPE).unwrap();
    assert_eq!(token.token.expose(), "the-token");
    // A wrong secret, no IMDS, the CLI: the CLI's token.
    let wrong_secret = env_of(&[
        ("AZURE_TENANT_ID", "tenant-1".into()),
        ("AZURE_CLIENT_ID", "app-1".into()),
        ("AZURE_CLIENT_SECRET", "wrong-secret-value".into()),
        ("AZURE_AUTHORITY_HOST", svc.authority_host()),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http://127.0.0.1:9".into(),
        ),
        ("PATH", dir.path().display().to_string()),
    ]);
    let token = default_credential(&wrong_secret).get_token(SCOPE).unwrap();
    assert_eq!(token.token.expose(), "cli-token");
    // Nothing works: every source says why, no secret anywhere.
    let nothing = env_of(&[
        ("AZURE_TENANT_ID", "tenant-1".into()),
        ("AZURE_CLIENT_ID", "app-1".into()),
        ("AZURE_CLIENT_SECRET", "wrong-secret-value".into()),
        ("AZURE_AUTHORITY_HOST", svc.authority_host()),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http://127.0.0.1:9".into(),
        ),
        ("PATH", "/nonexistent".into()),
    ]);
    let err = default_credential(&nothing)
        .get_token(SCOPE)
        .unwrap_err()
        .to_string();
    for expected in [
        "AADSTS7000215",
        "AZURE_FEDERATED_TOKEN_FILE",
        "managed identity (IMDS): cannot reach",
        "`az` is not on PATH",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(!err.contains("wrong-secret-value"), "{err}");
}
