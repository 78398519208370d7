//! Schema registry clients.
//!
//! Confluent-compatible (here, on `schema_registry_converter`): the producer registers its
//! value schema once, under `<topic>-value` (topic name strategy), and frames every event
//! with the returned id. The consumer resolves ids it sees to schemas, cached after the
//! first lookup.
//!
//! Azure Schema Registry ([`azure`]): the same roles, with Entra ID tokens, schema groups,
//! string ids, and the id in the event's content type instead of a prefix.

pub mod azure;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::encoding::CompiledSchema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// An Azure Schema Registry's schema group: the producer writes Azure's format.
    pub schema_group: Option<String>,
}

/// A registry call that failed. Its text comes from the registry client and names no secret.
#[derive(Debug, thiserror::Error)]
#[error("schema registry: {message}")]
pub struct RegistryError {
    message: String,
    retriable: bool,
}

impl RegistryError {
    pub fn new(message: impl Into<String>, retriable: bool) -> Self {
        Self {
            message: message.into(),
            retriable,
        }
    }

    pub fn is_retriable(&self) -> bool {
        self.retriable
    }
}

impl From<SRCError> for RegistryError {
    fn from(e: SRCError) -> Self {
        let message = match &e.cause {
            Some(cause) => format!("{}: {cause}", e.error),
            None => e.error.clone(),
        };
        Self {
            message,
            retriable: e.retriable,
        }
    }
}

impl RegistrySettings {
    fn sr_settings(&self) -> Result<SrSettings, RegistryError> {
        let mut builder = SrSettings::new_builder(self.url.clone());
        builder.set_timeout(Duration::from_secs(10));
        if let Some(user) = &self.username {
            builder.set_basic_authorization(user, self.password.as_ref().map(Secret::expose));
        }
        Ok(builder.build()?)
    }

    /// Register `schema` under `<topic>-value` (or find it there) and return its id.
    pub async fn register_value_schema(
        &self,
        topic: &str,
        schema: &str,
    ) -> Result<u32, RegistryError> {
        let encoder = AvroEncoder::new(self.sr_settings()?);
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_string());
        let strategy =
            SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_string(), false, supplied);
        let subject = format!("{topic}-value");
        let registered = encoder.get_schema_and_id(&subject, strategy).await?;
        Ok(registered.id)
    }

    /// The same URL as an Azure Schema Registry, with tokens from the credential chain
    /// (environment through `env`). Asks for no token until an Azure event needs one.
    pub fn azure(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<azure::AzureRegistry, RegistryError> {
        let tokens = crate::identity::TokenCache::new(
            Box::new(crate::identity::default_credential(env)),
            azure::SCHEMA_REGISTRY_SCOPE,
        );
        azure::AzureRegistry::new(&self.url, Arc::new(tokens))
    }

    pub fn decoder(&self) -> Result<ConfluentDecoder, RegistryError> {
        Ok(ConfluentDecoder {
            registry: AvroDecoder::new(self.sr_settings()?),
            compiled: Mutex::new(HashMap::new()),
        })
    }
}

/// Resolves Confluent schema ids to compiled schemas, asking the registry once per id.
pub struct ConfluentDecoder {
    registry: AvroDecoder,
    compiled: Mutex<HashMap<u32, Arc<CompiledSchema>>>,
}

impl ConfluentDecoder {
    /// The writer schema of `id`. A failed lookup is not remembered: the registry may be
    /// back for the next event.
    pub async fn schema(&self, id: u32) -> Result<Arc<CompiledSchema>, RegistryError> {
        if let Some(s) = self.cached(id) {
            return Ok(s);
        }
        let fetched = match self.registry.get_schema(id).await {
            Ok(s) => s,
            Err(e) => {
                self.registry.remove_errors_from_cache();
                return Err(e.into());
            }
        };
        let compiled =
            Arc::new(
                CompiledSchema::new(fetched.parsed.clone()).map_err(|e| RegistryError {
                    message: format!("schema {id} does not compile: {e}"),
                    retriable: false,
                })?,
            );
        self.lock().insert(id, compiled.clone());
        Ok(compiled)
    }

    /// The schema of `id` if it was fetched already (no waiting, no network).
    pub fn cached(&self, id: u32) -> Option<Arc<CompiledSchema>> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<CompiledSchema>>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}
