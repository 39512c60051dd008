//! `costfloor workload from-usage`: a workload from each export format, figured by hand
//! from the fixtures (`fixtures/usage/`, see its SOURCES.md); the round trip through
//! `plan --workload`; and bad input (exit code 2, nothing written).

use std::path::{Path, PathBuf};

use crate::{costfloor, input_error, json, temp_file};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/usage")
        .join(name)
        .display()
        .to_string()
}

fn out_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs `workload from-usage ARGS --out OUT`; returns the workload and the summary.
fn from_usage(args: &[&str], out: &str) -> (toml::Table, String) {
    let path = out_path(out);
    let mut all = vec!["workload", "from-usage"];
    all.extend_from_slice(args);
    let path_text = path.display().to_string();
    all.extend_from_slice(&["--out", &path_text]);
    let output = costfloor(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    (
        text.parse().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

fn number(table: &toml::Table, key: &str) -> f64 {
    table[key]
        .as_float()
        .unwrap_or_else(|| panic!("{key}: {table}"))
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: {actual} != {expected}"
    );
}

/// Token totals of an export, summed here from its JSON by a walk of its own (pages
/// one after another or in an array): uncached input, cache reads, 5-minute writes,
/// 1-hour writes, output; OpenAI's `input_tokens` include the cached ones.
fn totals(name: &str) -> [u64; 5] {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let mut sums = [0u64; 5];
    for page in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
        for bucket in page.unwrap()["data"].as_array().unwrap() {
            for r in bucket["results"].as_array().unwrap() {
                let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
                if r.get("uncached_input_tokens").is_some() {
                    sums[0] += n(&r["uncached_input_tokens"]);
                    sums[1] += n(&r["cache_read_input_tokens"]);
                    sums[2] += n(&r["cache_creation"]["ephemeral_5m_input_tokens"]);
                    sums[3] += n(&r["cache_creation"]["ephemeral_1h_input_tokens"]);
                } else {
                    sums[0] += n(&r["input_tokens"]) - n(&r["input_cached_tokens"]);
                    sums[1] += n(&r["input_cached_tokens"]);
                }
                sums[4] += n(&r["output_tokens"]);
            }
        }
    }
    sums
}

#[test]
fn anthropic_multi_page_export_gives_the_hand_computed_workload() {
    let (w, summary) = from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            "--mean-input-tokens",
            "3200",
        ],
        "a.toml",
    );
    // Two pages, four daily buckets of one base day × 1, 2, 1, 4 = 8 base days. A base
    // day: 10M uncached + 25M cache reads + 4M 5-minute + 1M 1-hour writes = 40M input,
    // 5M output. Totals: 320M input (80M, 200M, 32M, 8M), 40M output.
    assert_eq!(
        totals("anthropic_usage_pages.json"),
        [80_000_000, 200_000_000, 32_000_000, 8_000_000, 40_000_000]
    );
    // No request count: 320M ÷ 3,200 = 100,000 calls in 4 days (96 h); a month is
    // 730 h: 100,000 × 730 / 96 = 760,416.67.
    close(
        number(&w, "calls_per_month"),
        100_000.0 * 730.0 / 96.0,
        "calls",
    );
    close(number(&w, "input_tokens"), 3200.0, "input");
    // 40M ÷ 100,000 = 400.
    close(number(&w, "output_tokens"), 400.0, "output");
    // 200M / 320M, 32M / 320M, 8M / 320M.
    close(number(&w, "cached_input_share"), 0.625, "reads");
    close(number(&w, "cache_write_share"), 0.1, "5-minute writes");
    close(number(&w, "cache_write_1h_share"), 0.025, "1-hour writes");
    // Not grouped by service tier: no batch share can be known.
    close(number(&w, "batch_share"), 0.0, "batch");
    assert!(summary.contains("not grouped by service_tier"), "{summary}");
    // Daily buckets: the busiest day (4 base days) over the mean (8 / 4 = 2) is 2.0,
    // times the catalog's assumed peak within a day (2.0) = 4.0.
    close(number(&w, "peak_to_average"), 4.0, "peak");
    assert!(summary.contains("a daily export cannot show the peak within a day"));
    assert!(!w.contains_key("hourly_profile") && !w.contains_key("p99_prompt_tokens"));
    assert!(summary.contains("p99 prompt length is not in any usage export"));
    // At Haiku 4.5's prices (catalog: $1 input, $0.10 read, $1.25 and $2 writes, $5
    // output): $80 + $20 + $40 + $16 + $200 = $356.00; a month: × 730 / 96 = $2,707.08.
    assert!(
        summary.contains("At catalog prices: $356.00 over the period, $2,707.08 a month"),
        "{summary}"
    );
    assert!(
        summary.contains("Next: costfloor plan --workload")
            && summary.contains("--api claude-haiku-4.5")
    );
}

