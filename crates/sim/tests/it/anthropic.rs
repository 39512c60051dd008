//! `POST /v1/messages` and `count_tokens`: shapes, event order, usage and caching.

use serde_json::{json, Value};

use crate::common::*;

fn msg(extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello to the world"}]}]
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

const INPUT_TOKENS: u64 = 16;

#[tokio::test]
async fn non_streaming_shape_and_exact_usage() {
    let h = start(fast()).await;
    let resp = post_anthropic(&h, &msg(json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("request-id"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["content"][0]["type"], "text");
    let text = v["content"][0]["text"].as_str().unwrap();
    let u = &v["usage"];
    assert_eq!(u["output_tokens"], 8);
    assert_eq!(words(text), 8);
    assert_eq!(u["input_tokens"], INPUT_TOKENS);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert_eq!(u["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn same_conversation_same_text_and_input_in_both_formats() {
    let h = start(fast()).await;
    let a: Value = post_anthropic(&h, &msg(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let o: Value = post_openai(
        &h,
        &json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the world"}
        ]}),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        a["content"][0]["text"],
        o["choices"][0]["message"]["content"]
    );
    assert_eq!(a["usage"]["input_tokens"], o["usage"]["prompt_tokens"]);
}

#[tokio::test]
async fn streaming_event_order_and_cumulative_usage() {
    let h = start(fast()).await;
    let unary: Value = post_anthropic(&h, &msg(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let resp = post_anthropic(&h, &msg(json!({"stream": true})), &[]).await;
    assert_eq!(resp.status(), 200);
    let (body, clean) = read_all(resp).await;
    assert!(clean);
    let events = parse_sse(&body);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let n = 8;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", n));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for e in &events {
        assert_eq!(e.json()["type"], e.event.as_deref().unwrap());
    }
    let start = events[0].json();
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["stop_reason"], Value::Null);
    assert_eq!(start["message"]["usage"]["input_tokens"], INPUT_TOKENS);
    let text: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, unary["content"][0]["text"].as_str().unwrap());
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"]["output_tokens"], n as u64);
    assert_eq!(delta["usage"]["input_tokens"], INPUT_TOKENS);
}

#[tokio::test]
async fn max_tokens_and_stop_sequences() {
    let h = start(fast()).await;
    let v: Value = post_anthropic(&h, &msg(json!({"max_tokens": 2})), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 2);

    let full: Value = post_anthropic(&h, &msg(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let text = full["content"][0]["text"].as_str().unwrap().to_string();
    let ws: Vec<&str> = text.split(' ').collect();
    let cut = ws.iter().position(|w| *w == ws[2]).unwrap();
    let v: Value = post_anthropic(&h, &msg(json!({"stop_sequences": [ws[2]]})), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], ws[2]);
    assert_eq!(v["usage"]["output_tokens"], cut as u64);

    let (body, _) = read_all(
        post_anthropic(
            &h,
            &msg(json!({"stream": true, "stop_sequences": [ws[2]]})),
            &[],
        )
        .await,
    )
    .await;
    let events = parse_sse(&body);
    let delta = events
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap()
        .json();
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], ws[2]);
    assert_eq!(delta["usage"]["output_tokens"], cut as u64);
}

#[tokio::test]
async fn cache_control_writes_then_reads() {
    let h = start(fast()).await;
    let system = json!([{"type": "text", "text": "A long and stable system prompt here",
                         "cache_control": {"type": "ephemeral"}}]);
    let body =
        |q: &str| msg(json!({"system": system, "messages": [{"role": "user", "content": q}]}));
    // system: 4 + 7; user: 4 + 2
    let a: Value = post_anthropic(&h, &body("first question"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["usage"]["cache_creation_input_tokens"], 11);
    assert_eq!(a["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(a["usage"]["input_tokens"], 6);
    assert_eq!(
        a["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        11
    );
    let b: Value = post_anthropic(&h, &body("second question"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(b["usage"]["cache_read_input_tokens"], 11);
    assert_eq!(b["usage"]["input_tokens"], 6);

    // Multi-turn: the marker moves to the last message; the stored prefix is read and
    // the rest written, with a 1h TTL.
    let c: Value = post_anthropic(
        &h,
        &msg(json!({"system": system, "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "and then",
                                          "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
        ]})),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(c["usage"]["cache_read_input_tokens"], 11);
    assert_eq!(c["usage"]["cache_creation_input_tokens"], 18);
    assert_eq!(
        c["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
        18
    );
    assert_eq!(c["usage"]["input_tokens"], 0);
    let s = stats(&h).await;
    assert_eq!(s.tokens.cache_creation_input, 11 + 18);
    assert_eq!(s.tokens.cache_read_input, 22);
}

#[tokio::test]
async fn count_tokens_matches_the_total_input() {
    let h = start(fast()).await;
    let v: Value = client()
        .post(format!("{}/v1/messages/count_tokens", h.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-haiku-4-5", "system": "You are terse.",
                      "messages": [{"role": "user", "content": "Say hello to the world"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"input_tokens": INPUT_TOKENS}));
}

#[tokio::test]
async fn api_key_is_checked_in_each_format() {
    let h = start(sim::SimConfig {
        api_key: Some("sk-right".into()),
        ..fast()
    })
    .await;
    let ok = client()
        .post(format!("{}/v1/messages", h.base_url()))
        .header("x-api-key", "sk-right")
        .header("anthropic-version", "2023-06-01")
        .json(&msg(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bearer = client()
        .post(format!("{}/v1/messages", h.base_url()))
        .bearer_auth("sk-right")
        .header("anthropic-version", "2023-06-01")
        .json(&msg(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let bad = post_anthropic(&h, &msg(json!({})), &[]).await;
    assert_eq!(bad.status(), 401);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let bad = post_openai(
        &h,
        &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(bad.status(), 401);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(v["error"]["type"], "invalid_request_error");
}
