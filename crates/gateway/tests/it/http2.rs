//! HTTP/2 to a backend: many streams over few connections, each carrying at most
//! `streams_per_connection`, so none waits behind the server's own limit on concurrent
//! streams (hyper's server, the sim's, allows 200 on a connection).

use std::time::Duration;

use super::*;

/// Streams of 5 tokens, 200 ms apart: each holds its upstream stream about 0.8 s, longer
/// than the 500 ms first-byte timeout below.
async fn slow_sim() -> SimHandle {
    sim_with(sim::SimConfig {
        ttft: Duration::from_millis(10),
        token_delay: Duration::from_millis(200),
        ..sim::SimConfig::default()
    })
    .await
}

/// `name` is the backend's: metrics are process-wide, so each test has its own.
fn config(name: &str, sim_url: &str, streams_per_connection: u32) -> String {
    format!(
        r#"
[retry]
max_attempts = 1

[[backend]]
name = "{name}"
type = "openai_compatible"
base_url = "{sim_url}/v1"
model = "m"
price = "claude-haiku-4.5"

[backend.http]
version = "2"
streams_per_connection = {streams_per_connection}

[backend.timeouts]
first_byte_ms = 500
"#
    )
}

/// Sends `n` streams at once; returns how many ended with `[DONE]` and the statuses of
/// the others.
async fn streams(h: &Harness, n: usize) -> (usize, Vec<u16>) {
    let sends = (0..n).map(|i| async move {
        let response = h
            .client
            .post(format!("{}/v1/chat/completions", h.url))
            .json(&chat_stream("m", &format!("stream {i}"), 5))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, text.contains("data: [DONE]"))
    });
    let results = futures_util::future::join_all(sends).await;
    let done = results.iter().filter(|(s, d)| *s == 200 && *d).count();
    let others = results
        .iter()
        .filter(|(s, d)| !(*s == 200 && *d))
        .map(|(s, _)| *s)
        .collect();
    (done, others)
}

// On tokio's current-thread test runtime the test's own client held no more than 200
// requests in flight at once, straight to the sim as well (curl got all 250 through);
// these run on threads, as a served gateway does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_connections_limit_another_connection_opens_instead_of_waiting() {
    // 250 streams at once, 100 a connection: three connections, all 250 answered.
    let sim = slow_sim().await;
    let h = gateway("h2-pool", &config("pooled", &sim.base_url(), 100)).await;
    let (done, others) = streams(&h, 250).await;
    assert_eq!((done, others), (250, Vec::new()));
    assert_eq!(sim.state().stats().connections_accepted, 3);
    assert!(
        h.metrics()
            .await
            .contains("costfloor_backend_http2_connections{backend=\"pooled\"} 3"),
        "the gauge counts the three connections"
    );
    let rows = h.rows(250).await;
    assert!(rows.iter().all(|r| r.http_status == 200));
    assert!(rows.iter().all(|r| r.output_tokens == 5), "5 tokens each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_for_all_waits_behind_the_servers_limit() {
    // The same load on one connection (its limit set past the server's 200): the
    // streams past 200 wait for a slot longer than the first-byte timeout. This is
    // what the pool above avoids.
    let sim = slow_sim().await;
    let h = gateway("h2-one", &config("single", &sim.base_url(), 1_000)).await;
    let (done, others) = streams(&h, 250).await;
    println!("one connection: {done} answered, {} refused", others.len());
    let rows = h.rows(250).await;
    let timeouts = rows
        .iter()
        .filter(|r| r.http_status == 504 && r.error_kind.as_deref() == Some("timeout_error"))
        .count();
    // One at a time: when the connection is taken down, the client opens another.
    let connections = sim.state().stats().connections_accepted;
    println!("one connection: {timeouts} first-byte timeouts, {connections} connections");
    assert!(done <= 200, "the server takes 200 streams a connection");
    // The streams past the server's limit wait past the first-byte timeout; dropping
    // them may then take the connection down with the streams on it (those end
    // mid-stream, or as 502 if they had not started).
    assert!(timeouts >= 1, "no first-byte timeout");
    assert!(
        others.iter().all(|s| matches!(s, 200 | 502 | 504)),
        "{others:?}"
    );
}

#[tokio::test]
async fn the_gateway_itself_takes_http2_without_tls() {
    // A load balancer that speaks HTTP/2 to its backends (h2c) reaches the gateway.
    let sim = fast_sim().await;
    let h = gateway("h2-in", &config("inbound", &sim.base_url(), 100)).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v1/chat/completions", h.url))
        .json(&chat_stream("m", "hello", 3))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("data: [DONE]"));
}
