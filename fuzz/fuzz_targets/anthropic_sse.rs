//! Fuzz target `anthropic_sse`: see `wire::fuzz` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wire::fuzz::stream(wire::pair::BackendProtocol::Anthropic, data);
});
