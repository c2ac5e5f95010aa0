//! The Redis store: `validate_session` and `start_session` through the `SessionManager` on a
//! `RedisStore`, against `redis-benchmark` GET and SET at the same concurrency on the same
//! server; `get_sessions` over 100,000 sessions; Redis memory per session; and
//! tower-sessions' Redis store (`load`) as a peer. A fresh `redis-server` (testkit) serves every
//! row.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use aaa_core::{Identity, Mechanism};
use aaa_session::SessionManager;
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::redis::RedisServer;
use tower_sessions_core_014::SessionStore as _;
use tower_sessions_core_014::session::{Id, Record};
use tower_sessions_redis_store::RedisStore as TowerRedisStore;
use tower_sessions_redis_store::fred::prelude::{
    Client as FredClient, ClientLike as _, Config as FredConfig,
};

use crate::report::{Better, Row};

/// Tasks in flight at once, for us and the anchors (`redis-benchmark -c 50`).
const CONCURRENCY: usize = 50;
/// Sessions validated round-robin by the validation rows.
const LIVE_SESSIONS: usize = 1000;
/// Distinct usernames among the sessions of the listing and memory rows.
const USERS: usize = 1000;
const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

struct Sizes {
    validations: usize,
    starts: usize,
    listed: usize,
}

