#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Calls whose answer is lost. A create is sent again; a session removed between the two
//! sends stays removed (revocation is final). A remove, remove by id or claim sent again
//! answers what the first send removed. A create that fails (timed out, or never arrived) is
//! undone: no session is left behind, and the create arriving late makes nothing. A proxy
//! between the store and its own redis-server holds back answers, or cuts requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aaa_core::{CreateOutcome, SessionLimits, SessionStore};
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::conformance::{base_time, record};
use testkit::redis::{RedisCluster, RedisServer, removal_mark, unique_prefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Where the proxy stands: armed with the bytes of a request, it holds back the answer that
/// follows the first request that holds them, tells `hit`, waits for `go`, and closes that
/// connection without the answer. Every other byte goes through. (The answer held is the
/// first the server sends after that request: the tests make one call at a time, so it is
/// that request's.) With `cut` > 0 it instead closes the connection of each of the next `cut`
/// requests that hold the bytes, before they reach the server.
struct Trap {
    needle: Vec<u8>,
    hit: Option<oneshot::Sender<()>>,
    go: Option<oneshot::Receiver<()>>,
    cut: u32,
}

async fn proxy(upstream: u16, trap: Arc<Mutex<Option<Trap>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let trap = trap.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                relay(client, server, trap).await;
            });
        }
    });
    port
}

