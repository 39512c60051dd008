//! Faults from `sim`: rate limits, overload storms and the circuit, upstream death
//! mid-stream, a dead self-hosted backend, client disconnects.

use std::time::{Duration, Instant};

use ledger::Outcome;
use sim::{FaultKind, FaultPlan, FaultStep, SimConfig};

use crate::{chat, chat_stream, dead_port, fast_sim, gateway, header, sim_with};

fn plan(steps: Vec<FaultStep>) -> FaultPlan {
    FaultPlan { steps }
}

fn step(kind: FaultKind, count: Option<u32>) -> FaultStep {
    FaultStep {
        count,
        ..FaultStep::new(kind)
    }
}

fn single(kind: &str, url: &str) -> String {
    let base = if kind == "anthropic" {
        url.to_string()
    } else {
        format!("{url}/v1")
    };
    format!(
        r#"
[retry]
max_attempts = 3
max_wait_ms = 3000

[[backend]]
name = "only"
type = "{kind}"
base_url = "{base}"
model = "m"
price = "claude-haiku-4.5"

[[route]]
name = "r"
models = ["m"]
targets = ["only"]
"#
    )
}

#[tokio::test]
async fn rate_limit_then_success_waits_for_retry_after() {
    let sim = fast_sim().await;
    let mut rate_limit = step(FaultKind::RateLimit, Some(1));
    rate_limit.retry_after_s = Some(1);
    sim.state().set_faults(plan(vec![rate_limit]));
    let h = gateway("ratelimit", &single("anthropic", &sim.base_url())).await;
    let started = Instant::now();
    let response = h.post("/v1/messages", chat("m", "hello", 3)).await;
    assert_eq!(response.status(), 200);
    // The sim said `retry-after: 1`: the retry must not come sooner.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let id = header(&response, "x-costfloor-request-id").to_string();
    let row = h.row(&id).await;
    assert_eq!(row.fallback_chain, "only:429>only:200");
    assert_eq!(row.outcome, Outcome::Success);
    assert_eq!(sim.state().stats().requests_total, 2);
}

#[tokio::test]
async fn rate_limit_beyond_the_budget_is_returned_with_retry_after() {
    let sim = fast_sim().await;
    let mut rate_limit = step(FaultKind::RateLimit, None);
    rate_limit.retry_after_s = Some(30);
    sim.state().set_faults(plan(vec![rate_limit]));
    let h = gateway("ratelimit-budget", &single("anthropic", &sim.base_url())).await;
    let response = h.post("/v1/messages", chat("m", "hello", 3)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), "30");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn overload_storm_opens_the_circuit_and_falls_back() {
    let failing = fast_sim().await;
    failing
        .state()
        .set_faults(plan(vec![step(FaultKind::Overloaded, None)]));
    let healthy = fast_sim().await;
    let config = format!(
        r#"
[circuit]
failure_threshold = 3
open_ms = 60000

[[backend]]
name = "primary"
type = "anthropic"
base_url = "{}"
model = "m"
price = "claude-haiku-4.5"

[[backend]]
name = "secondary"
type = "anthropic"
base_url = "{}"
model = "m"
price = "claude-haiku-4.5"

[[route]]
name = "r"
models = ["m"]
targets = ["primary", "secondary"]
"#,
        failing.base_url(),
        healthy.base_url()
    );
    let h = gateway("storm", &config).await;
    let mut chains = Vec::new();
    for _ in 0..10 {
        let response = h.post("/v1/messages", chat("m", "hi", 2)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-costfloor-backend"), "secondary");
        chains.push(
            h.row(header(&response, "x-costfloor-request-id"))
                .await
                .fallback_chain,
        );
    }
    // Three 529s open the circuit; after that the primary is skipped without a call.
    assert_eq!(failing.state().stats().requests_total, 3);
    assert_eq!(chains[0], "primary:529>secondary:200");
    assert_eq!(chains[9], "primary:open>secondary:200");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("costfloor_circuit_state{backend=\"primary\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn upstream_death_mid_stream_gives_an_openai_error_event_and_partial_usage() {
    let sim = fast_sim().await;
    let mut reset = step(FaultKind::ResetMidStream, Some(1));
    reset.after_tokens = Some(3);
    sim.state().set_faults(plan(vec![reset]));
    let h = gateway(
        "reset-openai",
        &single("openai_compatible", &sim.base_url()),
    )
    .await;
    let response = h
        .post("/v1/chat/completions", chat_stream("m", "tell me", 20))
        .await;
    assert_eq!(response.status(), 200);
    let id = header(&response, "x-costfloor-request-id").to_string();
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let last = text.trim_end().lines().last().unwrap();
    let error: serde_json::Value =
        serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "{error}"
    );
    let row = h.row(&id).await;
    assert_eq!(row.outcome, Outcome::UpstreamError);
    assert!(row.estimated);
    // Three tokens reached the client before the reset.
    assert_eq!(row.output_tokens, 3);
}

#[tokio::test]
async fn upstream_error_event_mid_stream_reaches_an_anthropic_client() {
    let sim = fast_sim().await;
    let mut fault = step(FaultKind::ErrorEventMidStream, Some(1));
    fault.after_tokens = Some(2);
    sim.state().set_faults(plan(vec![fault]));
    let h = gateway("event-anthropic", &single("anthropic", &sim.base_url())).await;
    let response = h
        .post("/v1/messages", chat_stream("m", "tell me", 20))
        .await;
    let id = header(&response, "x-costfloor-request-id").to_string();
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\""
        ),
        "{text}"
    );
    assert!(!text.contains("message_stop"), "{text}");
    let row = h.row(&id).await;
    assert_eq!(row.outcome, Outcome::UpstreamError);
    assert_eq!(row.error_kind.as_deref(), Some("overloaded_error"));
    assert_eq!(row.output_tokens, 2);
}

