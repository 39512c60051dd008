//! The binary on a PostgreSQL ledger (the test cluster of `scripts/test.sh`): keys
//! made with `costfloor keys --ledger`, `serve` writing there, and `report` and
//! `workload from-ledger` reading it back, with the same sums as the rows.

use std::time::Duration;

use ledger::testing::postgres_database;
use ledger::{LedgerReader, Location};

use crate::serve::{dir, serve, signal, wait_exit};
use crate::{costfloor, input_error, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_serve_report_and_workload_on_postgres() {
    let url = postgres_database();
    let made = costfloor(&[
        "keys",
        "create",
        "--ledger",
        &url,
        "--name",
        "team-a",
        "--monthly-budget-usd",
        "5",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("cfk_"), "{key}");
    let listed = json(&["keys", "list", "--ledger", &url, "--json"]);
    assert_eq!(listed[0]["name"], "team-a");
    assert_eq!(listed[0]["monthly_budget_nano_usd"], 5_000_000_000_i64);
    assert!(!listed.to_string().contains(&key));
    let err = input_error(&["keys", "create", "--ledger", &url, "--name", "team-a"]);
    assert!(err.contains("already exists"), "{err}");
    let err = input_error(&[
        "keys", "create", "--ledger", &url, "--name", "x", "--rpm", "0",
    ]);
    assert!(err.contains("rpm"), "{err}");

    let sim = sim::start(sim::SimConfig {
        ttft: Duration::from_millis(2),
        token_delay: Duration::from_millis(2),
        default_output_tokens: 8,
        ..sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = dir("postgres");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
ledger_env = "COSTFLOOR_TEST_LEDGER_URL"

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
    .unwrap();
    let served = serve(&config, &[("COSTFLOOR_TEST_LEDGER_URL", url.as_str())]);
    let client = reqwest::Client::new();
    for n in 0..12 {
        let response = client
            .post(format!("{}/v1/messages", served.url))
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", if n == 11 { "wrong" } else { key.as_str() })
            .json(&serde_json::json!({
                "model": "claude-haiku-4-5", "max_tokens": 8, "stream": n % 2 == 0,
                "messages": [{"role": "user", "content": "hello ".repeat(n + 1)}]
            }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let _ = response.bytes().await.unwrap();
        assert_eq!(status, if n == 11 { 401 } else { 200 });
    }
    signal(&served.child, "TERM");
    let log = tokio::task::spawn_blocking(move || wait_exit(served))
        .await
        .unwrap();
    assert!(
        !log.contains("open to every client"),
        "a stored key closes the gateway"
    );

    let rows = LedgerReader::open(Location::parse(&url).unwrap())
        .unwrap()
        .rows(100)
        .unwrap();
    assert_eq!(rows.len(), 12);
    let report = json(&["report", "--db", &url, "--json"]);
    assert_eq!(report["requests"], 12);
    let cost: i64 = rows.iter().map(|r| r.cost_nusd).sum();
    assert!(cost > 0);
    assert_eq!(report["cost"]["period"]["api_spend"]["nusd"], cost);
    // The same, found through the config's server.ledger_env.
    let through_config = crate::costfloor_with_env(
        &["report", "--config", config.to_str().unwrap(), "--json"],
        &[("COSTFLOOR_TEST_LEDGER_URL", url.as_str())],
    );
    assert!(
        through_config.status.success(),
        "{}",
        String::from_utf8_lossy(&through_config.stderr)
    );
    let through_config: serde_json::Value = serde_json::from_slice(&through_config.stdout).unwrap();
    assert_eq!(through_config["cost"]["period"]["api_spend"]["nusd"], cost);

    let workload = costfloor(&["workload", "from-ledger", "--db", &url]);
    assert!(
        workload.status.success(),
        "{}",
        String::from_utf8_lossy(&workload.stderr)
    );
    let text = String::from_utf8(workload.stdout).unwrap();
    assert!(
        text.contains("The workload observed in postgres://"),
        "{text}"
    );

    // The spend the budget counted is the ledger's, for the key's rows.
    let listed = json(&["keys", "list", "--ledger", &url, "--json"]);
    let key_cost: i64 = rows
        .iter()
        .filter(|r| r.client_key.as_deref() == Some("team-a"))
        .map(|r| r.cost_nusd)
        .sum();
    assert_eq!(listed[0]["spent_nano_usd"], key_cost);
    assert_eq!(listed[0]["reserved_nano_usd"], 0);
    let revoked = costfloor(&["keys", "revoke", "--ledger", &url, "--name", "team-a"]);
    assert!(revoked.status.success());
    let err = input_error(&["keys", "revoke", "--ledger", &url, "--name", "team-a"]);
    assert!(err.contains("no client key"), "{err}");
    let err = input_error(&[
        "report",
        "--db",
        "postgres://u:hunter2@127.0.0.1:1/db",
        "--json",
    ]);
    assert!(!err.contains("hunter2"), "{err}");
}