async fn relay(client: TcpStream, server: TcpStream, trap: Arc<Mutex<Option<Trap>>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The trap, once this connection's requests held its bytes.
    let (sprung_tx, sprung_rx) = oneshot::channel::<Trap>();
    let requests = tokio::spawn(async move {
        let mut sprung_tx = Some(sprung_tx);
        let mut seen: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if sprung_tx.is_some() {
                seen.extend_from_slice(&buf[..n]);
                let mut armed = trap.lock().unwrap();
                let holds = armed
                    .as_ref()
                    .is_some_and(|t| seen.windows(t.needle.len()).any(|w| w == t.needle));
                if holds && armed.as_ref().is_some_and(|t| t.cut > 0) {
                    let t = armed.as_mut().unwrap();
                    t.cut -= 1;
                    if t.cut == 0 {
                        *armed = None;
                    }
                    // Never sent: the server sees the connection end, and so does the client.
                    return;
                }
                if holds {
                    let t = armed.take().unwrap();
                    let _ = sprung_tx.take().unwrap().send(t);
                }
                // Keep only what a needle split between two reads needs.
                let keep = seen.len().saturating_sub(64);
                seen.drain(..keep);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut sprung_rx = Some(sprung_rx);
    let mut sprung: Option<Trap> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(rx) = sprung_rx.as_mut()
            && let Ok(t) = rx.try_recv()
        {
            sprung = Some(t);
            sprung_rx = None;
        }
        if let Some(mut t) = sprung.take() {
            // The answer to the trapped request (and whatever came with it) never arrives.
            let _ = t.hit.take().unwrap().send(());
            let _ = t.go.take().unwrap().await;
            break;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
    let _ = requests.await;
    drop(client_write);
}

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::from_url(url)
        .unwrap()
        .with_prefix(prefix)
        .unwrap()
}

/// A redis-server of the test's own, a proxy in front of it with its trap, a store of a fresh
/// prefix reaching the server through the proxy, and one reaching it directly.
struct Setup {
    server: RedisServer,
    trap: Arc<Mutex<Option<Trap>>>,
    prefix: String,
    through_proxy: Arc<RedisStore>,
    direct: RedisStore,
}

async fn setup(tag: &str) -> Setup {
    let server = RedisServer::start();
    let trap = Arc::new(Mutex::new(None));
    let port = proxy(server.port(), trap.clone()).await;
    let prefix = unique_prefix(tag);
    let through_proxy = Arc::new(
        RedisStore::connect(config(&format!("redis://127.0.0.1:{port}"), &prefix))
            .await
            .unwrap(),
    );
    let direct = RedisStore::connect(config(&server.url(), &prefix))
        .await
        .unwrap();
    Setup {
        server,
        trap,
        prefix,
        through_proxy,
        direct,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_removed_before_its_create_is_resent_stays_removed() {
    let Setup {
        server,
        trap,
        prefix,
        through_proxy,
        direct,
    } = setup("lost").await;
    let now = base_time();
    let hour = Some(Duration::from_secs(3600));
    let warm = load_scripts(&through_proxy, now).await;

    let a = record("alice", now, hour, None);
    let (hit_rx, go_tx) = arm(&trap, a.key.as_bytes());
    let creating = {
        let a = a.clone();
        let store = through_proxy.clone();
        tokio::spawn(async move { store.create(&a, &SessionLimits::default()).await })
    };
    // The create ran on the server; its answer is held. Another process lists the session and
    // clears it; then the creator's connection drops.
    hit_rx.await.unwrap();
    assert!(direct.list(now).await.unwrap().contains(&a));
    assert_eq!(direct.remove_by_id(a.id).await.unwrap(), Some(a.clone()));
    go_tx.send(()).unwrap();

    // The creator sends its create again on a fresh connection: it was created (and since
    // removed), and nothing brings it back.
    let outcome = creating.await.unwrap().unwrap();
    assert_eq!(outcome, CreateOutcome::Created);
    assert!(trap.lock().unwrap().is_none(), "the trap was sprung");
    for store in [&direct, &*through_proxy] {
        assert_eq!(store.get(&a.key, now).await.unwrap(), None);
        assert_eq!(
            store
                .validate(&a.key, now, true, Duration::ZERO)
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.list(now).await.unwrap(), vec![warm.clone()]);
    }
    // The mark expires by itself.
    let mark = removal_mark(&prefix, &a.key);
    let ttl: i64 = String::from_utf8(server.cli_bytes(&[b"PTTL", &mark]))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the removal mark has a TTL: {ttl}");
}

/// Every create looks for a removal mark (on Redis Cluster the client also resends a command
/// by itself when its connection drops): the same create once more after a removal, by key,
/// by id or by a claim, is recognised and makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_honours_removal_marks_standalone() {
    every_create_honours_removal_marks(&RedisServer::shared().url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_honours_removal_marks_cluster() {
    every_create_honours_removal_marks(&RedisCluster::shared().url()).await;
}

async fn every_create_honours_removal_marks(url: &str) {
    let store = RedisStore::connect(config(url, &unique_prefix("marks")))
        .await
        .unwrap();
    let now = base_time();
    let hour = Some(Duration::from_secs(3600));
    let none = SessionLimits::default();
    let a = record("alice", now, hour, None);
    let b = record("bob", now, hour, None);
    for r in [&a, &b] {
        assert_eq!(
            store.create(r, &none).await.unwrap(),
            CreateOutcome::Created
        );
    }
    assert!(store.remove(&a.key).await.unwrap().is_some());
    assert!(store.remove_by_id(b.id).await.unwrap().is_some());
    // A claim marks the sessions it claims.
    let c = record("carol", now, Some(Duration::from_secs(60)), None);
    assert_eq!(
        store.create(&c, &none).await.unwrap(),
        CreateOutcome::Created
    );
    let later = now + Duration::from_secs(7200);
    assert_eq!(
        store.claim_expired(later, 10).await.unwrap(),
        vec![c.clone()]
    );
    for r in [&a, &b, &c] {
        assert_eq!(
            store.create(r, &none).await.unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(store.get(&r.key, now).await.unwrap(), None);
    }
    assert!(store.list(now).await.unwrap().is_empty());
    assert!(store.claim_expired(later, 10).await.unwrap().is_empty());
    // Another session under another key is created as ever.
    let d = record("dave", now, hour, None);
    assert_eq!(
        store.create(&d, &none).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.list(now).await.unwrap(), vec![d]);
}

/// Arms `trap` with `needle` and returns the channels to follow it: `hit` once the answer is
/// held, `go` to drop the connection.
fn arm(trap: &Mutex<Option<Trap>>, needle: &[u8]) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (hit_tx, hit_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    *trap.lock().unwrap() = Some(Trap {
        needle: needle.to_vec(),
        hit: Some(hit_tx),
        go: Some(go_rx),
        cut: 0,
    });
    (hit_rx, go_tx)
}

/// A remove, a remove by id and a claim whose answers are lost are sent again, and answer
/// what the first send removed: each session's end is reported once, not lost as "nothing".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_calls_whose_answer_is_lost_answer_the_same_when_sent_again() {
    let Setup {
        server: _server,
        trap,
        through_proxy: store,
        direct,
        ..
    } = setup("lost-rm").await;
    let now = base_time();
    let hour = Some(Duration::from_secs(3600));
    let none = SessionLimits::default();
    let a = record("alice", now, hour, None);
    let b = record("bob", now, hour, None);
    let c = record("carol", now, Some(Duration::from_secs(60)), None);
    for r in [&a, &b, &c] {
        assert_eq!(
            store.create(r, &none).await.unwrap(),
            CreateOutcome::Created
        );
    }
    // The scripts are loaded into the server first (the trapped requests are the calls
    // themselves, not first tries answered "no such script").
    let absent = record("nobody", now, hour, None);
    assert_eq!(store.remove(&absent.key).await.unwrap(), None);
    assert_eq!(store.remove_by_id(absent.id).await.unwrap(), None);
    assert!(store.claim_expired(now, 10).await.unwrap().is_empty());

    // remove
    let (hit, go) = arm(&trap, a.key.as_bytes());
    let call = {
        let (store, key) = (store.clone(), a.key);
        tokio::spawn(async move { store.remove(&key).await })
    };
    hit.await.unwrap();
    assert!(!direct.list(now).await.unwrap().contains(&a), "removed");
    go.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), Some(a.clone()));
    assert!(trap.lock().unwrap().is_none(), "the trap was sprung");

    // remove by id
    let (hit, go) = arm(&trap, &b.id.as_u64().to_be_bytes());
    let call = {
        let (store, id) = (store.clone(), b.id);
        tokio::spawn(async move { store.remove_by_id(id).await })
    };
    hit.await.unwrap();
    assert!(!direct.list(now).await.unwrap().contains(&b), "removed");
    go.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), Some(b.clone()));
    assert!(trap.lock().unwrap().is_none(), "the trap was sprung");

    // claim: carol's session expires after a minute.
    let later = now + Duration::from_secs(7200);
    let later_ms = aaa_core::unix_ms(later).to_string();
    let (hit, go) = arm(&trap, later_ms.as_bytes());
    let call = {
        let store = store.clone();
        tokio::spawn(async move { store.claim_expired(later, 10).await })
    };
    hit.await.unwrap();
    assert!(!direct.list(now).await.unwrap().contains(&c), "claimed");
    go.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), vec![c.clone()]);
    assert!(trap.lock().unwrap().is_none(), "the trap was sprung");

    // All three are gone, and nothing else was claimed or removed.
    assert!(direct.list(now).await.unwrap().is_empty());
    assert!(direct.claim_expired(later, 10).await.unwrap().is_empty());
    assert_eq!(direct.remove(&a.key).await.unwrap(), None);
    assert_eq!(direct.remove_by_id(b.id).await.unwrap(), None);
}

