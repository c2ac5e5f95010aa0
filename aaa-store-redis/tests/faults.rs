#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Faults: Redis killed under load and restarted, frozen, closing idle connections, refusing
//! or swallowing the first connection, and corrupt values. Each test has its own server.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aaa_core::{
    AaaError, ExosUser, Identity, Mechanism, SessionCookie, SessionStore, StoreErrorKind,
};
use aaa_session::SessionManager;
use aaa_store_redis::{RedisConfig, RedisStore, RedisStoreError};
use testkit::redis::{RedisOptions, RedisServer, session_bucket, unique_prefix};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::from_url(url)
        .unwrap()
        .with_prefix(prefix)
        .unwrap()
}

/// The longest any call may take: a reconnection plus an answer, and a margin for a loaded
/// 2-core machine. A bound, not a benchmark.
fn bound(c: &RedisConfig) -> Duration {
    c.operation_timeout() + Duration::from_millis(500)
}

async fn start_sessions(manager: &SessionManager, n: usize) -> Vec<(Arc<ExosUser>, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let user = manager.new_user(
            Identity::new(format!("user{i}"), i % 2 == 0),
            Mechanism::Local,
            FROM,
        );
        let cookie = user.start_session(FROM).await.unwrap();
        out.push((user, cookie.expose().to_owned()));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Live,
    Gone,
    Store(StoreErrorKind),
}

