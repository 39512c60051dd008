//! Integration tests of the simulator over real sockets on 127.0.0.1.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod common;
mod faults;
mod openai;
mod stats_metrics;
mod validation;
