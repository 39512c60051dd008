//! Shadow traffic: a sampled share of a route mirrored to a reference backend, the pairs
//! stored apart from the primary's rows, the monthly cap, and a shadow that hangs or
//! fails changing nothing for the client.

use std::time::{Duration, Instant};

use ledger::{read_shadow_pairs, ReportFilter};
use sim::SimConfig;

use crate::{chat, fast_sim, gateway, sim_with, Harness};

fn config(primary: &str, shadow_url: &str, shadow: &str) -> String {
    format!(
        r#"[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "{primary}/v1"
model = "llama-3.3-70b"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "haiku"
type = "anthropic"
base_url = "{shadow_url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
timeouts = {{ connect_ms = 500, first_byte_ms = 10000, total_ms = 20000 }}

[[route]]
name = "auto"
models = ["auto"]
targets = ["llama"]
reference_api = "claude-haiku-4.5"
shadow = {shadow}
"#
    )
}

/// A gateway whose route mirrors to a fast reference sim with `shadow`'s settings.
async fn shadowed(name: &str, shadow: &str) -> (Harness, sim::SimHandle, sim::SimHandle) {
    let primary = fast_sim().await;
    let reference = fast_sim().await;
    let h = gateway(
        name,
        &config(&primary.base_url(), &reference.base_url(), shadow),
    )
    .await;
    (h, primary, reference)
}

