//! The local account file parser: never a panic on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aaa_local::__fuzz::parse_account_file(data);
});