#[tokio::test]
async fn upstream_death_mid_stream_is_translated_for_a_cross_format_client() {
    let sim = fast_sim().await;
    let mut reset = step(FaultKind::ResetMidStream, Some(1));
    reset.after_tokens = Some(2);
    sim.state().set_faults(plan(vec![reset]));
    let h = gateway("reset-cross", &single("openai_compatible", &sim.base_url())).await;
    let response = h
        .post("/v1/messages", chat_stream("m", "tell me", 20))
        .await;
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}

#[tokio::test]
async fn a_dead_self_hosted_backend_sends_traffic_to_the_api() {
    let sim = fast_sim().await;
    let config = format!(
        r#"
[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "http://127.0.0.1:{}/v1"
model = "llama"
deployment = "llama-3.3-70b-4xa100"
timeouts = {{ connect_ms = 500 }}

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[route]]
name = "hybrid"
models = ["auto"]
targets = ["llama", "claude"]
"#,
        dead_port(),
        sim.base_url()
    );
    let h = gateway("dead", &config).await;
    let response = h
        .post("/v1/chat/completions", chat("auto", "hello", 3))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "claude");
    let row = h.row(header(&response, "x-costfloor-request-id")).await;
    assert_eq!(row.fallback_chain, "llama:connect>claude:200");
    assert!(!row.self_hosted);
}

#[tokio::test]
async fn a_slow_first_byte_times_out_and_falls_back() {
    let slow = sim_with(SimConfig {
        ttft: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let mut delay = step(FaultKind::SlowFirstByte, None);
    delay.delay_ms = Some(2_000);
    slow.state().set_faults(plan(vec![delay]));
    let fast = fast_sim().await;
    let config = format!(
        r#"
[[backend]]
name = "slow"
type = "anthropic"
base_url = "{}"
model = "m"
timeouts = {{ first_byte_ms = 200 }}

[[backend]]
name = "fast"
type = "anthropic"
base_url = "{}"
model = "m"

[[route]]
name = "r"
models = ["m"]
targets = ["slow", "fast"]
"#,
        slow.base_url(),
        fast.base_url()
    );
    let h = gateway("firstbyte", &config).await;
    let started = Instant::now();
    let response = h.post("/v1/messages", chat("m", "hi", 2)).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1_500));
    let row = h.row(header(&response, "x-costfloor-request-id")).await;
    assert_eq!(row.fallback_chain, "slow:timeout>fast:200");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_and_marks_the_row() {
    let sim = sim_with(SimConfig {
        ttft: Duration::from_millis(1),
        token_delay: Duration::from_millis(100),
        default_output_tokens: 100,
        ..SimConfig::default()
    })
    .await;
    let h = gateway("disconnect", &single("openai_compatible", &sim.base_url())).await;
    let mut response = h
        .post("/v1/chat/completions", chat_stream("m", "long story", 100))
        .await;
    let id = header(&response, "x-costfloor-request-id").to_string();
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    drop(response);
    let row = h.row(&id).await;
    assert_eq!(row.outcome, Outcome::ClientDisconnect);
    assert_eq!(row.http_status, 499);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.state().stats().streams_cancelled < 1 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.state().stats().streams_completed, 0);
}

#[tokio::test]
async fn readiness_fails_when_a_route_has_no_closed_circuit() {
    let failing = fast_sim().await;
    failing
        .state()
        .set_faults(plan(vec![step(FaultKind::ServerError, None)]));
    let config = format!(
        "[circuit]\nfailure_threshold = 2\nopen_ms = 60000\n{}",
        single("anthropic", &failing.base_url())
    );
    let h = gateway("readyz", &config).await;
    let ready = || async {
        h.client
            .get(format!("{}/readyz", h.url))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(ready().await.status(), 200);
    for _ in 0..2 {
        assert_eq!(
            h.post("/v1/messages", chat("m", "hi", 2)).await.status(),
            500
        );
    }
    let response = ready().await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["problems"][0].as_str().unwrap().contains("route `r`"),
        "{body}"
    );
    // With the circuit open the gateway answers at once, without calling the backend.
    let response = h.post("/v1/messages", chat("m", "hi", 2)).await;
    assert_eq!(response.status(), 529);
    assert_eq!(failing.state().stats().requests_total, 2);
}

#[tokio::test]
async fn an_openai_upstream_error_mid_stream_reaches_both_kinds_of_client() {
    let sim = fast_sim().await;
    let mut fault = step(FaultKind::ErrorEventMidStream, Some(2));
    fault.after_tokens = Some(2);
    sim.state().set_faults(plan(vec![fault]));
    let h = gateway(
        "oai-error-event",
        &single("openai_compatible", &sim.base_url()),
    )
    .await;
    let openai = h
        .post("/v1/chat/completions", chat_stream("m", "tell me", 20))
        .await;
    let id = header(&openai, "x-costfloor-request-id").to_string();
    let text = openai.text().await.unwrap();
    let last = text.trim_end().lines().last().unwrap();
    assert!(last.starts_with("data: {\"error\":"), "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(h.row(&id).await.outcome, Outcome::UpstreamError);
    let anthropic = h
        .post("/v1/messages", chat_stream("m", "tell me", 20))
        .await;
    let text = anthropic.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}
