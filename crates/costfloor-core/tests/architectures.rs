//! The memory figures of the 2026 open models in the catalog, against calculations
//! written out here from each model's config (the sources are in the catalog entries).

#![allow(clippy::unwrap_used)]

use costfloor_core::catalog::{Catalog, Precision};
use costfloor_core::sizing::SizingInput;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn input<'a>(catalog: &'a Catalog, model: &str, precision: Precision) -> SizingInput<'a> {
    SizingInput {
        model: catalog.model(model).unwrap(),
        gpu: catalog.gpu("h100-sxm").unwrap(),
        gpus: 8,
        tensor_parallel: None,
        precision,
        kv_bytes_per_element: 2.0,
        input_tokens: 1000.0,
        output_tokens: 200.0,
        p99_prompt_tokens: 1000.0,
        slo_tpot_ms: 50.0,
        slo_ttft_ms: 2000.0,
        assumptions: &catalog.assumptions,
    }
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= want.abs() * 1e-9,
        "{what}: got {got}, calculated {want}"
    );
}

/// KV bytes per token at 4K and 128K for a model of `per_layer` bytes per token and
/// layer, `global` full-attention layers and `local` layers with `window`.
fn kv_per_token(per_layer: f64, global: f64, local: f64, window: f64, context: f64) -> f64 {
    per_layer * (global * context + local * context.min(window)) / context
}

fn check_kv(input: &SizingInput<'_>, at_4k: f64, at_128k: f64) {
    let id = &input.model.id;
    close(
        input.kv_bytes_per_token_at(4096.0),
        at_4k,
        &format!("{id} KV/token at 4K"),
    );
    close(
        input.kv_bytes_per_token_at(131_072.0),
        at_128k,
        &format!("{id} KV/token at 128K"),
    );
}

#[test]
fn gpt_oss_mxfp4_experts_and_sliding_window_layers() {
    let catalog = Catalog::embedded().unwrap();
    let mxfp4 = (4.0 + 8.0 / 32.0) / 8.0; // 4.25 bits a weight
                                          // gpt-oss-120b: 36 MoE layers × 128 experts × (gate+up 2 × 2880 × 2880 + down
                                          // 2880 × 2880) = 114.66B routed params in MXFP4; the other 116.83 − 114.66 = 2.17B
                                          // (attention, router, embeddings) in bf16.
    let big = input(&catalog, "gpt-oss-120b", Precision::Mxfp4);
    let routed = 36.0 * 128.0 * 3.0 * 2880.0 * 2880.0;
    let weights = routed * mxfp4 + (116.83e9 - routed) * 2.0;
    close(big.weights_bytes(), weights, "gpt-oss-120b weights");
    // = 60.77 GiB; the model card gives a 60.8 GiB checkpoint.
    assert!((weights / GIB - 60.77).abs() < 0.01, "{}", weights / GIB);
    // gpt-oss-20b: 24 layers × 32 experts; 12.81 GiB against the card's 12.8 GiB.
    let small = input(&catalog, "gpt-oss-20b", Precision::Mxfp4);
    let routed = 24.0 * 32.0 * 3.0 * 2880.0 * 2880.0;
    let weights = routed * mxfp4 + (20.91e9 - routed) * 2.0;
    close(small.weights_bytes(), weights, "gpt-oss-20b weights");
    assert!((weights / GIB - 12.81).abs() < 0.01, "{}", weights / GIB);
    // KV: 2 (K, V) × 8 KV heads × 64 × 2 bytes = 2,048 B a layer; half of the 36 layers
    // keep only the last 128 tokens.
    let per_layer = 2.0 * 8.0 * 64.0 * 2.0;
    check_kv(
        &big,
        kv_per_token(per_layer, 18.0, 18.0, 128.0, 4096.0), // 38,016 B
        kv_per_token(per_layer, 18.0, 18.0, 128.0, 131_072.0), // 36,900 B
    );
    close(
        big.kv_bytes_per_token_at(4096.0),
        38_016.0,
        "gpt-oss-120b 4K, by hand",
    );
    close(
        big.kv_bytes_per_token_at(131_072.0),
        36_900.0,
        "gpt-oss-120b 128K, by hand",
    );
}

