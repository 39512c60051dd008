//! `report::build` over ledgers the tests write row by row through `ledger::Ledger`,
//! so every latency, token count, cost and timestamp is known: percentiles, fixed costs
//! prorated by hand, traffic shape, and empty input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use costfloor_core::catalog::Catalog;
use ledger::{Ledger, LedgerOptions, LedgerReader, LedgerRow, Outcome};
use report::{BackendDeployment, Report, ReportRequest};

/// 2026-11-01T00:00:00Z: day 20,758 since 1970-01-01 (2026-11-29 is day 20,786).
const NOV_1_MS: i64 = 20_758 * 86_400_000;
const HOUR_MS: i64 = 3_600_000;

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "costfloor-report-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(ledger::DEFAULT_FILE_NAME)
}

fn row(id: usize, started_at_unix_ms: i64, backend: &str) -> LedgerRow {
    LedgerRow {
        request_id: format!("req-{id}"),
        started_at_unix_ms,
        finished_at_unix_ms: started_at_unix_ms + 100,
        client_key: None,
        route: "/v1/chat/completions".into(),
        backend: backend.into(),
        model: "m".into(),
        requested_model: Some("auto".into()),
        task: None,
        stream: true,
        input_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        output_tokens: 0,
        ttft_us: None,
        total_us: 1_000,
        overhead_us: 10,
        http_status: 200,
        outcome: Outcome::Success,
        error_kind: None,
        fallback_chain: format!("{backend}:200"),
        cost_nusd: 0,
        counterfactual_cost_nusd: 0,
        estimated: false,
        self_hosted: false,
        input_estimate: None,
        replica: None,
    }
}

async fn write(path: &Path, rows: Vec<LedgerRow>) {
    let (handle, writer) = Ledger::open(path, LedgerOptions::default()).unwrap();
    for row in rows {
        handle.record(row).await;
    }
    handle.close().await;
    let written = writer.closed().await.unwrap();
    assert_eq!(written.rows_lost, 0);
}

fn build(
    path: &Path,
    since: Option<i64>,
    until: Option<i64>,
    deployments: Option<&[BackendDeployment]>,
) -> Report {
    let catalog = Catalog::embedded().unwrap();
    let reader = LedgerReader::open(path).unwrap();
    report::build(
        &reader,
        &ReportRequest {
            since_unix_ms: since,
            until_unix_ms: until,
            now_unix_ms: NOV_1_MS + 40 * 86_400_000,
            catalog: &catalog,
            deployments,
        },
    )
    .unwrap()
}

/// The exact nearest-rank order statistic: the value at rank ⌈q·n⌉.
fn nearest_rank(sorted: &[i64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.max(1) - 1] as f64 / 1000.0
}

/// A 3-significant-digit histogram answers at or above the exact value, within 0.1%.
fn assert_close(got: f64, exact: f64, what: &str) {
    assert!(
        got >= exact && got <= exact * 1.001,
        "{what}: {got} ms, exact {exact} ms"
    );
}

#[tokio::test]
async fn latency_percentiles_match_the_rows_written() {
    let path = temp_db("latency");
    let mut rows = Vec::new();
    let mut totals_a = Vec::new();
    let mut ttfts_a = Vec::new();
    // Backend a: 1,000 successful rows, total i ms and TTFT i/10 ms for i = 1..=1000,
    // written in a scrambled order (i × 7 mod 1000 visits every i once).
    for n in 0..1000usize {
        let i = (n * 7) % 1000 + 1;
        let mut r = row(n, NOV_1_MS + n as i64, "a");
        r.total_us = i as i64 * 1_000;
        r.ttft_us = Some(i as i64 * 100);
        totals_a.push(r.total_us);
        ttfts_a.push(i as i64 * 100);
        rows.push(r);
    }
    // Failed rows on a with 60 s latencies: left out of the percentiles.
    for n in 1000..1010 {
        let mut r = row(n, NOV_1_MS + n as i64, "a");
        r.total_us = 60_000_000;
        r.outcome = Outcome::UpstreamError;
        r.error_kind = Some("timeout".into());
        rows.push(r);
    }
    // Backend b on another route: 20 whole responses (no TTFT), 3 ms to 60 ms.
    let mut totals_b = Vec::new();
    for n in 0..20usize {
        let mut r = row(2000 + n, NOV_1_MS + 5_000 + n as i64, "b");
        r.route = "/v1/messages".into();
        r.stream = false;
        r.total_us = (n as i64 + 1) * 3_000;
        totals_b.push(r.total_us);
        rows.push(r);
    }
    write(&path, rows).await;
    let report = build(&path, None, Some(NOV_1_MS + HOUR_MS), None);
    totals_a.sort_unstable();
    ttfts_a.sort_unstable();
    totals_b.sort_unstable();
    assert_eq!(report.requests, 1030);
    let by_backend = &report.latency.by_backend;
    assert_eq!(by_backend.len(), 2);
    let (a, b) = (&by_backend[0], &by_backend[1]);
    assert_eq!(
        (a.name.as_str(), a.requests, a.ttft_requests),
        ("a", 1000, 1000)
    );
    assert_eq!((b.name.as_str(), b.requests, b.ttft_requests), ("b", 20, 0));
    let total = a.total.unwrap();
    // Nearest rank of 1..=1000 ms: p50 is the 500th (500 ms), p95 950 ms, p99 990 ms.
    assert_eq!(nearest_rank(&totals_a, 0.5), 500.0);
    assert_close(total.p50_ms, 500.0, "a p50");
    assert_close(total.p95_ms, nearest_rank(&totals_a, 0.95), "a p95");
    assert_close(total.p99_ms, nearest_rank(&totals_a, 0.99), "a p99");
    let ttft = a.ttft.unwrap();
    assert_close(ttft.p50_ms, nearest_rank(&ttfts_a, 0.5), "a ttft p50");
    assert_close(ttft.p95_ms, nearest_rank(&ttfts_a, 0.95), "a ttft p95");
    assert_close(ttft.p99_ms, nearest_rank(&ttfts_a, 0.99), "a ttft p99");
    // b: 20 values 3, 6, …, 60 ms; p50 is the 10th (30 ms), p95 the 19th (57 ms),
    // p99 the 20th (60 ms).
    let total_b = b.total.unwrap();
    assert_close(total_b.p50_ms, 30.0, "b p50");
    assert_close(total_b.p95_ms, 57.0, "b p95");
    assert_close(total_b.p99_ms, 60.0, "b p99");
    assert!(b.ttft.is_none());
    // Per route: a's rows are all on chat completions, b's on messages.
    let by_route = &report.latency.by_route;
    assert_eq!(by_route[0].name, "/v1/chat/completions");
    assert_eq!(by_route[0].requests, 1000);
    assert_close(by_route[0].total.unwrap().p99_ms, 990.0, "route p99");
    assert_eq!(by_route[1].name, "/v1/messages");
    assert_close(by_route[1].total.unwrap().p50_ms, 30.0, "route p50");
}