#[test]
fn calls_per_month_given_sets_tokens_per_call() {
    let (w, summary) = from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            "--calls-per-month",
            "730000",
        ],
        "a-calls.toml",
    );
    // 730,000 calls a month are 730,000 × 96 / 730 = 96,000 in the 4 days:
    // 320M ÷ 96,000 = 3,333.33 input and 40M ÷ 96,000 = 416.67 output tokens per call.
    close(number(&w, "calls_per_month"), 730_000.0, "calls");
    close(number(&w, "input_tokens"), 320e6 / 96_000.0, "input");
    close(number(&w, "output_tokens"), 40e6 / 96_000.0, "output");
    assert!(
        summary.contains("Per call: 3,333.3 input + 416.7 output tokens"),
        "{summary}"
    );
}

#[test]
fn period_days_overrides_the_span_of_the_buckets() {
    let (w, _) = from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            "--mean-input-tokens",
            "3200",
            "--period-days",
            "8",
        ],
        "a-period.toml",
    );
    // 100,000 calls over 8 days (192 h): × 730 / 192.
    close(
        number(&w, "calls_per_month"),
        100_000.0 * 730.0 / 192.0,
        "calls",
    );
}

#[test]
fn anthropic_usage_alone_asks_for_calls_and_says_why() {
    let err = input_error(&[
        "workload",
        "from-usage",
        &fixture("anthropic_usage_pages.json"),
    ]);
    assert!(err.contains("anthropic_usage_pages.json is an Anthropic usage report, which counts tokens but not requests"), "{err}");
    assert!(err.contains("--calls-per-month") && err.contains("--mean-input-tokens"));
}

