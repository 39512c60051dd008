//! End-to-end tests of the `costfloor` binary: one test binary, one module per command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalog;
mod eval;
mod from_ledger;
mod keys;
mod litellm;
mod plan;
mod postgres;
mod report;
mod review;
mod search;
mod serve;
mod size;
mod tidy;
mod workload;

use std::process::{Command, Output};

pub fn costfloor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_costfloor"))
        .args(args)
        .output()
        .expect("run costfloor")
}

pub fn costfloor_with_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_costfloor"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run costfloor")
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let output = costfloor(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("valid JSON")
}

/// Runs a command that must fail with exit code 2 and returns its stderr.
pub fn input_error(args: &[&str]) -> String {
    let output = costfloor(args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("costfloor-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
