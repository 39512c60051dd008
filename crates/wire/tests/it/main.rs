//! Integration tests of `wire` over recorded and documented vendor bodies and streams
//! (`fixtures/`, each with its source in `fixtures/SOURCES.md` or its comment lines).

// Test helpers panic on setup failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_corpus;
mod pair;
mod props;