#[test]
fn hourly_grouped_export_gives_profile_shares_and_named_tasks() {
    let (w, summary) = from_usage(
        &[
            &fixture("anthropic_usage_hourly_grouped.json"),
            "--mean-input-tokens",
            "2000",
            "--task-by",
            "workspace",
            "--task-map",
            &fixture("task_map.toml"),
        ],
        "b.toml",
    );
    // One day of 1-hour buckets. wrkspc_01chat (Haiku, standard) sends units of 30k
    // uncached + 60k reads + 6k 5-minute + 4k 1-hour writes (100k input) and 20k
    // output: 1 unit in hours 0-7, 3 in 8-19, 2 in 20-23 = 8 + 36 + 8 = 52 units.
    // wrkspc_01batch (Sonnet 4.6, batch tier) sends 200k uncached + 40k output at 02:00.
    assert_eq!(
        totals("anthropic_usage_hourly_grouped.json"),
        [1_760_000, 3_120_000, 312_000, 208_000, 1_080_000]
    );
    // 5.4M input ÷ 2,000 = 2,700 calls in 24 h; × 730 / 24 = 82,125 a month.
    close(number(&w, "calls_per_month"), 82_125.0, "calls");
    close(number(&w, "input_tokens"), 2000.0, "input");
    // 1.08M ÷ 2,700 = 400.
    close(number(&w, "output_tokens"), 400.0, "output");
    close(number(&w, "cached_input_share"), 3.12 / 5.4, "reads");
    close(
        number(&w, "cache_write_share"),
        0.312 / 5.4,
        "5-minute writes",
    );
    close(
        number(&w, "cache_write_1h_share"),
        0.208 / 5.4,
        "1-hour writes",
    );
    // Batch: 240k of 6.48M tokens = 1/27.
    close(number(&w, "batch_share"), 1.0 / 27.0, "batch");
    // Tokens per hour: 120k per unit, so 120k in hours 0, 1, 3-7; 360k at 02:00 (one
    // unit + the batch job's 240k) and in 8-19; 240k in 20-23. Mean: 6,480k / 24 =
    // 270k. Profile: 120/270 = 0.444, 360/270 = 1.333, 240/270 = 0.889 (3 decimals).
    let profile: Vec<f64> = w["hourly_profile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_float().unwrap())
        .collect();
    let expected: Vec<f64> = (0..24)
        .map(|h| match h {
            2 | 8..=19 => 1.333,
            20..=23 => 0.889,
            _ => 0.444,
        })
        .collect();
    assert_eq!(profile, expected);
    assert!(!w.contains_key("peak_to_average"));
    // Tasks, calls split like input tokens (no request count): chat 5.2M of 5.4M input
    // = 26/27, 2,600 calls, 5.2M ÷ 2,600 = 2,000 in and 1.04M ÷ 2,600 = 400 out; the
    // batch job 1/27, 100 calls, 200k ÷ 100 = 2,000 in and 40k ÷ 100 = 400 out.
    let tasks = w["task"].as_array().unwrap();
    let task = |i: usize, key: &str| tasks[i][key].clone();
    assert_eq!(task(0, "name").as_str(), Some("support-chat"));
    close(
        task(0, "share").as_float().unwrap(),
        26.0 / 27.0,
        "chat share",
    );
    close(
        task(0, "input_tokens").as_float().unwrap(),
        2000.0,
        "chat input",
    );
    close(
        task(0, "output_tokens").as_float().unwrap(),
        400.0,
        "chat output",
    );
    assert_eq!(task(1, "name").as_str(), Some("nightly-summaries"));
    close(
        task(1, "share").as_float().unwrap(),
        1.0 / 27.0,
        "batch share",
    );
    close(
        task(1, "output_tokens").as_float().unwrap(),
        400.0,
        "batch output",
    );
    assert_eq!(task(1, "self_host").as_str(), Some("unknown"));
    assert!(summary.contains("calls are split in proportion to input tokens"));
    // Catalog prices: a chat unit costs $0.030 + $0.006 + $0.0075 + $0.008 + $0.100 =
    // $0.1515, × 52 = $7.878; the batch job (200k × $3 + 40k × $15) × 50% = $0.60.
    // $8.478 a day, × 730 / 24 = $257.87 a month.
    assert!(
        summary.contains("At catalog prices: $8.48 over the period, $257.87 a month"),
        "{summary}"
    );
    // The plan reads it and normalises the rounded profile again: its mean is
    // (7 × 0.444 + 13 × 1.333 + 4 × 0.889) / 24 = 23.993 / 24 = 0.99971, so the peak is
    // 1.333 / 0.99971 = 1.33339, 4/3 within 1e-3. The tasks come through.
    let plan = json(&[
        "plan",
        "--json",
        "--workload",
        &out_path_text("b.toml"),
        "--api",
        "claude-haiku-4.5",
    ]);
    assert!((plan["workload"]["peak_to_average"].as_f64().unwrap() - 4.0 / 3.0).abs() < 1e-3);
    assert_eq!(plan["workload"]["tasks"].as_array().unwrap().len(), 2);
}

fn out_path_text(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("costfloor-it-{}", std::process::id()))
        .join(name)
        .display()
        .to_string()
}

