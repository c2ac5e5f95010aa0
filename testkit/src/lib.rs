//! Test support for **aaa** (not published).
//!
//! - [`conformance`]: the session-store conformance suite, run on every store through
//!   [`store_conformance!`]; [`stores`]: stores that fail on purpose.
//! - [`redis`]: real `redis-server` processes and Redis Clusters on free loopback ports in
//!   temporary directories, and the store's key layout written out for checks.
//! - [`radius`]: real FreeRADIUS servers, and hostile fake RADIUS peers.
//! - [`observe`]: log capture, to check what is (and is not) logged.
//! - [`closed_port`]: a loopback port with nothing listening.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test support: a panic is a test failure
#![allow(unreachable_pub)]

pub mod conformance;

#[doc(hidden)]
pub use aaa_core as __aaa_core;
pub mod observe;
pub mod radius;
pub mod redis;
pub mod stores;

/// A loopback TCP port with nothing listening on it (bound, learnt, closed): connecting is
/// refused at once.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}
