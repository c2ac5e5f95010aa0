//! The store conformance suite: every `SessionStore` must pass each of these.
//!
//! Run it with [`store_conformance!`](crate::store_conformance), which makes one `#[tokio::test]`
//! per case, each on a fresh store from the factory expression you give.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aaa_core::{
    CookieHash, CreateOutcome, Mechanism, SessionCookie, SessionId, SessionLimits, SessionRecord,
    SessionStore, truncate_ms,
};

const NO_LIMITS: SessionLimits = SessionLimits {
    per_user: None,
    total: None,
};

/// A base time for records: now, in whole milliseconds (stores may set TTLs from real time).
pub fn base_time() -> SystemTime {
    truncate_ms(SystemTime::now())
}

/// A fresh record for `username` that started at `start`, with fresh random key and id.
pub fn record(
    username: &str,
    start: SystemTime,
    idle: Option<Duration>,
    absolute: Option<Duration>,
) -> SessionRecord {
    let cookie = SessionCookie::generate().expect("OS random generator");
    SessionRecord {
        key: cookie.hash(),
        id: SessionId::generate().expect("OS random generator"),
        username: username.to_owned(),
        read_write: username.starts_with("admin"),
        mechanism: Mechanism::Local,
        src_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        start,
        last_activity: start,
        idle_timeout: idle,
        absolute_deadline: absolute.map(|a| start + a),
    }
}

fn hour() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}

async fn create_ok(store: &dyn SessionStore, r: &SessionRecord) {
    assert_eq!(
        store.create(r, &NO_LIMITS).await.expect("create"),
        CreateOutcome::Created
    );
}

/// create / get / validate / list / remove / remove_by_id.
pub async fn create_get_remove(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let a = record("alice", now, hour(), Some(Duration::from_secs(8 * 3600)));
    let b = record("bob", now, None, None);
    create_ok(&*store, &a).await;
    create_ok(&*store, &b).await;

    assert_eq!(store.get(&a.key, now).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.get(&b.key, now).await.unwrap().as_ref(), Some(&b));
    let unknown = SessionCookie::generate().unwrap().hash();
    assert_eq!(store.get(&unknown, now).await.unwrap(), None);

    let mut listed: Vec<SessionId> = store
        .list(now)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    listed.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(listed, want);

    assert_eq!(
        store.remove(&a.key).await.unwrap().map(|r| r.id),
        Some(a.id)
    );
    assert_eq!(store.get(&a.key, now).await.unwrap(), None);
    assert_eq!(store.remove(&a.key).await.unwrap(), None);

    assert_eq!(
        store.remove_by_id(b.id).await.unwrap().map(|r| r.key),
        Some(b.key)
    );
    assert_eq!(store.remove_by_id(b.id).await.unwrap(), None);
    assert_eq!(store.get(&b.key, now).await.unwrap(), None);
    assert!(store.list(now).await.unwrap().is_empty());
}

/// A key or id collision never overwrites the existing record.
pub async fn collision_never_overwrites(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let a = record("alice", now, hour(), None);
    create_ok(&*store, &a).await;

    let mut same_key = record("mallory", now, hour(), None);
    same_key.key = a.key;
    assert_eq!(
        store.create(&same_key, &NO_LIMITS).await.unwrap(),
        CreateOutcome::KeyTaken
    );
    let mut same_id = record("mallory", now, hour(), None);
    same_id.id = a.id;
    assert_eq!(
        store.create(&same_id, &NO_LIMITS).await.unwrap(),
        CreateOutcome::IdTaken
    );

    assert_eq!(store.get(&a.key, now).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.get(&same_id.key, now).await.unwrap(), None);
    assert_eq!(store.list(now).await.unwrap().len(), 1);
}

/// Ids the store makes (`new_id`, as the session manager uses it) work as any other: they
/// are refused when taken, found by `remove_by_id`, listed and claimed once, and free again
/// once their session is gone.
pub async fn store_made_ids(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let mut made = Vec::new();
    for i in 0..50 {
        let mut r = record(&format!("user{i}"), now, hour(), None);
        r.id = store.new_id(&r.key).expect("OS random generator");
        create_ok(&*store, &r).await;
        made.push(r);
    }
    let mut dup = record("mallory", now, hour(), None);
    dup.id = made[0].id;
    assert_eq!(
        store.create(&dup, &NO_LIMITS).await.unwrap(),
        CreateOutcome::IdTaken
    );
    for r in &made[..25] {
        assert_eq!(store.remove_by_id(r.id).await.unwrap().as_ref(), Some(r));
    }
    let listed = store.list(now).await.unwrap();
    assert_eq!(listed.len(), 25);
    for r in &made[25..] {
        assert!(listed.contains(r));
    }
    let later = now + Duration::from_secs(7200);
    assert_eq!(store.claim_expired(later, 100).await.unwrap().len(), 25);
    assert!(store.claim_expired(later, 100).await.unwrap().is_empty());
    assert!(store.list(now).await.unwrap().is_empty());
    // The ids are free again.
    create_ok(&*store, &dup).await;
    assert_eq!(store.remove_by_id(dup.id).await.unwrap(), Some(dup));
}

