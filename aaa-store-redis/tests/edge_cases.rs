#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Store details beyond the conformance suite: refused creates leave nothing behind, a create
//! sent twice is one create, stale index entries heal, the backstop of sessions without
//! timeouts, many validations at once.

use std::sync::Arc;
use std::time::Duration;

use aaa_core::{CreateOutcome, SessionId, SessionLimits, SessionStore};
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::conformance::{base_time, record};
use testkit::redis::{
    RedisServer, base, layout, removal_mark, session_bucket, unique_prefix, without_answers,
};

async fn store(prefix: &str, backstop: Option<Duration>) -> RedisStore {
    let mut config = RedisConfig::from_url(&RedisServer::shared().url())
        .unwrap()
        .with_prefix(prefix)
        .unwrap();
    if let Some(b) = backstop {
        config = config.with_max_idle_backstop(b);
    }
    RedisStore::connect(config).await.unwrap()
}

/// The keys under `prefix`, binary-safe.
async fn keys_of(prefix: &str) -> Vec<Vec<u8>> {
    let client = redis::Client::open(RedisServer::shared().url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{prefix}}}*"))
            .query_async(&mut con)
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
    keys
}

/// The keys that must hold sessions `records`.
fn layout_of(prefix: &str, records: &[&aaa_core::SessionRecord]) -> Vec<Vec<u8>> {
    layout(
        prefix,
        records
            .iter()
            .map(|r| (r.key, r.id.as_u64(), r.username.as_str())),
        true,
    )
}