#[test]
fn sliding_windows_cut_the_kv_by_the_share_of_global_layers() {
    let catalog = Catalog::embedded().unwrap();
    // Gemma 3 27B: 62 layers, 10 global and 52 with a 1,024-token window; 2 × 16 KV
    // heads × 128 × 2 bytes = 8,192 B a layer. Past the window only the 10 global
    // layers grow, so at 128K the cache is 62 ÷ (10 + 52 × 1024 / 131072) = 5.96× smaller
    // than if every layer attended globally.
    let gemma = input(&catalog, "gemma-3-27b", Precision::Bf16);
    let per_layer = 2.0 * 16.0 * 128.0 * 2.0;
    check_kv(
        &gemma,
        kv_per_token(per_layer, 10.0, 52.0, 1024.0, 4096.0), // 188,416 B
        kv_per_token(per_layer, 10.0, 52.0, 1024.0, 131_072.0), // 85,248 B
    );
    let full = 62.0 * per_layer;
    close(
        gemma.kv_bytes_per_token(),
        full,
        "gemma full-attention rate",
    );
    let factor = full / gemma.kv_bytes_per_token_at(131_072.0);
    close(
        factor,
        62.0 / (10.0 + 52.0 * 1024.0 / 131_072.0),
        "gemma window factor",
    );
    assert!((factor - 5.96).abs() < 0.01, "{factor}");
    // Tied embedding: 27.4B params × 2 bytes, one 262,208 × 5,376 matrix.
    close(gemma.weights_bytes(), 27.4e9 * 2.0, "gemma weights");
    // Llama 4 (Scout and Maverick): 36 of 48 layers attend within 8,192-token chunks
    // (entered as a window, the cache's upper bound), 12 globally; 4,096 B a layer.
    let per_layer = 2.0 * 8.0 * 128.0 * 2.0;
    for id in ["llama-4-scout", "llama-4-maverick"] {
        let llama = input(&catalog, id, Precision::Bf16);
        check_kv(
            &llama,
            48.0 * per_layer, // 196,608 B: 4K is inside the chunk
            kv_per_token(per_layer, 12.0, 36.0, 8192.0, 131_072.0), // 58,368 B
        );
    }
}

#[test]
fn mla_caches_one_latent_instead_of_every_head() {
    let catalog = Catalog::embedded().unwrap();
    // DeepSeek-V3: per token and layer the 512-wide latent plus the 64-wide RoPE key,
    // (512 + 64) × 2 bytes × 61 layers = 70,272 B at any context.
    let deepseek = input(&catalog, "deepseek-v3", Precision::Fp8);
    let mla = (512.0 + 64.0) * 2.0 * 61.0;
    check_kv(&deepseek, mla, mla);
    // The same attention without MLA caches K and V for all 128 heads of 128: 2 × 128 ×
    // 128 = 32,768 elements a layer against 576, 56.9× more.
    let mut plain = catalog.model("deepseek-v3").unwrap().clone();
    plain.kv_lora_rank = None;
    plain.qk_rope_head_dim = None;
    let gqa = SizingInput {
        model: &plain,
        ..deepseek.clone()
    };
    let factor = gqa.kv_bytes_per_token() / deepseek.kv_bytes_per_token();
    close(factor, 2.0 * 128.0 * 128.0 / 576.0, "MLA factor");
    // vLLM keeps the latent on every tensor-parallel rank; GQA heads shard.
    assert_eq!(deepseek.kv_copies(8), 8.0);
    assert_eq!(gqa.kv_copies(8), 1.0);
    // Weights at FP8: 58 MoE layers × 256 routed experts × 3 × 7,168 × 2,048 in FP8,
    // the untied 129,280 × 7,168 embedding and head in bf16, the rest in FP8.
    let routed = 58.0 * 256.0 * 3.0 * 7168.0 * 2048.0;
    let embedding = 2.0 * 129_280.0 * 7168.0;
    let weights = routed + (671e9 - routed - embedding) + embedding * 2.0;
    close(deepseek.weights_bytes(), weights, "deepseek-v3 fp8 weights");
    assert!((weights / GIB - 626.6).abs() < 0.1, "{}", weights / GIB);
}

