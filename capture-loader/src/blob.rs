//! Azure Blob Storage / ADLS Gen2 locations, through `object_store`.
//!
//! Accepted locations:
//! - `https://<account>.blob.core.windows.net/<container>[/<prefix>]` (ADLS Gen2:
//!   `<account>.dfs.core.windows.net`, read through its blob endpoint);
//! - `az://<container>[/<prefix>]` (or `azure://`), the account coming from the environment;
//! - any URL under the `BlobEndpoint` of `AZURE_STORAGE_CONNECTION_STRING` (Azurite's
//!   path-style `http://127.0.0.1:10000/devstoreaccount1/<container>/…`).
//!
//! Credentials, first found wins: `AZURE_STORAGE_CONNECTION_STRING` (account key or SAS;
//! one with neither only names the endpoint), `AZURE_STORAGE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_SAS_TOKEN`, then Microsoft Entra ID through the same credential chain and
//! variables as the Kafka side ([`eventhubs_kafka::identity::default_credential`]: client
//! secret, workload identity, managed identity, Azure CLI), tokens of scope
//! `https://storage.azure.com/.default` kept in one cache. The principal needs Storage Blob
//! Data Reader on the container or account. Secrets never appear in errors.

use std::sync::Arc;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;

/// One blob to load.
#[derive(Debug, Clone)]
pub struct BlobObject {
    pub path: ObjectPath,
    pub size: u64,
    pub etag: Option<String>,
}

/// A container (and prefix) to read Capture files from.
#[derive(Debug, Clone)]
pub struct BlobSource {
    store: Arc<dyn ObjectStore>,
    /// `<endpoint>/<container>`, to name each blob in `capture_files.source`.
    base: String,
    prefix: Option<ObjectPath>,
}

/// The parts of a storage connection string the loader uses.
struct StorageConnection {
    account: String,
    key: Option<String>,
    sas: Option<String>,
    blob_endpoint: String,
}

fn parse_connection_string(text: &str) -> anyhow::Result<StorageConnection> {
    let mut account = None;
    let mut key = None;
    let mut sas = None;
    let mut endpoint = None;
    let mut protocol = "https".to_string();
    let mut suffix = "core.windows.net".to_string();
    let segments = eventhubs_kafka::connection_string::segments(text)
        .map_err(|e| anyhow::anyhow!("AZURE_STORAGE_CONNECTION_STRING: {e}"))?;
    // Other keys (QueueEndpoint, TableEndpoint, FileEndpoint, ...) are the other services'.
    for segment in segments {
        let v = segment.value;
        match segment.lower.as_str() {
            "accountname" => account = Some(v.to_string()),
            "accountkey" => key = Some(v.to_string()),
            "sharedaccesssignature" => sas = Some(v.trim_start_matches('?').to_string()),
            "blobendpoint" => endpoint = Some(v.trim_end_matches('/').to_string()),
            "defaultendpointsprotocol" => protocol = v.to_string(),
            "endpointsuffix" => suffix = v.to_string(),
            _ => {}
        }
    }
    let account = match (account, &endpoint) {
        (Some(a), _) => a,
        // A SAS connection string may name only the endpoint.
        (None, Some(e)) => account_from_host(e).unwrap_or_default(),
        (None, None) => {
            bail!("AZURE_STORAGE_CONNECTION_STRING has neither AccountName nor BlobEndpoint")
        }
    };
    let blob_endpoint = endpoint.unwrap_or_else(|| format!("{protocol}://{account}.blob.{suffix}"));
    Ok(StorageConnection {
        account,
        key,
        sas,
        blob_endpoint,
    })
}

fn account_from_host(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    host.split('.').next().map(str::to_string)
}

/// Blob Storage's token scope.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Entra ID tokens for object_store, from the tools' credential chain. The chain's HTTP and
/// `az` calls block: they run on tokio's blocking pool.
struct EntraStorageCredential {
    tokens: Arc<eventhubs_kafka::identity::TokenCache>,
}

