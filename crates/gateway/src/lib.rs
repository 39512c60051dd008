//! The hybrid gateway behind `costfloor serve`: OpenAI- and Anthropic-compatible
//! endpoints that route, translate, fall back, spill over and write one ledger row
//! per request.
//!
//! - [`config`]: the TOML config and its validation.
//! - [`runtime`]: backends, circuits, in-flight counts and routing rules (control).
//! - [`proxy`]: the request path.
//! - [`server`]: endpoints, reload and graceful shutdown.

pub mod circuit;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod runtime;
pub mod server;