#[tokio::test]
async fn fixed_costs_prorate_and_traffic_is_counted() {
    let path = temp_db("prorate");
    let mut rows = Vec::new();
    // Self-hosted `llama`: 6 requests in hour 0, 2 in hour 5; each 1,000 input + 500
    // output tokens, counterfactual $0.003500 (= 1,000 × $1 + 500 × $5 per MTok).
    for n in 0..8usize {
        let hour = if n < 6 { 0 } else { 5 };
        let mut r = row(n, NOV_1_MS + hour * HOUR_MS + n as i64, "llama");
        r.input_tokens = 1_000;
        r.output_tokens = 500;
        r.counterfactual_cost_nusd = 3_500_000;
        r.self_hosted = true;
        if n == 7 {
            r.estimated = true;
        }
        rows.push(r);
    }
    // API `claude`: 2 requests that spilled over from a full llama, $0.002 each; one
    // that fell back after llama failed, $0.004; one client error with no cost.
    for n in 0..2usize {
        let mut r = row(100 + n, NOV_1_MS + 2 * HOUR_MS, "claude");
        r.requested_model = Some("claude-haiku-4-5".into());
        r.fallback_chain = "llama:full>claude:200".into();
        r.cost_nusd = 2_000_000;
        r.counterfactual_cost_nusd = 2_000_000;
        rows.push(r);
    }
    let mut fell_back = row(200, NOV_1_MS + 3 * HOUR_MS, "claude");
    fell_back.fallback_chain = "llama:529>claude:200".into();
    fell_back.cost_nusd = 4_000_000;
    fell_back.counterfactual_cost_nusd = 4_000_000;
    rows.push(fell_back);
    let mut refused = row(300, NOV_1_MS + 3 * HOUR_MS, "");
    refused.requested_model = Some("nope".into());
    refused.outcome = Outcome::ClientError;
    refused.error_kind = Some("not_found".into());
    refused.http_status = 404;
    refused.fallback_chain = String::new();
    rows.push(refused);
    // A row after the period: left out.
    rows.push(row(400, NOV_1_MS + 300 * HOUR_MS, "claude"));
    write(&path, rows).await;

    // The period: 2026-11-01 to 2026-11-11T06:00Z, 10.25 days = 246 hours.
    let until = NOV_1_MS + 246 * HOUR_MS;
    let deployments = [BackendDeployment {
        backend: "llama".into(),
        deployment: "llama-3.3-70b-4xa100".into(),
    }];
    let report = build(&path, Some(NOV_1_MS), Some(until), Some(&deployments));
    assert_eq!(report.requests, 12);
    assert!(report.message.is_none());
    assert_eq!(report.period.days, 10.25);
    // The seed deployment costs $8,000 a month (4 × $1,500 + $2,000 ops, cost.rs);
    // 246 of the catalog's 730 hours: $8,000 × 246 / 730 = $2,695.890410958904…,
    // 2,695,890,410,958,904 pico-USD = 2,695,890,410,959 nano-USD rounded.
    let c = &report.cost;
    assert!(c.fixed_costs_known);
    let fixed = c.period.self_hosted_fixed.unwrap();
    assert_eq!(fixed.nusd, 2_695_890_410_959);
    assert_eq!(report.self_hosted[0].monthly.nusd, 8_000_000_000_000);
    // API spend: 2 × $0.002 + $0.004 = $0.008; counterfactual adds 8 × $0.0035 = $0.028.
    assert_eq!(c.period.api_spend.nusd, 8_000_000);
    assert_eq!(c.period.counterfactual_all_api.nusd, 36_000_000);
    assert_eq!(c.period.actual.unwrap().nusd, 2_695_890_410_959 + 8_000_000);
    assert_eq!(
        c.period.savings.unwrap().nusd,
        36_000_000 - 2_695_890_410_959 - 8_000_000
    );
    // Per month: fixed at $8,000; the rest × 730 / 246: $0.008 × 730 / 246 =
    // $0.023739837…, 23,739,837 nano-USD.
    let month = c.per_month.as_ref().unwrap();
    assert_eq!(month.self_hosted_fixed.unwrap().nusd, 8_000_000_000_000);
    assert_eq!(month.api_spend.nusd, 23_739_837);
    // Effective price: $2,695.890… over llama's 8 × 1,500 = 12,000 tokens:
    // $224,657.534247/MTok (2,695,890,410,958,904 pico ÷ 12,000 tokens =
    // 224,657,534,246.575 pico-USD per token, i.e. micro-USD per MTok, rounded).
    assert_eq!(c.self_hosted_tokens, 12_000);
    assert_eq!(c.self_hosted_effective_usd_per_mtok, Some(224_657.534247));
    // Traffic: 12 requests over 246 hours; the peak is hour 0 with 6.
    let t = &report.traffic;
    assert_eq!(t.hours, 246);
    assert_eq!(t.calls_per_hour.len(), 246);
    assert_eq!(t.peak_calls_per_hour, 6);
    assert_eq!(t.peak_hour.as_deref(), Some("2026-11-01T00:00:00Z"));
    let average = 12.0 / 246.0;
    assert_eq!(t.average_calls_per_hour, Some(average));
    assert_eq!(t.peak_to_average, Some(6.0 / average));
    assert_eq!(t.calls_per_hour[5].calls, 2);
    assert_eq!((t.spilled.requests, t.spilled.cost.nusd), (2, 4_000_000));
    assert_eq!(
        (t.fell_back.requests, t.fell_back.cost.nusd),
        (1, 4_000_000)
    );
    assert_eq!(t.spilled.share, Some(2.0 / 12.0));
    assert_eq!(t.estimated.requests, 1);
    assert_eq!(t.errors.len(), 1);
    assert_eq!(
        (
            t.errors[0].outcome.as_str(),
            t.errors[0].error_kind.as_deref(),
            t.errors[0].requests
        ),
        ("client_error", Some("not_found"), 1)
    );
    // Grouped by what clients asked for: auto (8 + 1 fell back), the Haiku alias (2),
    // nope (1).
    let models: Vec<(Option<&str>, u64)> = report
        .by_requested_model
        .iter()
        .map(|g| (g.name.as_deref(), g.requests))
        .collect();
    assert_eq!(
        models,
        [
            (Some("auto"), 9),
            (Some("claude-haiku-4-5"), 2),
            (Some("nope"), 1)
        ]
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("estimated token counts")));

    // Without the config the fixed costs are unknown, and the report says so.
    let unknown = build(&path, Some(NOV_1_MS), Some(until), None);
    assert!(unknown.cost.period.actual.is_none() && unknown.cost.period.savings.is_none());
    assert!(unknown
        .notes
        .iter()
        .any(|n| n.contains("unknown without --config")));
}

