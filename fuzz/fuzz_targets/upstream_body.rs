//! Fuzz target `upstream_body`: see `wire::fuzz` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wire::fuzz::response(data);
});
