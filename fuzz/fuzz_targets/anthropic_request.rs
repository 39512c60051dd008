//! Fuzz target `anthropic_request`: see `wire::fuzz` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wire::fuzz::request(wire::pair::ClientFormat::Anthropic, data);
});
