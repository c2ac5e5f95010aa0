#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! The client-side cache of validation reads (standalone Redis): it saves reads, and it never
//! answers what a read would not — after a change in another process, a flush, a killed
//! reading connection — and a user whose ACL refuses `CLIENT` still validates (no cache).

use std::time::{Duration, SystemTime};

use aaa_core::{CookieHash, SessionLimits, SessionRecord, SessionStore};
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::conformance::{base_time, record};
use testkit::redis::{RedisServer, session_bucket, unique_prefix};

const GRANULARITY: Duration = Duration::from_secs(3600);

async fn store(url: &str, prefix: &str) -> RedisStore {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .with_prefix(prefix)
        .unwrap();
    RedisStore::connect(config).await.unwrap()
}

async fn create(s: &RedisStore, now: SystemTime) -> SessionRecord {
    let r = record("alice", now, Some(Duration::from_secs(3600)), None);
    s.create(&r, &SessionLimits::default()).await.unwrap();
    r
}

/// A validation as the manager sends it for a session it holds (touch on, id only).
async fn valid(s: &RedisStore, key: &CookieHash, now: SystemTime) -> bool {
    s.validate_id(key, now, true, GRANULARITY)
        .await
        .unwrap()
        .is_some()
}

/// How many times the server ran `command` (from `INFO commandstats`).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The ids of the server's clients with tracking on.
fn tracking_clients(server: &RedisServer) -> Vec<String> {
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('t')))
        })
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_validations_are_answered_from_the_cache_after_a_barrier() {
    let server = RedisServer::start();
    let s = store(&server.url(), &unique_prefix("cache")).await;
    let now = base_time();
    let r = create(&s, now).await;
    assert!(valid(&s, &r.key, now).await);
    let (reads, barriers) = (calls(&server, "hget"), calls(&server, "client|getredir"));
    for _ in 0..100 {
        assert!(valid(&s, &r.key, now).await);
    }
    assert_eq!(
        calls(&server, "hget"),
        reads,
        "a cached value was read again"
    );
    // Each validation waited for a round trip sent after it began.
    assert_eq!(calls(&server, "client|getredir"), barriers + 100);
    assert_eq!(tracking_clients(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_another_process_is_seen_by_the_next_validation() {
    let server = RedisServer::start();
    let prefix = unique_prefix("change");
    let (a, b) = (
        store(&server.url(), &prefix).await,
        store(&server.url(), &prefix).await,
    );
    let now = base_time();
    for round in 0..200 {
        let r = create(&a, now).await;
        // Cached in b, and answered from its cache.
        assert!(valid(&b, &r.key, now).await, "round {round}");
        assert!(valid(&b, &r.key, now).await, "round {round}");
        match round % 3 {
            // Removed in a: b's next validation must not find it.
            0 => {
                a.remove(&r.key).await.unwrap().unwrap();
                assert!(!valid(&b, &r.key, now).await, "round {round}: removed");
            }
            1 => {
                a.remove_by_id(r.id).await.unwrap().unwrap();
                assert!(
                    !valid(&b, &r.key, now).await,
                    "round {round}: removed by id"
                );
            }
            // Another session created in the same bucket: r is still valid (read again).
            _ => {
                let other = loop {
                    let o = record("bob", now, Some(Duration::from_secs(60)), None);
                    if o.key.as_bytes()[..2] == r.key.as_bytes()[..2] {
                        break o;
                    }
                };
                a.create(&other, &SessionLimits::default()).await.unwrap();
                assert!(valid(&b, &r.key, now).await, "round {round}: neighbour");
                assert!(valid(&b, &other.key, now).await, "round {round}: neighbour");
                a.remove(&r.key).await.unwrap().unwrap();
                assert!(!valid(&b, &r.key, now).await, "round {round}: removed");
                assert!(valid(&b, &other.key, now).await, "round {round}: neighbour");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_changed_under_a_cached_session_is_read_again() {
    let server = RedisServer::start();
    let prefix = unique_prefix("planted");
    let s = store(&server.url(), &prefix).await;
    let now = base_time();
    let r = create(&s, now).await;
    assert!(valid(&s, &r.key, now).await);
    let bucket = session_bucket(&prefix, &r.key);
    server.cli_bytes(&[b"HSET", &bucket, r.key.as_bytes(), b"garbage"]);
    let e = s
        .validate_id(&r.key, now, true, GRANULARITY)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), aaa_core::StoreErrorKind::Corrupt, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_database_empties_the_cache() {
    let server = RedisServer::start();
    let s = store(&server.url(), &unique_prefix("flush")).await;
    let now = base_time();
    let r = create(&s, now).await;
    assert!(valid(&s, &r.key, now).await);
    server.cli(&["FLUSHALL"]);
    assert!(!valid(&s, &r.key, now).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_reading_connection_loses_no_change() {
    let server = RedisServer::start();
    let prefix = unique_prefix("killed");
    let (a, b) = (
        store(&server.url(), &prefix).await,
        store(&server.url(), &prefix).await,
    );
    let now = base_time();
    for round in 0..5 {
        let r = create(&a, now).await;
        assert!(valid(&b, &r.key, now).await, "round {round}");
        // Every reading connection killed, then the session removed: no invalidation can
        // reach b's cache, so b must read again on its new connection.
        for id in tracking_clients(&server) {
            server.cli(&["CLIENT", "KILL", "ID", &id]);
        }
        a.remove(&r.key).await.unwrap().unwrap();
        assert!(!valid(&b, &r.key, now).await, "round {round}");
        // And it caches again on the new connection.
        let r = create(&a, now).await;
        assert!(valid(&b, &r.key, now).await, "round {round}");
        assert!(valid(&b, &r.key, now).await, "round {round}");
    }
}

/// Two stores of a user whose ACL denies `denied` (and allows everything else) validate
/// correctly: cached nowhere, since no barrier can run.
async fn validates_without(denied: &str) {
    let server = RedisServer::start();
    server.cli(&[
        "ACL",
        "SETUSER",
        "limited",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
        denied,
    ]);
    let url = server
        .url()
        .replacen("redis://", "redis://limited:s3cret-pw@", 1);
    let prefix = unique_prefix("acl");
    let (a, b) = (store(&url, &prefix).await, store(&url, &prefix).await);
    let now = base_time();
    for round in 0..20 {
        let r = create(&a, now).await;
        assert!(valid(&b, &r.key, now).await, "{denied} round {round}");
        // Not cached: validating again reads the value again.
        let reads = calls(&server, "hget");
        assert!(valid(&b, &r.key, now).await, "{denied} round {round}");
        assert_eq!(calls(&server, "hget"), reads + 1, "{denied} round {round}");
        a.remove(&r.key).await.unwrap().unwrap();
        assert!(!valid(&b, &r.key, now).await, "{denied} round {round}");
    }
    assert_eq!(calls(&server, "client|getredir"), 0, "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_refused_client_tracking_still_validates() {
    validates_without("-client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_refused_only_the_barrier_still_validates() {
    validates_without("-client|getredir").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_reads_fails_cached_validations_too() {
    let server = RedisServer::start();
    let s = store(&server.url(), &unique_prefix("stale")).await;
    let now = base_time();
    let r = create(&s, now).await;
    assert!(valid(&s, &r.key, now).await);
    assert!(valid(&s, &r.key, now).await);
    // A replica cut from its master that must not serve stale data: every read is refused
    // (MASTERDOWN), and no invalidation comes — the connection stays open.
    let dead_port = testkit::closed_port().to_string();
    server.cli(&["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    server.cli(&["REPLICAOF", "127.0.0.1", &dead_port]);
    for _ in 0..3 {
        let e = s
            .validate_id(&r.key, now, true, GRANULARITY)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), aaa_core::StoreErrorKind::Unreachable, "{e:?}");
    }
    server.cli(&["REPLICAOF", "NO", "ONE"]);
    // Its data is kept when it stops being a replica of nothing: valid again.
    assert!(valid(&s, &r.key, now).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_validations_of_one_session_share_their_read_and_their_touch() {
    // Many requests of one user at once (a page loading its resources) validate one cookie
    // together: they share one read (one per reading connection), and the validations due a
    // touch share one script item
    // (the server's commands, counted: a script's commands count too).
    let server = RedisServer::start();
    let s = std::sync::Arc::new(store(&server.url(), &unique_prefix("share")).await);
    let now = SystemTime::now();
    let r = create(&s, now).await;
    let at_once = |at: SystemTime, touch: bool| {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (s, key) = (s.clone(), r.key);
                tokio::spawn(async move {
                    s.validate_id(&key, at, touch, Duration::from_secs(1))
                        .await
                        .unwrap()
                })
            })
            .collect();
        async move {
            for t in tasks {
                assert_eq!(t.await.unwrap(), Some(r.id));
            }
        }
    };
    let reads = calls(&server, "hget");
    at_once(now, false).await;
    let reads = calls(&server, "hget") - reads;
    assert!(
        reads <= 10,
        "{reads} reads for 100 validations of one session"
    );
    // Five seconds later every one of them is due a touch, at the same time: one touch, and
    // one script item per script call (at most four calls in flight), not one per request
    // (typically under 16 reads in all; sent one by one, 100 and more).
    let later = now + Duration::from_secs(5);
    let (reads, touches) = (calls(&server, "hget"), calls(&server, "hset"));
    at_once(later, true).await;
    let (reads, touches) = (
        calls(&server, "hget") - reads,
        calls(&server, "hset") - touches,
    );
    assert_eq!(touches, 1);
    assert!(reads <= 50, "{reads} reads for 100 validations due a touch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_due_a_touch_goes_to_the_script_without_a_barrier() {
    // A cached value that says a touch is due sends the validation to the validate script,
    // which reads the session itself: no barrier is waited for first. The script still sees
    // every change: a session removed in another process is gone for it.
    let server = RedisServer::start();
    let prefix = unique_prefix("touchdue");
    let (a, b) = (
        store(&server.url(), &prefix).await,
        store(&server.url(), &prefix).await,
    );
    let now = SystemTime::now();
    let granularity = Duration::from_secs(1);
    let (r, gone) = (create(&a, now).await, create(&a, now).await);
    for key in [&r.key, &gone.key] {
        // Cached in b (no touch due yet).
        assert!(
            b.validate_id(key, now, true, granularity)
                .await
                .unwrap()
                .is_some()
        );
    }
    a.remove(&gone.key).await.unwrap().unwrap();
    // The validate script loaded (an unknown key goes to it), so that each call below is one.
    let unknown = record("nobody", now, None, None).key;
    assert!(
        b.validate_id(&unknown, now, true, granularity)
            .await
            .unwrap()
            .is_none()
    );
    let later = now + Duration::from_secs(5);
    let (barriers, scripts) = (calls(&server, "exists"), calls(&server, "evalsha"));
    assert_eq!(
        b.validate_id(&r.key, later, true, granularity)
            .await
            .unwrap(),
        Some(r.id)
    );
    assert_eq!(calls(&server, "exists") - barriers, 0);
    assert_eq!(calls(&server, "evalsha") - scripts, 1);
    // The touch landed.
    let got = a.get(&r.key, later).await.unwrap().unwrap();
    assert!(got.last_activity > now + Duration::from_secs(4));
    // And b learns of it (the touch's invalidation, applied though no barrier was sent):
    // the next validations, no touch due, are not sent to the script again and again.
    let scripts = calls(&server, "evalsha");
    let soon = later + Duration::from_millis(100);
    for _ in 0..20 {
        assert_eq!(
            b.validate_id(&r.key, soon, true, granularity)
                .await
                .unwrap(),
            Some(r.id)
        );
    }
    let scripts = calls(&server, "evalsha") - scripts;
    assert!(
        scripts <= 6,
        "{scripts} scripts for 20 validations after a touch"
    );
    // Removed in a: whether b's cache still held it (answered at once, to the script) or had
    // dropped it by then (read again), it is gone.
    assert_eq!(
        b.validate_id(&gone.key, later, true, granularity)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validations_from_many_tasks_use_each_reading_connection_and_see_every_change() {
    // A store's calling tasks are spread over its reading connections, each with its own cache
    // and barriers: each caches what its tasks read, and a change in another process reaches
    // every one of them.
    const TASKS: usize = 64;
    let server = RedisServer::start();
    let prefix = unique_prefix("tasks");
    let (a, b) = (
        store(&server.url(), &prefix).await,
        std::sync::Arc::new(store(&server.url(), &prefix).await),
    );
    let now = base_time();
    // One session per task, all created before b reads anything (no invalidation can then
    // come with b's reads and keep them out of its caches).
    let mut sessions = Vec::new();
    for _ in 0..TASKS {
        sessions.push(create(&a, now).await);
    }
    let keys: Vec<CookieHash> = sessions.iter().map(|r| r.key).collect();
    // Each task validates its own session `times` times; the answers, by task.
    let from_tasks = |times: usize| {
        let tasks: Vec<_> = keys
            .iter()
            .map(|&key| {
                let b = b.clone();
                tokio::spawn(async move {
                    let mut all = true;
                    let mut none = true;
                    for _ in 0..times {
                        let v = valid(&b, &key, now).await;
                        all &= v;
                        none &= !v;
                    }
                    (all, none)
                })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            answers
        }
    };
    let reads = calls(&server, "hget");
    let answers = from_tasks(3).await;
    assert!(answers.iter().all(|&(all, _)| all));
    // Each session read once, by its task's connection; the later validations were cached.
    assert_eq!(calls(&server, "hget") - reads, TASKS as u64);
    // 64 tasks all on one connection: a chance of 2^-63 with two.
    assert_eq!(tracking_clients(&server).len(), 2);
    // Half of the sessions removed in another store: gone for their tasks, whichever
    // connection cached them; the others still valid.
    for r in sessions.iter().step_by(2) {
        a.remove(&r.key).await.unwrap().unwrap();
    }
    let answers = from_tasks(2).await;
    for (i, &(all, none)) in answers.iter().enumerate() {
        if i % 2 == 0 {
            assert!(none, "task {i}: a removed session was still valid");
        } else {
            assert!(all, "task {i}: a live session was refused");
        }
    }
    // Every reading connection killed, then the other sessions removed: no invalidation can
    // reach b's caches, so each connection must find itself gone and its cache emptied.
    for id in tracking_clients(&server) {
        server.cli(&["CLIENT", "KILL", "ID", &id]);
    }
    for r in sessions.iter().skip(1).step_by(2) {
        a.remove(&r.key).await.unwrap().unwrap();
    }
    let answers = from_tasks(2).await;
    for (i, &(_, none)) in answers.iter().enumerate() {
        assert!(
            none,
            "task {i}: a session removed after its connection was killed was valid"
        );
    }
    assert_eq!(
        tracking_clients(&server).len(),
        2,
        "both connections opened again"
    );
}
