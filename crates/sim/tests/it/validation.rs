//! Requests the real APIs refuse are refused the same way.

use serde_json::{json, Value};

use crate::common::*;

async fn anthropic_error(h: &sim::SimHandle, body: Value) -> (u16, Value) {
    let r = post_anthropic(h, &body, &[]).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn openai_error(h: &sim::SimHandle, body: Value) -> (u16, Value) {
    let r = post_openai(h, &body, &[]).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn anthropic_required_fields() {
    let h = start(fast()).await;
    let user = json!([{"role": "user", "content": "hi"}]);
    for (body, field) in [
        (json!({"messages": user, "max_tokens": 5}), "model"),
        (json!({"model": "m", "max_tokens": 5}), "messages"),
        (json!({"model": "m", "messages": user}), "max_tokens"),
    ] {
        let (status, v) = anthropic_error(&h, body).await;
        assert_eq!(status, 400);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.starts_with(&format!("{field}:")), "{m}");
        assert!(v["request_id"].is_string());
    }
    let (status, v) = anthropic_error(
        &h,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("system"));
    let (status, _) =
        anthropic_error(&h, json!({"model": "m", "max_tokens": 0, "messages": user})).await;
    assert_eq!(status, 400);
    // No fault was used and nothing was generated.
    assert_eq!(stats(&h).await.tokens.output, 0);
}

#[tokio::test]
async fn anthropic_version_header_and_bad_json() {
    let h = start(fast()).await;
    let r = client()
        .post(format!("{}/v1/messages", h.base_url()))
        .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));

    let r = client()
        .post(format!("{}/v1/messages", h.base_url()))
        .header("anthropic-version", "2023-06-01")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn openai_required_fields() {
    let h = start(fast()).await;
    let (status, v) =
        openai_error(&h, json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
    let (status, v) = openai_error(&h, json!({"model": "m"})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages");
    assert_eq!(v["error"]["code"], "missing_required_parameter");
    let (status, v) = openai_error(
        &h,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
               "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "stream_options");
    let (status, v) = openai_error(
        &h,
        json!({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages[0].role");
}

#[tokio::test]
async fn unknown_model_is_404_when_models_are_listed() {
    let h = start(sim::SimConfig {
        models: vec!["known".into()],
        ..fast()
    })
    .await;
    let (status, v) = openai_error(
        &h,
        json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    let (status, v) = anthropic_error(
        &h,
        json!({"model": "other", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["type"], "not_found_error");
    let (status, _) = openai_error(
        &h,
        json!({"model": "known", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let models: Value = client()
        .get(format!("{}/v1/models", h.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "known");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let h = start(sim::SimConfig {
        max_body_bytes: 100,
        ..fast()
    })
    .await;
    let big = "word ".repeat(100);
    let (status, v) = anthropic_error(
        &h,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": big}]}),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["type"], "request_too_large");
}
