//! The hybrid gateway behind `costfloor serve`: OpenAI- and Anthropic-compatible
//! endpoints that route, translate, fall back, spill over and write one ledger row
//! per request.
//!
//! The gateway does auth, routing, fallback, the circuit, spill-over, metrics and the
//! ledger row; every vendor rule lives in `wire::pair`. Modules, in request order:
//!
//! - [`config`]: the TOML config and its validation.
//! - [`runtime`]: backends, circuits, in-flight counts and routing rules (control).
//! - [`state`]: the state every request shares, and config reload.
//! - [`server`]: endpoints, readiness, metrics, admin, signals and graceful shutdown.
//! - [`proxy`]: the request path, step by step.
//! - [`auth`]: client and admin key checks.
//! - [`shared`]: keys and budgets shared by replicas through PostgreSQL.
//! - [`admin`]: `/admin/keys`, managing the keys stored there.
//! - [`store`]: where the ledger and its spill file are.
//! - [`calibration`]: input-token estimates learned per backend.
//! - [`forward`]: trying a route's targets.
//! - [`relay`]: answering, whole or streamed.
//! - [`row`]: the ledger row and its price.
//! - [`count`]: `count_tokens`, counted by the routed backend or estimated.
//! - [`call`]: one whole request to one named backend (eval, shadow copies).
//! - [`shadow`]: mirroring a sampled share of a route to a reference backend.
//! - [`sampler`]: utilisation samples of self-hosted backends' metrics endpoints.
//! - [`error`]: errors answered to clients, and the server's own.

pub mod admin;
pub mod auth;
pub mod calibration;
pub mod call;
pub mod circuit;
pub mod config;
pub mod connections;
pub mod count;
pub mod error;
mod forward;
pub mod keys;
pub mod limits;
mod listen;
pub mod metrics;
pub mod proxy;
mod relay;
mod row;
pub mod runtime;
pub mod sampler;
pub mod server;
pub mod shadow;
pub mod shared;
pub mod state;
pub mod store;
