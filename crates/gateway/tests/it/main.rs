//! End-to-end tests of the gateway in-process, against `sim` backends on real sockets:
//! routing, translation, faults, bad input, spill-over, reload, metrics and the ledger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod faults;
mod http2;
mod limits;
mod replicas;
mod routing;
mod sampling;
mod shadow;
mod tools;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway::config::ConfigFile;
use gateway::server::{start, Gateway, StartOptions};
use ledger::{LedgerReader, LedgerRow};
use sim::{SimConfig, SimHandle};

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "costfloor-gw-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn sim_with(config: SimConfig) -> SimHandle {
    sim::start(config).await.unwrap()
}

/// A fast sim: 1 ms to the first token, 1 ms per token.
pub async fn fast_sim() -> SimHandle {
    sim_with(SimConfig {
        ttft: Duration::from_millis(1),
        token_delay: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await
}

pub struct Harness {
    pub gateway: Gateway,
    pub url: String,
    pub dir: PathBuf,
    pub ledger: ledger::Location,
    pub client: reqwest::Client,
}

/// Starts a gateway from config text; `{dir}` in it is replaced by a fresh temp dir.
pub async fn gateway(name: &str, config: &str) -> Harness {
    let dir = temp_dir(name);
    let text = config.replace("{dir}", dir.to_str().unwrap());
    let path = dir.join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    let mut config_text = text.clone();
    if !config_text.contains("[server]") {
        config_text = format!(
            "[server]\nledger = \"{}/costfloor.db\"\n{config_text}",
            dir.display()
        );
        std::fs::write(&path, &config_text).unwrap();
    }
    let config = ConfigFile::parse("gateway.toml", &config_text)
        .unwrap()
        .validate(&dir, &|name| std::env::var(name).ok())
        .unwrap();
    let ledger = config.ledger.clone();
    let gateway = start(StartOptions {
        config,
        config_path: Some(path),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        handle_signals: false,
    })
    .await
    .unwrap();
    let url = format!("http://{}", gateway.addr);
    Harness {
        gateway,
        url,
        dir,
        ledger,
        client: reqwest::Client::new(),
    }
}

impl Harness {
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The gateway's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the ledger holds `count` rows, then returns them in write order.
    pub async fn rows(&self, count: usize) -> Vec<LedgerRow> {
        wait_rows(&self.ledger, count).await
    }

    pub async fn row(&self, request_id: &str) -> LedgerRow {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reader) = LedgerReader::open(&self.ledger) {
                if let Some(row) = reader
                    .rows(100_000)
                    .unwrap()
                    .into_iter()
                    .find(|r| r.request_id == request_id)
                {
                    return row;
                }
            }
            assert!(Instant::now() < deadline, "no ledger row for {request_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn wait_rows(path: &ledger::Location, count: usize) -> Vec<LedgerRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(reader) = LedgerReader::open(path) {
            let rows = reader.rows(100_000).unwrap();
            if rows.len() >= count {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{} ledger rows, expected {count}",
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints what `rows` spent against a budget of `budget_usd` and the overshoot, and
/// asserts there is none; returns the spend in nano-USD.
pub fn assert_within_budget(
    label: &str,
    rows: &[LedgerRow],
    budget_usd: f64,
    served: usize,
    refused: usize,
) -> i64 {
    let spent_nusd: i64 = rows.iter().map(|r| r.cost_nusd).sum();
    let budget_nusd = (budget_usd * 1e9) as i64;
    println!(
        "{label}, budget {budget_nusd} nano-USD: {served} served, {refused} refused, spent {spent_nusd} nano-USD, overshoot {}",
        (spent_nusd - budget_nusd).max(0)
    );
    assert!(
        spent_nusd <= budget_nusd,
        "spent {spent_nusd} of {budget_nusd}"
    );
    spent_nusd
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

pub fn chat(model: &str, text: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]})
}

pub fn chat_stream(model: &str, text: &str, max_tokens: u32) -> serde_json::Value {
    let mut body = chat(model, text, max_tokens);
    body["stream"] = serde_json::Value::Bool(true);
    body
}

/// A free loopback port with nothing listening on it.
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