/// A create that times out while Redis is frozen runs once Redis goes on; its undoing, sent
/// after it, removes the session: the caller, told the create failed, leaves no session to be
/// listed or counted. The create arriving again later makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_timed_out_is_undone() {
    let server = RedisServer::start();
    let prefix = unique_prefix("undo");
    let short = Duration::from_millis(300);
    let store = RedisStore::connect(
        config(&server.url(), &prefix)
            .with_connect_timeout(short)
            .with_response_timeout(short),
    )
    .await
    .unwrap();
    let direct = RedisStore::connect(config(&server.url(), &prefix))
        .await
        .unwrap();
    let now = base_time();
    let hour = Some(Duration::from_secs(3600));
    let none = SessionLimits::default();
    // While Redis is frozen the calls are sent whole, never a first try waiting for "no such
    // script".
    let warm = load_scripts(&store, now).await;

    let a = record("alice", now, hour, None);
    server.pause();
    let failed = store.create(&a, &none).await;
    server.resume();
    assert!(failed.is_err(), "{failed:?}");
    // The undo marks the key and removes the session in one script.
    wait_for_mark(&server, &prefix, &a).await;
    assert_eq!(direct.get(&a.key, now).await.unwrap(), None);
    assert_eq!(direct.list(now).await.unwrap(), vec![warm.clone()]);
    // The same create, arriving again (resent by a cluster client, say), makes nothing.
    assert_eq!(
        direct.create(&a, &none).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(direct.get(&a.key, now).await.unwrap(), None);
    assert_eq!(direct.list(now).await.unwrap(), vec![warm]);
}

/// A create that never reached Redis (its connection cut before it, twice: the send and the
/// resend) fails; its undoing finds no session and marks the key all the same, so the create,
/// should it reach Redis after all, makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_never_arrived_is_undone_too() {
    let Setup {
        server,
        trap,
        prefix,
        through_proxy: store,
        direct,
    } = setup("undo-cut").await;
    let now = base_time();
    let hour = Some(Duration::from_secs(3600));
    let none = SessionLimits::default();
    let warm = load_scripts(&store, now).await;

    let a = record("alice", now, hour, None);
    *trap.lock().unwrap() = Some(Trap {
        needle: a.key.as_bytes().to_vec(),
        hit: None,
        go: None,
        cut: 2,
    });
    let failed = store.create(&a, &none).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(trap.lock().unwrap().is_none(), "both sends were cut");
    // The undoing is sent on a connection of its own (the proxy lets it through): it finds no
    // session, and marks the key.
    wait_for_mark(&server, &prefix, &a).await;
    assert_eq!(direct.get(&a.key, now).await.unwrap(), None);
    // The create, arriving now, makes nothing.
    assert_eq!(
        direct.create(&a, &none).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(direct.get(&a.key, now).await.unwrap(), None);
    assert_eq!(direct.list(now).await.unwrap(), vec![warm]);
}

/// Loads the create and remove scripts into the server through `store` (so that a trapped or
/// frozen call is the call itself, not a first try answered "no such script"); returns the
/// session it created.
async fn load_scripts(store: &RedisStore, now: std::time::SystemTime) -> aaa_core::SessionRecord {
    let hour = Some(Duration::from_secs(3600));
    let warm = record("warm", now, hour, None);
    assert_eq!(
        store
            .create(&warm, &SessionLimits::default())
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let absent = record("nobody", now, hour, None);
    assert_eq!(store.remove(&absent.key).await.unwrap(), None);
    warm
}

/// Waits (at most 10 s) until the key of `r` holds a removal mark with its id.
async fn wait_for_mark(server: &RedisServer, prefix: &str, r: &aaa_core::SessionRecord) {
    let mark = removal_mark(prefix, &r.key);
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut waited = Duration::ZERO;
    loop {
        let marked: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&mark)
            .query_async(&mut con)
            .await
            .unwrap();
        if marked.as_deref() == Some(r.id.as_u64().to_be_bytes().as_slice()) {
            return;
        }
        assert!(waited < Duration::from_secs(10), "the key was never marked");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}
