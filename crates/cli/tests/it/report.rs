//! `costfloor report` end to end: a ledger filled by `costfloor serve` in front of `sim`
//! backends with a known traffic mix, then `report --json` checked against the rows and
//! against prices × tokens computed here; empty input and bad flags.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger::{LedgerReader, LedgerRow, Outcome};

use crate::serve::{dir, serve, signal, wait_exit};
use crate::{costfloor, input_error, json};

const DAY_MS: i64 = 86_400_000;

/// Claude Haiku 4.5 in nano-USD per token (the catalog's prices, from Anthropic's
/// pricing page as the catalog's `source` says: $1 input, $0.10 cache read, $1.25
/// 5-minute and $2 1-hour cache write, $5 output per MTok; $1/MTok = 1,000 nUSD/token).
fn haiku_nusd(row: &LedgerRow) -> i64 {
    row.input_tokens * 1_000
        + row.cache_read_tokens * 100
        + row.cache_write_tokens * 1_250
        + row.cache_write_1h_tokens * 2_000
        + row.output_tokens * 5_000
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (Hinnant's civil_from_days), written
/// here rather than taken from the code under test.
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
}

fn gateway_config(sim_url: &str, ledger: &Path, dead_port: u16) -> String {
    format!(
        r#"
[server]
ledger = "{}"

[circuit]
# Every request to the dead backend is an attempt, not skipped by an open circuit.
failure_threshold = 1000

[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "{sim_url}/v1"
model = "llama-sim"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{sim_url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[backend]]
name = "dead"
type = "openai_compatible"
base_url = "http://127.0.0.1:{dead_port}/v1"
model = "dead"

[[route]]
name = "auto"
models = ["auto"]
targets = ["llama", "claude"]

[[route]]
name = "flaky"
models = ["flaky"]
targets = ["dead", "claude"]
"#,
        ledger.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_totals_equal_the_rows_and_prices_times_tokens() {
    let sim = sim::start(sim::SimConfig {
        ttft: Duration::from_millis(2),
        token_delay: Duration::from_millis(1),
        default_output_tokens: 8,
        ..sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = dir("report");
    let ledger = dir.join("costfloor.db");
    let config = dir.join("gateway.toml");
    std::fs::write(&config, gateway_config(&sim.base_url(), &ledger, dead_port)).unwrap();
    let served = serve(&config, &[]);
    let client = reqwest::Client::new();
    // The mix: 12 to the self-hosted llama (auto), 6 straight to the API (the Haiku
    // alias), 4 that fall back from the dead backend to the API (flaky), 2 for a model
    // no route serves; both formats, streamed and not, prompts of different lengths.
    let mut mix: Vec<(&str, &str, bool, String)> = Vec::new();
    for n in 0..12 {
        let path = if n % 2 == 0 {
            "/v1/chat/completions"
        } else {
            "/v1/messages"
        };
        mix.push(("auto", path, n % 3 == 0, "word ".repeat(n + 1)));
    }
    for n in 0..6 {
        let path = if n % 2 == 0 {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        mix.push((
            "claude-haiku-4-5",
            path,
            n % 2 == 1,
            "other ".repeat(3 * n + 2),
        ));
    }
    for n in 0..4 {
        mix.push((
            "flaky",
            "/v1/chat/completions",
            n % 2 == 0,
            "x ".repeat(n + 5),
        ));
    }
    for _ in 0..2 {
        mix.push(("nope", "/v1/chat/completions", false, "y".to_string()));
    }
    for (model, path, stream, text) in &mix {
        let body = serde_json::json!({
            "model": model, "max_tokens": 8, "stream": stream,
            "messages": [{"role": "user", "content": text}]
        });
        let response = client
            .post(format!("{}{path}", served.url))
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let _ = response.bytes().await.unwrap();
        assert_eq!(status == 200, *model != "nope", "{model} {path}: {status}");
    }
    signal(&served.child, "TERM");
    tokio::task::spawn_blocking(move || wait_exit(served))
        .await
        .unwrap();

    let rows = LedgerReader::open(&ledger).unwrap().rows(1000).unwrap();
    assert_eq!(rows.len(), mix.len());
    // The period: yesterday to the day after tomorrow (UTC), 3 days, so every row is in.
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / DAY_MS;
    let (since, until) = (date(today - 1), date(today + 2));
    let config_path = config.to_str().unwrap();
    let report = json(&[
        "report",
        "--config",
        config_path,
        "--since",
        &since,
        "--until",
        &until,
        "--json",
    ]);
    assert_eq!(report["requests"], mix.len() as u64);
    // Totals are the sums of the rows, to the nano-dollar.
    let cost: i64 = rows.iter().map(|r| r.cost_nusd).sum();
    let counterfactual: i64 = rows.iter().map(|r| r.counterfactual_cost_nusd).sum();
    assert_eq!(report["cost"]["period"]["api_spend"]["nusd"], cost);
    assert_eq!(
        report["cost"]["period"]["counterfactual_all_api"]["nusd"],
        counterfactual
    );
    // And both are Haiku's prices × the rows' tokens: the API rows cost that, and the
    // llama rows' counterfactual is that (the auto route's reference is its API target).
    let api_rows: Vec<&LedgerRow> = rows.iter().filter(|r| r.backend == "claude").collect();
    assert_eq!(api_rows.len(), 10);
    assert!(api_rows.iter().all(|r| r.outcome == Outcome::Success));
    let priced: i64 = api_rows.iter().map(|r| haiku_nusd(r)).sum();
    assert!(priced > 0);
    assert_eq!(cost, priced);
    let llama_rows: Vec<&LedgerRow> = rows.iter().filter(|r| r.backend == "llama").collect();
    assert_eq!(llama_rows.len(), 12);
    let llama_priced: i64 = llama_rows.iter().map(|r| haiku_nusd(r)).sum();
    assert_eq!(counterfactual, priced + llama_priced);
    // The fixed cost of llama's deployment over 3 days: $8,000 a month (4 × $1,500 +
    // $2,000 ops) × 72 / 730 hours = $789.0410958904109…, 789,041,095,890,411 pico-USD,
    // 789,041,095,890 nano-USD.
    let fixed = report["cost"]["period"]["self_hosted_fixed"]["nusd"]
        .as_i64()
        .unwrap();
    assert_eq!(fixed, 789_041_095_890);
    assert_eq!(report["cost"]["period"]["actual"]["nusd"], fixed + cost);
    assert_eq!(
        report["cost"]["period"]["savings"]["nusd"],
        counterfactual - fixed - cost
    );
    // Per month: the API figures × 730 / 72 hours, rounded to the pico-USD, then nano.
    let month = |nusd: i64| ((i128::from(nusd) * 1000 * 730 + 36) / 72 + 500) / 1000;
    assert_eq!(
        report["cost"]["per_month"]["api_spend"]["nusd"]
            .as_i64()
            .map(i128::from),
        Some(month(cost))
    );
    assert_eq!(
        report["cost"]["per_month"]["self_hosted_fixed"]["nusd"],
        8_000_000_000_000i64
    );
    // Groups, by backend and by what clients asked for.
    let requested: Vec<(String, u64)> = report["by_requested_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        requested,
        [
            ("auto".to_string(), 12),
            ("claude-haiku-4-5".to_string(), 6),
            ("flaky".to_string(), 4),
            ("nope".to_string(), 2)
        ]
    );
    let by_backend = report["by_backend"].as_array().unwrap();
    let llama = by_backend.iter().find(|g| g["name"] == "llama").unwrap();
    assert_eq!(llama["counterfactual"]["nusd"], llama_priced);
    assert_eq!(llama["self_hosted_requests"], 12);
    // Traffic: the 4 flaky requests fell back; none spilled; 2 client errors.
    let traffic = &report["traffic"];
    assert_eq!(traffic["fell_back"]["requests"], 4);
    let flaky_cost: i64 = rows
        .iter()
        .filter(|r| r.requested_model.as_deref() == Some("flaky"))
        .map(|r| r.cost_nusd)
        .sum();
    assert_eq!(traffic["fell_back"]["cost"]["nusd"], flaky_cost);
    assert_eq!(traffic["spilled"]["requests"], 0);
    let errors = traffic["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (
            errors[0]["outcome"].as_str(),
            errors[0]["requests"].as_u64()
        ),
        (Some("client_error"), Some(2))
    );
    // Latency: one group per backend that answered, with every successful request.
    let latency = report["latency"]["by_backend"].as_array().unwrap();
    let llama_latency = latency.iter().find(|g| g["name"] == "llama").unwrap();
    assert_eq!(llama_latency["requests"], 12);
    assert!(llama_latency["total"]["p99_ms"].as_f64().unwrap() > 0.0);

    // The text form shows the same figures.
    let text = costfloor(&[
        "report",
        "--config",
        config_path,
        "--since",
        &since,
        "--until",
        &until,
    ]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("$789.04") && text.contains("$8,000.00"),
        "{text}"
    );
    assert!(
        text.contains("By requested model") && text.contains("Latency by route"),
        "{text}"
    );
    assert!(!text.contains("NaN"), "{text}");

    // With only --db, the fixed costs are unknown and the report says so.
    let db_only = json(&["report", "--db", ledger.to_str().unwrap(), "--json"]);
    assert!(db_only["cost"]["period"]["actual"].is_null());
    assert_eq!(db_only["cost"]["fixed_costs_known"], false);
    assert_eq!(db_only["cost"]["period"]["api_spend"]["nusd"], cost);
}

#[tokio::test]
async fn an_empty_ledger_or_period_says_so_and_bad_flags_exit_2() {
    let dir = dir("report-empty");
    let path = dir.join("costfloor.db");
    let (handle, writer) = ledger::Ledger::open(&path, ledger::LedgerOptions::default()).unwrap();
    handle.close().await;
    writer.closed().await.unwrap();
    let db = path.to_str().unwrap();
    let output = costfloor(&["report", "--db", db]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("the ledger is empty"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
    let empty = json(&["report", "--db", db, "--json", "--since", "2026-01-01"]);
    assert_eq!(empty["requests"], 0);
    assert!(empty["message"]
        .as_str()
        .unwrap()
        .contains("No requests between 2026-01-01T00:00:00Z"));
    assert!(empty["traffic"]["peak_to_average"].is_null());

    let err = input_error(&["report", "--db", db, "--since", "3w"]);
    assert!(
        err.contains("--since \"3w\" is not allowed") && err.contains("30d"),
        "{err}"
    );
    let err = input_error(&["report", "--db", db, "--until", "2026-02-30"]);
    assert!(
        err.contains("--until \"2026-02-30\" is not allowed") && err.contains("YYYY-MM-DD"),
        "{err}"
    );
    let err = input_error(&[
        "report",
        "--db",
        db,
        "--since",
        "2026-02-02",
        "--until",
        "2026-02-01",
    ]);
    assert!(err.contains("is not before --until"), "{err}");
    let missing = dir.join("missing.db");
    let err = input_error(&["report", "--db", missing.to_str().unwrap()]);
    assert!(
        err.contains("--db") && err.contains("missing.db") && err.contains("no such file"),
        "{err}"
    );
    let err = input_error(&[
        "report",
        "--config",
        dir.join("nowhere.toml").to_str().unwrap(),
    ]);
    assert!(
        err.contains("--config") && err.contains("nowhere.toml"),
        "{err}"
    );
    let not_a_ledger = dir.join("notes.txt");
    std::fs::write(
        &not_a_ledger,
        "not a database, just text that is long enough",
    )
    .unwrap();
    let err = input_error(&["report", "--db", not_a_ledger.to_str().unwrap()]);
    assert!(err.contains("--db") && err.contains("notes.txt"), "{err}");
    let err = input_error(&["report"]);
    assert!(err.contains("--db"), "{err}");
    let bad_config = dir.join("gateway.toml");
    std::fs::write(&bad_config, "[[backend]]\nname = 'a'\ntype = 'openai_compatible'\nmodel = 'm'\ndeployment = 'no-such-deployment'\n[server]\nledger = 'costfloor.db'\n").unwrap();
    let err = input_error(&["report", "--config", bad_config.to_str().unwrap()]);
    assert!(
        err.contains("backend `a`.deployment") && err.contains("no-such-deployment"),
        "{err}"
    );
}

/// Report never prices differently from plan: the same deployment, under the same
/// catalog overlay, has the same monthly cost in both.
#[tokio::test]
async fn fixed_costs_match_plan_under_the_same_catalog() {
    let dir = dir("report-plan");
    let path = dir.join("costfloor.db");
    let (handle, writer) = ledger::Ledger::open(&path, ledger::LedgerOptions::default()).unwrap();
    handle.close().await;
    writer.closed().await.unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[server]\nledger = 'costfloor.db'\n\
         [[backend]]\nname = 'llama'\ntype = 'openai_compatible'\nbase_url = 'http://127.0.0.1:9/v1'\nmodel = 'm'\n\
         deployment = 'seed-llama-3.3-70b-4xa100'\n",
    )
    .unwrap();
    // The seed deployment with its GPUs at $2,000 a month: 4 × $2,000 + $2,000 ops =
    // $10,000.
    let overlay = dir.join("catalog.toml");
    std::fs::write(
        &overlay,
        "[[deployment]]\nid = 'llama-3.3-70b-4xa100'\nmodel = 'llama-3.3-70b'\ngpu = 'a100-80gb'\ngpus = 4\n\
         precision = 'bf16'\ngpu_usd_per_month = 2000\nops_usd_per_month = 2000\nas_of = '2026-11-29'\nsource = 'test'\n",
    )
    .unwrap();
    let (config, overlay) = (config.to_str().unwrap(), overlay.to_str().unwrap());
    for catalog in [None, Some(overlay)] {
        let mut plan_args = vec!["plan", "--json", "--deployment", "llama-3.3-70b-4xa100"];
        let mut report_args = vec!["report", "--json", "--config", config];
        if let Some(overlay) = catalog {
            plan_args.extend(["--catalog", overlay]);
            report_args.extend(["--catalog", overlay]);
        }
        let plan = json(&plan_args);
        let report = json(&report_args);
        let planned = plan["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == "llama-3.3-70b-4xa100")
            .unwrap()["monthly_cost_usd"]
            .as_f64()
            .unwrap();
        let reported = &report["self_hosted"][0];
        // The config's former id resolves to the current one.
        assert_eq!(reported["deployment"], "llama-3.3-70b-4xa100");
        assert_eq!(reported["monthly"]["usd"].as_f64().unwrap(), planned);
        let expected = if catalog.is_some() { 10_000.0 } else { 8_000.0 };
        assert_eq!(planned, expected);
    }
}
