//! Throwaway stand-in for `costfloor sim` (removed after checking the Python tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::Write;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(args[0], "sim");
    let mut cfg = sim::SimConfig::default();
    let mut listen = String::from("127.0.0.1:0");
    let mut i = 1;
    while i < args.len() {
        let v = args[i + 1].clone();
        match args[i].as_str() {
            "--listen" => listen = v,
            "--ttft-ms" => cfg.ttft = Duration::from_millis(v.parse().unwrap()),
            "--token-delay-ms" => cfg.token_delay = Duration::from_millis(v.parse().unwrap()),
            "--output-tokens" => cfg.default_output_tokens = v.parse().unwrap(),
            "--config" => cfg = sim::SimConfig::from_toml_str(&std::fs::read_to_string(v).unwrap()).unwrap(),
            f => panic!("unknown flag {f}"),
        }
        i += 2;
    }
    let l = tokio::net::TcpListener::bind(&listen).await.unwrap();
    println!("listening on http://{}", l.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    sim::serve(l, cfg, std::future::pending()).await.unwrap();
}
