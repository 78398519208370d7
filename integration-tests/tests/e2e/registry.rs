//! The test registry answers like a Confluent registry: ids, versions, lookups, config,
//! compatibility, and the status and error codes clients act on.

use serde_json::{Value, json};
use test_support::TestSchemaRegistry;

const V1: &str =
    r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"string"}]}"#;
// Adds a field with a default: BACKWARD compatible.
const V2: &str = r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
// Adds a field without a default: not BACKWARD compatible.
const V3: &str = r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"string"},{"name":"c","type":"int"}]}"#;

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json");
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.schemaregistry.v1+json"
    );
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn registers_versions_looks_up_and_enforces_backward_compatibility() {
    let r = TestSchemaRegistry::start().await;
    let u = &r.url;
    use reqwest::Method as M;

    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!((s, v["id"].as_u64()), (200, Some(1)));
    // Registering the same schema again returns the same id and no new version.
    let (_, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(v["id"], 1);
    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!((s, v["id"].as_u64()), (200, Some(2)));
    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": V3})),
    )
    .await;
    assert_eq!((s, v["error_code"].as_u64()), (409, Some(409)), "{v}");

    let (s, v) = call(
        M::GET,
        format!("{u}/subjects/t-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["version"].as_u64(), v["id"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["subject"], "t-value");
    let (_, v) = call(M::GET, format!("{u}/schemas/ids/1"), None).await;
    assert_eq!(v["schema"], V1);
    let (s, v) = call(M::GET, format!("{u}/schemas/ids/99"), None).await;
    assert_eq!((s, v["error_code"].as_u64()), (404, Some(40403)));
    let (s, v) = call(
        M::GET,
        format!("{u}/subjects/nope-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!((s, v["error_code"].as_u64()), (404, Some(40401)));

    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value"),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(
        (s, v["version"].as_u64(), v["id"].as_u64()),
        (200, Some(1), Some(1))
    );
    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value"),
        Some(json!({"schema": V3})),
    )
    .await;
    assert_eq!((s, v["error_code"].as_u64()), (404, Some(40403)));

    let (_, v) = call(
        M::POST,
        format!("{u}/compatibility/subjects/t-value/versions/latest"),
        Some(json!({"schema": V3})),
    )
    .await;
    assert_eq!(v["is_compatible"], false);
    // With the subject set to NONE, the incompatible schema registers.
    let (s, v) = call(
        M::PUT,
        format!("{u}/config/t-value"),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!((s, v["compatibility"].as_str()), (200, Some("NONE")));
    let (_, v) = call(M::GET, format!("{u}/config/t-value"), None).await;
    assert_eq!(v["compatibilityLevel"], "NONE");
    let (_, v) = call(M::GET, format!("{u}/config"), None).await;
    assert_eq!(v["compatibilityLevel"], "BACKWARD");
    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": V3})),
    )
    .await;
    assert_eq!((s, v["id"].as_u64()), (200, Some(3)));

    let (s, v) = call(
        M::POST,
        format!("{u}/subjects/t-value/versions"),
        Some(json!({"schema": "{not avro"})),
    )
    .await;
    assert_eq!((s, v["error_code"].as_u64()), (422, Some(42201)));
    assert_eq!(r.subjects()["t-value"], vec![1, 2, 3]);
}

#[tokio::test]
async fn basic_auth_is_enforced_when_configured() {
    let r = TestSchemaRegistry::start_with_auth(Some(("u", "p"))).await;
    let resp = reqwest::get(format!("{}/subjects", r.url)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = reqwest::Client::new()
        .get(format!("{}/subjects", r.url))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
