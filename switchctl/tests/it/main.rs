//! Integration tests of `switchctl`: mock Cloud Controller and UAA servers on loopback ports,
//! the library called in-process, the binary run for its command-line behaviour.

mod auth;
mod cli;
mod http;
mod plugin_gob;
mod support;
mod verbose;
