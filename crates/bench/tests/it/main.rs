//! Integration tests of the load generator over real sockets on 127.0.0.1: the sweep
//! against the sim's capacity model, and the checks that stop a run before any load.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod knee;
mod mix;
mod preflight;

use std::sync::Arc;
use std::time::Duration;

use bench::{BenchPlan, Load, Quiet};
use costfloor_core::measured::Slo;
use wire::bench::BenchFormat;

/// A plan against `url` with a small shape; the caller sets the load.
pub fn plan(url: &str, load: Load) -> BenchPlan {
    BenchPlan {
        target_url: url.to_owned(),
        model: "sim-model".to_owned(),
        format: BenchFormat::OpenAi,
        api_key: None,
        input_tokens: 50,
        output_tokens: 10,
        mix: Vec::new(),
        load,
        duration: Duration::from_secs(2),
        slo: Slo {
            ttft_ms: 1000.0,
            tpot_ms: 100.0,
        },
        deployment: None,
        seed: 0,
    }
}

pub async fn run(plan: BenchPlan) -> Result<bench::Run, bench::BenchError> {
    bench::run(plan, Arc::new(Quiet)).await
}