#[tokio::test]
async fn empty_ledger_and_empty_period_say_so() {
    let path = temp_db("empty");
    write(&path, Vec::new()).await;
    let report = build(&path, None, None, None);
    assert_eq!(report.requests, 0);
    assert!(
        report
            .message
            .as_deref()
            .unwrap()
            .contains("the ledger is empty"),
        "{:?}",
        report.message
    );
    assert!(report.cost.per_month.is_none());
    assert!(report.traffic.peak_to_average.is_none() && report.traffic.calls_per_hour.is_empty());
    let text = debug_text(&report);
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");

    let path = temp_db("empty-period");
    write(
        &path,
        (0..3).map(|n| row(n, NOV_1_MS + n as i64, "a")).collect(),
    )
    .await;
    let since = NOV_1_MS + 9 * 86_400_000;
    let report = build(&path, Some(since), Some(since + 86_400_000), None);
    assert_eq!(report.requests, 0);
    let message = report.message.unwrap();
    assert!(
        message.contains("No requests between 2026-11-10T00:00:00Z and 2026-11-11T00:00:00Z")
            && message.contains("holds 3 requests, from 2026-11-01T00:00:00Z"),
        "{message}"
    );
    assert_eq!(report.traffic.spilled.share, None);
}

/// The report's Debug text: every float it holds, as Rust prints it (NaN prints `NaN`).
fn debug_text(report: &Report) -> String {
    format!("{report:?}")
}
