//! `costfloor plan`: the default scenarios, capacity, break-even and bad input.

use crate::{costfloor, input_error, json, temp_file};

fn option<'a>(plan: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .unwrap()
}

#[test]
fn no_arguments_reproduce_seed_scenario_1() {
    let plan = json(&["plan", "--json"]);
    assert_eq!(plan["workload"]["calls_per_month"], 1e7);
    assert_eq!(plan["workload"]["input_tokens"], 1000.0);
    assert_eq!(plan["workload"]["output_tokens"], 200.0);
    // The article's Scenario 1: Haiku 10B in × $1 + 2B out × $5 = $20,000; 4 × $1,500 + $2,000 = $8,000.
    assert_eq!(
        option(&plan, "claude-haiku-4.5")["monthly_cost_usd"],
        20_000.0
    );
    assert_eq!(option(&plan, "claude-haiku-4.5")["kind"], "api");
    let seed = option(&plan, "llama-3.3-70b-4xa100");
    assert_eq!(seed["kind"], "self_hosted");
    assert_eq!(seed["monthly_cost_usd"], 8_000.0);
    assert_eq!(seed["cost_breakdown"]["gpu_rental"], 6_000.0);
    assert_eq!(seed["cost_breakdown"]["ops"], 2_000.0);
    assert_eq!(plan["comparison"]["savings_per_month_usd"], 12_000.0);
    assert_eq!(plan["comparison"]["savings_per_year_usd"], 144_000.0);
    for field in [
        "fits",
        "required_replicas",
        "required_gpus",
        "utilization",
        "max_calls_per_month",
    ] {
        assert!(!seed["capacity"][field].is_null(), "capacity.{field}");
    }
    assert!(seed["effective_usd_per_mtok"].is_f64());
    assert!(plan["hybrid"].is_object() && plan["verdict"].is_object());
}

#[test]
fn capacity_check_flags_scenario_1_honestly() {
    let plan = json(&["plan", "--json"]);
    let demand = &plan["demand"];
    // 10M calls × 1,200 tokens ÷ (730 h × 3,600 s) = 4,566 tokens/s on average.
    assert!(
        (demand["average_input_tokens_per_s"].as_f64().unwrap()
            + demand["average_output_tokens_per_s"].as_f64().unwrap()
            - 4566.2)
            .abs()
            < 1.0
    );
    let capacity = &option(&plan, "llama-3.3-70b-4xa100")["capacity"];
    let delivered = capacity["provided_tokens_per_s"].as_f64().unwrap();
    let needed_at_peak = demand["peak_tokens_per_s"].as_f64().unwrap();
    assert!(
        delivered < needed_at_peak,
        "4× A100 cannot carry a 2× peak of 9,132 tokens/s"
    );
    assert_eq!(capacity["fits"], false);
    assert!(capacity["required_replicas"].as_u64().unwrap() >= 2);
    assert_eq!(capacity["sizing"]["tensor_parallel"], 4);
    let at_peak = capacity["monthly_cost_at_required_usd"].as_f64().unwrap();
    assert!(at_peak > 8_000.0);
    let verdict = plan["verdict"]["checks"].as_array().unwrap();
    let check = verdict
        .iter()
        .find(|c| c["name"] == "capacity as given")
        .unwrap();
    assert_eq!(check["status"], "fail");
}

