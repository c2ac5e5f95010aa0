//! The Redis session value decoder: never a panic on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = aaa_store_redis::__fuzz::decode_value(data);
});