async fn store(server: &RedisServer, prefix: &str) -> Arc<RedisStore> {
    let config = RedisConfig::from_url(&server.url())
        .expect("url")
        .with_prefix(prefix)
        .expect("prefix");
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

/// Runs `total` calls of `op(i)` on `CONCURRENCY` tasks; returns calls per second.
async fn concurrent<F, Fut>(total: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per_task = total.div_ceil(CONCURRENCY);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                // Interleaved: at any moment the tasks work on different items (with
                // `t * per_task + k`, all of them would move in step over the same item).
                for k in 0..per_task {
                    op(k * CONCURRENCY + t).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    (per_task * CONCURRENCY) as f64 / start.elapsed().as_secs_f64()
}

/// Starts `n` sessions on `CONCURRENCY` tasks (usernames `user0`…`user{USERS-1}`); returns
/// their cookies and the rate.
async fn start_sessions(manager: &SessionManager, n: usize) -> (Vec<String>, f64) {
    let cookies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let (m, c) = (manager.clone(), cookies.clone());
    let rate = concurrent(n, move |i| {
        let (m, c) = (m.clone(), c.clone());
        async move {
            let user = m.new_user(
                Identity::new(format!("user{}", i % USERS), i % 2 == 0),
                Mechanism::Local,
                FROM,
            );
            let cookie = user.start_session(FROM).await.expect("start_session");
            c.lock().expect("cookies").push(cookie.expose().to_owned());
        }
    })
    .await;
    let cookies = std::mem::take(&mut *cookies.lock().expect("cookies"));
    (cookies, rate)
}

/// Pairs of runs compared.
const PAIRS: usize = 5;

/// Runs `ours(i)` and `theirs(i)` next to each other, `PAIRS` times, alternating which of the
/// two goes first (a drift of the machine's speed within a pair then favours neither side);
/// returns the pair (ours, theirs) whose ratio is the median.
async fn median_pair<O, OF, T, TF>(ours: O, theirs: T) -> (f64, f64)
where
    O: Fn(usize) -> OF,
    OF: Future<Output = f64>,
    T: Fn(usize) -> TF,
    TF: Future<Output = f64>,
{
    let mut pairs = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let pair = if i % 2 == 0 {
            let o = ours(i).await;
            (o, theirs(i).await)
        } else {
            let t = theirs(i).await;
            (ours(i).await, t)
        };
        pairs.push(pair);
    }
    pairs.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    pairs.get(PAIRS / 2).copied().expect("PAIRS > 0")
}

/// `redis-benchmark -p PORT -t TEST -c 50 -n N -q`: requests per second.
async fn redis_benchmark(port: u16, test: &'static str, n: usize) -> f64 {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-t", test, "-c"])
            .arg(CONCURRENCY.to_string())
            .arg("-n")
            .arg(n.to_string())
            .arg("-q")
            .output()
            .expect("redis-benchmark (apt-get install redis-server)");
        assert!(out.status.success(), "redis-benchmark failed");
        let text = String::from_utf8_lossy(&out.stdout);
        // Progress lines end in '\r'; the result is "GET: 123456.79 requests per second, …".
        text.rsplit(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .find_map(|l| {
                l.split_once(": ")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no result in redis-benchmark output: {text:?}"))
    })
    .await
    .expect("redis-benchmark task")
}

fn used_memory(server: &RedisServer) -> f64 {
    server
        .info_field("memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("INFO memory used_memory")
}

/// All the Redis rows, or (`peer_only`) only the validation rows: ours and the peer's.
pub(crate) async fn rows(quick: bool, peer_only: bool) -> Vec<Row> {
    let sizes = if quick {
        Sizes {
            validations: 20_000,
            starts: 10_000,
            listed: 20_000,
        }
    } else {
        Sizes {
            validations: 200_000,
            starts: 50_000,
            listed: 100_000,
        }
    };
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("start redis-server");
    let server = Arc::new(server);
    let mut rows = Vec::new();

    // (b) start_session, and its anchor SET (run first, so that GET finds its key).
    let manager = SessionManager::builder(store(&server, "bench").await)
        .build()
        .expect("manager");
    let (start_rate, set_rate) = if peer_only {
        (f64::NAN, f64::NAN)
    } else {
        // Warm up (scripts loaded, connections open), then pairs of runs — ours on an empty
        // table of its own, and the anchor next to it — and the pair whose ratio is the
        // median (see `median_pair`): a create costs the server several times what a SET
        // does, and this machine's speed drifts between runs by more than the difference
        // being measured, so each ratio compares runs made moments apart.
        start_sessions(&manager, sizes.starts / 10).await;
        let (server, port, starts) = (server.clone(), server.port(), sizes.starts);
        median_pair(
            move |run| {
                let server = server.clone();
                async move {
                    let store = store(&server, &format!("bench-start{run}")).await;
                    let m = SessionManager::builder(store).build().expect("manager");
                    start_sessions(&m, starts).await.1
                }
            },
            move |_| redis_benchmark(port, "set", 2 * starts),
        )
        .await
    };

    // (a) validate_session over the manager's own (cached) sessions: the common case of a
    // service validating the cookies of the sessions it serves.
    let (cookies, _) = start_sessions(&manager, LIVE_SESSIONS).await;
    let cookies = Arc::new(cookies);
    let validate = |n: usize| {
        let (m, c) = (manager.clone(), cookies.clone());
        concurrent(n, move |i| {
            let (m, c) = (m.clone(), c.clone());
            async move {
                let cookie = c.get(i % c.len()).expect("in range");
                let user = m.validate_session(cookie).await.expect("store ok");
                assert!(user.is_some(), "session must be live");
            }
        })
    };
    validate(sizes.validations / 10).await; // warm up
    if !peer_only {
        let mut validate_rate: f64 = 0.0;
        for _ in 0..3 {
            validate_rate = validate_rate.max(validate(sizes.validations).await);
        }
        let get_rate = redis_benchmark(server.port(), "get", 200_000).await;
        rows.push(Row {
            name: format!("redis validate_session, {CONCURRENCY} tasks, {LIVE_SESSIONS} sessions"),
            unit: "ops/s",
            ours: validate_rate,
            anchor: Some((format!("redis-benchmark GET -c {CONCURRENCY}"), get_rate)),
            ratio: validate_rate / get_rate,
            ratio_note: "ours/anchor",
            target: 1.0,
            better: Better::Higher,
        });
        rows.push(Row {
            name: format!("redis start_session, {CONCURRENCY} tasks"),
            unit: "ops/s",
            ours: start_rate,
            anchor: Some((format!("redis-benchmark SET -c {CONCURRENCY}"), set_rate)),
            ratio: start_rate / set_rate,
            ratio_note: "ours/anchor",
            target: 0.7,
            better: Better::Higher,
        });

        // (c), (d): a table of `listed` sessions on its own prefix.
        let lister = SessionManager::builder(store(&server, "bench-list").await)
            .build()
            .expect("manager");
        let before = used_memory(&server);
        start_sessions(&lister, sizes.listed).await;
        let after = used_memory(&server);
        let per_session = (after - before) / sizes.listed as f64;
        let mut list_secs = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            let listed = lister.get_sessions().await.expect("get_sessions");
            list_secs = list_secs.min(start.elapsed().as_secs_f64());
            assert_eq!(listed.len(), sizes.listed);
        }
        // The target is 1 s for 100,000 sessions; a quick run lists fewer and scales it.
        let list_budget = sizes.listed as f64 / 100_000.0;
        rows.push(Row {
            name: format!("redis get_sessions, {} sessions", sizes.listed),
            unit: "s",
            ours: list_secs,
            anchor: None,
            ratio: list_secs / list_budget,
            ratio_note: "ours/(1 s per 100k)",
            target: 1.0,
            better: Better::Lower,
        });
        rows.push(Row {
            name: format!(
                "redis memory per session ({} sessions, {USERS} users)",
                sizes.listed
            ),
            unit: "B/session",
            ours: per_session,
            anchor: None,
            ratio: per_session / 300.0,
            ratio_note: "ours/300 B",
            target: 1.0,
            better: Better::Lower,
        });
    }

    // (e) Peer: tower-sessions' Redis store (fred, one auto-pipelined connection, as ours),
    // `load` of LIVE_SESSIONS records at the same concurrency on the same server.
    let fred = FredClient::new(
        FredConfig::from_url(&server.url()).expect("fred config"),
        None,
        None,
        None,
    );
    fred.init().await.expect("fred connect");
    let tower = Arc::new(TowerRedisStore::new(fred));
    let mut ids = Vec::with_capacity(LIVE_SESSIONS);
    for i in 0..LIVE_SESSIONS {
        let mut rec = Record {
            id: Id::default(),
            data: crate::memory::peer_data(i),
            expiry_date: crate::memory::peer_expiry(),
        };
        tower.create(&mut rec).await.expect("tower create");
        ids.push(rec.id);
    }
    let ids = Arc::new(ids);
    let load = |n: usize| {
        let (t, ids) = (tower.clone(), ids.clone());
        concurrent(n, move |i| {
            let (t, ids) = (t.clone(), ids.clone());
            async move {
                let id = ids.get(i % ids.len()).expect("in range");
                assert!(t.load(id).await.expect("tower load").is_some());
            }
        })
    };
    load(sizes.validations / 10).await;
    // Pairs of runs, ours and the peer's next to each other, and the pair whose ratio is the
    // median (as for start_session: the machine's speed drifts between runs by more than the
    // difference measured, so each ratio compares runs made moments apart).
    let n = sizes.validations;
    let (ours_rate, tower_rate) = median_pair(move |_| validate(n), move |_| load(n)).await;
    rows.push(Row {
        name: format!(
            "redis validate_session vs tower-sessions RedisStore::load, {CONCURRENCY} tasks"
        ),
        unit: "ops/s",
        ours: ours_rate,
        anchor: Some((
            "tower-sessions-redis-store load (fred)".to_owned(),
            tower_rate,
        )),
        ratio: ours_rate / tower_rate,
        ratio_note: "ours/anchor",
        target: 1.5,
        better: Better::Higher,
    });

    // Let the server go (its drop kills it and removes its directory).
    drop(server);
    rows
}