#[test]
fn anthropic_cost_report_cross_checks_tokens_at_catalog_prices() {
    let (_, summary) = from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            &fixture("anthropic_cost_report.json"),
            "--mean-input-tokens",
            "3200",
        ],
        "a-cost.toml",
    );
    // The report bills each base day 1,000 + 2,500 + 250 + 500 + 200 = 4,450 cents for
    // tokens, × 8 base days = $356.00, except day 3's output, "2500.45" cents: 0.45 ¢ =
    // $0.0045 more than the catalog's $356.00. Day 2 has a "123.45"-cent web search
    // ($1.2345), not a token cost.
    assert!(
        summary.contains(
            "Cost report: $356.00 for tokens against $356.00 at catalog prices: difference +$0.0045 (+0.0013%); $1.23 for other items"
        ),
        "{summary}"
    );
}

#[test]
fn openai_usage_gives_calls_from_requests_and_tasks_by_project() {
    let (w, summary) = from_usage(
        &[&fixture("openai_usage.json"), "--task-by", "project"],
        "d.toml",
    );
    // Two days. proj_support: 3M input (1M cached), 400k output, 2,000 requests, then
    // twice that; proj_reports (batch): half of each token class with 500 and 1,000
    // requests. Input tokens include the cached ones: 13.5M input, 4.5M of it cached.
    assert_eq!(
        totals("openai_usage.json"),
        [9_000_000, 4_500_000, 0, 0, 1_800_000]
    );
    // 7,500 requests in 48 h: × 730 / 48 = 114,062.5 a month.
    close(number(&w, "calls_per_month"), 114_062.5, "calls");
    // 13.5M ÷ 7,500 = 1,800; 1.8M ÷ 7,500 = 240.
    close(number(&w, "input_tokens"), 1800.0, "input");
    close(number(&w, "output_tokens"), 240.0, "output");
    close(number(&w, "cached_input_share"), 1.0 / 3.0, "reads");
    close(number(&w, "cache_write_share"), 0.0, "writes");
    assert!(!w.contains_key("cache_write_1h_share"));
    // Batch: 4.5M input + 600k output of 15.3M tokens = 1/3.
    close(number(&w, "batch_share"), 1.0 / 3.0, "batch");
    // Day totals 5.1M and 10.2M: 10.2 / 7.65 = 4/3, × the assumed 2.0 = 8/3.
    close(number(&w, "peak_to_average"), 8.0 / 3.0, "peak");
    // Tasks by requests: support 6,000 of 7,500 = 0.8 with 9M ÷ 6,000 = 1,500 in and
    // 1.2M ÷ 6,000 = 200 out; reports 1,500 = 0.2 with 4.5M ÷ 1,500 = 3,000 in and
    // 600k ÷ 1,500 = 400 out.
    let tasks = w["task"].as_array().unwrap();
    assert_eq!(tasks[0]["name"].as_str(), Some("proj_support"));
    close(tasks[0]["share"].as_float().unwrap(), 0.8, "support share");
    close(
        tasks[0]["input_tokens"].as_float().unwrap(),
        1500.0,
        "support in",
    );
    close(
        tasks[0]["output_tokens"].as_float().unwrap(),
        200.0,
        "support out",
    );
    assert_eq!(tasks[1]["name"].as_str(), Some("proj_reports"));
    close(tasks[1]["share"].as_float().unwrap(), 0.2, "reports share");
    close(
        tasks[1]["input_tokens"].as_float().unwrap(),
        3000.0,
        "reports in",
    );
    close(
        tasks[1]["output_tokens"].as_float().unwrap(),
        400.0,
        "reports out",
    );
    assert!(summary.contains("7,500 requests counted"), "{summary}");
}

#[test]
fn openai_costs_cross_check_values_given_as_number_and_string() {
    let (_, summary) = from_usage(
        &[&fixture("openai_usage.json"), &fixture("openai_costs.json")],
        "d-cost.toml",
    );
    // gpt-4.1-mini ($0.40 input, $0.10 cached, $1.60 output, 50% batch discount): day
    // 1 support 2M × 0.40 + 1M × 0.10 + 400k × 1.60 = $1.54, reports half that at half
    // price = $0.385, $1.925 (the fixture's number); day 2 twice that, $3.85 (its
    // string). $5.775 both ways.
    assert!(
        summary.contains(
            "Cost report: $5.78 for tokens against $5.78 at catalog prices: no difference"
        ),
        "{summary}"
    );
}

