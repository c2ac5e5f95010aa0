#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! What Redis holds: after every kind of operation (create, validate with touch, remove,
//! remove by id, claim) every key of the table has a TTL, and no issued cookie appears in any
//! key or value.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use aaa_core::{Clock, Identity, ManualClock, Mechanism, SessionStore};
use aaa_session::{SessionConfig, SessionManager};
use aaa_store_redis::{RedisConfig, RedisStore};
use redis::AsyncCommands;
use testkit::redis::{
    RedisServer, base, layout, removal_mark, session_bucket, unique_prefix, without_answers,
};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

/// Everything under the prefix: (key, every byte string it holds, PTTL in ms).
async fn dump(
    con: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<(Vec<u8>, Vec<Vec<u8>>, i64)> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{prefix}}}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(con).await.unwrap();
        let mut blobs: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![con.get(&key).await.unwrap()],
            "hash" => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = con.hgetall(&key).await.unwrap();
                pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
            }
            "zset" => {
                let pairs: Vec<(Vec<u8>, f64)> = con.zrange_withscores(&key, 0, -1).await.unwrap();
                pairs
                    .into_iter()
                    .flat_map(|(m, s)| [m, s.to_string().into_bytes()])
                    .collect()
            }
            "set" => con.smembers(&key).await.unwrap(),
            other => panic!("unexpected key type {other}"),
        };
        // The serialized form too, whatever the encoding.
        let dumped: Vec<u8> = redis::cmd("DUMP").arg(&key).query_async(con).await.unwrap();
        blobs.push(dumped);
        let pttl: i64 = con.pttl(&key).await.unwrap();
        out.push((key, blobs, pttl));
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every key has a TTL; no cookie in any key or value. Returns the names of the keys but those
/// that keep the answers of removing calls, and how many of those there are.
async fn check(
    con: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    cookies: &[String],
    after: &str,
) -> (Vec<Vec<u8>>, usize) {
    let dump = dump(con, prefix).await;
    for (key, blobs, pttl) in &dump {
        let name = String::from_utf8_lossy(key);
        assert!(*pttl > 0, "after {after}: key {name:?} has PTTL {pttl}");
        for c in cookies {
            assert!(
                !contains(key, c.as_bytes()),
                "after {after}: a cookie in a key name"
            );
            for b in blobs {
                assert!(
                    !contains(b, c.as_bytes()),
                    "after {after}: a cookie in the value of {name:?}"
                );
            }
        }
    }
    without_answers(prefix, dump.into_iter().map(|(k, _, _)| k).collect())
}

/// The name of the bucket holding the session of `cookie`.
fn bucket_of(prefix: &str, cookie: &str) -> Vec<u8> {
    session_bucket(
        prefix,
        &aaa_core::SessionCookie::parse(cookie).unwrap().hash(),
    )
}

/// The keys that must exist for the sessions of `live` (cookie, its user), and for the
/// sessions of `removed` (cookies) a removal has ended a moment ago (their marks).
fn layout_of(
    prefix: &str,
    live: &[(&String, &Arc<aaa_core::ExosUser>)],
    removed: &[&String],
) -> Vec<Vec<u8>> {
    let hash = |cookie: &str| aaa_core::SessionCookie::parse(cookie).unwrap().hash();
    let mut keys = layout(
        prefix,
        live.iter().map(|(cookie, user)| {
            (
                hash(cookie),
                user.session_id().unwrap().as_u64(),
                user.username(),
            )
        }),
        true,
    );
    keys.extend(removed.iter().map(|c| removal_mark(prefix, &hash(c))));
    keys.sort();
    keys
}

