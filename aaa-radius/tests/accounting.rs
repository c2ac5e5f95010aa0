#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! RADIUS accounting against a real FreeRADIUS (its `detail` file read back) and against
//! hostile servers: Start and Stop for every way a session ends, servers down then up, Interim
//! Updates, the bounded queue, the spool, forged answers.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aaa_core::{
    Clock, EndCause, ExosUser, Identity, ManualClock, Mechanism, SessionObserver, SessionRecord,
    from_unix_ms, unix_ms,
};
use aaa_radius::accounting::{Accounting, AccountingConfig, SpoolConfig};
use aaa_radius::{Discard, RadiusError, RadiusServer};
use aaa_session::{MemoryStore, SessionConfig, SessionManager};
use common::{FROM, SECRET, quick};
use md5::{Digest, Md5};
use testkit::observe::capture_logs;
use testkit::radius::{
    DetailRecord, FreeRadius, FreeRadiusOptions, HostileRadius, MessageAuthenticator, Received,
    ReplySpec, SilentRadius, Tamper,
};

const FLUSH: Duration = Duration::from_secs(20);

/// Quick settings for tests on real time: the transport's `quick()` per server, 100 ms to
/// 500 ms between unacknowledged rounds, NAS-Identifier `test-nas`.
fn config(addr: SocketAddr, secret: &[u8]) -> AccountingConfig {
    let mut c = AccountingConfig::new(vec![RadiusServer::accounting(addr, secret.to_vec())]);
    c.radius.nas_identifier = Some("test-nas".to_owned());
    c.radius.retransmit = quick();
    c.retry_initial = Duration::from_millis(100);
    c.retry_max = Duration::from_millis(500);
    c
}

fn for_server(server: &FreeRadius) -> AccountingConfig {
    config(server.acct_addr(), server.secret().as_bytes())
}

/// A clock on a whole second, so second arithmetic is exact.
fn whole_second_clock() -> Arc<ManualClock> {
    let now = unix_ms(SystemTime::now()) / 1000 * 1000;
    Arc::new(ManualClock::new(from_unix_ms(now)))
}

fn manager(
    accounting: Arc<Accounting>,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
) -> SessionManager {
    let mut c = SessionConfig::default();
    c.idle_timeout = Some(Duration::from_secs(60));
    c.absolute_timeout = Some(Duration::from_secs(100));
    c.touch_granularity = Duration::ZERO;
    SessionManager::builder(store)
        .config(c)
        .clock(clock)
        .observer(accounting)
        .build()
        .unwrap()
}

async fn login(m: &SessionManager, name: &str, mechanism: Mechanism) -> (Arc<ExosUser>, String) {
    let user = m.new_user(Identity::new(name, true), mechanism, FROM);
    let cookie = user.start_session(FROM).await.unwrap();
    (user, cookie.expose().to_owned())
}

/// The Acct-Session-Id of a user's session, as documented.
fn acct_id(user: &ExosUser) -> String {
    format!(
        "{:08x}-{:x}",
        user.session_id().unwrap().as_u64(),
        unix_ms(user.session_start().unwrap())
    )
}

/// The records of one Acct-Session-Id in the detail file.
fn records_of(server: &FreeRadius, id: &str) -> Vec<DetailRecord> {
    server
        .detail()
        .into_iter()
        .filter(|r| r.get("Acct-Session-Id") == Some(id))
        .collect()
}

fn secs(t: SystemTime) -> u64 {
    unix_ms(t) / 1000
}

