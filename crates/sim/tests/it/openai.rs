//! `POST /v1/chat/completions`: shapes, streaming and usage exactness.

use serde_json::{json, Value};

use crate::common::*;

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the world"}
        ]
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// 4 + 3 words, 4 + 5 words.
const PROMPT_TOKENS: u64 = 16;

#[tokio::test]
async fn non_streaming_shape_and_exact_usage() {
    let h = start(fast()).await;
    let resp = post_openai(&h, &chat(json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["system_fingerprint"].is_string());
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["message"]["content"].as_str().unwrap();
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 8);
    assert_eq!(words(text), 8);
    assert_eq!(u["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(u["total_tokens"], PROMPT_TOKENS + 8);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);

    // Deterministic: the same request gives the same text.
    let again: Value = post_openai(&h, &chat(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], text);
}

#[tokio::test]
async fn streaming_with_include_usage() {
    let h = start(fast()).await;
    let unary: Value = post_openai(&h, &chat(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let resp = post_openai(
        &h,
        &chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (body, clean) = read_all(resp).await;
    assert!(clean);
    let events = parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Sse::json).collect();
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    for c in rest {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert_eq!(c["usage"], Value::Null);
        assert!(c.as_object().unwrap().contains_key("usage"));
    }
    assert_eq!(rest[0]["choices"][0]["delta"]["role"], "assistant");
    let deltas: Vec<&str> = rest
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let finish = rest.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let u = &usage_chunk["usage"];
    assert_eq!(
        deltas.len() as u64,
        u["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(u["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(
        deltas.concat(),
        unary["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let s = wait_stats(&h, |s| s.streams_completed == 1).await;
    assert_eq!(s.streams_started, 1);
    assert_eq!(s.tokens.output, 16);
}

#[tokio::test]
async fn streaming_without_usage_has_no_usage_key() {
    let h = start(fast()).await;
    let (body, clean) = read_all(post_openai(&h, &chat(json!({"stream": true})), &[]).await).await;
    assert!(clean);
    let events = parse_sse(&body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    for e in &events[..events.len() - 1] {
        let c = e.json();
        assert!(!c.as_object().unwrap().contains_key("usage"), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    // role chunk + 8 tokens + finish chunk
    assert_eq!(events.len(), 1 + 8 + 1 + 1);
}

#[tokio::test]
async fn max_tokens_and_stop() {
    let h = start(fast()).await;
    let v: Value = post_openai(&h, &chat(json!({"max_tokens": 3})), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let v: Value = post_openai(
        &h,
        &chat(json!({"max_completion_tokens": 5, "max_tokens": 2})),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 5);

    let full: Value = post_openai(&h, &chat(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let ws: Vec<&str> = text.split(' ').collect();
    let cut = ws.iter().position(|w| *w == ws[3]).unwrap();
    let v: Value = post_openai(&h, &chat(json!({"stop": [ws[3]]})), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], cut as u64);
    assert_eq!(v["choices"][0]["message"]["content"], ws[..cut].join(" "));
}

#[tokio::test]
async fn long_shared_prefix_reports_cached_tokens() {
    let h = start(fast()).await;
    let system = vec!["lorem"; 1100].join(" ");
    let body = |q: &str| {
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": q}
        ]})
    };
    let a: Value = post_openai(&h, &body("first question"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(a["usage"]["prompt_tokens"], 1104 + 6);
    let b: Value = post_openai(&h, &body("second one"), &[])
        .await
        .json()
        .await
        .unwrap();
    // 1104 prefix tokens: 1024 + 0 * 128.
    assert_eq!(b["usage"]["prompt_tokens_details"]["cached_tokens"], 1024);
    assert_eq!(b["usage"]["prompt_tokens"], 1104 + 6);
    let s = stats(&h).await;
    assert_eq!(s.tokens.cache_read_input, 1024);
    assert_eq!(s.tokens.input, 2 * 1110 - 1024);
}