impl EntraStorageCredential {
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let chain = eventhubs_kafka::identity::default_credential(env);
        Self {
            tokens: Arc::new(eventhubs_kafka::identity::TokenCache::new(
                Box::new(chain),
                STORAGE_SCOPE,
            )),
        }
    }
}

impl std::fmt::Debug for EntraStorageCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntraStorageCredential")
    }
}

impl object_store::CredentialProvider for EntraStorageCredential {
    type Credential = object_store::azure::AzureCredential;

    fn get_credential<'a, 'b>(
        &'a self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = object_store::Result<Arc<Self::Credential>>>
                + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let generic =
                |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
                    store: "MicrosoftAzure",
                    source,
                };
            let token = tokio::task::spawn_blocking(move || tokens.token())
                .await
                .map_err(|e| generic(Box::new(e)))?
                .map_err(|e| generic(Box::new(e)))?;
            Ok(Arc::new(object_store::azure::AzureCredential::BearerToken(
                token.token.expose().to_string(),
            )))
        })
    }
}

impl BlobSource {
    /// Parse `location`, reading credentials through `env`.
    pub fn parse(location: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let connection = env("AZURE_STORAGE_CONNECTION_STRING")
            .map(|cs| parse_connection_string(&cs))
            .transpose()?;
        let (endpoint, account, rest) = if let Some(rest) = location
            .strip_prefix("az://")
            .or_else(|| location.strip_prefix("azure://"))
        {
            let (endpoint, account) = match &connection {
                Some(c) => (c.blob_endpoint.clone(), c.account.clone()),
                None => {
                    let account = env("AZURE_STORAGE_ACCOUNT_NAME").context(
                        "az:// locations need the account: set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME",
                    )?;
                    (format!("https://{account}.blob.core.windows.net"), account)
                }
            };
            (endpoint, account, rest.to_string())
        } else if let Some(c) = connection
            .as_ref()
            .filter(|c| location.starts_with(&format!("{}/", c.blob_endpoint)))
        {
            let rest = location[c.blob_endpoint.len() + 1..].to_string();
            (c.blob_endpoint.clone(), c.account.clone(), rest)
        } else if let Some(after) = location.strip_prefix("https://") {
            let (host, rest) = after.split_once('/').unwrap_or((after, ""));
            let Some((account, service)) = host.split_once('.') else {
                bail!(
                    "`{location}`: expected https://<account>.blob.core.windows.net/<container>/<prefix>"
                );
            };
            // ADLS Gen2 (dfs) paths are readable through the blob endpoint.
            let service = service.replacen("dfs.", "blob.", 1);
            (
                format!("https://{account}.{service}"),
                account.to_string(),
                rest.to_string(),
            )
        } else {
            bail!(
                "`{location}` is not a storage location: use https://<account>.blob.core.windows.net/<container>/<prefix> or az://<container>/<prefix>"
            );
        };
        let (container, prefix) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
        if container.is_empty() {
            bail!("`{location}` names no container");
        }
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_account(&account)
            .with_container_name(container)
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
        let key = connection
            .as_ref()
            .and_then(|c| c.key.clone())
            .or_else(|| env("AZURE_STORAGE_ACCOUNT_KEY"));
        let sas = connection
            .as_ref()
            .and_then(|c| c.sas.clone())
            .or_else(|| env("AZURE_STORAGE_SAS_TOKEN"));
        if let Some(key) = key {
            builder = builder.with_access_key(key);
        } else if let Some(sas) = sas {
            let pairs = sas
                .trim_start_matches('?')
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>();
            builder = builder.with_sas_authorization(pairs);
        } else {
            builder = builder.with_credentials(Arc::new(EntraStorageCredential::from_env(&env)));
        }
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot use `{location}`: {e}"))?;
        let prefix = prefix.trim_end_matches('/');
        Ok(Self {
            store: Arc::new(store),
            base: format!("{endpoint}/{container}"),
            prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
        })
    }

