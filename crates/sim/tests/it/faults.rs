//! Every fault kind, from the header, the config and `POST /sim/faults`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim::{FaultKind, FaultPlan, FaultStep, SimConfig};

use crate::common::*;

fn openai_body(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream,
           "messages": [{"role": "user", "content": "tell me something"}]})
}

fn anthropic_body(stream: bool) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": stream,
           "messages": [{"role": "user", "content": "tell me something"}]})
}

#[tokio::test]
async fn error_statuses_in_both_formats() {
    let h = start(fast()).await;
    for (fault, a_status, a_type, o_status, o_type) in [
        (
            "rate_limit;retry_after_s=7",
            429,
            "rate_limit_error",
            429,
            "requests",
        ),
        ("overloaded", 529, "overloaded_error", 503, "server_error"),
        ("server_error", 500, "api_error", 500, "server_error"),
    ] {
        let r = post_anthropic(&h, &anthropic_body(false), &[("x-sim-fault", fault)]).await;
        assert_eq!(r.status().as_u16(), a_status, "{fault}");
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], a_type);
        assert!(v["error"]["message"].is_string());
        if fault.starts_with("rate_limit") {
            assert_eq!(retry.as_deref(), Some("7"));
        }

        let r = post_openai(&h, &openai_body(true), &[("x-sim-fault", fault)]).await;
        assert_eq!(r.status().as_u16(), o_status, "{fault}");
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], o_type);
        if fault.starts_with("rate_limit") {
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
            assert_eq!(retry.as_deref(), Some("7"));
        }
    }
    let s = stats(&h).await;
    assert_eq!(s.faults_injected["rate_limit"], 2);
    assert_eq!(s.faults_injected["overloaded"], 2);
    assert_eq!(s.faults_injected["server_error"], 2);
    assert_eq!(s.tokens.output, 0);
}

#[tokio::test]
async fn garbage_is_a_200_that_is_not_json() {
    let h = start(fast()).await;
    let r = post_openai(&h, &openai_body(false), &[("x-sim-fault", "garbage")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let r = post_anthropic(&h, &anthropic_body(true), &[("x-sim-fault", "garbage")]).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
}

#[tokio::test]
async fn slow_first_byte_delays_the_headers() {
    let h = start(fast()).await;
    let t = Instant::now();
    let r = post_anthropic(
        &h,
        &anthropic_body(true),
        &[("x-sim-fault", "slow_first_byte;delay_ms=300")],
    )
    .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status(), 200);
    let (body, clean) = read_all(r).await;
    assert!(clean);
    assert!(body.contains("event: message_stop"));
}

#[tokio::test]
async fn reset_mid_stream_breaks_the_connection_after_n_tokens() {
    let h = start(fast()).await;
    let r = post_anthropic(
        &h,
        &anthropic_body(true),
        &[("x-sim-fault", "reset_mid_stream;after_tokens=3")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (body, clean) = read_all(r).await;
    assert!(!clean, "the body must end in an error");
    assert_eq!(body.matches("event: content_block_delta").count(), 3);
    assert!(!body.contains("message_stop"));
    assert!(!body.contains("message_delta"));

    let r = post_openai(
        &h,
        &openai_body(true),
        &[("x-sim-fault", "reset_mid_stream;after_tokens=2")],
    )
    .await;
    let (body, clean) = read_all(r).await;
    assert!(!clean);
    assert!(!body.contains("[DONE]"));
    // role chunk + 2 tokens
    assert_eq!(body.matches("data: ").count(), 3);

    // Non-streamed: a 200 whose body is cut.
    let r = post_openai(
        &h,
        &openai_body(false),
        &[("x-sim-fault", "reset_mid_stream")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, clean) = read_all(r).await;
    assert!(!clean);

    let s = wait_stats(&h, |s| s.faults_injected["reset_mid_stream"] == 3).await;
    assert_eq!(s.streams_faulted, 2);
    assert_eq!(s.streams_cancelled, 0);
    assert_eq!(s.streams_completed, 0);
}

#[tokio::test]
async fn error_event_mid_stream() {
    let h = start(fast()).await;
    let r = post_anthropic(
        &h,
        &anthropic_body(true),
        &[("x-sim-fault", "error_event_mid_stream;after_tokens=2")],
    )
    .await;
    let (body, clean) = read_all(r).await;
    assert!(clean);
    let events = parse_sse(&body);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(
        last.json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.as_deref() == Some("content_block_delta"))
            .count(),
        2
    );
    assert!(!events
        .iter()
        .any(|e| e.event.as_deref() == Some("message_stop")));

    let r = post_openai(
        &h,
        &openai_body(true),
        &[("x-sim-fault", "error_event_mid_stream;after_tokens=1")],
    )
    .await;
    let (body, _) = read_all(r).await;
    let events = parse_sse(&body);
    assert!(events.last().unwrap().json()["error"]["message"].is_string());
    assert!(!body.contains("[DONE]"));

    // Non-streamed requests get an overloaded error instead.
    let r = post_anthropic(
        &h,
        &anthropic_body(false),
        &[("x-sim-fault", "error_event_mid_stream")],
    )
    .await;
    assert_eq!(r.status(), 529);
    let s = wait_stats(&h, |s| s.faults_injected["error_event_mid_stream"] == 3).await;
    assert_eq!(s.streams_faulted, 2);
}

#[tokio::test]
async fn plan_from_config_counts_down() {
    let mut step = FaultStep::new(FaultKind::RateLimit);
    step.count = Some(2);
    let h = start(SimConfig {
        faults: FaultPlan { steps: vec![step] },
        ..fast()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post_openai(&h, &openai_body(false), &[])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [429, 429, 200]);
    let plan: Value = client()
        .get(format!("{}/sim/faults", h.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan, json!([{"kind": "rate_limit", "count": 0}]));
}

#[tokio::test]
async fn plan_replaced_at_run_time() {
    let h = start(fast()).await;
    let set = |plan: Value| {
        let url = format!("{}/sim/faults", h.base_url());
        async move { client().post(url).json(&plan).send().await.unwrap() }
    };
    let r = set(
        json!([{"kind": "server_error", "count": 1}, {"kind": "overloaded", "probability": 0.0}]),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        post_anthropic(&h, &anthropic_body(false), &[])
            .await
            .status(),
        500
    );
    assert_eq!(
        post_anthropic(&h, &anthropic_body(false), &[])
            .await
            .status(),
        200
    );

    // The header wins over the plan and leaves it alone.
    set(json!([{"kind": "overloaded", "count": 1}])).await;
    assert_eq!(
        post_anthropic(&h, &anthropic_body(false), &[("x-sim-fault", "garbage")])
            .await
            .status(),
        200
    );
    assert_eq!(
        post_anthropic(&h, &anthropic_body(false), &[])
            .await
            .status(),
        529
    );

    // Invalid requests leave the plan alone.
    set(json!([{"kind": "rate_limit", "count": 1}])).await;
    let bad = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(post_anthropic(&h, &bad, &[]).await.status(), 400);
    assert_eq!(
        post_anthropic(&h, &anthropic_body(false), &[])
            .await
            .status(),
        429
    );

    assert_eq!(
        set(json!([{"kind": "rate_limit", "probability": 3.0}]))
            .await
            .status(),
        400
    );
    assert_eq!(set(json!([{"kind": "bogus"}])).await.status(), 400);
    assert_eq!(
        set(json!([{"kind": "garbage", "colour": "red"}]))
            .await
            .status(),
        400
    );
    let r = post_openai(&h, &openai_body(false), &[("x-sim-fault", "meteor")]).await;
    assert_eq!(r.status(), 400);
}
