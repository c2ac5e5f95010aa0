//! The store conformance suite on `MemoryStore`.

use std::sync::Arc;

use aaa_session::MemoryStore;

testkit::store_conformance!(async { Arc::new(MemoryStore::new()) });
