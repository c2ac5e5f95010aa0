//! The store conformance suite on `MemoryStore`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::sync::Arc;

use aaa_session::MemoryStore;

testkit::store_conformance!(async { Arc::new(MemoryStore::new()) });
