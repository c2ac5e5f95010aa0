//! SessionManager behaviour: the seed's session API on the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use aaa_core::{
    AaaError, EndCause, Identity, InvalidInput, LimitScope, ManualClock, Mechanism, SessionLimits,
    SessionStore,
};
use aaa_session::{MemoryStore, SessionConfig, SessionManager};
use testkit::observe::{RecordingObserver, capture_logs};
use testkit::stores::FaultyStore;

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

struct Rig {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    observer: Arc<RecordingObserver>,
    manager: SessionManager,
}

fn config(idle: u64, absolute: u64) -> SessionConfig {
    let mut c = SessionConfig::default();
    c.idle_timeout = Some(Duration::from_secs(idle));
    c.absolute_timeout = Some(Duration::from_secs(absolute));
    c.touch_granularity = Duration::ZERO;
    c
}

fn rig_with(config: SessionConfig) -> Rig {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let observer = Arc::new(RecordingObserver::default());
    let manager = manager_on(store.clone(), clock.clone(), observer.clone(), config);
    Rig {
        store,
        clock,
        observer,
        manager,
    }
}

impl Rig {
    /// Another manager (another process) on the same store, clock and observer.
    fn other(&self, config: SessionConfig) -> SessionManager {
        manager_on(
            self.store.clone(),
            self.clock.clone(),
            self.observer.clone(),
            config,
        )
    }
}

fn manager_on(
    store: Arc<dyn SessionStore>,
    clock: Arc<ManualClock>,
    observer: Arc<RecordingObserver>,
    config: SessionConfig,
) -> SessionManager {
    SessionManager::builder(store)
        .config(config)
        .clock(clock)
        .observer(observer)
        .build()
        .unwrap()
}

fn rig() -> Rig {
    rig_with(config(20 * 60, 8 * 3600))
}

#[tokio::test]
async fn validate_returns_the_same_instance() {
    let r = rig();
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let a = r
        .manager
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    let b = r
        .manager
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(
        Arc::ptr_eq(&a, &user),
        "the user that started the session is the one validated"
    );
    assert_eq!(a.username(), "admin");
    assert!(a.read_write());
    assert_eq!(a.session_cookie().as_ref(), Some(&cookie));
    assert_eq!(a.src_addr(), Some(FROM));

    // Data cached on the user survives validations.
    a.extensions().insert(42u32);
    let c = r
        .manager
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.extensions().get::<u32>(), Some(42));
}

#[tokio::test]
async fn a_second_manager_gives_its_own_instance_and_keeps_it() {
    let r = rig();
    let other = r.other(config(1200, 28800));
    let user = r
        .manager
        .new_user(Identity::new("oper", false), Mechanism::Radius, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let x = other
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    let y = other
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&x, &y));
    assert!(!Arc::ptr_eq(&x, &user));
    assert_eq!(x.session_id(), user.session_id());
    assert!(!x.read_write());
    assert_eq!(x.mechanism(), &Mechanism::Radius);
    assert_eq!(x.session_start(), user.session_start());
}

#[tokio::test]
async fn second_start_is_session_exists() {
    let r = rig();
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    user.start_session(FROM).await.unwrap();
    let e = user.start_session(FROM).await.unwrap_err();
    assert!(e.is_session_exists(), "{e}");
    // The instance obtained by validation has a session too.
    let v = r
        .manager
        .validate_session(user.session_cookie().unwrap().expose())
        .await
        .unwrap()
        .unwrap();
    assert!(v.start_session(FROM).await.unwrap_err().is_session_exists());
}

#[tokio::test]
async fn end_without_session_does_not_exist() {
    let r = rig();
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    user.start_session(FROM).await.unwrap();
    user.end_session().await.unwrap();
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert_eq!(r.manager.cached_users(), 0);
    assert!(r.store.is_empty());
}

