//! Routing, translation both ways, usage and cost in the ledger, headers, models,
//! spill-over, readiness, metrics and reload.

use std::time::Duration;

use crate::{chat, chat_stream, fast_sim, gateway, header, sim_with, temp_dir};

fn two_backends(sim_url: &str) -> String {
    format!(
        r#"
[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "{sim_url}/v1"
model = "llama-sim"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{sim_url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[route]]
name = "simple"
models = ["auto"]
tasks = ["classify"]
targets = ["llama", "claude"]
reference_api = "claude-haiku-4.5"

[[route]]
name = "complex"
models = ["auto"]
targets = ["claude"]
"#
    )
}

#[tokio::test]
async fn task_label_routes_to_self_hosted_and_prices_the_counterfactual() {
    let sim = fast_sim().await;
    let h = gateway("task", &two_backends(&sim.base_url())).await;
    let response = h
        .client
        .post(format!("{}/v1/chat/completions", h.url))
        .header("x-costfloor-task", "classify")
        .json(&chat("auto", "is this spam", 5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "llama");
    assert_eq!(header(&response, "x-costfloor-route"), "simple");
    let id = header(&response, "x-costfloor-request-id").to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    // The sim counts 4 tokens per message plus its words: 4 + 3 = 7 in, 5 out.
    assert_eq!(body["usage"]["prompt_tokens"], 7);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    let row = h.row(&id).await;
    assert_eq!((row.input_tokens, row.output_tokens), (7, 5));
    assert!(row.self_hosted && !row.estimated);
    assert_eq!(row.cost_nusd, 0);
    // Counterfactual at Haiku $1/$5 per MTok: 7 × 1,000 + 5 × 5,000 nano-USD.
    assert_eq!(row.counterfactual_cost_nusd, 7 * 1_000 + 5 * 5_000);
    assert_eq!(row.task.as_deref(), Some("classify"));

    // Without the label the request goes to the API route, priced exactly.
    let response = h
        .post(
            "/v1/chat/completions",
            chat("auto", "prove this theorem", 5),
        )
        .await;
    assert_eq!(header(&response, "x-costfloor-backend"), "claude");
    assert_eq!(header(&response, "x-costfloor-route"), "complex");
    let id = header(&response, "x-costfloor-request-id").to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["object"], "chat.completion",
        "translated from an Anthropic message"
    );
    let row = h.row(&id).await;
    assert_eq!(row.cost_nusd, 7 * 1_000 + 5 * 5_000);
    assert_eq!(row.counterfactual_cost_nusd, row.cost_nusd);
}

#[tokio::test]
async fn metadata_task_routes_like_the_header() {
    let sim = fast_sim().await;
    let h = gateway("metadata", &two_backends(&sim.base_url())).await;
    let mut body = chat("auto", "label it", 3);
    body["metadata"] = serde_json::json!({"task": "classify"});
    let response = h.post("/v1/messages", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-backend"), "llama");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["type"], "message",
        "translated from an OpenAI completion"
    );
    assert_eq!(body["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn streams_keep_exact_usage_in_every_direction() {
    let sim = fast_sim().await;
    let h = gateway("streams", &two_backends(&sim.base_url())).await;
    for (path, task, backend) in [
        ("/v1/chat/completions", Some("classify"), "llama"),
        ("/v1/chat/completions", None, "claude"),
        ("/v1/messages", Some("classify"), "llama"),
        ("/v1/messages", None, "claude"),
    ] {
        let mut request = h
            .client
            .post(format!("{}{path}", h.url))
            .header("anthropic-version", "2023-06-01");
        if let Some(task) = task {
            request = request.header("x-costfloor-task", task);
        }
        let response = request
            .json(&chat_stream("auto", "one two three", 6))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-costfloor-backend"), backend);
        assert_eq!(header(&response, "content-type"), "text/event-stream");
        let id = header(&response, "x-costfloor-request-id").to_string();
        let text = response.text().await.unwrap();
        if path == "/v1/chat/completions" {
            assert!(
                text.trim_end().ends_with("data: [DONE]"),
                "{path} {backend}: {text}"
            );
            assert!(
                !text.contains("\"choices\":[]"),
                "usage chunk must be stripped when not asked for: {text}"
            );
        } else {
            assert!(
                text.contains("event: message_stop"),
                "{path} {backend}: {text}"
            );
            assert!(text.contains("\"output_tokens\":6"), "{text}");
        }
        let row = h.row(&id).await;
        assert!(row.stream);
        // 4 + 3 words in, 6 out: exact, because both backends report usage on streams.
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.estimated),
            (7, 6, false),
            "{path} {backend}"
        );
        assert!(row.ttft_us.is_some());
    }
}

#[tokio::test]
async fn include_usage_chunk_is_kept_when_asked_for() {
    let sim = fast_sim().await;
    let h = gateway("usagechunk", &two_backends(&sim.base_url())).await;
    for task in ["classify", "other"] {
        let mut body = chat_stream("auto", "a b", 4);
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let response = h
            .client
            .post(format!("{}/v1/chat/completions", h.url))
            .header("x-costfloor-task", task)
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        let usage_chunk = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .find(|c| c["choices"].as_array().is_some_and(|a| a.is_empty()))
            .unwrap_or_else(|| panic!("{task}: no usage chunk in {text}"));
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 4, "{task}");
        assert_eq!(usage_chunk["usage"]["prompt_tokens"], 6, "{task}");
    }
}

