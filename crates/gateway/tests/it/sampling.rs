//! Utilisation samples: the gateway reads each self-hosted backend's metrics endpoint
//! on its interval and stores what it read, in vLLM's and in llama.cpp's names.

use std::time::{Duration, Instant};

use sim::{MetricsFormat, SimConfig};

use crate::{chat, chat_stream, gateway, sim_with};

fn fast(format: MetricsFormat) -> SimConfig {
    SimConfig {
        ttft: Duration::from_millis(1),
        token_delay: Duration::from_millis(1),
        metrics_format: format,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn self_hosted_backends_are_sampled_in_both_formats() {
    let vllm = sim_with(fast(MetricsFormat::Vllm)).await;
    let llama = sim_with(fast(MetricsFormat::Llamacpp)).await;
    let config = format!(
        r#"
[server]
ledger = "{{dir}}/costfloor.db"
sample_interval_seconds = 1

[[backend]]
name = "vllm"
type = "openai_compatible"
base_url = "{vllm}/v1"
model = "vllm-model"
deployment = "llama-3.3-70b-4xa100"
metrics_url = "{vllm}/metrics"

[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "{llama}/v1"
model = "llama-model"
deployment = "llama-3.1-8b-1xa100-low-overhead"
metrics_url = "{llama}/metrics"
"#,
        vllm = vllm.base_url(),
        llama = llama.base_url(),
    );
    let h = gateway("sampling", &config).await;
    // Known traffic: three requests to each, one of them streamed.
    for model in ["vllm-model", "llama-model"] {
        for body in [
            chat(model, "one two three", 4),
            chat(model, "four five", 6),
            chat_stream(model, "six", 3),
        ] {
            let response = h.post("/v1/chat/completions", body).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
    }
    // The sims' own counts are what their endpoints export; wait for a sample taken
    // after the traffic (one a second).
    let expected = |sim: &sim::SimHandle| {
        let tokens = sim.state().stats().tokens;
        (
            (tokens.input + tokens.cache_read_input + tokens.cache_creation_input) as f64,
            tokens.output as f64,
        )
    };
    let (vllm_prompt, vllm_output) = expected(&vllm);
    let (llama_prompt, llama_output) = expected(&llama);
    assert!(vllm_prompt > 0.0 && llama_output > 0.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let samples =
            ledger::read_samples(&h.ledger, &ledger::ReportFilter::default()).unwrap_or_default();
        let caught_up = |backend: &str, prompt: f64| {
            samples
                .iter()
                .any(|s| s.backend == backend && s.prompt_tokens_total == Some(prompt))
        };
        if caught_up("vllm", vllm_prompt) && caught_up("llama", llama_prompt) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "no sample caught up: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let last = |backend: &str| {
        samples
            .iter()
            .rev()
            .find(|s| s.backend == backend)
            .unwrap()
            .clone()
    };
    let v = last("vllm");
    assert_eq!(v.source, "vllm");
    assert_eq!(v.generation_tokens_total, Some(vllm_output));
    assert_eq!(v.requests_running, Some(0.0));
    assert_eq!(v.kv_cache_usage, Some(0.0));
    assert_eq!(v.decode_steps_total, None);
    let l = last("llama");
    assert_eq!(l.source, "llamacpp");
    assert_eq!(l.generation_tokens_total, Some(llama_output));
    assert_eq!(l.decode_steps_total, Some(llama_output));
    assert_eq!(l.requests_waiting, Some(0.0));
    assert_eq!(l.kv_cache_usage, None);
    // Samples are a second apart, not per request.
    let vllm_samples: Vec<_> = samples.iter().filter(|s| s.backend == "vllm").collect();
    for pair in vllm_samples.windows(2) {
        assert!(pair[1].sampled_at_unix_ms - pair[0].sampled_at_unix_ms >= 900);
    }
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_metrics_endpoint_costs_nothing_but_a_count() {
    let api = sim_with(fast(MetricsFormat::Vllm)).await;
    let config = format!(
        r#"
[server]
ledger = "{{dir}}/costfloor.db"
sample_interval_seconds = 1

[[backend]]
name = "local"
type = "openai_compatible"
base_url = "{url}/v1"
model = "m"
deployment = "llama-3.3-70b-4xa100"
metrics_url = "http://127.0.0.1:{port}/metrics"
"#,
        url = api.base_url(),
        port = crate::dead_port(),
    );
    let h = gateway("sampling-dead", &config).await;
    let response = h.post("/v1/chat/completions", chat("m", "hello", 2)).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let samples = ledger::read_samples(&h.ledger, &ledger::ReportFilter::default()).unwrap();
    assert!(samples.is_empty(), "{samples:?}");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("costfloor_backend_samples_total{backend=\"local\",result=\"error\"}"),
        "{metrics}"
    );
    h.gateway.shutdown().await.unwrap();
}
