//! Helpers shared by the integration tests.

use std::time::Duration;

use serde_json::Value;
use sim::{SimConfig, SimHandle};

/// A config with no delays and 8 output tokens.
pub fn fast() -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        token_delay: Duration::ZERO,
        default_output_tokens: 8,
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> SimHandle {
    sim::start(config).await.expect("sim starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub async fn post_openai(
    h: &SimHandle,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .header("authorization", "Bearer sk-test")
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request sent")
}

pub async fn post_anthropic(
    h: &SimHandle,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/messages", h.base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request sent")
}

/// One server-sent event: its `event:` name (if any) and its `data:`.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("bad JSON {:?}: {e}", self.data))
    }
}

/// Parses an SSE body; every event must end with a blank line.
pub fn parse_sse(body: &str) -> Vec<Sse> {
    assert!(
        body.is_empty() || body.ends_with("\n\n"),
        "unterminated SSE body: {body:?}"
    );
    body.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let mut ev = Sse {
                event: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    ev.event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    ev.data.push_str(d);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            ev
        })
        .collect()
}

/// Reads a body as far as it goes: the bytes received and whether it ended cleanly.
pub async fn read_all(mut resp: reqwest::Response) -> (String, bool) {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            Ok(None) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
        }
    }
}

pub async fn stats(h: &SimHandle) -> sim::SimStats {
    client()
        .get(format!("{}/sim/stats", h.base_url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON")
}

/// Waits until `cond` holds on the stats, or panics after 5 s.
pub async fn wait_stats(h: &SimHandle, cond: impl Fn(&sim::SimStats) -> bool) -> sim::SimStats {
    for _ in 0..250 {
        let s = stats(h).await;
        if cond(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held: {:?}", stats(h).await);
}

/// Words of a text: the simulator's tokens.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}
