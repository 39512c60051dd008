//! Bad input: each gets a clear error in the client's own shape, and a ledger row.

use ledger::Outcome;
use sim::{FaultKind, FaultPlan, FaultStep};

use crate::{chat, fast_sim, gateway, header};

fn config(url: &str, extra_server: &str) -> String {
    format!(
        r#"
[server]
ledger = "{{dir}}/costfloor.db"
{extra_server}

[[backend]]
name = "small"
type = "openai_compatible"
base_url = "{url}/v1"
model = "small-model"
max_context = 64

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
max_context = 100

[[route]]
name = "r"
models = ["m"]
targets = ["small", "claude"]
"#
    )
}

#[tokio::test]
async fn malformed_json_is_a_400_in_each_shape() {
    let sim = fast_sim().await;
    let h = gateway("malformed", &config(&sim.base_url(), "")).await;
    let openai = h
        .post_raw("/v1/chat/completions", "{\"model\": \"m\", ")
        .await;
    assert_eq!(openai.status(), 400);
    let body: serde_json::Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON body"),
        "{body}"
    );
    let anthropic = h.post_raw("/v1/messages", "not json").await;
    assert_eq!(anthropic.status(), 400);
    let body: serde_json::Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let rows = h.rows(2).await;
    assert!(rows
        .iter()
        .all(|r| r.outcome == Outcome::ClientError && r.http_status == 400));
    assert_eq!(
        sim.state().stats().requests_total,
        0,
        "bad input never reaches a backend"
    );
}

#[tokio::test]
async fn missing_required_fields_are_named() {
    let sim = fast_sim().await;
    let h = gateway("missing", &config(&sim.base_url(), "")).await;
    for (path, body, field) in [
        ("/v1/chat/completions", r#"{"model":"m"}"#, "messages"),
        (
            "/v1/messages",
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":5}"#,
            "model",
        ),
        (
            "/v1/messages",
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":[]}"#,
            "messages",
        ),
    ] {
        let response = h.post_raw(path, body).await;
        assert_eq!(response.status(), 400, "{path} {body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(field), "{path}: {text} does not name {field}");
    }
}

#[tokio::test]
async fn unknown_model_is_a_404_listing_the_valid_ones() {
    let sim = fast_sim().await;
    let h = gateway("unknown", &config(&sim.base_url(), "")).await;
    let response = h.post("/v1/messages", chat("gpt-9", "x", 5)).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    let message = body["error"]["message"].as_str().unwrap();
    for name in ["gpt-9", "m", "small-model", "claude-haiku-4-5"] {
        assert!(message.contains(name), "{message} lacks {name}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let sim = fast_sim().await;
    let h = gateway(
        "toolarge",
        &config(&sim.base_url(), "max_body_bytes = 1024"),
    )
    .await;
    let big = "word ".repeat(1000);
    let response = h.post("/v1/chat/completions", chat("m", &big, 5)).await;
    assert_eq!(response.status(), 413);
    let response = h.post("/v1/messages", chat("m", &big, 5)).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "request_too_large");
    // Chunked, with no length declared: refused once it passes the limit, in the
    // client's format, with a ledger row.
    let chunks: Vec<Result<String, std::io::Error>> = (0..8)
        .map(|_| Ok(format!("{{\"pad\": \"{}\",", "x".repeat(400))))
        .collect();
    let response = h
        .client
        .post(format!("{}/v1/chat/completions", h.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let id = header(&response, "x-costfloor-request-id").to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes"),
        "{body}"
    );
    assert_eq!(h.row(&id).await.http_status, 413);
}

#[tokio::test]
async fn context_too_long_for_every_backend_is_a_400_saying_why() {
    let sim = fast_sim().await;
    let h = gateway("context", &config(&sim.base_url(), "")).await;
    // ~500 estimated tokens (2,000 characters ÷ 4) against contexts of 64 and 100.
    let long = "abcd".repeat(500);
    let response = h.post("/v1/chat/completions", chat("m", &long, 5)).await;
    assert_eq!(response.status(), 400);
    let message = response.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("context window")
            && message.contains("small (64")
            && message.contains("claude (100"),
        "{message}"
    );
    // A prompt that fits only the larger context skips the smaller backend.
    // ~70 tokens + 5: too many for 64, fine for 100.
    let medium = "abcd".repeat(70);
    let response = h.post("/v1/chat/completions", chat("m", &medium, 5)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "claude");
}

#[tokio::test]
async fn a_non_json_upstream_body_is_a_502() {
    let sim = fast_sim().await;
    sim.state().set_faults(FaultPlan {
        steps: vec![FaultStep::new(FaultKind::Garbage)],
    });
    let h = gateway("garbage", &config(&sim.base_url(), "")).await;
    let response = h.post("/v1/chat/completions", chat("m", "x", 5)).await;
    assert_eq!(response.status(), 502);
    let message = response.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("not a valid"), "{message}");
    let row = h.rows(1).await.remove(0);
    assert_eq!(row.outcome, Outcome::UpstreamError);
    assert_eq!(row.http_status, 502);
    assert_eq!(row.fallback_chain, "small:invalid>claude:invalid");
}

#[tokio::test]
async fn a_non_json_body_falls_back_while_nothing_reached_the_client() {
    let sim = fast_sim().await;
    let mut once = FaultStep::new(FaultKind::Garbage);
    once.count = Some(1);
    sim.state().set_faults(FaultPlan { steps: vec![once] });
    let h = gateway("garbage-once", &config(&sim.base_url(), "")).await;
    let response = h.post("/v1/chat/completions", chat("m", "x", 5)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "claude");
    let row = h.rows(1).await.remove(0);
    assert_eq!(row.fallback_chain, "small:invalid>claude:200");
}

#[tokio::test]
async fn out_of_range_values_are_rejected_before_the_backend() {
    let sim = fast_sim().await;
    let h = gateway("range", &config(&sim.base_url(), "")).await;
    let mut body = chat("m", "x", 5);
    body["temperature"] = serde_json::json!(1.5);
    let response = h.post("/v1/messages", body).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("temperature: 1.5"));
    assert_eq!(sim.state().stats().requests_total, 0);
}

#[tokio::test]
async fn untranslatable_content_is_a_400_naming_it_but_passes_through_same_format() {
    let sim = fast_sim().await;
    let config = format!(
        r#"
[[backend]]
name = "oai"
type = "openai_compatible"
base_url = "{url}/v1"
model = "m-oai"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{url}"
model = "m-claude"

[[route]]
name = "to-claude"
models = ["claude"]
targets = ["claude"]

[[route]]
name = "to-oai"
models = ["oai"]
targets = ["oai"]
"#,
        url = sim.base_url()
    );
    let h = gateway("unsupported", &config).await;
    let audio = |model: &str| {
        serde_json::json!({
            "model": model, "max_tokens": 5,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
            ]}]
        })
    };
    let response = h.post("/v1/chat/completions", audio("claude")).await;
    assert_eq!(response.status(), 400);
    let message = response.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("messages[0].content[1]") && message.contains("input_audio"),
        "{message}"
    );
    // Same format: passed through untouched to the OpenAI-compatible backend.
    let response = h.post("/v1/chat/completions", audio("oai")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "oai");
}

/// The `config` fuzz target's corpus (`fuzz/corpus/config`), replayed through
/// `gateway::config::fuzz_load`: every input loads or is refused, never a panic.
#[test]
fn the_config_fuzz_corpus_loads_or_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = gateway::config::fuzz_load(text);
        }
        replayed += 1;
    }
    assert!(
        replayed >= 3,
        "{}: the corpus holds the example configs",
        dir.display()
    );
}
