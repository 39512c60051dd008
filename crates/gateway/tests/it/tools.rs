//! Tool calls whose arguments are not valid JSON: passed on as they came, counted in
//! `costfloor_tool_arguments_invalid_total`, and nothing breaks. No real server sends
//! them on purpose, so a one-route upstream answers a fixed body.

use axum::routing::post;
use axum::Router;

use crate::gateway;

/// An OpenAI-compatible upstream whose only answer is a tool call with the arguments
/// `{"city": "Par` (cut off), whole or streamed.
async fn broken_arguments_upstream() -> String {
    async fn answer(body: String) -> axum::response::Response {
        let stream = body.contains("\"stream\":true");
        let arguments = "{\"city\": \"Par";
        if !stream {
            let body = serde_json::json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
            });
            return axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
        }
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut text = chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
            serde_json::Value::Null,
        );
        text += &chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            serde_json::Value::Null,
        );
        text += &chunk(serde_json::json!({}), serde_json::json!("tool_calls"));
        text += "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":5,\"total_tokens\":25}}\n\ndata: [DONE]\n\n";
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from(text))
            .unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/chat/completions", post(answer));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn counted(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("costfloor_tool_arguments_invalid_total{")
                && l.contains("backend=\"broken\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn invalid_tool_arguments_pass_through_and_are_counted() {
    let url = broken_arguments_upstream().await;
    let h = gateway(
        "invalid-arguments",
        &format!(
            r#"
[[backend]]
name = "broken"
type = "openai_compatible"
base_url = "{url}/v1"
model = "m"

[[route]]
name = "r"
models = ["m"]
targets = ["broken"]
"#
        ),
    )
    .await;
    let request = |stream: bool| {
        serde_json::json!({"model": "m", "max_tokens": 50, "stream": stream,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "weather?"}]})
    };
    let whole = h.post("/v1/messages", request(false)).await;
    assert_eq!(whole.status(), 200);
    let body: serde_json::Value = whole.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    // Not an object: the text as it came, as a JSON string.
    assert_eq!(body["content"][0]["input"], "{\"city\": \"Par");
    assert_eq!(counted(&h.metrics().await), 1);

    let streamed = h.post("/v1/messages", request(true)).await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(
        text.contains("\"partial_json\":\"{\\\"city\\\": \\\"Par\""),
        "{text}"
    );
    assert!(
        text.contains("event: message_stop"),
        "the stream still ends: {text}"
    );
    // The row is written when the stream ends; the counter with it.
    let rows = h.rows(2).await;
    assert!(rows.iter().all(|r| r.outcome == ledger::Outcome::Success));
    assert_eq!(counted(&h.metrics().await), 2);
}