async fn pairs_after(h: &Harness, count: usize) -> Vec<ledger::ShadowPair> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pairs =
            read_shadow_pairs(&h.ledger, &ReportFilter::default(), None).unwrap_or_default();
        if pairs.len() >= count || Instant::now() > deadline {
            // Let any copy still in flight land before counting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return read_shadow_pairs(&h.ledger, &ReportFilter::default(), None).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_share_is_mirrored_and_priced_apart() {
    let (h, _primary, reference) = shadowed(
        "shadow-share",
        "{ backend = \"haiku\", sample = 0.25, monthly_cap_usd = 1000, store_outputs = true }",
    )
    .await;
    let total = 400;
    for i in 0..total {
        let mut body = chat("auto", &format!("request number {i} about shadows"), 8);
        body["metadata"] = serde_json::json!({"task": "classify"});
        let response = h.post("/v1/chat/completions", body).await;
        assert_eq!(response.status(), 200);
    }
    let rows = h.rows(total).await;
    // Sampling at 0.25 of 400: mean 100, sd sqrt(400 × 0.25 × 0.75) = 8.7; within 4.5 sd.
    let pairs = pairs_after(&h, 61).await;
    assert!((61..=139).contains(&pairs.len()), "{} pairs", pairs.len());
    assert_eq!(
        reference.state().stats().requests_total as usize,
        pairs.len()
    );
    // The shadow's cost is its own: the primary rows (self-hosted) cost nothing, and
    // each pair holds Haiku's price of its tokens.
    assert!(rows
        .iter()
        .all(|r| r.cost_nusd == 0 && r.backend == "llama"));
    for pair in &pairs {
        assert_eq!(pair.task.as_deref(), Some("classify"));
        assert!(pair.shadow_error.is_none());
        // Haiku 4.5: $1/MTok in, $5/MTok out = 1,000 and 5,000 nano-USD a token.
        let expected = pair.shadow_input_tokens * 1_000 + pair.shadow_output_tokens * 5_000;
        assert_eq!(pair.shadow_cost_nusd, expected);
        assert!(pair.primary_output.is_some() && pair.shadow_output.is_some());
        let row = rows
            .iter()
            .find(|r| r.request_id == pair.request_id)
            .unwrap();
        assert_eq!(row.output_tokens, pair.primary_output_tokens);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_stops_sampling_and_says_so() {
    // One copy costs about 20 input tokens × $1/MTok + 8 output × $5/MTok = $0.00006:
    // a cap of $0.0002 allows about three.
    let (h, _primary, _reference) = shadowed(
        "shadow-cap",
        "{ backend = \"haiku\", sample = 1.0, monthly_cap_usd = 0.0002, max_in_flight = 1 }",
    )
    .await;
    for i in 0..40 {
        let response = h
            .post(
                "/v1/chat/completions",
                chat("auto", &format!("capped {i}"), 8),
            )
            .await;
        assert_eq!(response.status(), 200);
        // Sequential copies, so the spend is known before the next request samples.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pairs = pairs_after(&h, 40).await;
    let spent: i64 = pairs.iter().map(|p| p.shadow_cost_nusd).sum();
    let largest = pairs.iter().map(|p| p.shadow_cost_nusd).max().unwrap();
    // The cap is checked before each copy: the overshoot is at most max_in_flight (1)
    // copies.
    assert!(
        spent >= 200_000 && spent < 200_000 + largest,
        "spent {spent} nUSD"
    );
    assert!(pairs.len() < 10, "{} pairs", pairs.len());
    // Outputs are not kept unless the route asks.
    assert!(pairs
        .iter()
        .all(|p| p.primary_output.is_none() && p.shadow_output.is_none()));
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("costfloor_shadow_capped{route=\"auto\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("costfloor_shadow_requests_total{route=\"auto\",result=\"capped\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_failing_shadow_changes_nothing_for_the_client() {
    let primary = fast_sim().await;
    // A reference that takes 5 s to answer, and one that is not there at all.
    let hanging = sim_with(SimConfig {
        ttft: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await;
    let dead = format!("http://127.0.0.1:{}", crate::dead_port());
    let plain = gateway(
        "shadow-none",
        &config(
            &primary.base_url(),
            &dead,
            "{ backend = \"haiku\", sample = 1.0, monthly_cap_usd = 0 }",
        )
        .replace(
            "shadow = { backend = \"haiku\", sample = 1.0, monthly_cap_usd = 0 }\n",
            "",
        ),
    )
    .await;
    for (name, url) in [("hang", hanging.base_url()), ("dead", dead.clone())] {
        let h = gateway(
            &format!("shadow-{name}"),
            &config(
                &primary.base_url(),
                &url,
                "{ backend = \"haiku\", sample = 1.0, monthly_cap_usd = 100, max_in_flight = 4 }",
            ),
        )
        .await;
        for i in 0..8 {
            let body = chat("auto", &format!("same answer {i}"), 8);
            let started = Instant::now();
            let shadowed = h.post("/v1/chat/completions", body.clone()).await;
            let elapsed = started.elapsed();
            assert_eq!(shadowed.status(), 200);
            // The sim answers in a few ms; a wait on the 5 s shadow would show.
            assert!(elapsed < Duration::from_secs(2), "{name}: {elapsed:?}");
            let shadowed: serde_json::Value = shadowed.json().await.unwrap();
            let direct: serde_json::Value = plain
                .post("/v1/chat/completions", body)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(
                shadowed["choices"][0]["message"]["content"],
                direct["choices"][0]["message"]["content"],
                "{name}"
            );
            assert_eq!(shadowed["usage"], direct["usage"], "{name}");
        }
        if name == "dead" {
            let pairs = pairs_after(&h, 8).await;
            assert_eq!(pairs.len(), 8);
            assert!(pairs
                .iter()
                .all(|p| p.shadow_error.is_some() && p.shadow_cost_nusd == 0));
        } else {
            // At most max_in_flight (4) copies wait on the hanging backend; the rest
            // are dropped, not queued.
            let metrics = h.metrics().await;
            assert!(metrics.contains("result=\"dropped\"} 4"), "{metrics}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_primary_is_paired_with_its_streamed_text() {
    let (h, _primary, _reference) = shadowed(
        "shadow-stream",
        "{ backend = \"haiku\", sample = 1.0, monthly_cap_usd = 100, store_outputs = true }",
    )
    .await;
    let body = crate::chat_stream("auto", "stream me a shadowed answer", 6);
    let response = h.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // The client's stream, its deltas joined.
    let mut streamed = String::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if let Ok(chunk) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(delta);
            }
        }
    }
    assert!(!streamed.is_empty());
    let pairs = pairs_after(&h, 1).await;
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].primary_output.as_deref(), Some(streamed.as_str()));
    let row = h.rows(1).await.remove(0);
    assert_eq!(pairs[0].primary_output_tokens, row.output_tokens);
    assert!(pairs[0]
        .shadow_output
        .as_deref()
        .is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_reference_itself_answered_is_not_mirrored() {
    // The self-hosted target is down, so every request falls back to the reference.
    let dead = format!("http://127.0.0.1:{}", crate::dead_port());
    let reference = fast_sim().await;
    let text = config(
        &dead,
        &reference.base_url(),
        "{ backend = \"haiku\", sample = 1.0, monthly_cap_usd = 100 }",
    )
    .replace("targets = [\"llama\"]", "targets = [\"llama\", \"haiku\"]");
    let h = gateway("shadow-self", &text).await;
    for i in 0..5 {
        let response = h
            .post(
                "/v1/chat/completions",
                chat("auto", &format!("fell back {i}"), 8),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let rows = h.rows(5).await;
    assert!(rows.iter().all(|r| r.backend == "haiku"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pairs = read_shadow_pairs(&h.ledger, &ReportFilter::default(), None).unwrap();
    assert!(pairs.is_empty(), "{} pairs", pairs.len());
    // One request each at the reference: the answers, no copies.
    assert_eq!(reference.state().stats().requests_total, 5);
}
