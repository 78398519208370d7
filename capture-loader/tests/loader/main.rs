//! The capture-loader's tests against real files, databases and services: one binary, a module per subject.

mod common;

mod blob;
mod claims;
mod conflicts;
mod load;
mod postgres_connect;
mod report;
mod serve;
