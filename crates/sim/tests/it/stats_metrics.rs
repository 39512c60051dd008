//! `/sim/stats`, `/metrics`, `/health`, cancellation and concurrency limits.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use sim::SimConfig;

use crate::common::*;

fn slow() -> SimConfig {
    SimConfig {
        ttft: Duration::from_millis(5),
        token_delay: Duration::from_millis(20),
        default_output_tokens: 200,
        ..fast()
    }
}

#[tokio::test]
async fn a_dropped_stream_counts_as_cancelled() {
    let h = start(slow()).await;
    let mut r = post_anthropic(
        &h,
        &json!({"model": "m", "max_tokens": 500, "stream": true,
                "messages": [{"role": "user", "content": "go"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    assert_eq!(stats(&h).await.in_flight, 1);
    drop(r);
    let s = wait_stats(&h, |s| s.streams_cancelled == 1).await;
    assert_eq!(s.streams_completed, 0);
    assert_eq!(s.streams_started, 1);
    let s = wait_stats(&h, |s| s.in_flight == 0).await;
    assert!(s.tokens.output < 200);
    let metrics = metrics_samples(&h).await;
    assert_eq!(
        metrics["vllm:request_success_total{finished_reason=\"abort\"}"],
        1.0
    );
    assert_eq!(
        metrics["vllm:generation_tokens_total"],
        s.tokens.output as f64
    );
}

#[tokio::test]
async fn counters_by_endpoint() {
    let h = start(fast()).await;
    post_openai(
        &h,
        &json!({"model": "m", "messages": [{"role": "user", "content": "a b"}]}),
        &[],
    )
    .await;
    let (_, clean) = read_all(
        post_anthropic(
            &h,
            &json!({"model": "m", "max_tokens": 3, "stream": true, "messages": [{"role": "user", "content": "a"}]}),
            &[],
        )
        .await,
    )
    .await;
    assert!(clean);
    client()
        .get(format!("{}/v1/models", h.base_url()))
        .send()
        .await
        .unwrap();
    let s = wait_stats(&h, |s| s.streams_completed == 1).await;
    assert_eq!(s.requests_total, 3);
    assert_eq!(s.by_endpoint["/v1/chat/completions"], 1);
    assert_eq!(s.by_endpoint["/v1/messages"], 1);
    assert_eq!(s.by_endpoint["/v1/models"], 1);
    assert_eq!(s.tokens.output, 8 + 3);
    assert_eq!(s.tokens.input, 6 + 5);
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.faults_injected.len(), 7);
    assert!(s.faults_injected.values().all(|v| *v == 0));
}

/// Parses the Prometheus text strictly and returns `name{labels-but-model/engine}` → value.
async fn metrics_samples(h: &sim::SimHandle) -> HashMap<String, f64> {
    let r = client()
        .get(format!("{}/metrics", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = series
            .split_once('{')
            .unwrap_or_else(|| panic!("no labels in {line:?}"));
        let labels = labels.strip_suffix('}').unwrap();
        assert!(name.starts_with("vllm:"));
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE for {name}");
        let mut rest = Vec::new();
        let mut model = None;
        for kv in labels.split(',') {
            let (k, v) = kv.split_once('=').unwrap();
            assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            match k {
                "model_name" => model = Some(v.to_string()),
                "engine" => {}
                _ => rest.push(kv.to_string()),
            }
        }
        assert_eq!(model.as_deref(), Some("\"sim-model\""), "{line}");
        let key = if rest.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", rest.join(","))
        };
        samples.insert(key, value);
    }
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_count",
        "vllm:e2e_request_latency_seconds_count",
    ] {
        assert!(samples.contains_key(name), "missing {name}");
    }
    for h in [
        "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:inter_token_latency_seconds",
    ] {
        assert_eq!(
            samples[&format!("{h}_count")],
            samples[&format!("{h}_bucket{{le=\"+Inf\"}}")]
        );
    }
    samples
}

#[tokio::test]
async fn metrics_follow_the_traffic() {
    let h = start(fast()).await;
    let m = metrics_samples(&h).await;
    assert_eq!(m["vllm:generation_tokens_total"], 0.0);
    post_openai(
        &h,
        &json!({"model": "m", "messages": [{"role": "user", "content": "a b c"}]}),
        &[],
    )
    .await;
    read_all(
        post_openai(
            &h,
            &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a"}]}),
            &[],
        )
        .await,
    )
    .await;
    wait_stats(&h, |s| s.streams_completed == 1).await;
    let m = metrics_samples(&h).await;
    assert_eq!(m["vllm:generation_tokens_total"], 16.0);
    assert_eq!(m["vllm:prompt_tokens_total"], 7.0 + 5.0);
    assert_eq!(m["vllm:time_to_first_token_seconds_count"], 2.0);
    assert_eq!(m["vllm:e2e_request_latency_seconds_count"], 2.0);
    assert_eq!(m["vllm:inter_token_latency_seconds_count"], 7.0);
    assert_eq!(
        m["vllm:request_success_total{finished_reason=\"stop\"}"],
        2.0
    );
    assert_eq!(m["vllm:num_requests_running"], 0.0);

    let health = client()
        .get(format!("{}/health", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn max_running_makes_requests_wait() {
    let h = start(SimConfig {
        max_running: Some(1),
        ..slow()
    })
    .await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let first = post_openai(&h, &body, &[]).await;
    let base = h.base_url();
    let second = tokio::spawn(async move {
        client()
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "go"}], "max_tokens": 1}))
            .send()
            .await
            .unwrap()
            .status()
    });
    let mut waited = false;
    for _ in 0..100 {
        let m = metrics_samples(&h).await;
        if m["vllm:num_requests_waiting"] == 1.0 {
            assert_eq!(m["vllm:num_requests_running"], 1.0);
            assert_eq!(m["vllm:kv_cache_usage_perc"], 1.0);
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited, "the second request never waited");
    drop(first);
    assert_eq!(second.await.unwrap(), 200);
}
