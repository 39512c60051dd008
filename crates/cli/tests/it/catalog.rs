//! `costfloor catalog`: list, show and validate.

use crate::{costfloor, input_error, json, temp_file};

#[test]
fn list_json_has_every_required_id() {
    let catalog = json(&["catalog", "list", "--json"]);
    let ids = |key: &str| -> Vec<String> {
        catalog[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    for id in [
        "llama-3.1-8b",
        "llama-3.3-70b",
        "llama-3.1-405b",
        "mixtral-8x7b",
        "mixtral-8x22b",
        "qwen2.5-72b",
    ] {
        assert!(ids("models").contains(&id.to_string()), "{id}");
    }
    for id in [
        "a100-40gb",
        "a100-80gb",
        "h100-sxm",
        "h100-pcie",
        "h200",
        "l40s",
        "l4",
        "a10g",
    ] {
        assert!(ids("gpus").contains(&id.to_string()), "{id}");
    }
    for entry in catalog["api_models"].as_array().unwrap() {
        assert!(entry["as_of"].is_string() && entry["source"].is_string());
    }
}

#[test]
fn show_prints_one_entry() {
    let entry = json(&["catalog", "show", "claude-haiku-4.5", "--json"]);
    assert_eq!(entry["input_usd_per_mtok"], 1.0);
    assert_eq!(entry["output_usd_per_mtok"], 5.0);
    // Haiku 4.5's 1-hour cache write: $2/MTok (LiteLLM's
    // cache_creation_input_token_cost_above_1hr, 2e-6 per token).
    assert_eq!(entry["cache_write_1h_usd_per_mtok"], 2.0);
    let err = input_error(&["catalog", "show", "claude-haiku"]);
    assert!(err.contains("claude-haiku-4.5"), "{err}");
}

#[test]
fn validate_accepts_good_and_rejects_bad_files() {
    let good = temp_file("good.toml", "[[gpu]]\nid = 'b200'\nname = 'B200'\nmemory_gib = 180\nbandwidth_gb_s = 8000\nbf16_tflops = 2250\ninterconnect = 'nvlink'\nrental_usd_per_gpu_hour = 5.5\npower_kw = 1.0\nas_of = '2026-11'\nsource = 'datasheet'\n");
    let output = costfloor(&["catalog", "validate", good.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = temp_file("bad-cat.toml", "[[gpu]]\nid = 'x'\nflops = 3\n");
    let err = input_error(&["catalog", "validate", bad.to_str().unwrap()]);
    assert!(err.contains("bad-cat.toml:3:1"), "{err}");
}

#[test]
fn an_override_changes_the_plan() {
    let cheap = temp_file("cheap.toml", "[[api_model]]\nid = 'claude-haiku-4.5'\nprovider = 'anthropic'\ninput_usd_per_mtok = 0.5\noutput_usd_per_mtok = 2.5\ncontext_window = 200000\nas_of = 'x'\nsource = 'test'\n");
    let plan = json(&["plan", "--json", "--catalog", cheap.to_str().unwrap()]);
    let haiku = plan["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "claude-haiku-4.5")
        .unwrap();
    // Half the prices: $10,000.
    assert_eq!(haiku["monthly_cost_usd"], 10_000.0);
}
