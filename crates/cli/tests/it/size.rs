//! `costfloor size`: the GPU calculator's JSON and its errors.

use crate::{input_error, json};

#[test]
fn json_has_the_documented_fields() {
    let sizing = json(&[
        "size",
        "--model",
        "llama-3.3-70b",
        "--gpu",
        "a100-80gb",
        "--gpus",
        "4",
        "--json",
    ]);
    for field in [
        "weights_gib",
        "kv_bytes_per_token",
        "tensor_parallel",
        "max_concurrency",
        "output_tokens_per_s",
        "prefill_tokens_per_s",
        "max_calls_per_month",
    ] {
        assert!(!sizing[field].is_null(), "{field}");
    }
    // 70.55B × 2 bytes = 141.1 GB = 131.4 GiB; KV 320 KiB per token.
    assert!((sizing["weights_gib"].as_f64().unwrap() - 131.4).abs() < 0.1);
    assert_eq!(sizing["kv_bytes_per_token"], 327_680);
    assert_eq!(sizing["tensor_parallel"], 4);
}

#[test]
fn fp8_halves_the_weights_and_shrinks_tp() {
    let fp8 = json(&[
        "size",
        "--model",
        "llama-3.3-70b",
        "--gpu",
        "h100-sxm",
        "--precision",
        "fp8",
        "--json",
    ]);
    // (70.55 − 2.101) × 1 byte + 2.101 × 2 (embedding and head stay bf16) = 72.65 GB
    // = 67.66 GiB, against 131.4 GiB at bf16.
    assert!((fp8["weights_gib"].as_f64().unwrap() - 67.66).abs() < 0.05);
    assert!(fp8["tensor_parallel"].as_u64().unwrap() <= 2);
    let eight = json(&[
        "size",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--json",
    ]);
    assert_eq!(eight["kv_bytes_per_token"], 131_072);
    assert_eq!(eight["tensor_parallel"], 1);
}

#[test]
fn a_model_that_cannot_fit_states_the_shortfall() {
    let err = input_error(&[
        "size",
        "--model",
        "llama-3.1-405b",
        "--gpu",
        "l4",
        "--gpus",
        "2",
    ]);
    assert!(
        err.contains("does not fit") && err.contains("short by"),
        "{err}"
    );
}

#[test]
fn bad_ids_and_values() {
    let err = input_error(&["size", "--model", "llama-70b", "--gpu", "h100-sxm"]);
    assert!(err.contains("unknown model `llama-70b`"), "{err}");
    let err = input_error(&[
        "size",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--precision",
        "fp4",
    ]);
    assert!(
        err.contains("--precision = fp4") && err.contains("bf16, fp8, int8, int4"),
        "{err}"
    );
    let err = input_error(&[
        "size",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--output-tokens",
        "0",
    ]);
    assert!(err.contains("--output-tokens = 0"), "{err}");
}