fn outcome(r: &Result<Option<Arc<ExosUser>>, AaaError>) -> Outcome {
    match r {
        Ok(Some(_)) => Outcome::Live,
        Ok(None) => Outcome::Gone,
        Err(AaaError::Store(e)) => Outcome::Store(e.kind()),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

struct Call {
    start: Instant,
    took: Duration,
    outcome: Outcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_then_restarted() {
    let server = Arc::new(RedisServer::start_with(RedisOptions::persistent()));
    let cfg = config(&server.url(), &unique_prefix("kill"));
    let limit = bound(&cfg);
    let store = Arc::new(RedisStore::connect(cfg).await.unwrap());
    let manager = SessionManager::builder(store).build().unwrap();
    let sessions = Arc::new(start_sessions(&manager, 20).await);

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let mut load = Vec::new();
    for t in 0..8 {
        let (manager, sessions, stop, calls) = (
            manager.clone(),
            sessions.clone(),
            stop.clone(),
            calls.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::SeqCst) {
                let (user, cookie) = &sessions[i % sessions.len()];
                let start = Instant::now();
                let r = manager.validate_session(cookie).await;
                let took = start.elapsed();
                if let Ok(Some(u)) = &r {
                    assert!(Arc::ptr_eq(u, user), "the same user instance");
                }
                calls.lock().unwrap().push(Call {
                    start,
                    took,
                    outcome: outcome(&r),
                });
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = server.clone();
    let restarting = Instant::now();
    tokio::task::spawn_blocking(move || s.restart())
        .await
        .unwrap();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    let slowest = calls.iter().map(|c| c.took).max().unwrap();
    assert!(
        slowest <= limit,
        "a call took {slowest:?} (bound {limit:?})"
    );

    // Before the kill: live.
    let before: Vec<&Call> = calls
        .iter()
        .filter(|c| c.start + c.took < killed - Duration::from_millis(50) && c.start < killed)
        .collect();
    assert!(!before.is_empty());
    // The first calls before the kill all succeed.
    assert!(before.iter().take(50).all(|c| c.outcome == Outcome::Live));
    // While down: every call fails with a store error, never a user.
    let down: Vec<&Call> = calls
        .iter()
        .filter(|c| c.start >= killed && c.start + c.took < restarting)
        .collect();
    assert!(down.len() >= 8, "only {} calls while down", down.len());
    for c in &down {
        assert!(
            matches!(
                c.outcome,
                Outcome::Store(StoreErrorKind::Unreachable | StoreErrorKind::Timeout)
            ),
            "while Redis was down a call answered {:?}",
            c.outcome
        );
    }
    // Back: within 2 s every call succeeds again (the sessions survived: appendonly).
    let first_ok = calls
        .iter()
        .filter(|c| c.start >= restarted && c.outcome == Outcome::Live)
        .map(|c| c.start + c.took)
        .min()
        .expect("a call succeeded after the restart");
    assert!(
        first_ok - restarted <= Duration::from_secs(2),
        "first success {:?} after the restart",
        first_ok - restarted
    );
    let after: Vec<&Call> = calls
        .iter()
        .filter(|c| c.start >= restarted + Duration::from_secs(2))
        .collect();
    assert!(
        after.len() >= 20,
        "only {} calls after recovery",
        after.len()
    );
    for c in &after {
        assert_eq!(c.outcome, Outcome::Live, "2 s after the restart");
    }
    // Starting and ending sessions work again too.
    let more = start_sessions(&manager, 3).await;
    for (user, _) in &more {
        user.end_session().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_recovers() {
    let server = Arc::new(RedisServer::start());
    let cfg = config(&server.url(), &unique_prefix("freeze"))
        .with_response_timeout(Duration::from_millis(300));
    let limit = bound(&cfg);
    let store = Arc::new(RedisStore::connect(cfg).await.unwrap());
    let manager = SessionManager::builder(store.clone()).build().unwrap();
    let sessions = start_sessions(&manager, 2).await;
    let cookie = sessions[0].1.clone();

    server.pause();
    for _ in 0..3 {
        let start = Instant::now();
        let r = manager.validate_session(&cookie).await;
        let took = start.elapsed();
        assert!(took <= limit, "took {took:?}");
        assert_eq!(
            outcome(&r),
            Outcome::Store(StoreErrorKind::Timeout),
            "{r:?}"
        );
    }
    // Other operations too.
    let start = Instant::now();
    let e = manager.get_sessions().await.unwrap_err();
    assert!(start.elapsed() <= limit);
    assert!(e.is_store());
    server.resume();

    let resumed = Instant::now();
    loop {
        match manager.validate_session(&cookie).await {
            Ok(Some(u)) => {
                assert!(Arc::ptr_eq(&u, &sessions[0].0));
                break;
            }
            other => {
                assert!(
                    resumed.elapsed() < Duration::from_secs(2),
                    "not back within 2 s: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(manager.get_sessions().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_closed_by_the_server_are_replaced() {
    let server = RedisServer::start();
    let store = Arc::new(
        RedisStore::connect(config(&server.url(), &unique_prefix("idle")))
            .await
            .unwrap(),
    );
    let manager = SessionManager::builder(store.clone()).build().unwrap();
    let sessions = start_sessions(&manager, 1).await;
    // One multiplexed connection for everything so far (the other client is redis-cli itself;
    // the reading connections of validations open at the first validations).
    let clients = server.info_field("clients", "connected_clients").unwrap();
    assert_eq!(clients, "2");

    server.cli(&["CONFIG", "SET", "timeout", "1"]);
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let u = manager
            .validate_session(&sessions[0].1)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert!(Arc::ptr_eq(&u.unwrap(), &sessions[0].0));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        start_sessions(&manager, 1).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        store.ping().await.unwrap();
    }
}

/// Where a session's value is: its bucket (a hash) and its field in it.
fn session_key(prefix: &str, cookie: &str) -> (Vec<u8>, Vec<u8>) {
    let key = SessionCookie::parse(cookie).unwrap().hash();
    (session_bucket(prefix, &key), key.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_values_are_refused() {
    let server = RedisServer::start();
    let prefix = unique_prefix("corrupt");
    let store = Arc::new(
        RedisStore::connect(config(&server.url(), &prefix))
            .await
            .unwrap(),
    );
    let manager = SessionManager::builder(store.clone()).build().unwrap();
    let sessions = start_sessions(&manager, 4).await;
    let now = std::time::SystemTime::now();

    // Garbage under session 0's key.
    let (b0, f0) = session_key(&prefix, &sessions[0].1);
    server.cli_bytes(&[b"HSET", &b0, &f0, b"garbage"]);
    // A value of an unknown version under session 1's key.
    let (b1, f1) = session_key(&prefix, &sessions[1].1);
    let (b2, f2) = session_key(&prefix, &sessions[2].1);
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut v1: Vec<u8> = redis::cmd("HGET")
        .arg(&b1)
        .arg(&f1)
        .query_async(&mut con)
        .await
        .unwrap();
    v1[0] = 3;
    let _: i64 = redis::cmd("HSET")
        .arg(&b1)
        .arg(&f1)
        .arg(&v1)
        .query_async(&mut con)
        .await
        .unwrap();
    // A truncated value under session 2's key.
    let v2 = server.cli_bytes(&[b"HGET", &b2, &f2]);
    assert!(v2.len() > 20);
    let _: i64 = redis::cmd("HSET")
        .arg(&b2)
        .arg(&f2)
        .arg(b"\x02\x00\x00".as_slice())
        .query_async(&mut con)
        .await
        .unwrap();

    // A fresh manager (no cached users) and the one that started them (cached users) both
    // refuse the three sessions with a Corrupt store error: never a user.
    let fresh = SessionManager::builder(store.clone()).build().unwrap();
    for m in [&manager, &fresh] {
        for (_, cookie) in &sessions[..3] {
            let r = m.validate_session(cookie).await;
            match r {
                Err(AaaError::Store(e)) => assert_eq!(e.kind(), StoreErrorKind::Corrupt),
                other => panic!("a corrupt session gave {other:?}"),
            }
        }
        // The intact one still works.
        assert!(m.validate_session(&sessions[3].1).await.unwrap().is_some());
    }
    // The store reports it the same way, with the reason.
    for (cookie, want) in [
        (&sessions[0].1, "unknown encoding version 103"),
        (&sessions[1].1, "unknown encoding version 3"),
        (&sessions[2].1, "truncated"),
    ] {
        let key = SessionCookie::parse(cookie).unwrap().hash();
        let e = store.get(&key, now).await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        let src = std::error::Error::source(&e).unwrap();
        let src = src.downcast_ref::<RedisStoreError>().unwrap();
        assert!(src.to_string().contains(want), "{src}");
    }
    // Listing skips what cannot be decoded rather than hiding every session.
    let listed = manager.get_sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    // Clearing a corrupt session removes it, and says the value was corrupt.
    let id1 = sessions[1].0.session_id().unwrap();
    match manager.clear_session(id1).await {
        Err(AaaError::Store(e)) => assert_eq!(e.kind(), StoreErrorKind::Corrupt),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.cli_bytes(&[b"HEXISTS", &b1, &f1]), b"0\n".to_vec());
    // Ending one removes it too.
    let id2 = sessions[2].0.session_id().unwrap();
    let e = sessions[2].0.end_session().await.unwrap_err();
    assert!(e.is_store());
    assert_eq!(server.cli_bytes(&[b"HEXISTS", &b2, &f2]), b"0\n".to_vec());
    // Their id index entries went with them (the store's ids keep theirs in the session's
    // bucket, where a removal finds it even without a readable value).
    for (bucket, id) in [(&b1, id1), (&b2, id2)] {
        let field = id.as_u64().to_be_bytes();
        assert_eq!(
            server.cli_bytes(&[b"HEXISTS", bucket, &field]),
            b"0\n".to_vec()
        );
    }
}

/// What a loaded 2-core machine may add to a timeout before the call returns.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connection_fails_fast_and_typed() {
    // Nothing listens: refused at once.
    let port = testkit::closed_port();
    let cfg = config(&format!("redis://:hunter2@127.0.0.1:{port}/0"), "aaa");
    let start = Instant::now();
    let e = RedisStore::connect(cfg.clone()).await.unwrap_err();
    assert!(start.elapsed() <= cfg.connect_timeout() + SLACK);
    assert_eq!(e.kind(), StoreErrorKind::Unreachable, "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));

    // A socket that accepts connections but never answers: the connect timeout.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = config(&format!("redis://127.0.0.1:{port}/0"), "aaa")
        .with_connect_timeout(Duration::from_millis(400));
    let start = Instant::now();
    let e = RedisStore::connect(cfg.clone()).await.unwrap_err();
    let took = start.elapsed();
    assert!(took <= Duration::from_millis(400) + SLACK, "took {took:?}");
    assert_eq!(e.kind(), StoreErrorKind::Timeout, "{e:?}");
    drop(silent);

    // A bad setting is refused before any connection.
    let e = RedisStore::connect(cfg.with_grace(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisStoreError::ZeroDuration { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_typed_connect_error() {
    let server = RedisServer::start();
    server.cli(&["CONFIG", "SET", "requirepass", "right-one"]);
    let url = format!("redis://:wrong-one@127.0.0.1:{}/0", server.port());
    let e = RedisStore::connect(config(&url, "aaa")).await.unwrap_err();
    assert!(matches!(e, RedisStoreError::Connect { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("wrong-one"));
    let url = format!("redis://:right-one@127.0.0.1:{}/0", server.port());
    let store = RedisStore::connect(config(&url, "aaa")).await.unwrap();
    store.ping().await.unwrap();
    assert!(!format!("{store:?}").contains("right-one"));
}
