//! Prometheus metrics of the gateway: names, buckets and the process-wide recorder.
//!
//! It must not hold per-request state: counters are registered once per backend
//! (`runtime::BackendMetrics`) and updated from the ledger row.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "costfloor_requests_total";
pub const TOKENS: &str = "costfloor_tokens_total";
/// Money is counted in exact integer nano-USD (divide by 1e9 for USD).
pub const COST_NANO_USD: &str = "costfloor_cost_nano_usd_total";
pub const COUNTERFACTUAL_NANO_USD: &str = "costfloor_counterfactual_cost_nano_usd_total";
pub const LATENCY: &str = "costfloor_request_duration_seconds";
pub const TTFT: &str = "costfloor_time_to_first_token_seconds";
pub const OVERHEAD: &str = "costfloor_gateway_overhead_seconds";
pub const IN_FLIGHT: &str = "costfloor_backend_in_flight";
/// Connections (clients) opened to an HTTP/2 backend (`crate::connections`).
pub const HTTP2_CONNECTIONS: &str = "costfloor_backend_http2_connections";
pub const CIRCUIT: &str = "costfloor_circuit_state";
pub const UPSTREAM_ATTEMPTS: &str = "costfloor_upstream_attempts_total";
/// Translated tool calls whose arguments were not valid JSON at the end, by backend
/// (passed on to the client as they were).
pub const TOOL_ARGUMENTS_INVALID: &str = "costfloor_tool_arguments_invalid_total";
/// Samples of backends' metrics endpoints, by `result` (`ok`, `error`, `unknown_format`).
pub const SAMPLES: &str = "costfloor_backend_samples_total";
/// Requests refused by a client key's limits, by `key` and `limit` (`rpm`, `tpm`,
/// `budget`).
pub const KEY_REFUSED: &str = "costfloor_key_refused_total";
/// A key's month so far (spent + reserved in flight) ÷ its monthly budget, by `key`.
pub const KEY_BUDGET_USED: &str = "costfloor_key_budget_used_ratio";
/// A key's spend this month, in nano-USD, by `key`: as this process counts it (ledger at
/// start + settled), or as the shared database last answered.
pub const KEY_SPENT_NANO_USD: &str = "costfloor_key_spent_nano_usd";
/// Budget settlements waiting for the ledger database (PostgreSQL).
pub const KEY_SETTLES_PENDING: &str = "costfloor_key_settles_pending";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once and returns its handle. Later calls (a reload, a
/// second gateway in one test process) share it.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(OVERHEAD.to_string()),
                    &[
                        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_seconds".to_string()),
                        &[
                            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                            60.0,
                        ],
                    )
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours just isn't global.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "Requests by backend, route and HTTP status.");
    metrics::describe_counter!(
        TOKENS,
        "Tokens by direction (input, cache_read, cache_write, output)."
    );
    metrics::describe_counter!(
        COST_NANO_USD,
        "Cost charged by API backends, in nano-USD (1e-9 USD)."
    );
    metrics::describe_counter!(
        COUNTERFACTUAL_NANO_USD,
        "What the route's reference API would have charged, in nano-USD (1e-9 USD)."
    );
    metrics::describe_histogram!(LATENCY, "Total request latency.");
    metrics::describe_histogram!(TTFT, "Time to the first streamed token.");
    metrics::describe_histogram!(OVERHEAD, "Time spent in the gateway itself.");
    metrics::describe_gauge!(IN_FLIGHT, "Requests in flight per backend.");
    metrics::describe_gauge!(
        HTTP2_CONNECTIONS,
        "HTTP/2 connections opened to the backend, each carrying at most streams_per_connection requests."
    );
    metrics::describe_gauge!(
        CIRCUIT,
        "Circuit state per backend: 0 closed, 1 open, 2 half-open."
    );
    metrics::describe_counter!(
        UPSTREAM_ATTEMPTS,
        "Upstream attempts by backend and result."
    );
    metrics::describe_counter!(
        TOOL_ARGUMENTS_INVALID,
        "Translated tool calls whose arguments were not valid JSON at the end, passed on as they were."
    );
    metrics::describe_counter!(
        KEY_REFUSED,
        "Requests refused by a client key's rpm, tpm or monthly budget."
    );
    metrics::describe_gauge!(
        KEY_BUDGET_USED,
        "A client key's month so far (spent + reserved) over its monthly budget."
    );
    metrics::describe_gauge!(
        KEY_SPENT_NANO_USD,
        "A client key's spend this month (ledger at start + settled here), nano-USD."
    );
    metrics::describe_gauge!(
        KEY_SETTLES_PENDING,
        "Budget settlements waiting for the ledger database."
    );
    ledger::metric_names::describe();
}

/// Counts translated tool calls whose arguments were not valid JSON.
pub fn count_invalid_tool_arguments(backend: &str, calls: u64) {
    if calls > 0 {
        metrics::counter!(TOOL_ARGUMENTS_INVALID, "backend" => backend.to_owned()).increment(calls);
    }
}