#[test]
fn low_volume_is_seed_scenario_2() {
    let plan = json(&["plan", "--json", "--calls-per-month", "100000"]);
    assert_eq!(option(&plan, "claude-haiku-4.5")["monthly_cost_usd"], 200.0);
    assert_eq!(
        option(&plan, "llama-3.3-70b-4xa100")["monthly_cost_usd"],
        8_000.0
    );
    assert_eq!(plan["comparison"]["cheaper"], "api");
    assert_eq!(plan["comparison"]["ratio"], 40.0);
    let headline = plan["comparison"]["headline"].as_str().unwrap();
    assert!(headline.starts_with("API is 40× cheaper"), "{headline}");
    assert_eq!(plan["verdict"]["recommendation"], "api");
    let human = costfloor(&["plan", "--calls-per-month", "100000"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("API is 40× cheaper"));
}

#[test]
fn break_even_is_4m_calls_and_8_89b_input_tokens() {
    let plan = json(&["plan", "--json"]);
    let pair = plan["break_even"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["api"] == "claude-haiku-4.5" && b["self_hosted"] == "llama-3.3-70b-4xa100")
        .unwrap();
    // $8,000 ÷ (1,000 × $1 + 200 × $5)/1M per call = 4.0M calls.
    assert!((pair["calls_per_month"].as_f64().unwrap() - 4.0e6).abs() < 1.0);
    // Charging the often-quoted $0.10/MTok on 1,200 tokens: $8,000 ÷ $0.00188 = 4.26M.
    assert!((pair["calls_per_month_with_variable"].as_f64().unwrap() / 1e6 - 4.255).abs() < 0.001);
    // $8,000 ÷ $0.90/MTok = 8.89B tokens.
    assert!((pair["input_only_tokens_per_month"].as_f64().unwrap() / 1e9 - 8.889).abs() < 0.001);
    assert!(pair["capacity_aware_calls_per_month"].as_f64().is_some());
    let explanation = plan["rule_of_thumb_crossover"]["explanation"]
        .as_str()
        .unwrap();
    assert!(explanation.contains("4.00M"), "{explanation}");
    let human = String::from_utf8_lossy(&costfloor(&["plan"]).stdout).into_owned();
    assert!(
        human.contains("4.00M calls/mo") && human.contains("8.89B/mo"),
        "{human}"
    );
}

#[test]
fn workload_file_and_flags_combine() {
    let path = temp_file(
        "mix.toml",
        "calls_per_month = 3e6\npeak_to_average = 1.2\n\
         [[task]]\nname = 'extract'\nshare = 0.8\ninput_tokens = 800\noutput_tokens = 100\nself_host = 'yes'\n\
         [[task]]\nname = 'reason'\nshare = 0.2\ninput_tokens = 3000\noutput_tokens = 800\nself_host = 'no'\n",
    );
    let plan = json(&[
        "plan",
        "--json",
        "--workload",
        path.to_str().unwrap(),
        "--calls-per-month",
        "20000000",
    ]);
    assert_eq!(plan["workload"]["calls_per_month"], 2e7);
    // 0.8 × 800 + 0.2 × 3,000 = 1,240 mean input tokens.
    assert_eq!(plan["workload"]["input_tokens"], 1240.0);
    let hybrid = &plan["hybrid"];
    assert!((hybrid["eligible_share"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    assert!(hybrid["optimum"]["self_hosted_share"].as_f64().unwrap() <= 0.8 + 1e-9);
    assert!(
        hybrid["optimum"]["spillover_max_in_flight_per_replica"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn chart_is_written_with_one_line_per_option() {
    let dir = std::env::temp_dir().join(format!("costfloor-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cost.svg");
    let output = costfloor(&["plan", "--chart", path.to_str().unwrap()]);
    assert!(output.status.success());
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    for id in [
        "claude-haiku-4.5",
        "claude-opus-4.7",
        "llama-3.3-70b-4xa100",
    ] {
        assert!(svg.contains(id), "legend lacks {id}");
    }
    assert!(svg.contains("crossover"));
}

#[test]
fn bad_numbers_name_the_field() {
    for (flag, value) in [
        ("--calls-per-month", "0"),
        ("--calls-per-month", "-5"),
        ("--input-tokens", "NaN"),
    ] {
        let err = input_error(&["plan", flag, value]);
        assert!(err.contains(flag), "{err}");
        assert!(err.contains("expected a finite number > 0"), "{err}");
    }
}

#[test]
fn unknown_ids_list_close_matches() {
    let err = input_error(&["plan", "--api", "claude-haiku"]);
    assert!(err.contains("claude-haiku-4.5"), "{err}");
    let err = input_error(&["plan", "--deployment", "llama-3.3-70b-4xa10"]);
    assert!(err.contains("`llama-3.3-70b-4xa100`"), "{err}");
    // A near miss of a former id suggests the id it now stands for.
    let err = input_error(&["plan", "--deployment", "seed-llama-3.3-70b"]);
    assert!(err.contains("`llama-3.3-70b-4xa100`"), "{err}");
    let suggestions = err.split("did you mean").nth(1).unwrap();
    assert!(!suggestions.contains("`seed-"), "{err}");
}

#[test]
fn former_deployment_ids_still_work() {
    // `seed-llama-3.3-70b-4xa100` was the default deployment's id; workload files,
    // gateway configs and scripts that name it must keep working.
    let plan = json(&[
        "plan",
        "--json",
        "--deployment",
        "seed-llama-3.3-70b-4xa100",
    ]);
    let deployment = option(&plan, "llama-3.3-70b-4xa100");
    // The article's Scenario 1 deployment: 4 × $1,500 + $2,000 ops = $8,000.
    assert_eq!(deployment["monthly_cost_usd"], 8_000.0);
    let entry = json(&["catalog", "show", "seed-llama-3.3-70b-4xa100", "--json"]);
    assert_eq!(entry["id"], "llama-3.3-70b-4xa100");
    // A catalog file written against the former id replaces the entry it now names.
    let overlay = temp_file(
        "old-id.toml",
        "[[deployment]]\nid = 'seed-llama-3.3-70b-4xa100'\nmodel = 'llama-3.3-70b'\n\
         gpu = 'a100-80gb'\ngpus = 4\nprecision = 'bf16'\ngpu_usd_per_month = 1000\n\
         ops_usd_per_month = 2000\nas_of = 'x'\nsource = 'test'\n",
    );
    let plan = json(&["plan", "--json", "--catalog", overlay.to_str().unwrap()]);
    // 4 × $1,000 + $2,000 = $6,000, under the current id.
    assert_eq!(
        option(&plan, "llama-3.3-70b-4xa100")["monthly_cost_usd"],
        6_000.0
    );
}

#[test]
fn malformed_workload_gives_file_line_col() {
    let path = temp_file("bad.toml", "calls_per_month = 10\ninput_tokens = [\n");
    let err = input_error(&["plan", "--workload", path.to_str().unwrap()]);
    assert!(err.contains("bad.toml:"), "{err}");
    let path = temp_file("unknown.toml", "calls_per_month = 10\ninput_tokenz = 3\n");
    let err = input_error(&["plan", "--workload", path.to_str().unwrap()]);
    assert!(err.contains("unknown.toml:2:1"), "{err}");
    assert!(err.contains("input_tokenz"), "{err}");
}

#[test]
fn the_shipped_examples_stay_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workload = root.join("examples/workload.toml");
    let plan = json(&["plan", "--json", "--workload", workload.to_str().unwrap()]);
    // 0.55 × 600 + 0.30 × 1,500 + 0.15 × 3,000 = 1,230 mean input tokens.
    assert!((plan["workload"]["input_tokens"].as_f64().unwrap() - 1230.0).abs() < 1e-9);
    assert!((plan["hybrid"]["eligible_share"].as_f64().unwrap() - 0.85).abs() < 1e-9);
    let gateway = root.join("examples/gateway.toml");
    let output = costfloor(&["serve", "--check", "--config", gateway.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The README's worked example quotes these lines; they must stay what `plan` prints.
#[test]
fn the_readme_worked_example_matches_the_output() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let scenario_1 = String::from_utf8(costfloor(&["plan"]).stdout).unwrap();
    let scenario_2 =
        String::from_utf8(costfloor(&["plan", "--calls-per-month", "100000"]).stdout).unwrap();
    let quoted = |prefix: &str| -> String {
        readme
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("README lacks a line starting with {prefix:?}"))
            .to_string()
    };
    for prefix in [
        "llama-3.3-70b-4xa100 saves",
        "Rule-of-thumb check:",
        "Capacity check:",
    ] {
        let line = quoted(prefix);
        assert!(
            scenario_1.contains(&line),
            "README line not in `plan` output:\n{line}"
        );
    }
    for row in [
        "│ replicas needed at peak",
        "│ utilisation at that size",
        "│ per replica",
    ] {
        let readme_row = quoted(row);
        let value = readme_row.rsplit('┆').next().unwrap().trim();
        assert!(
            scenario_1.contains(value),
            "README value {value:?} not in `plan` output"
        );
    }
    let line = quoted("API is 40× cheaper");
    assert!(scenario_2.contains(&line), "{line}");
    // The correction of the rule of thumb's crossover: 4.00M calls, not 1.5M.
    assert!(readme.contains("4.00M calls/month") && readme.contains("about 1.5M"));
    for figure in ["$13,373", "first cheaper at 4.0M", "from 10.0M"] {
        assert!(readme.contains(figure), "README no longer states {figure}");
    }
    assert!(scenario_1.contains("$13,373.08"));
    assert!(scenario_1.contains("4.00M, for good from 10.00M"));
}
