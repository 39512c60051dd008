//! The checks before any load: an unreachable target, a server that is not an API,
//! and a refused key each stop the run with a clear error, and no request reaches a
//! generation endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::response::Html;
use bench::{ApiKey, BenchError, Load};
use sim::SimConfig;

fn load() -> Load {
    Load::Concurrencies(vec![1])
}

#[tokio::test]
async fn an_unreachable_target_is_named() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = crate::run(crate::plan(&format!("http://{addr}"), load()))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::Unreachable { .. }), "{err:?}");
    assert!(err.is_input());
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach http://{addr}")) && text.contains("--target"),
        "{text}"
    );
}

/// A web server that answers every path with an HTML page, counting the paths.
async fn html_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&paths);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(uri.path().to_owned());
            Html("<!DOCTYPE html><html><body>It works!</body></html>")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, paths)
}

#[tokio::test]
async fn a_web_page_is_not_an_api() {
    let (url, paths) = html_server().await;
    let err = crate::run(crate::plan(&url, load())).await.unwrap_err();
    assert!(matches!(err, BenchError::NotAnApi { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("does not look like an OpenAI-compatible API")
            && text.contains("GET /v1/models")
            && text.contains("an HTML page"),
        "{text}"
    );
    assert_eq!(*paths.lock().unwrap(), vec!["/v1/models".to_owned()]);
}

#[tokio::test]
async fn a_refused_key_names_the_variable_and_never_the_key() {
    let sim = sim::start(SimConfig {
        api_key: Some("sk-right".to_owned()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The sim requires the key on the generation endpoints only, so a missing key
    // passes GET /v1/models and is caught by the probe; a wrong one too.
    let err = crate::run(crate::plan(&sim.base_url(), load()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BenchError::Auth { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--api-key-env"), "{err}");

    let mut plan = crate::plan(&sim.base_url(), load());
    plan.api_key = Some(ApiKey {
        env_var: "SIM_KEY".to_owned(),
        value: "sk-wrong-value".to_owned(),
    });
    let err = crate::run(plan).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("$SIM_KEY") && !text.contains("sk-wrong-value"),
        "{text}"
    );
    // Only the probes reached the generation endpoint: one each, no load.
    let stats = sim.state().stats();
    assert_eq!(stats.by_endpoint.get("/v1/chat/completions"), Some(&2));
    assert_eq!(stats.streams_started, 0);
}

/// A server that refuses every request without the right key with 401, as vLLM's
/// `--api-key` does (on `/v1/models` too).
async fn locked_server() -> (String, Arc<AtomicU64>) {
    let generation = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&generation);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let counted = Arc::clone(&counted);
        async move {
            if uri.path() != "/v1/models" {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            (
                axum::http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "Unauthorized"})),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, generation)
}

#[tokio::test]
async fn a_401_on_the_model_list_stops_before_any_generation() {
    let (url, generation) = locked_server().await;
    let mut plan = crate::plan(&url, load());
    plan.api_key = Some(ApiKey {
        env_var: "VLLM_KEY".to_owned(),
        value: "sk-nope".to_owned(),
    });
    let err = crate::run(plan).await.unwrap_err();
    assert!(
        matches!(err, BenchError::Auth { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("$VLLM_KEY") && !text.contains("sk-nope"),
        "{text}"
    );
    assert_eq!(generation.load(Ordering::Relaxed), 0);
}

/// A server that is busy when the run starts: the probes wait and try again (after
/// its `retry-after`), and the load runs. The sim refuses the first three requests
/// with 429 and cuts the stream of the next one; five attempts each get past that.
#[tokio::test]
async fn transient_refusals_before_the_load_are_waited_out() {
    let mut rate_limit = sim::FaultStep::new(sim::FaultKind::RateLimit);
    rate_limit.count = Some(3);
    rate_limit.retry_after_s = Some(0);
    let mut reset = sim::FaultStep::new(sim::FaultKind::ResetMidStream);
    reset.count = Some(1);
    let handle = sim::start(SimConfig {
        ttft: std::time::Duration::from_millis(1),
        token_delay: std::time::Duration::from_millis(1),
        faults: sim::FaultPlan {
            steps: vec![rate_limit, reset],
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let run = crate::run(crate::plan(&handle.base_url(), load()))
        .await
        .unwrap();
    assert!(
        run.measurement.levels[0].completed > 0,
        "{:?}",
        run.measurement.levels[0]
    );
}
