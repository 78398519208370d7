//! The library's tests against real files and services (Azure's Capture fixtures, the token
//! service, both databases): one binary, a module per subject.

mod capture_fixtures;
mod identity;
mod store_contract;
