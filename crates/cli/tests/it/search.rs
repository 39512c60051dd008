//! `plan --search`, `plan --capacity` and `size --calibrate`: the search over the
//! catalog, measured capacity in the plan, and the fit to bench measurements.

use crate::{costfloor, input_error, json};

#[test]
fn search_lists_the_cheapest_per_ownership_with_a_chart() {
    let dir = tempfile_dir("search-chart");
    let chart = dir.join("search.svg");
    let result = json(&[
        "plan",
        "--search",
        "--search-models",
        "llama-3.3-70b,qwen3-32b",
        "--gpu",
        "h100-sxm,a100-80gb",
        "--json",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    let rented = result["rented"].as_array().unwrap();
    assert!(!rented.is_empty() && rented.len() <= 5);
    let costs: Vec<f64> = rented
        .iter()
        .map(|o| o["monthly_cost_usd"].as_f64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    // Both searched GPUs have a purchase price: owned options are listed too.
    assert!(!result["owned"].as_array().unwrap().is_empty());
    // 2 models × 2 GPUs × (5 precisions, less MXFP4 for the dense models) × 2 KV × the
    // TP sizes that divide the heads (64 heads: 1, 2, 4, 8, 16) = 2 × 2 × 4 × 2 × 5.
    assert_eq!(result["considered"], 160);
    // The best one, planned as a deployment, costs what the search says.
    let best = &rented[0];
    assert!(
        best["hybrid"]["optimum"]["monthly_cost_usd"]
            .as_f64()
            .unwrap()
            <= costs[0] + 1e-6
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("<svg") && svg.contains(best["id"].as_str().unwrap()));
}

#[test]
fn search_says_why_when_nothing_fits() {
    // 405B in bf16 needs ~756 GiB; one 24 GB L4 holds a sliver of it.
    let err = input_error(&[
        "plan",
        "--search",
        "--search-models",
        "llama-3.1-405b",
        "--gpu",
        "l4",
        "--max-gpus",
        "1",
    ]);
    assert!(
        err.contains("no configuration of llama-3.1-405b") && err.contains("do not fit"),
        "{err}"
    );
    // The search does not pick models by itself.
    let err = input_error(&["plan", "--search"]);
    assert!(err.contains("--search-models"), "{err}");
    let err = input_error(&["plan", "--search", "--search-models", "llama-9"]);
    assert!(err.contains("llama-9"), "{err}");
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bench measurement of `deployment` at 1,000 in / 200 out, with one level per
/// (concurrency, output tokens/s) and the capacity at `capacity_rps`.
fn measurement(
    deployment: Option<&str>,
    input: f64,
    levels: &[(f64, f64)],
    capacity_rps: f64,
) -> String {
    let levels: Vec<serde_json::Value> = levels
        .iter()
        .map(|(in_flight, tokens_per_s)| {
            let p = serde_json::json!({"p50": 20.0, "p90": 25.0, "p99": 30.0});
            serde_json::json!({
                "mode": "concurrency", "load": in_flight, "duration_s": 60.0,
                "completed": 600, "failed": 0, "input_tokens": 600_000, "output_tokens": 120_000,
                "requests_per_s": tokens_per_s / 200.0, "output_tokens_per_s": tokens_per_s,
                "total_tokens_per_s": tokens_per_s * 6.0, "mean_in_flight": in_flight,
                "ttft_ms": p, "itl_ms": p, "tpot_ms": p, "e2e_ms": p,
                "goodput_rps": tokens_per_s / 200.0, "meets_slo": true
            })
        })
        .collect();
    serde_json::json!({
        "version": 1, "target": "http://10.0.0.5:8000", "model": "m", "format": "openai",
        "deployment": deployment, "started_at": "2026-12-03T12:00:00Z",
        "shape": {"input_tokens_target": input, "output_tokens_target": 200.0,
                  "input_tokens_mean": input, "output_tokens_mean": 200.0,
                  "input_calibration": "tokenize", "output_forcing": "ignore_eos+min_tokens"},
        "slo": {"ttft_ms": 2000.0, "tpot_ms": 50.0},
        "levels": levels,
        "capacity": {"level": levels.len() - 1, "requests_per_s": capacity_rps,
                     "output_tokens_per_s": capacity_rps * 200.0}
    })
    .to_string()
}

#[test]
fn plan_uses_a_measured_capacity_and_labels_it() {
    let dir = tempfile_dir("capacity");
    let file = dir.join("bench.json");
    std::fs::write(
        &file,
        measurement(
            Some("llama-3.3-70b-4xa100"),
            1000.0,
            &[(8.0, 300.0), (32.0, 400.0)],
            2.0,
        ),
    )
    .unwrap();
    let plan = json(&["plan", "--json", "--capacity", file.to_str().unwrap()]);
    let option = plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "llama-3.3-70b-4xa100")
        .unwrap();
    let capacity = &option["capacity"];
    assert_eq!(
        capacity["sizing"]["limited_by"],
        "measured (costfloor bench)"
    );
    // 2 requests/s × 730 h × 3,600 s = 5.256M calls/month per replica; the 2× peak of
    // 10M calls needs ⌈20M ÷ 5.256M⌉ = 4 replicas.
    assert!(
        (capacity["sizing"]["max_calls_per_month_per_replica"]
            .as_f64()
            .unwrap()
            - 5.256e6)
            .abs()
            < 1.0
    );
    assert_eq!(capacity["required_replicas"], 4);
    let text = String::from_utf8(costfloor(&["plan", "--capacity", file.to_str().unwrap()]).stdout)
        .unwrap();
    assert!(text.contains("measured: 2.00 requests/s"), "{text}");
    // A measurement at another shape is refused, naming the field and both values.
    std::fs::write(
        &file,
        measurement(Some("llama-3.3-70b-4xa100"), 500.0, &[(8.0, 300.0)], 2.0),
    )
    .unwrap();
    let err = input_error(&["plan", "--capacity", file.to_str().unwrap()]);
    assert!(
        err.contains("mean input tokens") && err.contains("500") && err.contains("1000"),
        "{err}"
    );
}

#[test]
fn calibrate_fits_a_bench_measurement_and_prints_the_overlay() {
    let dir = tempfile_dir("calibrate");
    let file = dir.join("bench.json");
    // A measurement of the one-A100 Llama 3.1 8B preset at three concurrencies.
    std::fs::write(
        &file,
        measurement(
            Some("llama-3.1-8b-1xa100-low-overhead"),
            1000.0,
            &[(1.0, 60.0), (16.0, 700.0), (64.0, 1500.0)],
            7.0,
        ),
    )
    .unwrap();
    let fit = json(&["size", "--calibrate", file.to_str().unwrap(), "--json"]);
    assert_eq!(fit["observations"], 3);
    // One GPU: tensor-parallel efficiency is not constrained and stays as it was.
    assert_eq!(
        fit["after"]["tp_efficiency_nvlink"],
        fit["before"]["tp_efficiency_nvlink"]
    );
    // The fit is closer to the measurements than the defaults.
    let error = |key: &str| -> f64 {
        fit["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (r[key].as_f64().unwrap() / r["measured"].as_f64().unwrap())
                    .ln()
                    .powi(2)
            })
            .sum()
    };
    assert!(error("after") < error("before"), "{fit}");
    assert!(fit["overlay"].as_str().unwrap().contains("[assumptions]"));
    let text =
        String::from_utf8(costfloor(&["size", "--calibrate", file.to_str().unwrap()]).stdout)
            .unwrap();
    assert!(
        text.contains("mfu_by_gpu = {") && text.contains("\"a100-80gb\""),
        "{text}"
    );
    // No deployment in the measurement: nothing to size it with.
    std::fs::write(&file, measurement(None, 1000.0, &[(1.0, 60.0)], 1.0)).unwrap();
    let err = input_error(&["size", "--calibrate", file.to_str().unwrap()]);
    assert!(
        err.contains("deployment") && err.contains("--deployment"),
        "{err}"
    );
}
