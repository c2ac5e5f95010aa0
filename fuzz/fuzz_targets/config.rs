//! The `aaa` command's TOML configuration parser: never a panic; every refusal names a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(msg) = aaa_cli::__fuzz::parse_config(text)
    {
        assert!(msg.starts_with("fuzz.toml, line "), "{msg}");
    }
});