/// Logout, clear, idle expiry and absolute expiry, on a manual clock: one Start and one Stop
/// each, with the right attributes and causes.
#[tokio::test]
async fn start_and_stop_for_every_end() {
    let server = FreeRadius::shared();
    let accounting = Arc::new(Accounting::new(for_server(server)).unwrap());
    let clock = whole_second_clock();
    let t0 = clock.now();
    let m = manager(
        accounting.clone(),
        clock.clone(),
        Arc::new(MemoryStore::new()),
    );

    let (alice, _) = login(&m, "alice", Mechanism::Local).await;
    let (bob, _) = login(&m, "bob", Mechanism::Radius).await;
    let (carol, _) = login(&m, "carol", Mechanism::Local).await;
    let (dave, dave_cookie) = login(&m, "dave", Mechanism::Radius).await;
    let ids: Vec<String> = [&alice, &bob, &carol, &dave]
        .iter()
        .map(|u| acct_id(u))
        .collect();

    clock.advance(Duration::from_secs(5));
    alice.end_session().await.unwrap();
    m.clear_session(bob.session_id().unwrap()).await.unwrap();
    // Dave stays active; Carol goes idle (deadline t0 + 60 s).
    clock.advance(Duration::from_secs(45));
    assert!(m.validate_session(&dave_cookie).await.unwrap().is_some());
    clock.advance(Duration::from_secs(11));
    assert_eq!(m.reap().await.unwrap(), 1);
    // Dave's absolute deadline: t0 + 100 s.
    clock.advance(Duration::from_secs(34));
    assert!(m.validate_session(&dave_cookie).await.unwrap().is_some());
    clock.advance(Duration::from_secs(6));
    assert_eq!(m.reap().await.unwrap(), 1);

    accounting.flush(FLUSH).await.unwrap();
    let stats = accounting.stats();
    assert_eq!(
        (stats.acknowledged, stats.dropped, stats.queued),
        (8, 0, 0),
        "{stats:?}"
    );

    let expect = [
        ("alice", "Local", "User-Request", 5),
        ("bob", "RADIUS", "Admin-Reset", 5),
        ("carol", "Local", "Idle-Timeout", 60),
        ("dave", "RADIUS", "Session-Timeout", 100),
    ];
    for ((name, authentic, cause, time), id) in expect.iter().zip(&ids) {
        let records = records_of(server, id);
        assert_eq!(records.len(), 2, "{name}: {records:#?}");
        let (start, stop) = (&records[0], &records[1]);
        for r in [start, stop] {
            assert_eq!(r.get("User-Name"), Some(*name));
            assert_eq!(r.get("NAS-Identifier"), Some("test-nas"));
            assert_eq!(r.get("Calling-Station-Id"), Some(FROM.to_string().as_str()));
            assert_eq!(r.get("Acct-Authentic"), Some(*authentic), "{name}");
            assert_eq!(r.integer("Acct-Delay-Time"), Some(0));
            assert!(r.get("Message-Authenticator").is_none());
        }
        assert_eq!(start.get("Acct-Status-Type"), Some("Start"));
        assert_eq!(start.unix_time("Event-Timestamp"), Some(secs(t0)));
        assert!(start.get("Acct-Session-Time").is_none());
        assert!(start.get("Acct-Terminate-Cause").is_none());
        assert_eq!(stop.get("Acct-Status-Type"), Some("Stop"));
        assert_eq!(stop.get("Acct-Terminate-Cause"), Some(*cause), "{name}");
        assert_eq!(stop.integer("Acct-Session-Time"), Some(*time), "{name}");
        // The end of a timeout is its deadline.
        assert_eq!(
            stop.unix_time("Event-Timestamp"),
            Some(secs(t0) + time),
            "{name}"
        );
    }
}

