//! The Avro schemas in `schemas/`, embedded at build time so the binaries need no files
//! beside them, and so a single-object fingerprint can be resolved without a registry.

/// `schemas/telemetry.avsc`: the telemetry event.
pub const TELEMETRY: &str = include_str!("../../schemas/telemetry.avsc");

/// Every embedded schema, by file name.
pub const ALL: &[(&str, &str)] = &[("telemetry.avsc", TELEMETRY)];
