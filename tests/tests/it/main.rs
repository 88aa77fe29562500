//! Integration tests of the Cloud Foundry double: one test binary (one link) for all topics.

mod common;
mod conformance;
mod faults;
mod router_delay;
mod semantics;
mod uaa;