/// The accounting server is down when the session starts: the Start waits, is retried, and
/// arrives once when the server is back, with an Acct-Delay-Time saying how late it is.
#[tokio::test]
async fn server_down_during_start_then_up() {
    let mut server = FreeRadius::start(FreeRadiusOptions::default());
    server.stop();
    let accounting = Arc::new(Accounting::new(for_server(&server)).unwrap());
    let clock = whole_second_clock();
    let m = manager(accounting.clone(), clock, Arc::new(MemoryStore::new()));
    let started = Instant::now();
    let (user, _) = login(&m, "erin", Mechanism::Local).await;
    let id = acct_id(&user);

    let deadline = Instant::now() + Duration::from_secs(20);
    while accounting.stats().retried < 2 || started.elapsed() < Duration::from_millis(1200) {
        assert!(Instant::now() < deadline, "{:?}", accounting.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accounting.stats().queued, 1);
    assert!(matches!(
        accounting.shutdown(Duration::from_millis(50)).await,
        Err(RadiusError::FlushTimedOut {
            pending: 1,
            unspooled: 1,
            ..
        })
    ));
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    accounting.flush(FLUSH).await.unwrap();
    let stats = accounting.stats();
    assert_eq!((stats.acknowledged, stats.dropped), (1, 0), "{stats:?}");
    assert!(
        stats.retried >= 2 && stats.sent == stats.retried + 1,
        "{stats:?}"
    );
    let records = records_of(&server, &id);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].get("Acct-Status-Type"), Some("Start"));
    assert!(
        records[0].integer("Acct-Delay-Time").unwrap() >= 1,
        "{records:#?}"
    );
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

/// The fields of an Accounting-Request the hostile server received.
fn attribute(r: &Received, t: u8) -> Option<Vec<u8>> {
    r.attribute(t)
}

fn delay_of(r: &Received) -> u32 {
    u32::from_be_bytes(attribute(r, 41).unwrap().try_into().unwrap())
}

/// RFC 2866 §3: MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
fn authenticator_ok(r: &Received, secret: &[u8]) -> bool {
    let b = &r.bytes;
    let digest: [u8; 16] = Md5::new()
        .chain_update(&b[..4])
        .chain_update([0u8; 16])
        .chain_update(&b[20..])
        .chain_update(secret)
        .finalize()
        .into();
    digest == b[4..20]
}

/// Forged, corrupted or misdirected Accounting-Responses acknowledge nothing; a correct one
/// does. Retransmissions are byte-identical; a resend with another Acct-Delay-Time has a new
/// identifier and authenticator. Requests carry no Message-Authenticator.
#[tokio::test]
async fn hostile_accounting_server_is_ignored() {
    let hostile = HostileRadius::start(SECRET);
    let ok = ReplySpec::code(5).message_authenticator(MessageAuthenticator::Absent);
    hostile.set_replies(vec![
        ok.clone().signed_with(b"not-the-secret"),
        ok.clone().tamper(Tamper::ResponseAuthenticator),
        ok.clone().tamper(Tamper::Identifier),
        ok.clone().tamper(Tamper::Truncated),
        ok.clone().tamper(Tamper::BadAttributeLength),
        ok.clone().from_other_port(),
        ReplySpec::code(2).message_authenticator(MessageAuthenticator::Absent),
        ReplySpec::code(5).message_authenticator(MessageAuthenticator::Wrong),
        ReplySpec::code(5).message_authenticator(MessageAuthenticator::Doubled),
    ]);
    let (logs, _guard) = capture_logs();
    let mut c = config(hostile.addr(), SECRET);
    c.retry_initial = Duration::from_millis(300);
    c.retry_max = Duration::from_millis(300);
    let accounting = Accounting::new(c).unwrap();
    accounting.session_started(&record("frank"));

    // Long enough for Acct-Delay-Time to change at least once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = hostile.received();
        let mut delays: Vec<u32> = got.iter().map(delay_of).collect();
        delays.dedup();
        if delays.len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{} datagrams", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accounting.stats().acknowledged, 0);
    let stats = &accounting.client().stats()[0];
    for reason in [
        Discard::BadResponseAuthenticator,
        Discard::UnknownIdentifier,
        Discard::BadLength,
        Discard::BadAttributes,
        Discard::WrongSource,
        Discard::UnexpectedCode,
        Discard::BadMessageAuthenticator,
        Discard::DuplicateMessageAuthenticator,
    ] {
        assert!(stats.discarded(reason) >= 1, "{reason:?}: {stats:?}");
    }
    assert_eq!(stats.replies, 0);

    let got = hostile.received();
    let mut by_id: HashMap<(u8, [u8; 16]), Vec<u8>> = HashMap::new();
    let mut ids_by_delay: HashMap<u32, Vec<u8>> = HashMap::new();
    for r in &got {
        assert_eq!(r.code(), 4);
        assert!(attribute(r, 80).is_none(), "no Message-Authenticator");
        assert!(authenticator_ok(r, SECRET));
        // Same identifier and authenticator: the very same bytes.
        let first = by_id
            .entry((r.identifier(), r.authenticator()))
            .or_insert_with(|| r.bytes.clone());
        assert_eq!(first, &r.bytes);
        ids_by_delay
            .entry(delay_of(r))
            .or_default()
            .push(r.identifier());
    }
    // Each Acct-Delay-Time went out under identifiers of its own.
    let mut all: Vec<(u32, u8)> = ids_by_delay
        .iter()
        .flat_map(|(d, ids)| ids.iter().map(move |i| (*d, *i)))
        .collect();
    all.sort();
    all.dedup();
    let ids: Vec<u8> = all.iter().map(|(_, i)| *i).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "{all:?}");

    // A correct answer, signed or not, is taken.
    hostile.set_replies(vec![ok]);
    accounting.flush(FLUSH).await.unwrap();
    assert_eq!(accounting.stats().acknowledged, 1);
    let text = logs.text();
    assert!(
        !text.contains(std::str::from_utf8(SECRET).unwrap()),
        "{text}"
    );
    assert!(text.contains("no accounting server acknowledged"), "{text}");
}

