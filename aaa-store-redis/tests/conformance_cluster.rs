#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! The store conformance suite on a 3-master Redis Cluster (one per test binary, a fresh prefix
//! per case, so the cases' tables land on different masters).

use std::sync::Arc;

use aaa_core::SessionStore;
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::redis::{RedisCluster, base, unique_prefix};

async fn store() -> Arc<dyn SessionStore> {
    let config = RedisConfig::from_url(&RedisCluster::shared().url())
        .unwrap()
        .with_prefix(&unique_prefix("cluster"))
        .unwrap();
    Arc::new(RedisStore::connect(config).await.unwrap())
}

testkit::store_conformance!(store());

/// The prefixes of several tables spread over the masters: each table lives whole on one of
/// them, and each works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_spread_over_the_masters() {
    use aaa_core::{CreateOutcome, SessionLimits};
    let cluster = RedisCluster::shared();
    let mut masters_used = std::collections::HashSet::new();
    for i in 0..12 {
        let prefix = unique_prefix(&format!("spread{i}"));
        let config = RedisConfig::from_url(&cluster.url())
            .unwrap()
            .with_prefix(&prefix)
            .unwrap();
        let store = RedisStore::connect(config).await.unwrap();
        let now = testkit::conformance::base_time();
        let r = testkit::conformance::record("alice", now, None, None);
        assert_eq!(
            store.create(&r, &SessionLimits::default()).await.unwrap(),
            CreateOutcome::Created
        );
        assert!(store.get(&r.key, now).await.unwrap().is_some());
        // Which node holds `{prefix}due`?
        let slot: u16 = cluster
            .cli(&["CLUSTER", "KEYSLOT", &format!("{}due", base(&prefix))])
            .parse()
            .unwrap();
        let holders: Vec<u16> = cluster
            .nodes()
            .iter()
            .filter(|n| n.cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]) != "0")
            .map(|n| n.port())
            .collect();
        assert_eq!(holders.len(), 1, "one table, one master");
        masters_used.insert(holders[0]);
    }
    assert!(masters_used.len() >= 2, "12 prefixes all on one master");
}
