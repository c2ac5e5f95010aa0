#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! `rediss://`: sessions over TLS to a redis-server whose certificate a private CA signed
//! (`cargo test -p aaa-store-redis --features tls`).
#![cfg(feature = "tls")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use aaa_core::{Identity, Mechanism, StoreErrorKind};
use aaa_session::SessionManager;
use aaa_store_redis::{RedisConfig, RedisStore, RedisStoreError};
use testkit::redis::{RedisOptions, RedisServer, unique_prefix};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 44));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_tls_with_a_private_ca() {
    let server = RedisServer::start_with(RedisOptions::tls());
    let url = server.tls_url().unwrap();
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .with_prefix(&unique_prefix("tls"))
        .unwrap()
        .with_tls_root_ca(server.tls_ca_pem().unwrap());
    assert!(format!("{config:?}").contains("bytes of PEM"));
    let store = Arc::new(RedisStore::connect(config).await.unwrap());
    store.ping().await.unwrap();
    let manager = SessionManager::builder(store).build().unwrap();
    let user = manager.new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let again = manager
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&user, &again));
    assert_eq!(manager.get_sessions().await.unwrap().len(), 1);
    user.end_session().await.unwrap();
    assert!(
        manager
            .validate_session(cookie.expose())
            .await
            .unwrap()
            .is_none()
    );

    // Without the private CA (the system's roots only), the server is not trusted.
    let e = RedisStore::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RedisStoreError::Connect { .. }), "{e:?}");
    assert_ne!(e.kind(), StoreErrorKind::Corrupt);
}