#[test]
fn pages_in_separate_files_merge_into_the_same_workload() {
    let text = std::fs::read_to_string(fixture("anthropic_usage_pages.json")).unwrap();
    let pages: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let first = temp_file("page-1.json", &pages[0].to_string());
    let second = temp_file("page-2.json", &pages[1].to_string());
    let (split, _) = from_usage(
        &[
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "--mean-input-tokens",
            "3200",
        ],
        "a-split.toml",
    );
    let (whole, _) = from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            "--mean-input-tokens",
            "3200",
        ],
        "a-whole.toml",
    );
    assert_eq!(split, whole);
    // The same pages again are refused rather than counted twice.
    let err = input_error(&[
        "workload",
        "from-usage",
        first.to_str().unwrap(),
        &fixture("anthropic_usage_pages.json"),
        "--mean-input-tokens",
        "3200",
    ]);
    assert!(
        err.contains("anthropic_usage_pages.json: page 1, data[0].results[0]: the same bucket"),
        "{err}"
    );
}

/// Monthly API cost of an export's tokens at a model's prices (USD per MTok, from the
/// embedded catalog), computed here: Σ tokens × price, minus the batch discount on the
/// `batch_share` of it, × 730 h ÷ the hours covered.
fn monthly_cost(tokens: [u64; 5], prices: [f64; 5], batch_off: f64, hours: f64) -> f64 {
    let period: f64 = tokens
        .iter()
        .zip(prices)
        .map(|(t, p)| *t as f64 * p / 1e6)
        .sum();
    period * (1.0 - batch_off) * 730.0 / hours
}

fn plan_api_cost(workload: &str, api: &str) -> f64 {
    let plan = json(&["plan", "--json", "--workload", workload, "--api", api]);
    plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == api)
        .unwrap()["monthly_cost_usd"]
        .as_f64()
        .unwrap()
}

#[test]
fn round_trip_anthropic_export_to_plan_costs_its_tokens_at_catalog_prices() {
    from_usage(
        &[
            &fixture("anthropic_usage_pages.json"),
            "--mean-input-tokens",
            "3200",
        ],
        "rt-a.toml",
    );
    // Haiku 4.5: $1 uncached, $0.10 read, $1.25 5-minute, $2 1-hour write, $5 output;
    // 96 hours covered. $356 × 730 / 96 = $2,707.083; the plan's JSON rounds to cents.
    let expected = monthly_cost(
        totals("anthropic_usage_pages.json"),
        [1.0, 0.10, 1.25, 2.0, 5.0],
        0.0,
        96.0,
    );
    assert!((expected - 2707.083).abs() < 1e-3, "{expected}");
    let plan = plan_api_cost(&out_path_text("rt-a.toml"), "claude-haiku-4.5");
    assert_eq!((plan * 100.0).round(), (expected * 100.0).round(), "{plan}");
}

#[test]
fn round_trip_openai_export_to_plan_costs_its_tokens_at_catalog_prices() {
    from_usage(&[&fixture("openai_usage.json")], "rt-d.toml");
    // gpt-4.1-mini: $0.40 uncached, $0.10 cached, $1.60 output; batch (a third of the
    // tokens, in the same proportions, so a third of the cost) 50% off: 1/6 off in
    // all. $6.93 × 5/6 = $5.775; × 730 / 48 = $87.828.
    let expected = monthly_cost(
        totals("openai_usage.json"),
        [0.40, 0.10, 0.0, 0.0, 1.60],
        1.0 / 6.0,
        48.0,
    );
    assert!((expected - 87.828_125).abs() < 1e-6, "{expected}");
    let plan = plan_api_cost(&out_path_text("rt-d.toml"), "gpt-4.1-mini");
    assert_eq!((plan * 100.0).round(), (expected * 100.0).round(), "{plan}");
}