    /// Every blob under the prefix; when the prefix names one blob, that blob.
    pub async fn list(&self) -> anyhow::Result<Vec<BlobObject>> {
        let list = |prefix: Option<ObjectPath>| async move {
            self.store
                .list(prefix.as_ref())
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| anyhow::anyhow!("listing {}: {e}", self.base))
        };
        let mut metas = list(self.prefix.clone()).await?;
        // object_store lists a prefix as a folder: a blob's own name lists nothing.
        if metas.is_empty()
            && let Some(prefix) = &self.prefix
        {
            let name = prefix.to_string();
            let parent = name.rsplit_once('/').map(|(p, _)| ObjectPath::from(p));
            metas = list(parent).await?;
            metas.retain(|m| m.location == *prefix);
        }
        Ok(metas
            .into_iter()
            .map(|m| BlobObject {
                path: m.location,
                size: m.size,
                etag: m.e_tag,
            })
            .collect())
    }

    /// Read a listed blob, only if it still has the ETag it was listed with: the content
    /// loaded is then exactly the version recorded under that ETag (a blob replaced between
    /// the listing and the read fails this read, and the next run sees the new one).
    pub async fn get(&self, object: &BlobObject) -> anyhow::Result<Vec<u8>> {
        let path = &object.path;
        let options = object_store::GetOptions {
            if_match: object.etag.clone(),
            ..Default::default()
        };
        let result = self.store.get_opts(path, options).await.map_err(|e| match e {
            object_store::Error::Precondition { .. } => anyhow::anyhow!(
                "{} changed while it was being read (its ETag moved on); it is read again on the next run",
                self.url(path)
            ),
            e => anyhow::anyhow!("reading {}: {e}", self.url(path)),
        })?;
        Ok(result
            .bytes()
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.url(path)))?
            .to_vec())
    }

    /// The blob's URL: its name in `capture_files`.
    pub fn url(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.base, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_connection_strings_are_checked_as_event_hubs_ones_are() {
        for (text, why) in [
            ("AccountName=a;AccountName=b;AccountKey=k", "more than once"),
            ("AccountName=a;AccountKey=", "empty value"),
            ("AccountName=a;AccountKey:U0VDUkVU=", "not a name"),
            ("AccountName=a;garbage", "not `Key=Value`"),
        ] {
            let err = parse_connection_string(text).err().unwrap().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(!err.contains("U0VDUkVU"), "{err}");
        }
    }

    #[test]
    fn connection_strings_give_account_key_and_endpoint() {
        let c = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        )
        .unwrap();
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(c.key.as_deref(), Some("a2V5"));
        assert_eq!(c.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let c = parse_connection_string("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=k;EndpointSuffix=core.chinacloudapi.cn").unwrap();
        assert_eq!(c.blob_endpoint, "https://acme.blob.core.chinacloudapi.cn");
        let c = parse_connection_string(
            "BlobEndpoint=https://acme.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=x",
        )
        .unwrap();
        assert_eq!(
            (c.account.as_str(), c.sas.as_deref()),
            ("acme", Some("sv=1&sig=x"))
        );
    }

    #[test]
    fn locations_name_a_container_and_errors_do_not_echo_keys() {
        let env = |k: &str| {
            (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| {
                "AccountName=devstoreaccount1;AccountKey=U0VDUkVU;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1".to_string()
            })
        };
        let s = BlobSource::parse("az://capture/ns1/hub", env).unwrap();
        assert_eq!(s.base, "http://127.0.0.1:10000/devstoreaccount1/capture");
        assert_eq!(
            s.prefix.as_ref().map(|p| p.to_string()).as_deref(),
            Some("ns1/hub")
        );
        let s = BlobSource::parse("http://127.0.0.1:10000/devstoreaccount1/capture", env).unwrap();
        assert!(s.prefix.is_none());
        let err = BlobSource::parse("ftp://x/y", env).unwrap_err().to_string();
        assert!(!err.contains("U0VDUkVU"), "{err}");
        assert!(BlobSource::parse("az://", env).is_err());
    }
}
