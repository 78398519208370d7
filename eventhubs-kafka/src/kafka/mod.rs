//! Kafka clients: configuration, connection checks, and the admin operations the tools share.

pub mod config;
pub mod context;
pub mod export;
pub mod preflight;
pub mod properties;
