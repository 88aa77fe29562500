//! The maintenance app: every request, on every path, with every method and any `Host`, gets a
//! maintenance answer (or 200 on the health path). Configuration is read once ([`config`]); the
//! answers are rendered once per policy ([`response`]); a request only chooses one
//! ([`MaintenanceService`]).
//!
//! Per-app content ([`appdoc`]) comes from the environment at startup and from the signed
//! [`control`] endpoint at run time; [`live`] holds it and swaps it without a lock per request.
//!
//! Imports run one way, so that each layer can be read and tested without the ones above it:
//! [`policy`] (the validated answer settings) ← [`rules`] ← [`appdoc`] ← [`config`]; [`policy`] ←
//! [`response`]; [`appdoc`] and [`response`] ← [`live`]; [`live`] and [`config`] ← [`control`];
//! all of these ← [`service`] (the request path) ← [`server`] (connections).

pub mod alloc;
pub mod appdoc;
pub mod config;
pub mod control;
pub mod live;
pub mod logging;
pub mod negotiate;
pub mod policy;
pub mod response;
pub mod rules;
pub mod server;
pub mod service;
pub mod stats;

pub use config::{Config, ConfigError};
pub use server::serve;
pub use service::{AppState, MaintenanceService, app};
