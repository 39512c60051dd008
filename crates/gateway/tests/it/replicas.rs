//! Two gateway replicas on one PostgreSQL database (the test cluster of
//! `scripts/test.sh`): one budget held across both, keys made on one and used on the
//! other, and every row landing once.

use std::time::{Duration, Instant};

use ledger::testing::postgres_database;
use ledger::{KeyStore, LedgerReader, Location, ReportFilter};

use crate::{assert_within_budget, gateway, sim_with, Harness};

async fn priced_sim() -> sim::SimHandle {
    sim_with(sim::SimConfig {
        ttft: Duration::from_millis(20),
        token_delay: Duration::from_millis(2),
        default_output_tokens: 20,
        ..sim::SimConfig::default()
    })
    .await
}

fn body() -> serde_json::Value {
    serde_json::json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "a short question for the budget"}]
    })
}

async fn send(h: &Harness, key: &str) -> u16 {
    h.client
        .post(format!("{}/v1/messages", h.url))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", key)
        .json(&body())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 200 requests at once, half through each replica, against a budget that carries
/// about nine: the spend of both together stays within the budget, and the ledger
/// holds a row for every request, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_one_budget() {
    let url = postgres_database();
    let sim = priced_sim().await;
    // max_tokens 20 bounds each request at about (10 in × $1 + 20 out × $5) / 1M =
    // $0.00011, so $0.001 carries about nine, across both replicas together.
    let budget_usd = 0.001;
    let key = format!(
        r#"[[client_key]]
name = "capped"
sha256 = "{}"
monthly_budget_usd = {budget_usd}"#,
        gateway::keys::to_hex(&gateway::keys::key_digest("sk-capped"))
    );
    // Both replicas carry the same [[client_key]].
    let a = replica_with_key("replica-a", &url, &sim, &key).await;
    let b = replica_with_key("replica-b", &url, &sim, &key).await;
    let sends = (0..200).map(|i| {
        let h = if i % 2 == 0 { &a } else { &b };
        send(h, "sk-capped")
    });
    let statuses = futures_util::future::join_all(sends).await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(served + refused, 200, "{statuses:?}");
    assert!(served >= 5, "served {served}");

    let location = Location::parse(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = LedgerReader::open(&location).unwrap().rows(10_000).unwrap();
        if rows.len() >= 200 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 200, "a row for every request");
    let by_replica = |r: &str| {
        rows.iter()
            .filter(|x| x.replica.as_deref() == Some(r))
            .count()
    };
    assert_eq!(
        (by_replica("replica-a"), by_replica("replica-b")),
        (100, 100)
    );
    let spent_nusd = assert_within_budget("two replicas", &rows, budget_usd, served, refused);

    // The shared month row agrees with the ledger once every settlement is in.
    let store = KeyStore::open(&url).await.unwrap();
    let (month, _) = costfloor_core::calendar::month_bounds_unix_ms(
        rows.iter().map(|r| r.started_at_unix_ms).max().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spend = store.spend(month).await.unwrap();
        let (_, s) = spend.iter().find(|(k, _)| k == "capped").unwrap();
        if s.reserved_nusd == 0 {
            assert_eq!(s.spent_nusd, spent_nusd);
            break;
        }
        assert!(Instant::now() < deadline, "reservations left: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = LedgerReader::open(&location)
        .unwrap()
        .summary(&ReportFilter::default())
        .unwrap();
    assert_eq!(summary.iter().map(|g| g.requests).sum::<u64>(), 200);
    a.gateway.shutdown().await.unwrap();
    b.gateway.shutdown().await.unwrap();
}

/// Claude Haiku 4.5 ($1 in, $5 out per MTok) on a sim, behind a replica named `name`
/// writing to `url`, with the admin key and `key` (config text, may be empty).
async fn replica_with_key(name: &str, url: &str, sim: &sim::SimHandle, key: &str) -> Harness {
    // Read by the config (admin_key_env); only these tests read it, all the same value.
    std::env::set_var("COSTFLOOR_TEST_ADMIN_KEY", "admin-secret");
    gateway(
        name,
        &format!(
            r#"
[server]
ledger = "{url}"
ledger_spill = "{{dir}}/spill.jsonl"
replica = "{name}"
admin_key_env = "COSTFLOOR_TEST_ADMIN_KEY"

{key}

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
"#,
            sim.base_url()
        ),
    )
    .await
}

async fn admin(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = h
        .client
        .request(method, format!("{}{path}", h.url))
        .bearer_auth("admin-secret");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Waits until `check` holds, up to 5 s (the replicas read the keys every second).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key made through one replica's admin endpoint works on the other without a
/// reload; a budget set on the other stops it on the first; a revocation on either
/// ends it on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_on_one_replica_work_on_every_replica() {
    let url = postgres_database();
    let sim = priced_sim().await;
    let a = replica_with_key("keys-a", &url, &sim, "").await;
    let b = replica_with_key("keys-b", &url, &sim, "").await;
    // No key anywhere yet: open.
    assert_eq!(send(&b, "anything").await, 200);

    let (status, made) = admin(
        &a,
        reqwest::Method::POST,
        "/admin/keys",
        Some(serde_json::json!({"name": "team-a", "rpm": 600})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cfk_"));
    eventually("b takes the new key", async || {
        send(&b, &secret).await == 200
    })
    .await;
    // Keys exist now, so a request without one is refused on both.
    assert_eq!(send(&a, "not-a-key").await, 401);
    eventually("b closes", async || send(&b, "not-a-key").await == 401).await;

    let (status, changed) = admin(
        &b,
        reqwest::Method::PATCH,
        "/admin/keys/team-a",
        Some(serde_json::json!({"monthly_budget_usd": 0.0})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    eventually("a applies the budget", async || {
        send(&a, &secret).await == 429
    })
    .await;

    let (status, listed) = admin(&a, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200);
    let listed = listed["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["monthly_budget_nano_usd"], 0);
    assert!(!listed[0].to_string().contains(&secret), "never the secret");

    let (status, _) = admin(&b, reqwest::Method::DELETE, "/admin/keys/team-a", None).await;
    assert_eq!(status, 200);
    eventually("a drops the revoked key", async || {
        send(&a, &secret).await == 401
    })
    .await;
    let (status, _) = admin(&b, reqwest::Method::DELETE, "/admin/keys/team-a", None).await;
    assert_eq!(status, 404);

    // Bad input names the field and what is allowed; nothing is stored.
    for (body, expected) in [
        (serde_json::json!({"name": "x", "rpm": 0}), "rpm"),
        (serde_json::json!({"name": "bad name!"}), "name"),
        (serde_json::json!({"name": "x", "routes": ["nope"]}), "nope"),
        (serde_json::json!({"name": "x", "colour": "red"}), "colour"),
        (
            serde_json::json!({"name": "x", "monthly_budget_usd": -1}),
            "USD",
        ),
        (
            serde_json::json!({"name": "x", "budget_on": "counterfactual"}),
            "monthly_budget_usd",
        ),
    ] {
        let (status, answer) = admin(&a, reqwest::Method::POST, "/admin/keys", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("postgres://"), "{message}");
    }
    let (status, answer) = admin(
        &a,
        reqwest::Method::POST,
        "/admin/keys",
        Some(serde_json::json!({"name": "team-a"})),
    )
    .await;
    assert_eq!(status, 409, "a revoked name is not reused: {answer}");
    let unauthorised = a
        .client
        .get(format!("{}/admin/keys", a.url))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    a.gateway.shutdown().await.unwrap();
    b.gateway.shutdown().await.unwrap();
}

/// Without PostgreSQL the keys are the config's: the endpoint says so.
#[tokio::test]
async fn admin_keys_need_postgres() {
    std::env::set_var("COSTFLOOR_TEST_ADMIN_KEY", "admin-secret");
    let sim = priced_sim().await;
    let h = gateway(
        "admin-sqlite",
        &format!(
            r#"
[server]
ledger = "{{dir}}/costfloor.db"
admin_key_env = "COSTFLOOR_TEST_ADMIN_KEY"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{}"
model = "claude-haiku-4-5"
"#,
            sim.base_url()
        ),
    )
    .await;
    let (status, answer) = admin(&h, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 409);
    assert!(
        answer["error"].as_str().unwrap().contains("PostgreSQL"),
        "{answer}"
    );
}