#[tokio::test]
async fn cleared_through_a_second_manager() {
    let r = rig();
    let other = r.other(config(1200, 28800));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let id = user.session_id().unwrap();

    let listed = other.get_sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    let info = other.clear_session(id).await.unwrap();
    assert_eq!(info.username, "admin");
    assert!(
        other
            .clear_session(id)
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );

    // The first process learns it at the next validation...
    assert!(
        r.manager
            .validate_session(cookie.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(r.manager.cached_users(), 0);
    // ...and the user object's end_session says so, resetting it.
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert!(user.session_cookie().is_none());
    assert_eq!(r.observer.ends(), vec![(id, EndCause::Cleared)]);
}

/// A session cleared elsewhere whose store slot was reused by a new session: the first
/// manager's cached entry never answers for the newcomer.
#[tokio::test]
async fn cleared_elsewhere_then_slot_reused() {
    let r = rig();
    let other = r.other(config(1200, 28800));
    let a = r
        .manager
        .new_user(Identity::new("alice", true), Mechanism::Local, FROM);
    let a_cookie = a.start_session(FROM).await.unwrap();
    // Cached (with its slot) in both managers.
    let a1 = r.manager.validate_session(a_cookie.expose()).await.unwrap();
    assert!(Arc::ptr_eq(&a1.unwrap(), &a));
    assert!(
        other
            .validate_session(a_cookie.expose())
            .await
            .unwrap()
            .is_some()
    );
    other.clear_session(a.session_id().unwrap()).await.unwrap();
    // The next session takes the freed slot.
    let b = other.new_user(Identity::new("bob", false), Mechanism::Local, FROM);
    let b_cookie = b.start_session(FROM).await.unwrap();
    for m in [&r.manager, &other] {
        assert!(
            m.validate_session(a_cookie.expose())
                .await
                .unwrap()
                .is_none()
        );
        let got = m
            .validate_session(b_cookie.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.username(), "bob");
    }
    assert_eq!(r.manager.cached_users(), 1);
}

#[tokio::test]
async fn end_session_after_clear_elsewhere_without_validation() {
    let r = rig();
    let other = r.other(config(1200, 28800));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    user.start_session(FROM).await.unwrap();
    other
        .clear_session(user.session_id().unwrap())
        .await
        .unwrap();
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert!(!user.has_session());
    assert_eq!(r.manager.cached_users(), 0);
    // The user may start a new session afterwards.
    user.start_session(FROM).await.unwrap();
}

#[tokio::test]
async fn cache_pruned_when_cleared_elsewhere() {
    let r = rig();
    let other = r.other(config(1200, 28800));
    let mut ids = Vec::new();
    for i in 0..10 {
        let u = r.manager.new_user(
            Identity::new(format!("u{i}"), false),
            Mechanism::Local,
            FROM,
        );
        u.start_session(FROM).await.unwrap();
        ids.push(u.session_id().unwrap());
    }
    assert_eq!(r.manager.cached_users(), 10);
    for id in &ids[..4] {
        other.clear_session(*id).await.unwrap();
    }
    assert_eq!(r.manager.prune_cache().await.unwrap(), 4);
    assert_eq!(r.manager.cached_users(), 6);
}

#[tokio::test]
async fn idle_expiry_on_the_test_clock() {
    let r = rig_with(config(600, 8 * 3600));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let id = user.session_id().unwrap();
    // Activity slides the idle deadline.
    for _ in 0..5 {
        r.clock.advance(Duration::from_secs(599));
        assert!(
            r.manager
                .validate_session(cookie.expose())
                .await
                .unwrap()
                .is_some()
        );
    }
    r.clock.advance(Duration::from_secs(600));
    assert!(
        r.manager
            .validate_session(cookie.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(r.manager.get_sessions().await.unwrap().is_empty());
    assert_eq!(r.manager.reap().await.unwrap(), 1);
    assert_eq!(r.manager.reap().await.unwrap(), 0);
    assert_eq!(r.observer.ends(), vec![(id, EndCause::IdleTimeout)]);
    assert!(!user.has_session());
    assert_eq!(r.manager.cached_users(), 0);
}

#[tokio::test]
async fn absolute_expiry_on_the_test_clock() {
    let r = rig_with(config(600, 3600));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    let id = user.session_id().unwrap();
    for _ in 0..11 {
        r.clock.advance(Duration::from_secs(300));
        assert!(
            r.manager
                .validate_session(cookie.expose())
                .await
                .unwrap()
                .is_some()
        );
    }
    r.clock.advance(Duration::from_secs(300)); // 3600 s after the start
    assert!(
        r.manager
            .validate_session(cookie.expose())
            .await
            .unwrap()
            .is_none()
    );
    // The validation that found it expired reset the user; ending it is an error.
    assert!(!user.has_session());
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    // The reaper reports the timeout, once.
    assert_eq!(r.manager.reap().await.unwrap(), 1);
    assert_eq!(r.observer.ends(), vec![(id, EndCause::AbsoluteTimeout)]);
    assert_eq!(r.manager.reap().await.unwrap(), 0);
}

#[tokio::test]
async fn logout_after_expiry_reports_the_timeout() {
    let r = rig_with(config(600, 3600));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    user.start_session(FROM).await.unwrap();
    let id = user.session_id().unwrap();
    r.clock.advance(Duration::from_secs(601));
    // Nothing noticed the expiry before this logout: it claims the session, as a timeout.
    assert!(
        user.end_session()
            .await
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert_eq!(r.observer.ends(), vec![(id, EndCause::IdleTimeout)]);
    assert_eq!(r.manager.reap().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapers_of_two_managers_claim_each_session_once() {
    let r = rig_with(config(60, 3600));
    let other = r.other(config(60, 3600));
    for i in 0..300 {
        let m = if i % 2 == 0 { &r.manager } else { &other };
        let u = m.new_user(
            Identity::new(format!("u{i}"), false),
            Mechanism::Local,
            FROM,
        );
        u.start_session(FROM).await.unwrap();
    }
    r.clock.advance(Duration::from_secs(61));
    let (a, b) = tokio::join!(r.manager.reap(), other.reap());
    let (a_n, b_n) = (a.unwrap(), b.unwrap());
    assert_eq!(a_n + b_n, 300);
    let ends = r.observer.ends();
    assert_eq!(ends.len(), 300);
    let unique: HashSet<_> = ends.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), 300);
    assert!(ends.iter().all(|(_, c)| *c == EndCause::IdleTimeout));
    // Each manager dropped what it claimed; the rest goes at the next cache check.
    r.manager.prune_cache().await.unwrap();
    other.prune_cache().await.unwrap();
    assert_eq!(r.manager.cached_users() + other.cached_users(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_starts() {
    let r = rig();
    let mut tasks = Vec::new();
    for i in 0..10_000 {
        let m = r.manager.clone();
        tasks.push(tokio::spawn(async move {
            let u = m.new_user(
                Identity::new(format!("user{}", i % 100), false),
                Mechanism::Local,
                FROM,
            );
            let cookie = u.start_session(FROM).await.unwrap();
            (cookie.expose().to_owned(), u.session_id().unwrap())
        }));
    }
    let mut cookies = HashSet::new();
    let mut ids = HashSet::new();
    for t in tasks {
        let (c, id) = t.await.unwrap();
        assert!(cookies.insert(c));
        assert!(ids.insert(id));
    }
    assert_eq!(r.manager.get_sessions().await.unwrap().len(), 10_000);
    assert_eq!(r.manager.cached_users(), 10_000);
}

#[tokio::test]
async fn limits_are_typed_errors() {
    let mut c = config(600, 3600);
    c.limits = SessionLimits {
        per_user: Some(1),
        total: Some(2),
    };
    let r = rig_with(c);
    let a1 = r
        .manager
        .new_user(Identity::new("a", true), Mechanism::Local, FROM);
    let a2 = r
        .manager
        .new_user(Identity::new("a", true), Mechanism::Local, FROM);
    a1.start_session(FROM).await.unwrap();
    match a2.start_session(FROM).await.unwrap_err() {
        AaaError::SessionLimit { scope, limit } => {
            assert_eq!((scope, limit), (LimitScope::PerUser, 1));
        }
        e => panic!("{e}"),
    }
    assert!(!a2.has_session(), "a refused start leaves no session");
    let b = r
        .manager
        .new_user(Identity::new("b", true), Mechanism::Local, FROM);
    b.start_session(FROM).await.unwrap();
    let c = r
        .manager
        .new_user(Identity::new("c", true), Mechanism::Local, FROM);
    let e = c.start_session(FROM).await.unwrap_err();
    assert!(
        matches!(
            e,
            AaaError::SessionLimit {
                scope: LimitScope::Total,
                limit: 2
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "session limit reached: at most 2 sessions in total"
    );
}

#[tokio::test]
async fn malformed_cookies_are_invalid_input() {
    let r = rig();
    for bad in ["", "x", &"A".repeat(44), &"*".repeat(43)] {
        match r.manager.validate_session(bad).await {
            Err(AaaError::InvalidInput(InvalidInput::CookieMalformed { .. })) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Well-formed but unknown: no session.
    let unknown = aaa_core::SessionCookie::generate().unwrap();
    assert!(
        r.manager
            .validate_session(unknown.expose())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn store_down_fails_closed_and_recovers() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let clock = Arc::new(ManualClock::starting_now());
    let m = manager_on(faulty.clone(), clock, Arc::default(), config(600, 3600));
    let user = m.new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();

    faulty.set_failing(true);
    assert!(
        m.validate_session(cookie.expose())
            .await
            .unwrap_err()
            .is_store()
    );
    assert!(m.get_sessions().await.unwrap_err().is_store());
    assert!(
        m.clear_session(user.session_id().unwrap())
            .await
            .unwrap_err()
            .is_store()
    );
    let other = m.new_user(Identity::new("oper", false), Mechanism::Local, FROM);
    assert!(other.start_session(FROM).await.unwrap_err().is_store());
    assert!(!other.has_session());
    // A failed logout keeps the session so it can be retried.
    assert!(user.end_session().await.unwrap_err().is_store());
    assert!(user.has_session());

    faulty.set_failing(false);
    assert!(m.validate_session(cookie.expose()).await.unwrap().is_some());
    user.end_session().await.unwrap();
    assert!(m.validate_session(cookie.expose()).await.unwrap().is_none());
}

#[tokio::test]
async fn ipv6_sources_and_session_info() {
    let r = rig();
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    user.start_session(v6).await.unwrap();
    let info = &r.manager.get_sessions().await.unwrap()[0];
    assert_eq!(info.src_addr, v6);
    assert_eq!(Some(info.start), user.session_start());
    assert!(info.idle_deadline.is_some() && info.absolute_deadline.is_some());
}

#[tokio::test]
async fn logs_never_carry_the_cookie() {
    let (logs, _guard) = capture_logs();
    let r = rig_with(config(60, 3600));
    let user = r
        .manager
        .new_user(Identity::new("admin", true), Mechanism::Local, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    r.manager.validate_session(cookie.expose()).await.unwrap();
    let other = r
        .manager
        .new_user(Identity::new("oper", true), Mechanism::Local, FROM);
    let c2 = other.start_session(FROM).await.unwrap();
    r.manager
        .clear_session(other.session_id().unwrap())
        .await
        .unwrap();
    user.end_session().await.unwrap();
    let text = logs.text();
    assert!(text.contains("session started"), "{text}");
    assert!(text.contains("cause=cleared"), "{text}");
    assert!(text.contains("cause=logout"), "{text}");
    for secret in [&cookie, &c2] {
        assert!(!text.contains(secret.expose()));
        // Nor its hash, not even the 8-digit prefix `CookieHash`'s `Debug` shows.
        assert!(!text.contains(&secret.hash().to_hex()[..8]));
    }
}

#[tokio::test(start_paused = true)]
async fn the_reaper_task_runs_and_stops_with_its_handle() {
    let mut c = config(60, 3600);
    c.reap_interval = Duration::from_secs(5);
    let r = rig_with(c);
    let handle = r.manager.spawn_reaper();
    let u = r
        .manager
        .new_user(Identity::new("a", true), Mechanism::Local, FROM);
    u.start_session(FROM).await.unwrap();
    r.clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(r.observer.ends().len(), 1);
    assert!(!u.has_session());
    drop(handle);
    let u2 = r
        .manager
        .new_user(Identity::new("b", true), Mechanism::Local, FROM);
    u2.start_session(FROM).await.unwrap();
    r.clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        r.observer.ends().len(),
        1,
        "no reaping after the handle is dropped"
    );
}

#[tokio::test]
async fn zero_settings_are_config_errors() {
    let mut c = SessionConfig::default();
    c.idle_timeout = Some(Duration::ZERO);
    let e = SessionManager::builder(Arc::new(MemoryStore::new()))
        .config(c)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "session idle timeout must be greater than zero"
    );
}
