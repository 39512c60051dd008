//! The review in `report`: a ledger whose traffic needs fewer replicas than run today,
//! or more, makes the review say so, through the plan on the observed workload.

use std::path::PathBuf;

use ledger::{Ledger, LedgerOptions, LedgerRow, Outcome};

use crate::json;

/// 2026-11-02T09:00:00Z.
const HOUR_START: i64 = 1_793_577_600_000 + 9 * 3_600_000;

/// `calls` calls of 1,000 input and 200 output tokens in one hour; the first
/// `self_hosted` of them on `llama-a` (cost 0), the rest on the API backend at Haiku
/// 4.5's $0.002 a call (1,000 × $1 + 200 × $5 per million tokens).
fn ledger(name: &str, calls: usize, self_hosted: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-review-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("costfloor.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (handle, writer) = Ledger::open(&path, LedgerOptions::default()).unwrap();
        for i in 0..calls {
            let on_llama = i < self_hosted;
            let at = HOUR_START + (i as i64 * 3_600_000) / calls as i64;
            handle
                .record(LedgerRow {
                    request_id: format!("r{i}"),
                    started_at_unix_ms: at,
                    finished_at_unix_ms: at + 50,
                    client_key: None,
                    route: "auto".into(),
                    backend: if on_llama { "llama-a" } else { "claude" }.into(),
                    model: "m".into(),
                    requested_model: Some("auto".into()),
                    task: None,
                    stream: false,
                    input_tokens: 1_000,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cache_write_1h_tokens: 0,
                    output_tokens: 200,
                    ttft_us: None,
                    total_us: 50_000,
                    overhead_us: 20,
                    http_status: 200,
                    outcome: Outcome::Success,
                    error_kind: None,
                    fallback_chain: "x:200".into(),
                    cost_nusd: if on_llama { 0 } else { 2_000_000 },
                    counterfactual_cost_nusd: 2_000_000,
                    estimated: false,
                    self_hosted: on_llama,
                    input_estimate: None,
                    replica: None,
                })
                .await;
        }
        handle.close().await;
        writer.closed().await.unwrap();
    });
    path
}

/// A gateway config with `replicas` copies of the seed deployment and the Haiku API.
fn config(db: &std::path::Path, replicas: usize) -> PathBuf {
    let mut text = format!("[server]\nledger = {:?}\n", db.display().to_string());
    for letter in ["a", "b", "c"].iter().take(replicas) {
        text.push_str(&format!(
            "\n[[backend]]\nname = \"llama-{letter}\"\ntype = \"openai_compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\ndeployment = \"llama-3.3-70b-4xa100\"\n"
        ));
    }
    text.push_str("\n[[backend]]\nname = \"claude\"\ntype = \"anthropic\"\nmodel = \"claude-haiku-4-5\"\nprice = \"claude-haiku-4.5\"\n");
    let path = db.with_file_name("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn review(config: &std::path::Path) -> serde_json::Value {
    json(&[
        "report",
        "--config",
        config.to_str().unwrap(),
        "--since",
        "2026-11-02T09:00:00Z",
        "--until",
        "2026-11-02T10:00:00Z",
        "--json",
    ])
}

fn changes(report: &serde_json::Value) -> Vec<String> {
    report["review"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_replicas_for_twelve_million_calls_are_two_too_many() {
    // 16,438 calls in the hour: 12.0M a month (× 730); three replicas run today. One
    // replica carries 9.78M a month (README's capacity check): with the other 2.2M on
    // the API at $0.002 a call ($4,447), one replica costs $12,447 against $16,000 for
    // the two that would carry it all.
    let db = ledger("fewer", 16_438, 16_438);
    let report = review(&config(&db, 3));
    let review = &report["review"];
    assert_eq!(review["still_cheapest"], false, "{review}");
    // Today: 3 × $8,000 of fixed costs, nothing on the API.
    assert_eq!(review["current_monthly_usd"].as_f64(), Some(24_000.0));
    let changes = changes(&report);
    assert!(
        changes
            .iter()
            .any(|c| c.contains("run 1 replica(s)") && c.contains("2 fewer than today's 3")),
        "{changes:?}"
    );
}

#[test]
fn one_replica_for_twenty_million_calls_needs_one_more() {
    // 27,397 calls in the hour: 20.0M a month; a third of them on the one replica,
    // the rest on the API at $0.002 each. Two replicas carry 2 × 9.78M = 19.56M, the API
    // the last 0.44M ($14,895 in all), cheaper than a third replica ($24,000).
    let db = ledger("more", 27_397, 9_132);
    let report = review(&config(&db, 1));
    let review = &report["review"];
    assert_eq!(review["still_cheapest"], false, "{review}");
    let changes = changes(&report);
    assert!(
        changes
            .iter()
            .any(|c| c.contains("run 2 replica(s)") && c.contains("1 more than today's 1")),
        "{changes:?}"
    );
}

/// The catalog's SLO of 2,000 ms to first token (`slo_ttft_ms`): a backend whose
/// streamed requests take 3 s to the first token is named, one at 0.1 s is not.
#[test]
fn a_backend_over_the_ttft_slo_is_named() {
    let dir = std::env::temp_dir().join(format!("costfloor-review-slo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("costfloor.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (handle, writer) = Ledger::open(&db, LedgerOptions::default()).unwrap();
        for i in 0..20 {
            let slow = i % 2 == 0;
            let at = HOUR_START + i * 1_000;
            handle
                .record(LedgerRow {
                    request_id: format!("s{i}"),
                    started_at_unix_ms: at,
                    finished_at_unix_ms: at + 3_500,
                    client_key: None,
                    route: "auto".into(),
                    backend: if slow { "slow" } else { "fast" }.into(),
                    model: "m".into(),
                    requested_model: Some("auto".into()),
                    task: None,
                    stream: true,
                    input_tokens: 100,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cache_write_1h_tokens: 0,
                    output_tokens: 20,
                    ttft_us: Some(if slow { 3_000_000 } else { 100_000 }),
                    total_us: 3_500_000,
                    overhead_us: 20,
                    http_status: 200,
                    outcome: Outcome::Success,
                    error_kind: None,
                    fallback_chain: "x:200".into(),
                    cost_nusd: 0,
                    counterfactual_cost_nusd: 0,
                    estimated: false,
                    self_hosted: false,
                    input_estimate: None,
                    replica: None,
                })
                .await;
        }
        handle.close().await;
        writer.closed().await.unwrap();
    });
    let report = json(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "--since",
        "2026-11-02T09:00:00Z",
        "--until",
        "2026-11-02T10:00:00Z",
        "--json",
    ]);
    let slo = &report["slo"];
    assert_eq!(slo["ttft_ms"].as_f64(), Some(2_000.0));
    let misses: Vec<(String, String)> = slo["misses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // `slow` misses; the route `auto` carries both, so its p99 (the slow half) misses too.
    assert_eq!(
        misses,
        [
            ("backend".to_string(), "slow".to_string()),
            ("route".to_string(), "auto".to_string())
        ]
    );
}
