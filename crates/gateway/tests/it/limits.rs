//! Client keys' budgets and rates under concurrent load, against a priced sim backend.

use std::time::Duration;

use crate::{assert_within_budget, gateway, sim_with};

/// 64 requests at once against a budget that carries a few of them: none may push the
/// month's spend past the budget, however the requests interleave, and the ledger
/// holds a row for each (served or refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_pass_the_budget() {
    let sim = sim_with(sim::SimConfig {
        ttft: Duration::from_millis(20),
        token_delay: Duration::from_millis(2),
        default_output_tokens: 20,
        ..sim::SimConfig::default()
    })
    .await;
    // Claude Haiku 4.5: $1 in, $5 out per MTok. max_tokens 20 bounds each request at
    // about (10 in × $1 + 20 out × $5) / 1M = $0.00011, so $0.001 carries about 9.
    let budget_usd = 0.001;
    let harness = gateway(
        "budget",
        &format!(
            r#"
[[client_key]]
name = "capped"
sha256 = "{}"
monthly_budget_usd = {budget_usd}

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
"#,
            gateway::keys::to_hex(&gateway::keys::key_digest("sk-capped")),
            sim.base_url()
        ),
    )
    .await;
    let body = serde_json::json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "a short question for the budget"}]
    });
    let sends = (0..64).map(|_| {
        let client = harness.client.clone();
        let url = format!("{}/v1/messages", harness.url);
        let body = body.clone();
        async move {
            client
                .post(url)
                .header("anthropic-version", "2023-06-01")
                .header("x-api-key", "sk-capped")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(served + refused, 64, "{statuses:?}");
    assert!(
        served >= 1 && refused >= 1,
        "served {served}, refused {refused}"
    );
    let rows = harness.rows(64).await;
    assert_within_budget("one replica", &rows, budget_usd, served, refused);
    assert_eq!(
        rows.iter().filter(|r| r.http_status == 429).count(),
        refused
    );
}