/// Revocation is final: no validation, touch or listing brings a removed record back.
pub async fn revocation_is_final(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let a = record("alice", now, hour(), None);
    let b = record("bob", now, hour(), None);
    create_ok(&*store, &a).await;
    create_ok(&*store, &b).await;
    store.remove(&a.key).await.unwrap().expect("a was there");
    store
        .remove_by_id(b.id)
        .await
        .unwrap()
        .expect("b was there");
    for key in [a.key, b.key] {
        for t in [now, now + Duration::from_secs(1)] {
            assert_eq!(
                store.validate(&key, t, true, Duration::ZERO).await.unwrap(),
                None
            );
            assert_eq!(store.get(&key, t).await.unwrap(), None);
        }
    }
    assert!(store.list(now).await.unwrap().is_empty());
    assert_eq!(
        store.contains(&[a.key, b.key], now).await.unwrap(),
        vec![false, false]
    );
    assert!(
        store
            .claim_expired(now + Duration::from_secs(7200), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The idle deadline slides on touching validations; the absolute deadline does not move;
/// both are checked on every read.
pub async fn deadlines_honoured(store: Arc<dyn SessionStore>) {
    let t0 = base_time();
    let ms = Duration::from_millis;
    let idle = record("alice", t0, Some(ms(10_000)), None);
    let both = record("bob", t0, Some(ms(10_000)), Some(ms(25_000)));
    create_ok(&*store, &idle).await;
    create_ok(&*store, &both).await;

    // A read without touch does not slide.
    assert!(
        store
            .get(&idle.key, t0 + ms(9_999))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(&idle.key, t0 + ms(10_000))
            .await
            .unwrap()
            .is_none()
    );

    // Touching slides it.
    let r = store
        .validate(&idle.key, t0 + ms(9_000), true, Duration::ZERO)
        .await
        .unwrap()
        .expect("live at 9 s");
    assert_eq!(r.last_activity, t0 + ms(9_000));
    assert!(
        store
            .get(&idle.key, t0 + ms(18_999))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(&idle.key, t0 + ms(19_000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .validate(&idle.key, t0 + ms(19_000), true, Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );

    // The absolute deadline wins however often the session is used.
    for s in [8_000, 16_000, 24_000] {
        assert!(
            store
                .validate(&both.key, t0 + ms(s), true, Duration::ZERO)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        store
            .get(&both.key, t0 + ms(24_999))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(&both.key, t0 + ms(25_000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .validate(&both.key, t0 + ms(25_000), true, Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );

    // An expired record stays until claimed, and the claimer gets it back (to learn the cause).
    let removed = store
        .remove(&both.key)
        .await
        .unwrap()
        .expect("expired but unclaimed");
    assert_eq!(removed.id, both.id);
}

/// `list` and `contains` never count an expired record.
pub async fn list_never_returns_expired(store: Arc<dyn SessionStore>) {
    let t0 = base_time();
    let short = record("alice", t0, Some(Duration::from_secs(60)), None);
    let long = record("bob", t0, hour(), None);
    let abs = record("carol", t0, None, Some(Duration::from_secs(120)));
    for r in [&short, &long, &abs] {
        create_ok(&*store, r).await;
    }
    let ids = |v: Vec<SessionRecord>| v.into_iter().map(|r| r.id).collect::<HashSet<_>>();
    assert_eq!(ids(store.list(t0).await.unwrap()).len(), 3);
    let at = t0 + Duration::from_secs(90);
    assert_eq!(
        ids(store.list(at).await.unwrap()),
        HashSet::from([long.id, abs.id])
    );
    assert_eq!(
        store
            .contains(&[short.key, long.key, abs.key], at)
            .await
            .unwrap(),
        vec![false, true, true]
    );
    let at = t0 + Duration::from_secs(150);
    assert_eq!(ids(store.list(at).await.unwrap()), HashSet::from([long.id]));
}

/// 1,000 concurrent creates all succeed and are all listed.
pub async fn concurrent_creates(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = record(&format!("user{}", i % 10), now, hour(), None);
            let outcome = store.create(&r, &NO_LIMITS).await.unwrap();
            (r.id, outcome)
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let (id, outcome) = t.await.unwrap();
        // Random 32-bit ids may collide; the store must say so rather than overwrite.
        if outcome == CreateOutcome::Created {
            ids.insert(id);
        } else {
            assert_eq!(outcome, CreateOutcome::IdTaken);
        }
    }
    assert!(ids.len() >= 995, "only {} of 1000 created", ids.len());
    let listed: HashSet<SessionId> = store
        .list(now)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ids);
}

/// Each expired record is claimed by exactly one of several concurrent reapers; live records
/// are never claimed.
pub async fn claim_exactly_once(store: Arc<dyn SessionStore>) {
    let t0 = base_time();
    let mut expiring = HashSet::new();
    for i in 0..200 {
        let r = record(&format!("user{i}"), t0, Some(Duration::from_secs(30)), None);
        create_ok(&*store, &r).await;
        expiring.insert(r.id);
    }
    let live = record("alice", t0, hour(), None);
    create_ok(&*store, &live).await;

    // Nothing has expired yet.
    assert!(store.claim_expired(t0, 1000).await.unwrap().is_empty());

    let at = t0 + Duration::from_secs(31);
    let mut reapers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        reapers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_expired(at, 16).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                assert!(batch.len() <= 16);
                mine.extend(batch.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for r in reapers {
        claimed.extend(r.await.unwrap());
    }
    let unique: HashSet<SessionId> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a record was claimed twice");
    assert_eq!(unique, expiring);
    assert!(store.get(&live.key, at).await.unwrap().is_some());
    assert!(store.claim_expired(at, 1000).await.unwrap().is_empty());
}

/// Limits per user and in total are enforced at create, counting only live sessions.
pub async fn limits_enforced(store: Arc<dyn SessionStore>) {
    let t0 = base_time();
    let limits = SessionLimits {
        per_user: Some(2),
        total: Some(3),
    };
    let a1 = record("alice", t0, Some(Duration::from_secs(60)), None);
    let a2 = record("alice", t0, hour(), None);
    let a3 = record("alice", t0, hour(), None);
    assert_eq!(
        store.create(&a1, &limits).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create(&a2, &limits).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create(&a3, &limits).await.unwrap(),
        CreateOutcome::UserLimit
    );
    let b1 = record("bob", t0, hour(), None);
    let b2 = record("bob", t0, hour(), None);
    assert_eq!(
        store.create(&b1, &limits).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create(&b2, &limits).await.unwrap(),
        CreateOutcome::TotalLimit
    );
    assert!(store.get(&a3.key, t0).await.unwrap().is_none());
    assert!(store.get(&b2.key, t0).await.unwrap().is_none());

    // After alice's first session expires (not yet claimed), she may start another.
    let later = t0 + Duration::from_secs(61);
    let mut a4 = record("alice", later, hour(), None);
    a4.start = later;
    a4.last_activity = later;
    assert_eq!(
        store.create(&a4, &limits).await.unwrap(),
        CreateOutcome::Created
    );
    // Removing one frees a place in total.
    store.remove(&b1.key).await.unwrap().expect("b1");
    let mut b3 = record("bob", later, hour(), None);
    b3.start = later;
    b3.last_activity = later;
    let mut c1 = record("carol", later, hour(), None);
    c1.start = later;
    c1.last_activity = later;
    assert_eq!(
        store.create(&b3, &limits).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        store.create(&c1, &limits).await.unwrap(),
        CreateOutcome::TotalLimit
    );
}

/// Touch granularity: a touch inside the granularity may skip the write, but a touch past it
/// always slides the deadline.
pub async fn touch_granularity(store: Arc<dyn SessionStore>) {
    let t0 = base_time();
    let r = record("alice", t0, Some(Duration::from_secs(60)), None);
    create_ok(&*store, &r).await;
    let gran = Duration::from_secs(5);
    let got = store
        .validate(&r.key, t0 + Duration::from_secs(6), true, gran)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(got.last_activity, t0 + Duration::from_secs(6));
    assert!(
        store
            .get(&r.key, t0 + Duration::from_secs(65))
            .await
            .unwrap()
            .is_some()
    );
}

/// Keys are hashes: a random key is never found, and the record keeps exactly the key given.
pub async fn keys_are_hashes(store: Arc<dyn SessionStore>) {
    let now = base_time();
    let r = record("alice", now, hour(), None);
    create_ok(&*store, &r).await;
    let got = store.get(&r.key, now).await.unwrap().expect("live");
    assert!(got.key.ct_eq(&r.key));
    let other = CookieHash::from_bytes([0; 32]);
    assert!(store.get(&other, now).await.unwrap().is_none());
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$factory` (an
/// expression evaluating to a future of `Arc<dyn SessionStore>`; it is evaluated once per test).
#[macro_export]
macro_rules! store_conformance {
    ($factory:expr) => {
        $crate::store_conformance!(@cases $factory;
            create_get_remove, collision_never_overwrites, store_made_ids, revocation_is_final,
            deadlines_honoured, list_never_returns_expired, concurrent_creates,
            claim_exactly_once, limits_enforced, touch_granularity, keys_are_hashes);
    };
    (@cases $factory:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::__aaa_core::SessionStore> = $factory.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
