//! Shared library of the Event Hubs Kafka tools (`producer`, `consumer`, `capture-loader`).
//!
//! Who calls what: each binary parses its flags with the argument groups in [`cli`], turns
//! them into [`kafka::config::ClientSettings`], builds its librdkafka client from
//! [`kafka::config::Properties`] (the only place librdkafka configuration is made), checks
//! the connection with [`kafka::preflight`], and moves event values through
//! [`encoding::Encoder`] / [`encoding::Decoder`]. [`shutdown`] and [`logging`] are the same
//! in every binary.

pub mod capture;
pub mod cli;
pub mod connection_string;
#[cfg(feature = "db")]
pub mod db;
pub mod encoding;
pub mod identity;
pub mod kafka;
pub mod logging;
pub mod percent;
pub mod registry;
pub mod schemas;
pub mod secret;
pub mod shutdown;
pub mod telemetry;

pub use secret::Secret;