/// With `require_message_authenticator`, an Accounting-Response without one is dropped; a
/// correct one first is taken.
#[tokio::test]
async fn message_authenticator_required_when_configured() {
    let hostile = HostileRadius::start(SECRET);
    hostile.set_replies(vec![
        ReplySpec::code(5).message_authenticator(MessageAuthenticator::Absent),
    ]);
    let mut c = config(hostile.addr(), SECRET);
    c.radius.servers[0].require_message_authenticator = true;
    let accounting = Accounting::new(c).unwrap();
    accounting.session_started(&record("gina"));
    hostile.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(accounting.stats().acknowledged, 0);
    assert!(accounting.client().stats()[0].discarded(Discard::MissingMessageAuthenticator) >= 1);
    hostile.set_replies(vec![ReplySpec::code(5)]);
    accounting.flush(FLUSH).await.unwrap();
}

fn record(name: &str) -> SessionRecord {
    let start = SystemTime::now();
    SessionRecord {
        key: aaa_core::CookieHash::from_bytes([name.len() as u8; 32]),
        id: aaa_core::SessionId::generate().unwrap(),
        username: name.to_owned(),
        read_write: false,
        mechanism: Mechanism::Local,
        src_addr: FROM,
        start,
        last_activity: start,
        idle_timeout: None,
        absolute_deadline: None,
    }
}

