//! A RADIUS reply, decoded and verified against an outstanding Access-Request: never a panic,
//! and nothing but an intact, correctly signed reply is accepted.
#![no_main]

use aaa_radius::{Reply, Request, Secret};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-shared-secret";

fuzz_target!(|data: &[u8]| {
    let secret = Secret::from(SECRET);
    let mut request = Request::access_request();
    if request.add(1, "admin").is_err()
        || request.user_password(b"pw").is_err()
        || request.add(32, "nas").is_err()
    {
        return;
    }
    let Ok(bytes) = request.encode(42, &[7; 16], &secret) else {
        return;
    };
    for require in [true, false] {
        if let Ok(reply) = Reply::verify(data, &bytes, &secret, require) {
            // Accepted: it must then be a well-formed answer to this very request.
            assert_eq!(reply.identifier(), 42);
            for (_, _) in reply.attributes() {}
        }
    }
});
