//! The end-to-end tests, one binary (one link, one `common`), a module per subject.

mod common;

mod at_least_once;
mod azure_schema_registry;
mod broker_restart;
mod config_export;
mod entra;
mod event_hubs;
mod faults;
mod flags;
mod hostile;
mod interop;
mod local_capture;
mod pipeline;
mod pipes;
mod registry;
mod registry_outage;
mod security;
mod signals;
mod sink_db;
mod undecodable;
