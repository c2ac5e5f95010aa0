//! Test support for **aaa** (not published).
//!
//! - [`conformance`]: the session-store conformance suite, run on every store through
//!   [`store_conformance!`].
//!
//! Later issues add real servers here (redis-server, Redis Cluster, FreeRADIUS) started on free
//! loopback ports in temporary directories, and hostile fake peers.
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
