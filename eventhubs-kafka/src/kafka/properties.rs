//! An ordered list of librdkafka properties, later entries winning, that remembers which
//! layer set each one (so overridden passthroughs can be reported) and keeps secrets typed
//! until the one place that hands them to librdkafka.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::secret::{REDACTED, Secret};

/// Which layer set a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Recommended,
    Passthrough,
    Required,
}

#[derive(Debug, Clone)]
pub enum PropertyValue {
    Plain(String),
    Secret(Secret),
}

impl PropertyValue {
    pub(super) fn expose(&self) -> &str {
        match self {
            Self::Plain(v) => v,
            Self::Secret(s) => s.expose(),
        }
    }

    /// The value as it may be shown to a person: secrets redacted.
    pub fn display(&self) -> &str {
        match self {
            Self::Plain(v) => v,
            Self::Secret(_) => REDACTED,
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret(_))
    }
}

#[derive(Debug, Clone)]
pub struct Property {
    pub key: String,
    pub value: PropertyValue,
    pub origin: Origin,
    /// Why the code sets it (empty for passthrough).
    pub why: &'static str,
}

/// A passthrough property that a required setting replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overridden {
    pub key: String,
    pub requested: String,
    pub applied: String,
    pub why: &'static str,
}

/// An ordered list of librdkafka properties, later entries winning.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    pub(super) entries: Vec<Property>,
}

impl Properties {
    pub(super) fn set(
        &mut self,
        origin: Origin,
        key: &str,
        value: impl Into<String>,
        why: &'static str,
    ) {
        self.entries.push(Property {
            key: key.to_string(),
            value: PropertyValue::Plain(value.into()),
            origin,
            why,
        });
    }

    pub(super) fn set_secret(&mut self, key: &str, value: &Secret, why: &'static str) {
        self.entries.push(Property {
            key: key.to_string(),
            value: PropertyValue::Secret(value.clone()),
            origin: Origin::Required,
            why,
        });
    }

    /// The final value of every key, in key order.
    pub fn resolved(&self) -> BTreeMap<&str, &Property> {
        let mut out = BTreeMap::new();
        for p in &self.entries {
            out.insert(p.key.as_str(), p);
        }
        out
    }

    /// The final value of one key, secrets redacted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.resolved().get(key).map(|p| p.value.display())
    }

    /// Passthrough values that a required setting replaced with a different value.
    pub fn overridden(&self) -> Vec<Overridden> {
        let resolved = self.resolved();
        let mut out = Vec::new();
        for p in self
            .entries
            .iter()
            .filter(|p| p.origin == Origin::Passthrough)
        {
            let Some(last) = resolved.get(p.key.as_str()) else {
                continue;
            };
            if last.origin == Origin::Required && last.value.expose() != p.value.expose() {
                out.push(Overridden {
                    key: p.key.clone(),
                    requested: p.value.display().to_string(),
                    applied: last.value.display().to_string(),
                    why: last.why,
                });
            }
        }
        out
    }

    /// Warn about each passthrough that a required setting replaced.
    pub fn warn_overridden(&self) {
        for o in self.overridden() {
            tracing::warn!(key = %o.key, requested = %o.requested, applied = %o.applied, "-X {} overridden: {}", o.key, o.why);
        }
    }

    /// The configuration handed to librdkafka. The only place secrets are exposed.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, p) in self.resolved() {
            config.set(key, p.value.expose());
        }
        config
    }
}
