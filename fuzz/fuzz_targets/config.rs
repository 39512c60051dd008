//! Fuzz target `config`: the gateway config loader (`gateway::config::fuzz_load`) on
//! arbitrary text: parse, resolve and validate; errors are fine, panics are not.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        gateway::config::fuzz_load(text);
    }
});
