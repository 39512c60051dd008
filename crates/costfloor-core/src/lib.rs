//! The cost core of costfloor: catalog, exact money, workload, sizing, deployment
//! costs, break-even, hybrid optimum and verdict, the import of LiteLLM's prices, and
//! the workload derived from provider usage exports. It does no I/O: callers read files
//! and pass text in, and render the serialisable results.

pub mod breakeven;
pub mod calendar;
pub mod calibrate;
pub mod catalog;
pub mod cost;
pub mod error;
pub mod hybrid;
pub mod litellm;
pub mod measured;
pub mod money;
pub mod observed;
pub mod plan;
pub mod quality;
pub mod review;
pub mod search;
pub mod sizing;
pub mod usage_export;
pub mod utilisation;
pub mod verdict;
pub mod workload;