#[test]
fn qwen3_and_llama4_weights_and_kv() {
    let catalog = Catalog::embedded().unwrap();
    // Qwen3 32B, dense: 32.8B × 2 bytes; 2 × 8 × 128 × 2 × 64 layers = 262,144 B/token.
    let dense = input(&catalog, "qwen3-32b", Precision::Bf16);
    close(dense.weights_bytes(), 32.8e9 * 2.0, "qwen3-32b weights");
    check_kv(&dense, 262_144.0, 262_144.0);
    // Qwen3 30B-A3B: 4 KV heads, 48 layers: 98,304 B/token; at TP 8 each head sits on
    // two ranks.
    let small = input(&catalog, "qwen3-30b-a3b", Precision::Bf16);
    check_kv(&small, 2.0 * 4.0 * 128.0 * 2.0 * 48.0, 98_304.0);
    assert_eq!(small.kv_copies(8), 2.0);
    // Qwen3 235B-A22B at FP8: 94 × 128 × 3 × 4,096 × 1,536 routed, the 151,936 × 4,096
    // embedding and head in bf16.
    let big = input(&catalog, "qwen3-235b-a22b", Precision::Fp8);
    let routed = 94.0 * 128.0 * 3.0 * 4096.0 * 1536.0;
    let embedding = 2.0 * 151_936.0 * 4096.0;
    close(
        big.weights_bytes(),
        routed + (235e9 - routed - embedding) + embedding * 2.0,
        "qwen3-235b fp8 weights",
    );
    check_kv(&big, 2.0 * 4.0 * 128.0 * 2.0 * 94.0, 192_512.0);
    // Llama 4 Scout at int4 (AWQ/GPTQ g128, 4.156 bits): 48 × 16 routed experts × 3 ×
    // 5,120 × 8,192 and the rest of the linear layers at int4, embedding and head bf16.
    let scout = input(&catalog, "llama-4-scout", Precision::Int4);
    let int4 = (4.0 + 16.0 / 128.0 + 4.0 / 128.0) / 8.0;
    assert!((catalog.assumptions.int4_bytes_per_param - int4).abs() < 1e-4);
    let int4 = catalog.assumptions.int4_bytes_per_param;
    let routed = 48.0 * 16.0 * 3.0 * 5120.0 * 8192.0;
    let embedding = 2.0 * 202_048.0 * 5120.0;
    close(
        scout.weights_bytes(),
        (routed + (109e9 - routed - embedding)) * int4 + embedding * 2.0,
        "llama-4-scout int4 weights",
    );
    // Maverick: only every other layer is MoE (24 × 128 experts).
    let maverick = input(&catalog, "llama-4-maverick", Precision::Fp8);
    let routed = 24.0 * 128.0 * 3.0 * 5120.0 * 8192.0;
    close(
        maverick.weights_bytes(),
        routed + (400e9 - routed - embedding) + embedding * 2.0,
        "llama-4-maverick fp8 weights",
    );
}

#[test]
fn mxfp4_is_refused_for_a_dense_model() {
    let catalog = Catalog::embedded().unwrap();
    let err = costfloor_core::sizing::size(&input(&catalog, "qwen3-32b", Precision::Mxfp4))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--precision") && err.contains("mxfp4") && err.contains("dense"),
        "{err}"
    );
}