/// Interim-Updates go out while the session lives and stop with its Stop; for a session
/// cleared by another manager on the same store, they stop without a Stop from here.
#[tokio::test]
async fn interim_updates_until_the_end() {
    let server = FreeRadius::shared();
    let store = Arc::new(MemoryStore::new());
    let clock = whole_second_clock();
    let mut c = for_server(server);
    c.interim_interval = Some(Duration::from_millis(200));
    let accounting = Arc::new(
        Accounting::builder(c)
            .clock(clock.clone())
            .sessions(store.clone())
            .build()
            .unwrap(),
    );
    let m = manager(accounting.clone(), clock.clone(), store.clone());
    let (henry, _) = login(&m, "henry", Mechanism::Local).await;
    let (ivy, _) = login(&m, "ivy", Mechanism::Local).await;
    let (henry_id, ivy_id) = (acct_id(&henry), acct_id(&ivy));
    clock.advance(Duration::from_secs(30));

    let interims = |id: &str| {
        records_of(server, id)
            .into_iter()
            .filter(|r| r.get("Acct-Status-Type") == Some("Interim-Update"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while interims(&henry_id) < 2 || interims(&ivy_id) < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    henry.end_session().await.unwrap();
    // Ivy is cleared by another process's manager (no accounting there).
    let other = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    other
        .clear_session(ivy.session_id().unwrap())
        .await
        .unwrap();
    accounting.flush(FLUSH).await.unwrap();
    let (henry_n, ivy_n) = (interims(&henry_id), interims(&ivy_id));
    tokio::time::sleep(Duration::from_millis(800)).await;
    accounting.flush(FLUSH).await.unwrap();
    // At most one more for ivy: one may have been due just before the clear was seen.
    assert_eq!(interims(&henry_id), henry_n);
    assert!(interims(&ivy_id) <= ivy_n + 1);

    let henry_records = records_of(server, &henry_id);
    let statuses: Vec<_> = henry_records
        .iter()
        .map(|r| r.get("Acct-Status-Type").unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"Start"));
    assert_eq!(statuses.last(), Some(&"Stop"), "{statuses:?}");
    assert!(
        statuses[1..statuses.len() - 1]
            .iter()
            .all(|s| *s == "Interim-Update")
    );
    let interim = &henry_records[1];
    assert_eq!(interim.integer("Acct-Session-Time"), Some(30));
    assert!(
        records_of(server, &ivy_id)
            .iter()
            .all(|r| r.get("Acct-Status-Type") != Some("Stop"))
    );
}

/// A full queue refuses records with an error and a counter, never silently; the records
/// accepted are all delivered.
#[tokio::test]
async fn a_full_queue_is_an_error_and_a_metric() {
    let hostile = HostileRadius::start(SECRET);
    let (logs, _guard) = capture_logs();
    let mut c = config(hostile.addr(), SECRET);
    c.queue_capacity = 3;
    let accounting = Accounting::new(c).unwrap();
    for i in 0..5 {
        accounting.session_started(&record(&format!("user{i}")));
    }
    let stats = accounting.stats();
    assert_eq!(
        (stats.enqueued, stats.dropped, stats.queued),
        (3, 2, 3),
        "{stats:?}"
    );
    assert!(
        logs.text().contains("accounting record dropped"),
        "{}",
        logs.text()
    );
    assert!(logs.text().contains("queue is full"), "{}", logs.text());
    hostile.set_replies(vec![
        ReplySpec::code(5).message_authenticator(MessageAuthenticator::Absent),
    ]);
    accounting.flush(FLUSH).await.unwrap();
    assert_eq!(accounting.stats().acknowledged, 3);
}

/// Records spooled by one instance (whose servers never answered) are sent by the next one
/// using the spool, once each, before its own; the spool files hold no secret, are 0600 in
/// 0700 directories, and are gone once acknowledged. A spool over its limit is an error and a
/// metric while the record stays queued in memory.
#[tokio::test]
async fn the_spool_survives_the_instance() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = FreeRadius::shared();
    let silent = SilentRadius::start();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let mut c = config(silent.addr(), b"a-secret-never-written-down");
    c.spool = Some(SpoolConfig::new(&spool_dir));
    let first = Accounting::new(c).unwrap();
    let records: Vec<SessionRecord> = (0..4).map(|i| record(&format!("spooled{i}"))).collect();
    for r in &records {
        first.session_started(r);
    }
    first.session_ended(&records[0], EndCause::Logout, SystemTime::now());
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.stats().spooled < 5 {
        assert!(Instant::now() < deadline, "{:?}", first.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let own = first.spool_dir().unwrap().to_path_buf();
    assert_eq!(
        std::fs::metadata(&spool_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&own).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&own)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "acct"))
        .collect();
    assert_eq!(files.len(), 5);
    for f in &files {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains("a-secret-never-written-down"));
    }
    // With a spool, a graceful end does not wait for silent servers once all is on disk.
    first.shutdown(FLUSH).await.unwrap();
    drop(first);
    assert!(own.exists());

    let mut c = for_server(server);
    c.spool = Some(SpoolConfig::new(&spool_dir));
    let second = Accounting::new(c).unwrap();
    assert_eq!(second.stats().loaded, 5);
    second.flush(FLUSH).await.unwrap();
    assert_eq!(second.stats().acknowledged, 5);
    for (i, r) in records.iter().enumerate() {
        let got = records_of(server, &aaa_radius::accounting::session_id(r));
        let statuses: Vec<_> = got
            .iter()
            .map(|d| d.get("Acct-Status-Type").unwrap())
            .collect();
        if i == 0 {
            assert_eq!(statuses, ["Start", "Stop"]);
        } else {
            assert_eq!(statuses, ["Start"]);
        }
    }
    assert!(!own.exists(), "taken over and removed");
    let second_dir = second.spool_dir().unwrap().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&second_dir).unwrap().count() > 1 {
        assert!(
            Instant::now() < deadline,
            "acknowledged records' files are deleted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(second);
    assert!(!second_dir.exists());

    // A spool over its limit: an error and a metric; the record stays queued in memory.
    let mut c = config(silent.addr(), SECRET);
    let mut spool = SpoolConfig::new(&spool_dir);
    spool.max_records = 2;
    c.spool = Some(spool);
    let (logs, _guard) = capture_logs();
    let small = Accounting::new(c).unwrap();
    for i in 0..4 {
        small.session_started(&record(&format!("over{i}")));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // The over-limit errors are counted before the batch's other records are written.
    while small.stats().spool_errors < 2 || small.stats().spooled < 2 {
        assert!(Instant::now() < deadline, "{:?}", small.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = small.stats();
    assert_eq!(
        (stats.queued, stats.spooled, stats.dropped),
        (4, 2, 0),
        "{stats:?}"
    );
    assert!(logs.text().contains("spool"), "{}", logs.text());
    assert!(matches!(
        small.shutdown(Duration::from_millis(50)).await,
        Err(RadiusError::FlushTimedOut {
            pending: 4,
            unspooled: 2,
            ..
        })
    ));
}

#[test]
fn configuration_errors() {
    let addr: SocketAddr = "127.0.0.1:1813".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Outside a runtime: a typed error.
    assert!(matches!(
        Accounting::new(config(addr, SECRET)),
        Err(RadiusError::NoRuntime(_))
    ));
    let _enter = rt.enter();
    for (which, setting) in [
        (0, "queue_capacity"),
        (1, "max_in_flight"),
        (2, "spool.max_records"),
        (3, "spool.max_bytes"),
    ] {
        let mut c = config(addr, SECRET);
        let mut spool = SpoolConfig::new("/nonexistent");
        match which {
            0 => c.queue_capacity = 0,
            1 => c.max_in_flight = 0,
            2 => spool.max_records = 0,
            _ => spool.max_bytes = 0,
        }
        c.spool = Some(spool);
        match Accounting::new(c) {
            Err(RadiusError::ZeroLimit { setting: s }) => assert_eq!(s, setting),
            other => panic!("{setting}: {other:?}"),
        }
    }
    let mut c = config(addr, SECRET);
    c.interim_interval = Some(Duration::ZERO);
    assert!(matches!(
        Accounting::new(c),
        Err(RadiusError::ZeroDuration {
            setting: "interim_interval"
        })
    ));
    let mut c = config(addr, SECRET);
    c.radius.servers.clear();
    assert!(matches!(Accounting::new(c), Err(RadiusError::NoServers)));
    // Debug shows no secret.
    let c = config(addr, b"debug-must-not-show-this");
    assert!(!format!("{c:?}").contains("debug-must-not-show-this"));
    let a = Accounting::new(c).unwrap();
    assert!(!format!("{a:?}").contains("debug-must-not-show-this"));
}