#[test]
fn without_out_the_workload_goes_to_stdout_and_plan_reads_it() {
    let output = costfloor(&["workload", "from-usage", &fixture("openai_usage.json")]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("# A workload derived by `costfloor workload from-usage`"));
    let path = temp_file("stdout-workload.toml", &text);
    let plan = json(&["plan", "--json", "--workload", path.to_str().unwrap()]);
    // 7,500 requests × 730 / 48 (see above).
    assert_eq!(plan["workload"]["calls_per_month"], 114_062.5);
}

#[test]
fn bad_exports_exit_2_name_file_and_record_and_write_nothing() {
    let openai = std::fs::read_to_string(fixture("openai_usage.json")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "negative.json",
            openai.replacen("\"output_tokens\": 400000", "\"output_tokens\": -400000", 1),
            "negative.json: page 1, data[0].results[0].output_tokens: -400000 is not allowed: expected a whole number of tokens >= 0",
        ),
        (
            "text.json",
            openai.replacen("\"num_model_requests\": 500", "\"num_model_requests\": \"500\"", 1),
            "text.json: page 1, data[0].results[1].num_model_requests: \"500\" (a string) is not allowed",
        ),
        (
            "empty.json",
            r#"{"data": [], "has_more": false, "next_page": null}"#.to_string(),
            "empty.json: empty export",
        ),
        (
            "unknown.json",
            r#"{"object": "list", "models": []}"#.to_string(),
            "unknown.json: page 1: not a usage or cost export: expected a page with `data`",
        ),
        (
            "shape.json",
            r#"{"data": {"starting_at": "2025-07-01T00:00:00Z"}}"#.to_string(),
            "shape.json: page 1, data: expected an array of time buckets, found an object",
        ),
        (
            "bucket.json",
            r#"{"data": [{"start": 1, "results": []}]}"#.to_string(),
            "bucket.json: page 1, data[0]: expected a time bucket with starting_at and ending_at",
        ),
        (
            "truncated.json",
            openai[..openai.len() / 2].to_string(),
            "truncated.json:",
        ),
    ];
    let kept = temp_file("kept-workload.toml", "# an earlier workload\n");
    let fresh = out_path("never-written.toml");
    for (name, text, expected) in cases {
        let bad = temp_file(name, &text);
        for out in [&kept, &fresh] {
            // A good file first: the bad one still stops everything.
            let err = input_error(&[
                "workload",
                "from-usage",
                &fixture("openai_usage.json"),
                bad.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(err.contains(expected), "{name}: {err}");
        }
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap(),
            "# an earlier workload\n"
        );
        assert!(!fresh.exists(), "{name}");
    }
}

#[test]
fn exports_that_cannot_give_what_is_asked_are_refused() {
    // A cost report alone has no tokens.
    let err = input_error(&["workload", "from-usage", &fixture("openai_costs.json")]);
    assert!(err.contains("no usage export among"), "{err}");
    // OpenAI usage has projects, not workspaces.
    let err = input_error(&[
        "workload",
        "from-usage",
        &fixture("openai_usage.json"),
        "--task-by",
        "workspace",
    ]);
    assert!(err.contains("openai_usage.json: --task-by workspace is not allowed for the OpenAI completions usage, which has no workspace_id"), "{err}");
    // The paged fixture is grouped by model only.
    let err = input_error(&[
        "workload",
        "from-usage",
        &fixture("anthropic_usage_pages.json"),
        "--mean-input-tokens",
        "3200",
        "--task-by",
        "api_key",
    ]);
    assert!(err.contains("not grouped by api_key_id"), "{err}");
    let err = input_error(&[
        "workload",
        "from-usage",
        &fixture("openai_usage.json"),
        "--period-days",
        "0",
    ]);
    assert!(err.contains("--period-days = 0 is not allowed"), "{err}");
}
