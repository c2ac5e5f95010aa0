#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Redis Cluster failover: the master that holds a table is killed; its replica takes over,
//! and the store follows it without a restart — every call in between fails closed (an error,
//! never a wrong answer), and the sessions survive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aaa_core::{AaaError, Identity, Mechanism};
use aaa_session::SessionManager;
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::redis::{RedisCluster, base, unique_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_its_replica() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start_with_replicas(3, 1))
        .await
        .unwrap();
    let prefix = unique_prefix("failover");
    let config = RedisConfig::from_url(&cluster.url())
        .unwrap()
        .with_prefix(&prefix)
        .unwrap();
    let store = Arc::new(RedisStore::connect(config).await.unwrap());
    let manager = SessionManager::builder(store.clone()).build().unwrap();
    let from = "192.0.2.7".parse().unwrap();
    let mut sessions = Vec::new();
    for i in 0..20 {
        let user = manager.new_user(
            Identity::new(format!("op{i}"), true),
            Mechanism::Local,
            from,
        );
        let cookie = user.start_session(from).await.unwrap();
        sessions.push((user, cookie.expose().to_owned()));
    }
    // The table's master, and its replica caught up with it.
    let slot: u16 = cluster
        .cli(&["CLUSTER", "KEYSLOT", &format!("{}due", base(&prefix))])
        .parse()
        .unwrap();
    let master = cluster.master_of(slot).expect("a master serves the slot");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = master.cli(&["INFO", "replication"]);
        let offset = |key: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let master_offset = offset("master_repl_offset:");
        let replica_offset = info
            .lines()
            .find(|l| l.starts_with("slave0:"))
            .and_then(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
            .and_then(|v| v.parse::<u64>().ok());
        if master_offset.is_some() && master_offset == replica_offset {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Kill the master; validate until the replica answers.
    let killed_port = master.port();
    tokio::task::block_in_place(|| master.stop());
    let killed = Instant::now();
    let mut errors = 0;
    let recovered = loop {
        let mut all_live = true;
        for (user, cookie) in &sessions {
            match manager.validate_session(cookie).await {
                Ok(Some(u)) => assert!(Arc::ptr_eq(&u, user), "the same user instance"),
                // Never "no such session" for a live one: a failure is an error.
                Ok(None) => panic!("a live session was reported gone during the failover"),
                Err(AaaError::Store(_)) => {
                    errors += 1;
                    all_live = false;
                }
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        if all_live {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the store did not follow the failover within 20 s ({errors} errors)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new_master = cluster.master_of(slot).expect("the replica took over");
    assert_ne!(new_master.port(), killed_port);
    eprintln!(
        "failover: every session valid again {recovered:?} after the kill ({errors} errors meanwhile)"
    );

    // The table works on the new master: a new session, a clear seen by the validation.
    let user = manager.new_user(Identity::new("late", false), Mechanism::Local, from);
    let cookie = user.start_session(from).await.unwrap();
    assert!(
        manager
            .validate_session(cookie.expose())
            .await
            .unwrap()
            .is_some()
    );
    let id = sessions[0].0.session_id().unwrap();
    manager.clear_session(id).await.unwrap();
    assert!(
        manager
            .validate_session(&sessions[0].1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(manager.get_sessions().await.unwrap().len(), 20);
}