async fn pttl_of_session(
    con: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    cookie: &str,
) -> i64 {
    con.pttl(bucket_of(prefix, cookie)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hold_no_cookie_and_always_expire() {
    let server = RedisServer::shared();
    let prefix = unique_prefix("rest");
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_prefix(&prefix)
        .unwrap();
    let grace = config.grace();
    let store: Arc<dyn SessionStore> = Arc::new(RedisStore::connect(config).await.unwrap());
    let clock = Arc::new(ManualClock::starting_now());
    // A: the default timeouts (idle 20 min, absolute 8 h) and a per-user limit, so that the
    // table keeps its user index (its users' hashes, which B's creates keep too). B: no
    // timeout at all (the backstop), no limit.
    let mut limited = SessionConfig::default();
    limited.limits.per_user = Some(10);
    let a = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .config(limited)
        .build()
        .unwrap();
    let mut no_timeouts = SessionConfig::default();
    no_timeouts.idle_timeout = None;
    no_timeouts.absolute_timeout = None;
    let b = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .config(no_timeouts)
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();

    let mut cookies = Vec::new();
    let mut users = Vec::new();
    for (m, name, rw) in [
        (&a, "alice", true),
        (&a, "alice", true),
        (&a, "bob", false),
        (&a, "carol", false),
        (&b, "erin", true),
    ] {
        let u = m.new_user(Identity::new(name, rw), Mechanism::Local, FROM);
        let c = u.start_session(FROM).await.unwrap();
        cookies.push(c.expose().to_owned());
        users.push(u);
    }
    let all: Vec<_> = cookies.iter().zip(&users).collect();
    assert_eq!(
        check(&mut con, &prefix, &cookies, "create").await,
        (layout_of(&prefix, &all, &[]), 0)
    );
    // A session's bucket expires `grace` (and at most a minute more) after its deadline (idle
    // 20 min here), unless it shares its bucket with erin's session (1 chance in about 1,000).
    let pttl = pttl_of_session(&mut con, &prefix, &cookies[0]).await;
    let idle = Duration::from_secs(20 * 60);
    assert!(
        pttl > i64::try_from((idle + grace - Duration::from_secs(5)).as_millis()).unwrap(),
        "PTTL {pttl}"
    );
    if bucket_of(&prefix, &cookies[0]) != bucket_of(&prefix, &cookies[4]) {
        assert!(
            pttl <= i64::try_from((idle + grace + Duration::from_secs(60)).as_millis()).unwrap(),
            "PTTL {pttl}"
        );
    }
    // The session without timeouts gets the backstop: 7 days and the grace (and the minute).
    let pttl = pttl_of_session(&mut con, &prefix, &cookies[4]).await;
    assert!(
        pttl > 7 * 24 * 3600 * 1000 && pttl <= (7 * 24 * 3600 + 120) * 1000,
        "PTTL {pttl}"
    );

    // Validations that touch: 10 minutes later, which moves the deadlines and TTLs.
    clock.advance(Duration::from_secs(600));
    for c in &cookies {
        let m = if c == &cookies[4] { &b } else { &a };
        assert!(m.validate_session(c).await.unwrap().is_some());
    }
    assert_eq!(
        check(&mut con, &prefix, &cookies, "validate").await,
        (layout_of(&prefix, &all, &[]), 0)
    );
    let listed = store.list(clock.now()).await.unwrap();
    assert_eq!(listed.len(), 5);

    // remove (end_session), then remove_by_id (clear_session).
    users[0].end_session().await.unwrap();
    assert_eq!(
        check(&mut con, &prefix, &cookies, "remove").await,
        (layout_of(&prefix, &all[1..], &[&cookies[0]]), 1)
    );
    a.clear_session(users[2].session_id().unwrap())
        .await
        .unwrap();
    // bob's hash went with his only session.
    assert_eq!(
        check(&mut con, &prefix, &cookies, "remove_by_id").await,
        (
            layout_of(
                &prefix,
                &[all[1], all[3], all[4]],
                &[&cookies[0], &cookies[2]]
            ),
            2
        )
    );

    // Claims: 21 minutes after the last touch, alice's second and carol's sessions expire;
    // erin's (no timeout) stays.
    clock.advance(Duration::from_secs(21 * 60));
    assert_eq!(a.reap().await.unwrap(), 2);
    assert_eq!(
        check(&mut con, &prefix, &cookies, "claim").await,
        (
            layout_of(
                &prefix,
                &all[4..],
                &[&cookies[0], &cookies[1], &cookies[2], &cookies[3]]
            ),
            3
        )
    );
    assert!(b.validate_session(&cookies[4]).await.unwrap().is_some());
    assert_eq!(store.list(clock.now()).await.unwrap().len(), 1);

    // The stored values are compact: a session costs tens of bytes, and its bucket is a
    // compactly stored hash (a listpack takes values up to 64 bytes by default).
    let dump = dump(&mut con, &prefix).await;
    let (key, blobs, _) = dump
        .iter()
        .find(|(k, _, _)| k.starts_with(format!("{}s:", base(&prefix)).as_bytes()))
        .unwrap();
    assert_eq!(blobs[0].len(), 32, "field: the cookie's hash");
    assert!(blobs[1].len() <= 64, "value of {} bytes", blobs[1].len());
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(encoding, "listpack");
}