fn hour() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_creates_leave_nothing_behind() {
    let prefix = unique_prefix("refused");
    let s = store(&prefix, None).await;
    let now = base_time();
    let limits = SessionLimits {
        per_user: Some(1),
        total: Some(2),
    };
    let a = record("alice", now, hour(), None);
    assert_eq!(s.create(&a, &limits).await.unwrap(), CreateOutcome::Created);
    assert_eq!(keys_of(&prefix).await, layout_of(&prefix, &[&a]));

    let a2 = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&a2, &limits).await.unwrap(),
        CreateOutcome::UserLimit
    );
    let b = record("bob", now, hour(), None);
    assert_eq!(s.create(&b, &limits).await.unwrap(), CreateOutcome::Created);
    let c = record("carol", now, hour(), None);
    assert_eq!(
        s.create(&c, &limits).await.unwrap(),
        CreateOutcome::TotalLimit
    );
    let mut same_id = record("dave", now, hour(), None);
    same_id.id = a.id;
    assert_eq!(
        s.create(&same_id, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::IdTaken
    );
    // Nothing of a2, c or same_id remains: no key, no id entry, no user set.
    for r in [&a2, &c, &same_id] {
        assert!(s.get(&r.key, now).await.unwrap().is_none());
    }
    assert!(s.remove_by_id(a2.id).await.unwrap().is_none());
    assert!(s.remove_by_id(c.id).await.unwrap().is_none());
    assert_eq!(
        keys_of(&prefix).await,
        layout_of(&prefix, &[&a, &b]),
        "a and b only"
    );
    assert_eq!(s.get(&a.key, now).await.unwrap().unwrap(), a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_sent_twice_is_one_create() {
    let s = store(&unique_prefix("twice"), None).await;
    let now = base_time();
    let a = record("alice", now, hour(), None);
    let limits = SessionLimits {
        per_user: Some(1),
        total: Some(1),
    };
    assert_eq!(s.create(&a, &limits).await.unwrap(), CreateOutcome::Created);
    // The same record again (as after a lost reply): the same answer, nothing changes.
    assert_eq!(s.create(&a, &limits).await.unwrap(), CreateOutcome::Created);
    assert_eq!(s.list(now).await.unwrap(), vec![a.clone()]);
    // A different record under the same key is refused.
    let mut other = a.clone();
    other.username = "mallory".into();
    assert_eq!(
        s.create(&other, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::KeyTaken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_index_entries_heal() {
    let prefix = unique_prefix("stale");
    let s = store(&prefix, None).await;
    let now = base_time();
    let a = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&a, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::Created
    );
    // Redis drops the value by TTL (as when no reaper ran for the grace period).
    let bucket = session_bucket(&prefix, &a.key);
    RedisServer::shared().cli_bytes(&[b"HDEL", &bucket, a.key.as_bytes()]);
    // Its id can be used again, a claim drops its index entry, and it is never listed.
    assert!(s.list(now).await.unwrap().is_empty());
    let mut b = record("bob", now, hour(), None);
    b.id = a.id;
    assert_eq!(
        s.create(&b, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(s.remove_by_id(a.id).await.unwrap().unwrap().key, b.key);
    assert!(
        s.claim_expired(now + Duration::from_secs(7200), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The count still counts alice (her value went without a removal); a total limit of 1
    // counts exactly and lets a new session in, which is removed again.
    let c = record("carol", now, hour(), None);
    let one = SessionLimits {
        per_user: None,
        total: Some(1),
    };
    assert_eq!(s.create(&c, &one).await.unwrap(), CreateOutcome::Created);
    let d = record("dave", now, hour(), None);
    assert_eq!(s.create(&d, &one).await.unwrap(), CreateOutcome::TotalLimit);
    assert_eq!(s.remove(&c.key).await.unwrap().unwrap().key, c.key);
    // Only the bucket index is left, which holds the count (which still counts alice: it is
    // made exact again when a total limit needs it), the marks of the sessions removed (b and
    // c: alice's value went without a removal) and the answers of those two removals; each
    // expires by itself. (No create here had a per-user limit: the table keeps no user index.)
    let all = keys_of(&prefix).await;
    let (left, answers) = without_answers(&prefix, all.clone());
    assert_eq!(answers, 2);
    let mut want = vec![
        format!("{}due", base(&prefix)).into_bytes(),
        removal_mark(&prefix, &b.key),
        removal_mark(&prefix, &c.key),
    ];
    want.sort();
    assert_eq!(left, want);
    for k in &all {
        let pttl: i64 = RedisServer::shared()
            .cli_bytes(&[b"PTTL", k])
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .trim()
            .parse()
            .unwrap();
        assert!(pttl > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_timeouts_have_a_backstop() {
    let backstop = Duration::from_secs(100);
    let s = store(&unique_prefix("backstop"), Some(backstop)).await;
    let t0 = base_time();
    let r = record("alice", t0, None, None);
    assert_eq!(
        s.create(&r, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::Created
    );
    // Live until the backstop; a read past half of it moves it.
    assert!(
        s.get(&r.key, t0 + Duration::from_secs(40))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.get(&r.key, t0 + Duration::from_secs(60))
            .await
            .unwrap()
            .is_some()
    );
    // Now the backstop is 60 + 100 s.
    assert!(
        s.get(&r.key, t0 + Duration::from_secs(150))
            .await
            .unwrap()
            .is_some()
    );
    // Unused past it: not live, and claimed like any expired session.
    let late = t0 + Duration::from_secs(150 + 101);
    assert!(s.get(&r.key, late).await.unwrap().is_none());
    assert_eq!(s.contains(&[r.key], late).await.unwrap(), vec![false]);
    let claimed = s.claim_expired(late, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, r.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_validations_at_once_each_get_their_answer() {
    let s = Arc::new(store(&unique_prefix("many"), None).await);
    let now = base_time();
    let mut records = Vec::new();
    for i in 0..300 {
        let r = record(&format!("user{}", i % 7), now, hour(), None);
        assert_eq!(
            s.create(&r, &SessionLimits::default()).await.unwrap(),
            CreateOutcome::Created
        );
        records.push(r);
    }
    let unknown = record("nobody", now, hour(), None);
    let mut tasks = Vec::new();
    for round in 0..4u64 {
        for (i, r) in records.iter().enumerate() {
            let (s, r) = (s.clone(), r.clone());
            let id_only = (i as u64 + round).is_multiple_of(2);
            tasks.push(tokio::spawn(async move {
                let at = now + Duration::from_millis(round);
                if id_only {
                    let id: Option<SessionId> = s
                        .validate_id(&r.key, at, true, Duration::ZERO)
                        .await
                        .unwrap();
                    assert_eq!(id, Some(r.id));
                } else {
                    let got = s.validate(&r.key, at, true, Duration::ZERO).await.unwrap();
                    let got = got.unwrap();
                    assert_eq!((got.id, &got.username), (r.id, &r.username));
                }
            }));
        }
        let (s, k) = (s.clone(), unknown.key);
        tasks.push(tokio::spawn(async move {
            assert!(
                s.validate(&k, now, true, Duration::ZERO)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                s.validate_id(&k, now, true, Duration::ZERO)
                    .await
                    .unwrap()
                    .is_none()
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The touches landed: each session's last activity is one of the rounds' times.
    for r in &records {
        let got = s.get(&r.key, now).await.unwrap().unwrap();
        assert!(got.last_activity >= now && got.last_activity <= now + Duration::from_millis(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_sent_together_each_get_their_answer() {
    // Creates sent at once go out in shared script calls; pairs that share an id or a key
    // still end with exactly one session each, whatever call carried them.
    let s = Arc::new(store(&unique_prefix("creates"), None).await);
    let now = base_time();
    let mut tasks = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..100 {
        let a = record(&format!("user{}", i % 5), now, hour(), None);
        let mut b = record("other", now, hour(), None);
        if i % 2 == 0 {
            b.id = a.id;
        } else {
            b.key = a.key;
        }
        pairs.push((a.clone(), b.clone()));
        for r in [a, b] {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                (
                    r.key,
                    s.create(&r, &SessionLimits::default()).await.unwrap(),
                )
            }));
        }
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().1);
    }
    for (i, pair) in outcomes.chunks(2).enumerate() {
        let created = pair
            .iter()
            .filter(|o| **o == CreateOutcome::Created)
            .count();
        assert_eq!(created, 1, "pair {i}: {pair:?}");
        let refused = if i % 2 == 0 {
            CreateOutcome::IdTaken
        } else {
            CreateOutcome::KeyTaken
        };
        assert!(pair.contains(&refused), "pair {i}: {pair:?}");
    }
    let listed = s.list(now).await.unwrap();
    assert_eq!(listed.len(), 100);
    // Each listed session is the one its create reported.
    for (i, (a, b)) in pairs.iter().enumerate() {
        let winner = if outcomes[2 * i] == CreateOutcome::Created {
            a
        } else {
            b
        };
        assert!(listed.contains(winner), "pair {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_grace_and_backstop_are_capped_not_errors() {
    // "Never" as Duration::MAX: every TTL and deadline is capped at 48 bits of ms, so Redis
    // accepts each expiry and no script fails half-way.
    let prefix = unique_prefix("huge");
    let config = RedisConfig::from_url(&RedisServer::shared().url())
        .unwrap()
        .with_prefix(&prefix)
        .unwrap()
        .with_grace(Duration::MAX)
        .with_max_idle_backstop(Duration::MAX);
    let s = RedisStore::connect(config).await.unwrap();
    let now = base_time();
    let forever = record("alice", now, None, None);
    let idle = record("bob", now, hour(), None);
    for r in [&forever, &idle] {
        assert_eq!(
            s.create(r, &SessionLimits::default()).await.unwrap(),
            CreateOutcome::Created
        );
    }
    let later = now + Duration::from_secs(1800);
    assert_eq!(
        s.validate_id(&forever.key, later, true, Duration::ZERO)
            .await
            .unwrap(),
        Some(forever.id)
    );
    assert_eq!(
        s.validate_id(&idle.key, later, true, Duration::ZERO)
            .await
            .unwrap(),
        Some(idle.id)
    );
    assert_eq!(s.list(later).await.unwrap().len(), 2);
    for k in keys_of(&prefix).await {
        let pttl: i64 = RedisServer::shared()
            .cli_bytes(&[b"PTTL", &k])
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .trim()
            .parse()
            .unwrap();
        assert!(pttl > 0, "{}", String::from_utf8_lossy(&k));
    }
    assert!(s.remove(&forever.key).await.unwrap().is_some());
    assert!(s.remove_by_id(idle.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_never_recreates_the_index_without_a_ttl() {
    // The bucket index (and the count in it) gone — dropped by its TTL or evicted — a removal
    // leaves it gone rather than recreating it without a TTL; the next create under a total
    // limit then counts exactly.
    let prefix = unique_prefix("noindex");
    let s = store(&prefix, None).await;
    let now = base_time();
    let a = record("alice", now, hour(), None);
    let b = record("bob", now, hour(), None);
    for r in [&a, &b] {
        assert_eq!(
            s.create(r, &SessionLimits::default()).await.unwrap(),
            CreateOutcome::Created
        );
    }
    let due = format!("{}due", base(&prefix));
    RedisServer::shared().cli(&["DEL", &due]);
    assert!(s.remove(&a.key).await.unwrap().is_some());
    assert!(!keys_of(&prefix).await.contains(&due.clone().into_bytes()));
    // bob is still there: a total limit of 1 is reached, counted exactly.
    let one = SessionLimits {
        per_user: None,
        total: Some(1),
    };
    let c = record("carol", now, hour(), None);
    assert_eq!(s.create(&c, &one).await.unwrap(), CreateOutcome::TotalLimit);
    let two = SessionLimits {
        per_user: None,
        total: Some(2),
    };
    assert_eq!(s.create(&c, &two).await.unwrap(), CreateOutcome::Created);
    let pttl: i64 = RedisServer::shared().cli(&["PTTL", &due]).parse().unwrap();
    assert!(pttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_index_is_built_when_a_per_user_limit_first_asks() {
    // Creates without a per-user limit keep no user index (it costs a fifth of a create); the
    // first create with one builds it from the sessions there are, and from then on every
    // create keeps it. Lost with the bucket index, it is built again.
    let prefix = unique_prefix("userindex");
    let s = store(&prefix, None).await;
    let now = base_time();
    let none = SessionLimits::default();
    let limit = |n| SessionLimits {
        per_user: Some(n),
        total: None,
    };
    let user_key = |name: &str| format!("{}u:{name}", base(&prefix)).into_bytes();
    let a1 = record("alice", now, hour(), None);
    let a2 = record("alice", now, hour(), None);
    let b1 = record("bob", now, hour(), None);
    for r in [&a1, &a2, &b1] {
        assert_eq!(s.create(r, &none).await.unwrap(), CreateOutcome::Created);
    }
    let keys = keys_of(&prefix).await;
    assert!(!keys.contains(&user_key("alice")) && !keys.contains(&user_key("bob")));

    // The first per-user limit counts the sessions created before it: the requesting user's
    // and every other user's.
    let a3 = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&a3, &limit(2)).await.unwrap(),
        CreateOutcome::UserLimit
    );
    assert_eq!(
        s.create(&a3, &limit(3)).await.unwrap(),
        CreateOutcome::Created
    );
    let b2 = record("bob", now, hour(), None);
    assert_eq!(
        s.create(&b2, &limit(1)).await.unwrap(),
        CreateOutcome::UserLimit
    );
    // A create without a limit now keeps the index too.
    let d1 = record("dave", now, hour(), None);
    assert_eq!(s.create(&d1, &none).await.unwrap(), CreateOutcome::Created);
    let d2 = record("dave", now, hour(), None);
    assert_eq!(
        s.create(&d2, &limit(1)).await.unwrap(),
        CreateOutcome::UserLimit
    );
    // A removal frees its place.
    assert!(s.remove(&a1.key).await.unwrap().is_some());
    let a4 = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&a4, &limit(3)).await.unwrap(),
        CreateOutcome::Created
    );
    let keys = keys_of(&prefix).await;
    assert!(keys.contains(&user_key("alice")) && keys.contains(&user_key("dave")));

    // The bucket index lost (with its mark): creates without a limit stop keeping the user
    // index, and the next create with one builds it again, counting them.
    RedisServer::shared().cli(&["DEL", &format!("{}due", base(&prefix))]);
    let c1 = record("carol", now, hour(), None);
    assert_eq!(s.create(&c1, &none).await.unwrap(), CreateOutcome::Created);
    assert!(!keys_of(&prefix).await.contains(&user_key("carol")));
    let c2 = record("carol", now, hour(), None);
    assert_eq!(
        s.create(&c2, &limit(1)).await.unwrap(),
        CreateOutcome::UserLimit
    );
    assert_eq!(
        s.create(&b2, &limit(1)).await.unwrap(),
        CreateOutcome::UserLimit
    );
    let a5 = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&a5, &limit(3)).await.unwrap(),
        CreateOutcome::UserLimit
    );

    // Every key has a TTL, the users' hashes too.
    for k in keys_of(&prefix).await {
        let pttl: i64 = String::from_utf8(RedisServer::shared().cli_bytes(&[b"PTTL", &k]))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(pttl > 0, "{} has PTTL {pttl}", String::from_utf8_lossy(&k));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_longer_than_the_response_timeout_succeeds() {
    // A listing is many script calls, a few in flight at a time: each answer comes within the
    // response timeout even when the whole listing takes several times longer (200,000
    // sessions: ~0.8 s of the server's time, against a 250 ms timeout; a page: ~5 ms). Sent
    // all at once, the last calls would wait for all the others and time out. A server of its
    // own, so that other tests neither slow it nor wait behind it.
    const N: u32 = 200_000;
    let server = RedisServer::start();
    let prefix = unique_prefix("biglist");
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_prefix(&prefix)
        .unwrap();
    let s = RedisStore::connect(config.clone()).await.unwrap();
    let now = base_time();
    let model = record("alice", now, hour(), None);
    assert_eq!(
        s.create(&model, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::Created
    );
    // The other sessions planted by the server itself, copies of the first one's value under
    // keys spread over every bucket (the listing reads values, not ids).
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let value: Vec<u8> = redis::cmd("HGET")
        .arg(session_bucket(&prefix, &model.key))
        .arg(model.key.as_bytes())
        .query_async(&mut con)
        .await
        .unwrap();
    let plant = r#"
        for i = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
          local k = struct.pack('>I2I4', i % 65536, i) .. string.rep('k', 26)
          local sk = ARGV[1] .. 's:' .. (i % 4096)
          redis.call('HSET', sk, k, ARGV[4])
          redis.call('PEXPIRE', sk, 3600000)
        end
    "#;
    for from in (1..N).step_by(20_000) {
        let _: () = redis::cmd("EVAL")
            .arg(plant)
            .arg(0)
            .arg(base(&prefix))
            .arg(from)
            .arg((from + 20_000).min(N))
            .arg(&value)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let lister = RedisStore::connect(config.with_response_timeout(Duration::from_millis(250)))
        .await
        .unwrap();
    let listed = lister.list(now).await.unwrap();
    assert_eq!(listed.len(), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_leaves_the_index_entries_of_live_sessions() {
    // Two sessions of one bucket, with ids the store made (so their index entries are in
    // that bucket too): claiming the one that expired leaves the other, and its entry, alone.
    let s = store(&unique_prefix("claimentry"), None).await;
    let now = base_time();
    let mut short = record("alice", now, Some(Duration::from_secs(60)), None);
    let mut long = record("bob", now, hour(), None);
    let mut raw = *long.key.as_bytes();
    raw[..2].copy_from_slice(&short.key.as_bytes()[..2]);
    long.key = aaa_core::CookieHash::from_bytes(raw);
    short.id = s.new_id(&short.key).unwrap();
    long.id = s.new_id(&long.key).unwrap();
    for r in [&short, &long] {
        assert_eq!(
            s.create(r, &SessionLimits::default()).await.unwrap(),
            CreateOutcome::Created
        );
    }
    let claimed = s
        .claim_expired(now + Duration::from_secs(120), 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![short.clone()]);
    assert_eq!(s.remove_by_id(short.id).await.unwrap(), None);
    assert_eq!(s.remove_by_id(long.id).await.unwrap(), Some(long));
}
