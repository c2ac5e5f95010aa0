#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! The store conformance suite on a standalone redis-server (one per test binary, a fresh
//! prefix per case).

use std::sync::Arc;

use aaa_core::SessionStore;
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::redis::{RedisServer, unique_prefix};

async fn store() -> Arc<dyn SessionStore> {
    let config = RedisConfig::from_url(&RedisServer::shared().url())
        .unwrap()
        .with_prefix(&unique_prefix("conf"))
        .unwrap();
    Arc::new(RedisStore::connect(config).await.unwrap())
}

testkit::store_conformance!(store());
