//! The fuzz targets' corpus (`fuzz/corpus/<target>`), replayed through the same
//! entry points (`wire::fuzz`) as a quick smoke: every input the fuzzers kept,
//! crashes found and fixed included, must still run to the end.

use std::path::PathBuf;

use wire::pair::{BackendProtocol, ClientFormat};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        // A running fuzzer may remove a file between the listing and the read.
        .filter_map(|entry| std::fs::read(entry.unwrap().path()).ok())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: the corpus is empty", dir.display());
    inputs
}

#[test]
fn the_fuzz_corpus_replays_without_a_panic() {
    let mut replayed = 0;
    for (target, run) in [
        (
            "openai_request",
            (|d: &[u8]| wire::fuzz::request(ClientFormat::OpenAi, d)) as fn(&[u8]),
        ),
        ("anthropic_request", |d| {
            wire::fuzz::request(ClientFormat::Anthropic, d)
        }),
        ("responses_request", |d| {
            wire::fuzz::request(ClientFormat::Responses, d)
        }),
        ("openai_sse", |d| {
            wire::fuzz::stream(BackendProtocol::OpenAiCompatible, d)
        }),
        ("anthropic_sse", |d| {
            wire::fuzz::stream(BackendProtocol::Anthropic, d)
        }),
        ("upstream_body", wire::fuzz::response),
    ] {
        for input in corpus(target) {
            run(&input);
            replayed += 1;
        }
    }
    assert!(replayed >= 15, "the seeds alone are 15 inputs");
}
