//! `costfloor serve` as a process: config checks, SIGTERM under load, SIGHUP reload,
//! and secrets that never leak into logs, error bodies or the ledger.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{costfloor, input_error, temp_file};

pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) url: String,
    stderr: std::thread::JoinHandle<String>,
}

pub(crate) fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn serve(config: &Path, envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_costfloor"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .envs(envs.iter().copied())
        .env("COSTFLOOR_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Served { child, url, stderr }
}

pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) fn wait_exit(mut served: Served) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    served.stderr.join().unwrap()
}

fn config_for(sim_url: &str, ledger: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
ledger = "{}"
{extra}

[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "{sim_url}/v1"
model = "llama-sim"
deployment = "seed-llama-3.3-70b-4xa100"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "{sim_url}"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[route]]
name = "auto"
models = ["auto"]
targets = ["llama", "claude"]
"#,
        ledger.display()
    )
}

async fn fast_sim(api_key: Option<&str>) -> sim::SimHandle {
    sim::start(sim::SimConfig {
        ttft: Duration::from_millis(2),
        token_delay: Duration::from_millis(2),
        default_output_tokens: 8,
        api_key: api_key.map(str::to_string),
        ..sim::SimConfig::default()
    })
    .await
    .unwrap()
}

#[test]
fn check_prints_the_routing_table_or_the_error() {
    let good = temp_file(
        "check.toml",
        "[[backend]]\nname = 'a'\ntype = 'openai_compatible'\nbase_url = 'http://127.0.0.1:1/v1'\nmodel = 'x'\n\
         [[route]]\nname = 'r'\nmodels = ['auto']\ntargets = ['a']\n",
    );
    let output = costfloor(&["serve", "--check", "--config", good.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("model=auto") && text.contains("-> a"),
        "{text}"
    );
    let bad = temp_file(
        "check-bad.toml",
        "[[backend]]\nname = 'a'\ntype = 'openai_compatible'\nbase_url = 'ftp://x'\nmodel = 'x'\n",
    );
    let err = input_error(&["serve", "--check", "--config", bad.to_str().unwrap()]);
    assert!(err.contains("base_url = \"ftp://x\""), "{err}");
    let unknown = temp_file(
        "check-unknown.toml",
        "[server]\nlisten = '127.0.0.1:1'\nworkers = 4\n",
    );
    let err = input_error(&["serve", "--check", "--config", unknown.to_str().unwrap()]);
    assert!(
        err.contains("check-unknown.toml:3:1") && err.contains("workers"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_row() {
    let sim = fast_sim(None).await;
    let dir = dir("sigterm");
    let ledger = dir.join("costfloor.db");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        config_for(&sim.base_url(), &ledger, "drain_seconds = 20"),
    )
    .unwrap();
    let served = serve(&config, &[]);
    let url = served.url.clone();
    let answered = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for worker in 0..16u32 {
        let (client, url, answered) = (client.clone(), url.clone(), Arc::clone(&answered));
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                let stream = worker % 2 == 0;
                let path = if worker % 4 < 2 {
                    "/v1/chat/completions"
                } else {
                    "/v1/messages"
                };
                let body = serde_json::json!({
                    "model": "auto", "max_tokens": 8, "stream": stream,
                    "messages": [{"role": "user", "content": "load test"}]
                });
                let Ok(response) = client
                    .post(format!("{url}{path}"))
                    .header("anthropic-version", "2023-06-01")
                    .json(&body)
                    .send()
                    .await
                else {
                    break;
                };
                // Answered means the whole response arrived.
                if response.bytes().await.is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&served.child, "TERM");
    for worker in workers {
        worker.await.unwrap();
    }
    let log = tokio::task::spawn_blocking(move || wait_exit(served))
        .await
        .unwrap();
    let answered = answered.load(Ordering::Relaxed);
    assert!(
        answered > 50,
        "only {answered} requests answered before the signal"
    );
    let reader = ledger::LedgerReader::open(&ledger).unwrap();
    assert_eq!(
        reader.count().unwrap(),
        answered,
        "ledger rows vs answered requests; log:\n{log}"
    );
    assert!(log.contains("0 lost"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let sim = fast_sim(None).await;
    let dir = dir("sighup");
    let ledger = dir.join("costfloor.db");
    let config = dir.join("gateway.toml");
    let original = config_for(&sim.base_url(), &ledger, "");
    std::fs::write(&config, &original).unwrap();
    let served = serve(&config, &[]);
    let client = reqwest::Client::new();
    let ask = |model: &'static str| {
        let (client, url) = (client.clone(), served.url.clone());
        async move {
            client
                .post(format!("{url}/v1/chat/completions"))
                .json(&serde_json::json!({"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ask("fresh").await, 404);
    std::fs::write(
        &config,
        format!(
            "{original}\n[[route]]\nname = 'fresh'\nmodels = ['fresh']\ntargets = ['claude']\n"
        ),
    )
    .unwrap();
    signal(&served.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask("fresh").await != 200 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not load the new route"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&config, "[[backend]]\nname = 'broken'\n").unwrap();
    signal(&served.child, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ask("fresh").await,
        200,
        "a bad config must not replace the running one"
    );
    assert_eq!(ask("auto").await, 200);
    signal(&served.child, "TERM");
    let log = tokio::task::spawn_blocking(move || wait_exit(served))
        .await
        .unwrap();
    assert!(log.contains("SIGHUP: config reloaded"), "{log}");
    assert!(
        log.contains("config reload rejected") && log.contains("missing field"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_errors_or_the_ledger() {
    const UPSTREAM_SECRET: &str = "sk-upstream-7f3a9c2e41";
    const CLIENT_SECRET: &str = "ck-client-5b8d1e6f90";
    const PROMPT: &str = "prompt-text-4e7b19 must stay private";
    // The sim wants a different key, so the upstream rejects the gateway's (401).
    let sim = fast_sim(Some("the-right-upstream-key")).await;
    let dir = dir("secrets");
    let ledger = dir.join("costfloor.db");
    let config = dir.join("gateway.toml");
    let text = config_for(&sim.base_url(), &ledger, "")
        .replace(
            "price = \"claude-haiku-4.5\"",
            "price = \"claude-haiku-4.5\"\napi_key_env = \"COSTFLOOR_TEST_UPSTREAM\"",
        )
        .replace(
            "deployment = \"seed-llama-3.3-70b-4xa100\"",
            "deployment = \"seed-llama-3.3-70b-4xa100\"\napi_key_env = \"COSTFLOOR_TEST_UPSTREAM\"",
        )
        + "\n[[client_key]]\nname = 'team-a'\nsecret_env = 'COSTFLOOR_TEST_CLIENT'\n";
    std::fs::write(&config, text).unwrap();
    let served = serve(
        &config,
        &[
            ("COSTFLOOR_TEST_UPSTREAM", UPSTREAM_SECRET),
            ("COSTFLOOR_TEST_CLIENT", CLIENT_SECRET),
        ],
    );
    let client = reqwest::Client::new();
    let mut bodies = String::new();
    for (auth, stream) in [
        (None, false),
        (Some("wrong-key"), false),
        (Some(CLIENT_SECRET), false),
        (Some(CLIENT_SECRET), true),
    ] {
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let mut request = client
                .post(format!("{}{path}", served.url))
                .header("anthropic-version", "2023-06-01");
            if let Some(key) = auth {
                request = request.bearer_auth(key);
            }
            let body = serde_json::json!({"model": "auto", "max_tokens": 2, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]});
            let response = request.json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            if auth == Some(CLIENT_SECRET) {
                assert_eq!(
                    status, 502,
                    "the upstream refused the gateway's key: {text}"
                );
                assert!(text.contains("credentials"), "{text}");
            } else {
                assert_eq!(status, 401, "{text}");
            }
            bodies.push_str(&text);
        }
    }
    signal(&served.child, "TERM");
    let log = tokio::task::spawn_blocking(move || wait_exit(served))
        .await
        .unwrap();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let stored = String::from_utf8_lossy(&stored);
    for secret in [UPSTREAM_SECRET, CLIENT_SECRET] {
        assert!(!log.contains(secret), "secret in the log");
        assert!(!bodies.contains(secret), "secret in a response body");
        assert!(!stored.contains(secret), "secret in the ledger files");
    }
    // Every failed request is logged once, at warn, with its request id, and neither
    // the log nor a client sees the prompt; clients never see the upstream address.
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    assert_eq!(failures.len(), 8, "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("WARN") && l.contains("request_id=")),
        "{log}"
    );
    assert!(!log.contains(PROMPT), "the prompt in the log");
    let upstream_address = sim.base_url().trim_start_matches("http://").to_string();
    assert!(
        !bodies.contains(&upstream_address),
        "the upstream address in a body: {bodies}"
    );
    let rows = ledger::LedgerReader::open(&ledger)
        .unwrap()
        .rows(100)
        .unwrap();
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .filter(|r| r.client_key.as_deref() == Some("team-a"))
            .count()
            == 4
    );
}
