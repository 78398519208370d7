//! Confluent-compatible schema registry client, on `schema_registry_converter`.
//!
//! The producer registers its value schema once, under `<topic>-value` (topic name
//! strategy), and frames every event with the returned id. The consumer resolves ids it
//! sees to schemas, cached after the first lookup.

use std::time::Duration;

use apache_avro::types::Value;
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
}

/// A registry call that failed. Its text comes from the registry client and names no secret.
#[derive(Debug, thiserror::Error)]
#[error("schema registry: {message}")]
pub struct RegistryError {
    message: String,
    retriable: bool,
}

impl RegistryError {
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

    pub fn decoder(&self) -> Result<ConfluentDecoder, RegistryError> {
        Ok(ConfluentDecoder(AvroDecoder::new(self.sr_settings()?)))
    }
}

/// Decodes Confluent-framed Avro, fetching (and caching) writer schemas by id.
pub struct ConfluentDecoder(AvroDecoder);

impl ConfluentDecoder {
    pub async fn decode(&self, payload: &[u8]) -> Result<Value, RegistryError> {
        let result = self.0.decode(Some(payload)).await;
        if result.is_err() {
            // Do not remember a failure: the registry may be back for the next event.
            self.0.remove_errors_from_cache();
        }
        Ok(result?.value)
    }
}
