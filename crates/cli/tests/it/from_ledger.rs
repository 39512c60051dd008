//! `workload from-ledger`: the observed workload from a ledger whose rows the test
//! writes, checked against hand-computed figures and fed back into `plan`.

use std::path::{Path, PathBuf};

use ledger::{Ledger, LedgerOptions, LedgerRow, Outcome};

use crate::{costfloor, input_error, json};

/// 2026-11-02T00:00:00Z.
const DAY_MS: i64 = 1_793_577_600_000;
const HOUR_MS: i64 = 3_600_000;

fn row(id: usize, at: i64, task: Option<&str>, tokens: [i64; 5], outcome: Outcome) -> LedgerRow {
    let [input, cache_read, cache_write, cache_write_1h, output] = tokens;
    LedgerRow {
        request_id: format!("r{id}"),
        started_at_unix_ms: at,
        finished_at_unix_ms: at + 100,
        client_key: None,
        route: "r".into(),
        backend: "b".into(),
        model: "m".into(),
        requested_model: Some("alias".into()),
        task: task.map(str::to_string),
        stream: false,
        input_tokens: input,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        cache_write_1h_tokens: cache_write_1h,
        output_tokens: output,
        ttft_us: None,
        total_us: 100_000,
        overhead_us: 50,
        http_status: 200,
        outcome,
        error_kind: None,
        fallback_chain: "b:200".into(),
        cost_nusd: 0,
        counterfactual_cost_nusd: 0,
        estimated: id.is_multiple_of(10),
        self_hosted: true,
        input_estimate: None,
        replica: None,
    }
}

fn ledger_with(name: &str, rows: Vec<LedgerRow>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "costfloor-from-ledger-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("costfloor.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (handle, writer) = Ledger::open(&path, LedgerOptions::default()).unwrap();
        for row in rows {
            handle.record(row).await;
        }
        handle.close().await;
        writer.closed().await.unwrap();
    });
    path
}

fn read_toml(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

/// 40 answered calls on one day: 30 at 09:00 UTC labelled `classify` (1,000 uncached +
/// 600 cache reads + 300 5-minute + 100 1-hour writes in, 200 out) and 10 at 10:00
/// untagged (500 in, 100 out); plus 5 client errors and one row outside the period,
/// which must not count.
fn rows() -> Vec<LedgerRow> {
    let mut rows = Vec::new();
    for i in 0..30 {
        rows.push(row(
            i,
            DAY_MS + 9 * HOUR_MS + i as i64,
            Some("classify"),
            [1_000, 600, 300, 100, 200],
            Outcome::Success,
        ));
    }
    for i in 30..40 {
        rows.push(row(
            i,
            DAY_MS + 10 * HOUR_MS + i as i64,
            None,
            [500, 0, 0, 0, 100],
            Outcome::Success,
        ));
    }
    for i in 40..45 {
        rows.push(row(
            i,
            DAY_MS + 11 * HOUR_MS,
            None,
            [0; 5],
            Outcome::ClientError,
        ));
    }
    rows.push(row(
        45,
        DAY_MS + 30 * HOUR_MS,
        Some("classify"),
        [9_999, 0, 0, 0, 9_999],
        Outcome::Success,
    ));
    rows
}

#[test]
fn the_observed_workload_matches_the_rows_and_plans() {
    let db = ledger_with("figures", rows());
    let out = db.with_file_name("observed.toml");
    let db_arg = db.to_str().unwrap();
    let output = costfloor(&[
        "workload",
        "from-ledger",
        "--db",
        db_arg,
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-02T12:00:00Z",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = read_toml(&out);
    let number = |key: &str| {
        file[key]
            .as_float()
            .or(file[key].as_integer().map(|i| i as f64))
            .unwrap()
    };
    // 40 calls in the 12-hour period, × 730 hours a month = 2,433.33.
    assert!((number("calls_per_month") - 40.0 / 12.0 * 730.0).abs() < 1e-6);
    // Input per call: (30 × 2,000 + 10 × 500) / 40 = 1,625; output (30 × 200 + 10 × 100) / 40 = 175.
    assert_eq!(number("input_tokens"), 1_625.0);
    assert_eq!(number("output_tokens"), 175.0);
    // Shares of the 65,000 input tokens: reads 18,000, 5-minute writes 9,000, 1-hour 3,000.
    assert!((number("cached_input_share") - 18_000.0 / 65_000.0).abs() < 1e-12);
    assert!((number("cache_write_share") - 9_000.0 / 65_000.0).abs() < 1e-12);
    assert!((number("cache_write_1h_share") - 3_000.0 / 65_000.0).abs() < 1e-12);
    // p99 by nearest rank: the 40th of 40 sorted prompts, 2,000.
    assert_eq!(number("p99_prompt_tokens"), 2_000.0);
    // Under a day: 30 calls in the busiest hour over a mean of 40 / 12 an hour = 9.
    assert!((number("peak_to_average") - 9.0).abs() < 1e-9);
    let tasks = file["task"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    // Untagged requests sort first, as SQL orders a missing label.
    assert_eq!(tasks[0]["name"].as_str(), Some("untagged"));
    assert_eq!(tasks[0]["share"].as_float(), Some(0.25));
    assert_eq!(tasks[1]["name"].as_str(), Some("classify"));
    assert_eq!(tasks[1]["share"].as_float(), Some(0.75));
    assert_eq!(tasks[1]["input_tokens"].as_float(), Some(2_000.0));

    // The plan reads it back as written.
    let plan = json(&["plan", "--workload", out.to_str().unwrap(), "--json"]);
    let workload = &plan["workload"];
    assert!((workload["calls_per_month"].as_f64().unwrap() - 40.0 / 12.0 * 730.0).abs() < 1e-6);
    assert_eq!(workload["input_tokens"].as_f64(), Some(1_625.0));
    assert_eq!(workload["p99_prompt_tokens"].as_f64(), Some(2_000.0));
}

#[test]
fn a_day_of_traffic_gives_the_hourly_profile_on_stdout() {
    let db = ledger_with("profile", rows());
    let output = costfloor(&[
        "workload",
        "from-ledger",
        "--db",
        db.to_str().unwrap(),
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-03",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let file: toml::Table = text.parse().unwrap();
    let profile = file["hourly_profile"].as_array().unwrap();
    assert_eq!(profile.len(), 24);
    assert_eq!(profile[9].as_float(), Some(30.0));
    assert_eq!(profile[10].as_float(), Some(10.0));
    assert!(
        text.contains("# - 40 answered calls over 24.000 hours"),
        "{text}"
    );
}

#[test]
fn bad_periods_and_files_are_input_errors() {
    let db = ledger_with("bad", rows());
    let db_arg = db.to_str().unwrap();
    let error = input_error(&[
        "workload",
        "from-ledger",
        "--db",
        db_arg,
        "--since",
        "yesterday",
    ]);
    assert!(
        error.contains("--since \"yesterday\" is not allowed"),
        "{error}"
    );
    let error = input_error(&[
        "workload",
        "from-ledger",
        "--db",
        db_arg,
        "--since",
        "2026-11-03",
        "--until",
        "2026-11-02",
    ]);
    assert!(error.contains("--since is not before --until"), "{error}");
    let error = input_error(&[
        "workload",
        "from-ledger",
        "--db",
        "/nonexistent/costfloor.db",
    ]);
    assert!(error.contains("no such file"), "{error}");
    // A period with no answered request.
    let error = input_error(&[
        "workload",
        "from-ledger",
        "--db",
        db_arg,
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-02",
    ]);
    assert!(error.contains("no successful requests"), "{error}");
}