#[tokio::test]
async fn spill_over_sends_the_overflow_to_the_api() {
    let slow = sim_with(sim::SimConfig {
        ttft: Duration::from_millis(300),
        token_delay: Duration::from_millis(5),
        ..sim::SimConfig::default()
    })
    .await;
    let config = two_backends(&slow.base_url()).replace(
        "deployment = \"llama-3.3-70b-4xa100\"",
        "deployment = \"llama-3.3-70b-4xa100\"\nmax_in_flight = 1",
    );
    let h = gateway("spill", &config).await;
    let send = || {
        h.client
            .post(format!("{}/v1/chat/completions", h.url))
            .header("x-costfloor-task", "classify")
            .json(&chat("auto", "x", 2))
            .send()
    };
    let (first, second) = tokio::join!(send(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send().await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(header(&first, "x-costfloor-backend"), "llama");
    assert_eq!(header(&second, "x-costfloor-backend"), "claude");
    let id = header(&second, "x-costfloor-request-id").to_string();
    assert_eq!(h.row(&id).await.fallback_chain, "llama:full>claude:200");
}

#[tokio::test]
async fn models_health_readiness_and_metrics() {
    let sim = fast_sim().await;
    let h = gateway("endpoints", &two_backends(&sim.base_url())).await;
    let models: serde_json::Value = h
        .client
        .get(format!("{}/v1/models", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "llama-sim", "claude-haiku-4-5"]);
    assert_eq!(
        h.client
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.client
            .get(format!("{}/readyz", h.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let response = h.post("/v1/chat/completions", chat("auto", "hi", 2)).await;
    assert_eq!(response.status(), 200);
    let metrics = h.metrics().await;
    for series in [
        "costfloor_requests_total{",
        "costfloor_tokens_total{",
        "costfloor_cost_nano_usd_total{",
        "costfloor_request_duration_seconds_bucket{",
        "costfloor_gateway_overhead_seconds_bucket{",
        "costfloor_backend_in_flight{",
        "costfloor_circuit_state{",
        "costfloor_ledger_queue_depth",
        "costfloor_ledger_rows_lost_total 0",
    ] {
        assert!(metrics.contains(series), "missing {series}");
    }
}

#[tokio::test]
async fn reload_swaps_routes_and_rejects_a_bad_config() {
    let sim = fast_sim().await;
    let h = gateway("reload", &two_backends(&sim.base_url())).await;
    let path = h.dir.join("gateway.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        h.post("/v1/chat/completions", chat("fresh", "x", 2))
            .await
            .status(),
        404
    );
    let added = format!(
        "{original}\n[[route]]\nname = \"fresh\"\nmodels = [\"fresh\"]\ntargets = [\"claude\"]\n"
    );
    std::fs::write(&path, added).unwrap();
    h.gateway.state.reload().await.unwrap();
    let response = h.post("/v1/chat/completions", chat("fresh", "x", 2)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-costfloor-route"), "fresh");
    // A config naming an unknown backend is rejected; the running one keeps serving.
    std::fs::write(
        &path,
        original.replace("targets = [\"claude\"]", "targets = [\"nope\"]"),
    )
    .unwrap();
    let error = h.gateway.state.reload().await.unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
    assert_eq!(
        h.post("/v1/chat/completions", chat("fresh", "x", 2))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn admin_reload_needs_the_admin_key() {
    // The key comes from a file: no environment variable is set in this parallel
    // test binary.
    let key_dir = temp_dir("admin-key");
    let key_file = key_dir.join("admin.key");
    std::fs::write(&key_file, "admin-secret-1\n").unwrap();
    let sim = fast_sim().await;
    let config = format!(
        "[server]\nledger = \"{{dir}}/costfloor.db\"\nadmin_key_file = \"{}\"\n{}",
        key_file.display(),
        two_backends(&sim.base_url())
    );
    let h = gateway("admin", &config).await;
    let url = format!("{}/admin/reload", h.url);
    assert_eq!(h.client.post(&url).send().await.unwrap().status(), 401);
    // A wrong key is refused in either header form.
    for (name, value) in [
        ("x-api-key", "admin-secret-2"),
        ("authorization", "Bearer admin-secret"),
    ] {
        let wrong = h
            .client
            .post(&url)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{name}");
    }
    let ok = h
        .client
        .post(&url)
        .bearer_auth("admin-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let path = h.dir.join("gateway.toml");
    std::fs::write(&path, "[[backend]]\nname = 1\n").unwrap();
    let rejected = h
        .client
        .post(&url)
        .header("x-api-key", "admin-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 400);
    assert!(rejected.text().await.unwrap().contains("gateway.toml:2"));
    assert_eq!(
        h.post("/v1/chat/completions", chat("auto", "x", 2))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn shutdown_flushes_every_row() {
    let sim = fast_sim().await;
    let h = gateway("flush", &two_backends(&sim.base_url())).await;
    let mut answered = 0;
    for _ in 0..50 {
        if h.post("/v1/chat/completions", chat("auto", "x", 2))
            .await
            .status()
            == 200
        {
            answered += 1;
        }
    }
    let ledger = h.ledger.clone();
    let report = h.gateway.shutdown().await.unwrap();
    assert_eq!(report.rows_lost, 0);
    let reader = ledger::LedgerReader::open(&ledger).unwrap();
    assert_eq!(reader.count().unwrap(), answered);
}

/// A 1-hour cache write costs 2× input on Haiku 4.5 ($2.00/MTok, against $1.25 for a
/// 5-minute write: Anthropic's pricing page, facts.md), streamed or not. The sim
/// reports the split in `usage.cache_creation` and, on streams, repeats only the total
/// in `message_delta`.
#[tokio::test]
async fn one_hour_cache_writes_are_priced_apart_streamed_or_not() {
    let sim = fast_sim().await;
    let h = gateway("cache-1h", &two_backends(&sim.base_url())).await;
    for (stream, system_text) in [
        (
            false,
            "You are a careful assistant for invoices, with a long shared preamble",
        ),
        (
            true,
            "You are a careful assistant for contracts, with another long preamble",
        ),
    ] {
        let body = serde_json::json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 5,
            "stream": stream,
            "system": [{"type": "text", "text": system_text,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": "total of the last one"}],
        });
        let response = h.post("/v1/messages", body).await;
        assert_eq!(response.status(), 200);
        let id = header(&response, "x-costfloor-request-id").to_string();
        let text = response.text().await.unwrap();
        // The upstream's own split, as the client received it.
        let usage: serde_json::Value = if stream {
            let start = text
                .lines()
                .find(|l| l.starts_with("data:") && l.contains("message_start"))
                .unwrap();
            let event: serde_json::Value =
                serde_json::from_str(start.trim_start_matches("data:").trim()).unwrap();
            event["message"]["usage"].clone()
        } else {
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["usage"].clone()
        };
        let one_hour = usage["cache_creation"]["ephemeral_1h_input_tokens"]
            .as_i64()
            .unwrap();
        assert!(one_hour > 0, "{usage}");
        let row = h.row(&id).await;
        assert_eq!(row.cache_write_1h_tokens, one_hour, "stream {stream}");
        assert_eq!(row.cache_write_tokens, 0, "no 5-minute writes");
        assert!(!row.estimated);
        // Nano-USD per token on Haiku 4.5: input 1,000, 1-hour write 2,000, output 5,000.
        let expected = row.input_tokens * 1_000 + one_hour * 2_000 + row.output_tokens * 5_000;
        assert_eq!(row.cost_nusd, expected, "stream {stream}");
        assert_eq!(row.requested_model.as_deref(), Some("claude-haiku-4-5"));
    }
}

#[tokio::test]
async fn every_row_records_the_replica_that_wrote_it() {
    let sim = fast_sim().await;
    let config = format!(
        "[server]\nledger = \"{{dir}}/costfloor.db\"\nreplica = \"gw-eu-1\"\n{}",
        two_backends(&sim.base_url())
    );
    let h = gateway("replica", &config).await;
    let ok = h
        .post("/v1/chat/completions", chat("auto", "hello there", 5))
        .await;
    assert_eq!(ok.status(), 200);
    let missing = h
        .post("/v1/chat/completions", chat("no-such-model", "x", 5))
        .await;
    assert_eq!(missing.status(), 404);
    let rows = h.rows(2).await;
    assert!(
        rows.iter().all(|r| r.replica.as_deref() == Some("gw-eu-1")),
        "{rows:?}"
    );
}
