//! Tidy: tests that read the repository itself and fail when one of the invariants in
//! ARCHITECTURE.md is broken. The rules live here, so breaking one teaches it.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn crates() -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    crates.sort();
    crates
}

/// The dependency names of a `[dependencies]` section (not dev- or build-dependencies).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut names = Vec::new();
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if in_section && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.trim().to_string());
        }
    }
    names
}

/// The code of a file before its `#[cfg(test)]` module.
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The cost core does no I/O: it depends only on pure crates, and its source names no
/// file, network, process or stdio API. Callers read files and pass text in.
#[test]
fn the_cost_core_does_no_io() {
    let core = root().join("crates/costfloor-core");
    let allowed = ["serde", "toml", "thiserror", "strsim", "serde_json"];
    for dependency in dependencies(&core.join("Cargo.toml")) {
        assert!(
            allowed.contains(&dependency.as_str()),
            "costfloor-core depends on `{dependency}`; only pure crates are allowed ({allowed:?}): \
             do the I/O in the caller and pass values in"
        );
    }
    for file in rust_files(&core.join("src")) {
        let code = non_test_code(&file);
        for api in [
            "std::fs",
            "std::net",
            "std::process",
            "std::io::stdin",
            "std::env::var",
            "println!",
            "eprintln!",
        ] {
            assert!(
                !code.contains(api),
                "{} uses `{api}`: the cost core does no I/O",
                relative(&file)
            );
        }
    }
}

/// Only `ledger` writes SQL: no other crate depends on `rusqlite` or holds SQL.
#[test]
fn only_the_ledger_writes_sql() {
    for krate in crates() {
        if krate.ends_with("ledger") {
            continue;
        }
        let deps = dependencies(&krate.join("Cargo.toml"));
        assert!(
            !deps
                .iter()
                .any(|d| d == "rusqlite" || d == "tokio-postgres" || d == "sqlx"),
            "{} depends on a database driver: SQL belongs in crates/ledger",
            relative(&krate)
        );
        for file in rust_files(&krate.join("src")) {
            let code = non_test_code(&file);
            for statement in ["INSERT INTO", "CREATE TABLE", "SELECT "] {
                assert!(
                    !code.contains(statement),
                    "{} holds SQL (`{statement}`): it belongs in crates/ledger",
                    relative(&file)
                );
            }
        }
    }
}

/// Names only vendor JSON uses: JSON built by hand, the vendors' fields, headers and
/// events.
const VENDOR_NAMES: &[&str] = &[
    "json!",
    "\"choices\"",
    ".choices",
    "content_block",
    "stop_reason",
    "finish_reason",
    "message_start",
    "message_delta",
    "message_stop",
    "stream_options",
    "include_usage",
    "cache_creation",
    "cache_read_input",
    "prompt_tokens",
    "completion_tokens",
    "text_delta",
    "x-api-key",
    "anthropic-version",
    "\"[DONE]\"",
    "serde_json::Value",
];

/// Fails when a non-test source file under `dir` names one of [`VENDOR_NAMES`] other
/// than those in `own` (names the crate uses for its own formats).
fn assert_no_vendor_names(dir: &str, own: &[&str]) {
    for file in rust_files(&root().join(dir)) {
        let code = non_test_code(&file);
        for name in VENDOR_NAMES.iter().filter(|name| !own.contains(name)) {
            assert!(
                !contains_word(&code, name),
                "{} names `{name}`: vendor JSON belongs in crates/wire (wire::pair)",
                relative(&file)
            );
        }
    }
}

/// Only `wire` knows vendor JSON: the gateway builds no JSON by hand and names no
/// vendor field or header; `wire::pair` does that for it.
#[test]
fn the_gateway_names_no_vendor_field() {
    assert_no_vendor_names("crates/gateway/src", &[]);
}

/// `eval` builds its requests through `wire::pair::ClientRequest::from_chat` and reads
/// answers as text: it names no vendor field either. (`choices` is its own scorer's
/// option, and `serde_json::Value` holds a sample's expected answer, its own format.)
#[test]
fn eval_names_no_vendor_field() {
    assert_no_vendor_names(
        "crates/eval/src",
        &["\"choices\"", ".choices", "serde_json::Value"],
    );
}

/// The load generator sends and reads every body through `wire::bench`: it names no
/// vendor field or header either.
#[test]
fn the_load_generator_names_no_vendor_field() {
    assert_no_vendor_names("crates/bench/src", &[]);
}

/// True when `code` holds `name` not as part of a longer identifier (so the Prometheus
/// series `prompt_tokens_total` is not the JSON field `prompt_tokens`).
fn contains_word(code: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        let starts_ident = name.starts_with(ident);
        let ends_ident = name.ends_with(ident);
        !(starts_ident && before.is_some_and(ident) || ends_ident && after.is_some_and(ident))
    })
}

#[test]
fn contains_word_respects_identifier_boundaries() {
    assert!(contains_word("let x = u.prompt_tokens;", "prompt_tokens"));
    assert!(contains_word("\"choices\"", "\"choices\""));
    assert!(!contains_word("s.prompt_tokens_total", "prompt_tokens"));
    assert!(!contains_word("my_stop_reason", "stop_reason"));
    assert!(contains_word("json!({})", "json!"));
}

/// No gateway source file holds more than 700 lines of non-test code: a file that
/// grows past it holds more than one concern.
#[test]
fn gateway_files_stay_small() {
    for file in rust_files(&root().join("crates/gateway/src")) {
        let lines = non_test_code(&file).lines().count();
        assert!(
            lines <= 700,
            "{} has {lines} lines of non-test code; split it by concern (at most 700)",
            relative(&file)
        );
    }
}

/// Every source file starts with a `//!` line saying what it is for.
#[test]
fn every_source_file_has_a_module_doc() {
    for krate in crates() {
        for dir in ["src", "tests"] {
            let dir = krate.join(dir);
            if !dir.exists() {
                continue;
            }
            for file in rust_files(&dir) {
                let text = std::fs::read_to_string(&file).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} does not start with a `//!` module doc saying what it is for",
                    relative(&file)
                );
            }
        }
    }
}

/// Every gateway module doc says what it must not do.
#[test]
fn gateway_modules_state_what_they_must_not_do() {
    for file in rust_files(&root().join("crates/gateway/src")) {
        if file.ends_with("lib.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            doc.contains("must not") || doc.contains("never"),
            "{}: its module doc should say what it owns and what it must not do",
            relative(&file)
        );
    }
}

/// The alert rules, scrape config and dashboard in `deploy/` name only metrics the code
/// exports (a string literal somewhere in a crate's source), so a renamed metric cannot
/// leave an alert that never fires; and the dashboard is valid JSON.
#[test]
fn deploy_files_name_only_exported_metrics() {
    let mut sources = String::new();
    for krate in crates() {
        for file in rust_files(&krate.join("src")) {
            sources.push_str(&std::fs::read_to_string(file).unwrap());
        }
    }
    let deploy = root().join("deploy");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["prometheus", "grafana"] {
        for entry in std::fs::read_dir(deploy.join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    let mut named = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", relative(file)));
        }
        let bytes = text.as_bytes();
        let mut at = 0;
        while let Some(found) = text[at..].find("costfloor_") {
            let start = at + found;
            let end = start
                + text[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(text.len() - start);
            at = end;
            // A metric, not a word that merely starts the same (e.g. a job name).
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                sources.contains(&format!("\"{base}\"")),
                "{} names `{name}`, which no crate exports",
                relative(file)
            );
            named += 1;
        }
    }
    assert!(named >= 15, "only {named} metric names found in deploy/");
}
