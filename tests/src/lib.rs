//! A faithful Cloud Foundry double for tests and local try-out: the Cloud Controller v3 API
//! ([`cc`]), UAA's token endpoint ([`uaa`]), the gorouter ([`router`]) with CF's eventual route
//! propagation, and faults on demand ([`faults`]). [`CfDouble::start`] runs all three on loopback
//! ports; [`world`] seeds orgs, spaces, domains, apps and routes.
//!
//! Shapes and errors follow the Cloud Controller's sources (cited where each behaviour is
//! modelled) and are checked against the docs examples and error bodies in `tests/fixtures/capi/`
//! by `tests/it/conformance.rs`.

pub mod backend;
pub mod cc;
pub mod cli_config;
pub mod client;
pub mod clock;
pub mod error;
pub mod faults;
pub mod instances;
pub mod jwt;
pub mod metadata;
pub mod pagination;
pub mod route_service;
pub mod router;
pub mod selector;
pub mod serve;
pub mod spawn;
pub mod uaa;
pub mod world;

pub use cc::state::{InstanceState, Role};
pub use cli_config::seed_cli_config;
pub use error::{ApiError, Error};
pub use faults::{Failure, Matcher, PausePoint, RateLimit};
pub use instances::RunOptions;
pub use router::Balance;
pub use spawn::{CfDouble, Options};

/// The content type CC answers JSON with (Rails' default).
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
