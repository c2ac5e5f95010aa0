//! `validate_session` on the memory store, against tower-sessions' `MemoryStore::load`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aaa_core::{Identity, Mechanism};
use aaa_session::{MemoryStore, SessionManager};
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::{Id, Record};

use crate::report::{Better, Row};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// A fixed pseudo-random visiting order over `n` items (xorshift; no RNG needed for an order),
/// computed as it goes: a precomputed order of millions of indices would stream through the
/// caches and evict the very tables being measured (ours and the anchor's alike).
fn order(n: usize, len: usize, seed: u64) -> impl Iterator<Item = usize> {
    let mut x = seed | 1;
    (0..len).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x % n as u64).unwrap_or(0)
    })
}

/// What the tower-sessions anchors store per session (as an application would: the username
/// and the privilege), for the memory and the Redis peers alike.
pub(crate) fn peer_data(i: usize) -> std::collections::HashMap<String, serde_json::Value> {
    std::collections::HashMap::from([
        ("username".to_owned(), serde_json::json!(format!("user{i}"))),
        (
            "read_write".to_owned(),
            serde_json::json!(i.is_multiple_of(2)),
        ),
    ])
}

/// The anchors' session expiry: 8 hours from now (our absolute timeout).
pub(crate) fn peer_expiry() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::hours(8)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// ns per validation with `threads` threads validating at once; returns (ns/op per thread,
/// total throughput in ops/s).
/// All cookies in one string, 43 bytes each: as a request's cookie would be, in one place
/// rather than behind its own heap pointer.
struct Cookies(String);

impl Cookies {
    fn len(&self) -> usize {
        self.0.len() / 43
    }
    fn get(&self, i: usize) -> &str {
        self.0.get(i * 43..i * 43 + 43).expect("index in range")
    }
}

fn validate_run(
    manager: &SessionManager,
    cookies: &Arc<Cookies>,
    threads: usize,
    ops: usize,
) -> (f64, f64) {
    validate_run_over(manager, cookies, cookies.len(), threads, ops)
}

/// As `validate_run`, visiting only the first `active` sessions (a hot set among all).
fn validate_run_over(
    manager: &SessionManager,
    cookies: &Arc<Cookies>,
    active: usize,
    threads: usize,
    ops: usize,
) -> (f64, f64) {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let manager = manager.clone();
            let cookies = cookies.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = current_thread();
                let idx = order(active, ops, 0x9e37_79b9_7f4a_7c15 ^ t as u64);
                barrier.wait();
                let start = Instant::now();
                rt.block_on(async {
                    for i in idx {
                        let c = cookies.get(i);
                        let u = manager.validate_session(c).await.expect("store ok");
                        assert!(u.is_some(), "session must be live");
                    }
                });
                start.elapsed()
            })
        })
        .collect();
    barrier.wait();
    let wall = Instant::now();
    let per_thread: Vec<Duration> = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .collect();
    let wall = wall.elapsed();
    let mean = per_thread.iter().map(Duration::as_secs_f64).sum::<f64>() / threads as f64;
    let ns_per_op = mean * 1e9 / ops as f64;
    let throughput = (threads * ops) as f64 / wall.as_secs_f64();
    (ns_per_op, throughput)
}

fn best_of<T: Copy + PartialOrd>(
    rounds: usize,
    mut f: impl FnMut() -> T,
    key: impl Fn(T) -> f64,
) -> T {
    let mut best: Option<T> = None;
    for _ in 0..rounds {
        let v = f();
        if best.is_none_or(|b| key(v) < key(b)) {
            best = Some(v);
        }
    }
    best.expect("at least one round")
}

pub(crate) fn rows(sessions: usize, ops: usize) -> Vec<Row> {
    let rt = current_thread();
    let manager = SessionManager::builder(Arc::new(MemoryStore::new()))
        .build()
        .expect("manager");
    let cookies = rt.block_on(async {
        let mut all = String::with_capacity(sessions * 43);
        for i in 0..sessions {
            let u = manager.new_user(
                Identity::new(format!("user{i}"), i % 2 == 0),
                Mechanism::Local,
                FROM,
            );
            all.push_str(u.start_session(FROM).await.expect("start").expose());
        }
        Cookies(all)
    });
    let cookies = Arc::new(cookies);
    // Warm up (fills the per-process instance cache, as a running service would have).
    validate_run(&manager, &cookies, 1, sessions);

    let (one_ns, one_tp) = best_of(5, || validate_run(&manager, &cookies, 1, ops), |(ns, _)| ns);
    // Context for the absolute target: the same store, with validations spread over a hot set of
    // 1,000 sessions (a few active operators among many idle sessions).
    let active = 1000.min(sessions);
    let (hot_ns, _) = best_of(
        5,
        || validate_run_over(&manager, &cookies, active, 1, ops),
        |(ns, _)| ns,
    );
    let (_, two_tp) = best_of(
        5,
        || validate_run(&manager, &cookies, 2, ops),
        |(_, tp)| -tp,
    );

    // Anchor: tower-sessions' MemoryStore::load over the same number of sessions.
    let tower = tower_sessions_memory_store::MemoryStore::default();
    let ids: Vec<Id> = rt.block_on(async {
        let mut ids = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let mut rec = Record {
                id: Id::default(),
                data: peer_data(i),
                expiry_date: peer_expiry(),
            };
            tower.create(&mut rec).await.expect("tower create");
            ids.push(rec.id);
        }
        ids
    });
    let anchor_ns = best_of(
        5,
        || {
            let idx = order(ids.len(), ops, 7);
            let start = Instant::now();
            rt.block_on(async {
                for i in idx {
                    let r = tower
                        .load(ids.get(i).expect("in range"))
                        .await
                        .expect("load");
                    assert!(r.is_some());
                }
            });
            start.elapsed().as_secs_f64() * 1e9 / ops as f64
        },
        |ns| ns,
    );

    vec![
        Row {
            name: format!("memory validate_session, {sessions} sessions, 1 thread"),
            unit: "ns/op",
            ours: one_ns,
            anchor: Some(("tower-sessions MemoryStore::load".to_owned(), anchor_ns)),
            ratio: anchor_ns / one_ns,
            ratio_note: "anchor/ours",
            target: 4.0,
            better: Better::Higher,
        },
        Row {
            name: "memory validate_session, absolute (target ≤ 200 ns)".to_owned(),
            unit: "ns/op",
            ours: one_ns,
            anchor: None,
            ratio: one_ns / 200.0,
            ratio_note: "ours/200ns",
            target: 1.0,
            better: Better::Lower,
        },
        Row {
            name: format!(
                "memory validate_session, {sessions} sessions of which {active} active (context row)"
            ),
            unit: "ns/op",
            ours: hot_ns,
            anchor: None,
            ratio: hot_ns / 200.0,
            ratio_note: "ours/200ns",
            target: 1.0,
            better: Better::Lower,
        },
        Row {
            name: format!("memory validate_session, {sessions} sessions, 2 threads vs 1"),
            unit: "Mops/s",
            ours: two_tp / 1e6,
            anchor: Some(("same, 1 thread".to_owned(), one_tp / 1e6)),
            ratio: two_tp / one_tp,
            ratio_note: "2 threads/1 thread",
            target: 1.6,
            better: Better::Higher,
        },
    ]
}
