//! A worker process: an `Aaa` of its own (RADIUS then local accounts, sessions in the shared
//! Redis), and `clients` tasks running a mix of operations until the deadline. Every session
//! it is told has started is journaled (fsynced) before it counts; every end it is told of is
//! journaled after the call returned. See the crate documentation for the mix and the checks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aaa::local::{HashParams, LocalAccounts, LocalConfig};
use aaa::radius::{Discard, RadiusAuthenticator, RadiusConfig, RadiusServer, Retransmit};
use aaa::store_redis::RedisConfig;
use aaa::{Aaa, AaaError, ExosUser, OnReject, SessionId, SystemClock};
use tokio::time::Instant;

use crate::config::{self, Expect, Realm, UserSpec, WorkerConfig};
use crate::journal::{Entry, Follower, Journal};
use crate::report::{
    JournalCounts, LoginStats, OpStats, RadiusCounters, RadiusSample, WorkerReport,
};
use crate::rng::Rng;

/// Ended own sessions kept for re-validation.
const ENDED_KEPT: usize = 512;
/// Sessions of other workers kept for validation.
const OTHERS_KEPT: usize = 4096;
/// Ends of other workers' sessions remembered (ids), at most.
const OTHERS_ENDED_KEPT: usize = 200_000;
/// Security failures described in the report, at most.
const NOTES_KEPT: usize = 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a worker from its configuration file; the process's exit code.
pub(crate) fn main(config_path: &Path) -> i32 {
    let cfg: WorkerConfig = match std::fs::read_to_string(config_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aaa-soak worker: {}: {e}", config_path.display());
            return 2;
        }
    };
    install_panic_hook(&cfg);
    crate::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aaa-soak worker: {e}");
            3
        }
    }
}

/// A panic anywhere (any thread, any task) writes `panic-<i>.txt` and ends the process with
/// code 101: tokio would otherwise catch a panicking task and carry on.
fn install_panic_hook(cfg: &WorkerConfig) {
    let marker = config::panic_path(&cfg.dir, cfg.index);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = format!("{info}\n{}\n", std::backtrace::Backtrace::force_capture());
        let _ = std::fs::write(&marker, &text);
        default(info);
        std::process::exit(101);
    }));
}

/// An own session, as this process knows it.
#[derive(Clone)]
struct OwnSession {
    id: SessionId,
    cookie: String,
    user: Arc<ExosUser>,
}

#[derive(Default)]
struct Own {
    live: Vec<OwnSession>,
    /// (id, cookie) of sessions this process ended or cleared (must never validate again).
    ended: VecDeque<(SessionId, String)>,
}

/// What this process knows of the other workers' sessions, from their journals.
#[derive(Default)]
struct Others {
    /// (id, cookie, user) of sessions others started.
    started: VecDeque<(String, String, String)>,
    /// Cookies by id, of the sessions in `started`.
    cookies: HashMap<String, String>,
    /// Ids of sessions known to have ended (journaled `ended` or `cleared` by anyone).
    ended: HashSet<String>,
}

#[derive(Default)]
struct Stats {
    ops: std::collections::BTreeMap<String, OpStats>,
    logins: LoginStats,
    journal: JournalCounts,
    security_failures: u64,
    security_notes: Vec<String>,
    revived: u64,
    identity_mismatches: u64,
}

impl Stats {
    fn op(&mut self, kind: &str) -> &mut OpStats {
        self.ops.entry(kind.to_owned()).or_default()
    }
    fn security(&mut self, note: String) {
        tracing::error!(target: "aaa_soak", "SECURITY: {note}");
        self.security_failures += 1;
        if self.security_notes.len() < NOTES_KEPT {
            self.security_notes.push(note);
        }
    }
}

struct Shared {
    cfg: WorkerConfig,
    aaa: Aaa,
    radius: RadiusAuthenticator,
    journal: Arc<Mutex<Journal>>,
    own: Mutex<Own>,
    others: Mutex<Others>,
    stats: Mutex<Stats>,
    deadline: Instant,
    parent: u32,
}

impl Shared {
    /// Whether the clients should go on.
    fn running(&self) -> bool {
        Instant::now() < self.deadline && std::os::unix::process::parent_id() == self.parent
    }

    /// Appends to the journal on the blocking pool; with `sync`, once it is on disk. A journal
    /// that cannot be written makes the run meaningless: panic (reported as such).
    async fn journal(&self, entry: Entry, sync: bool) {
        let journal = self.journal.clone();
        let result = tokio::task::spawn_blocking(move || lock(&journal).append(&entry, sync)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("cannot write the journal: {e}"),
            Err(e) => panic!("the journal writer failed: {e}"),
        }
    }

    /// Runs one call under the hang bound, recording its latency and outcome under `kind`.
    /// `None`: it hung (and was abandoned).
    async fn timed<T>(
        &self,
        kind: &str,
        call: impl Future<Output = Result<T, AaaError>>,
    ) -> Option<Result<T, AaaError>> {
        let start = Instant::now();
        let result = tokio::time::timeout(self.cfg.hang_bound(), call).await;
        let took = start.elapsed();
        let mut st = lock(&self.stats);
        let op = st.op(kind);
        op.record_latency(took);
        match &result {
            Err(_) => {
                op.hung += 1;
                drop(st);
                tracing::error!(target: "aaa_soak", kind, ?took, "HUNG: call abandoned after the hang bound");
            }
            Ok(Err(e)) => op.error(error_kind(e)),
            Ok(Ok(_)) => {}
        }
        result.ok()
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }
}

fn error_kind(e: &AaaError) -> &'static str {
    match e {
        AaaError::SessionDoesNotExist => "does-not-exist",
        AaaError::SessionExists => "exists",
        AaaError::Unavailable(_) => "unavailable",
        AaaError::Store(_) => "store",
        AaaError::InvalidInput(_) => "invalid-input",
        AaaError::SessionLimit { .. } => "limit",
        AaaError::Shutdown => "shutdown",
        _ => "other",
    }
}

async fn build(cfg: &WorkerConfig) -> Result<(Aaa, RadiusAuthenticator), String> {
    let servers = cfg
        .radius
        .iter()
        .map(|s| RadiusServer::new(s.address, s.secret.as_str()))
        .collect();
    let mut rc = RadiusConfig::new(servers);
    rc.nas_identifier = Some(format!("aaa-soak-{}", cfg.index));
    rc.retransmit = Retransmit::new(
        Duration::from_millis(cfg.radius_initial_ms),
        cfg.radius_max_count,
        Duration::from_millis(cfg.radius_max_interval_ms),
        Duration::from_millis(cfg.radius_budget_ms),
    );
    rc.dead_time = Duration::from_millis(cfg.radius_dead_time_ms);
    let radius = RadiusAuthenticator::new(rc).map_err(|e| format!("RADIUS client: {e}"))?;

    let mut lc = LocalConfig::default();
    // Wrong passwords are part of the mix: no lockout of the local accounts in the run.
    lc.lockout_threshold = LocalConfig::MAX_LOCKOUT_THRESHOLD;
    if cfg.cheap_hash {
        lc.params = HashParams::insecure_for_tests();
    }
    let local = LocalAccounts::with_config(&cfg.accounts, lc, Arc::new(SystemClock))
        .map_err(|e| format!("local accounts: {e}"))?;

    let redis = RedisConfig::from_url(&cfg.redis_url)
        .and_then(|c| c.with_prefix(&cfg.prefix))
        .map_err(|e| format!("Redis config: {e}"))?;
    let aaa = Aaa::builder()
        // RADIUS first; its reject falls through to the local accounts, so that local-only
        // users can log in while RADIUS answers (see the crate documentation).
        .mechanism_with(Arc::new(radius.clone()), OnReject::Next)
        .local(local)
        .redis(redis)
        .await
        .map_err(|e| format!("Redis: {e}"))?
        .idle_timeout(Some(Duration::from_secs(cfg.idle_timeout_s)))
        .build()
        .map_err(|e| format!("aaa: {e}"))?;
    Ok((aaa, radius))
}

/// Waits for the coordinator's `go` file (at most 120 s); returns its start time (Unix ms).
async fn wait_for_go(dir: &Path) -> Result<u64, String> {
    let path = config::go_path(dir);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(ms) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok(ms);
        }
        if Instant::now() > until {
            return Err("no go from the coordinator within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(cfg: WorkerConfig) -> Result<(), String> {
    let parent = std::os::unix::process::parent_id();
    let (aaa, radius) = build(&cfg).await?;
    let journal = Journal::create(&config::journal_path(&cfg.dir, cfg.index))
        .map_err(|e| format!("journal: {e}"))?;
    config::publish(&config::ready_path(&cfg.dir, cfg.index), "")
        .map_err(|e| format!("ready file: {e}"))?;
    let start_ms = wait_for_go(&cfg.dir).await?;
    let end_ms = start_ms + cfg.seconds * 1000;
    let deadline = Instant::now() + Duration::from_millis(end_ms.saturating_sub(config::unix_ms()));
    let began = Instant::now();

    let shared = Arc::new(Shared {
        aaa,
        radius,
        journal: Arc::new(Mutex::new(journal)),
        own: Mutex::new(Own::default()),
        others: Mutex::new(Others::default()),
        stats: Mutex::new(Stats::default()),
        deadline,
        parent,
        cfg,
    });

    let mut tasks = Vec::new();
    for k in 0..shared.cfg.clients {
        tasks.push(tokio::spawn(client(shared.clone(), k)));
    }
    let follower = tokio::spawn(follow_journals(shared.clone()));
    let sampler = tokio::spawn(sample(shared.clone()));

    let mut unfinished = 0;
    let bound = deadline + shared.cfg.hang_bound() + Duration::from_secs(5);
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(bound, t).await.is_err() {
            abort.abort();
            unfinished += 1;
        }
    }
    follower.abort();
    let (rss_samples, radius_samples) = match tokio::time::timeout_at(bound, sampler).await {
        Ok(Ok(s)) => s,
        _ => (Vec::new(), Vec::new()),
    };
    let ran_s = began.elapsed().as_secs_f64();

    let report = {
        let st = lock(&shared.stats);
        let mut discards = std::collections::BTreeMap::new();
        for s in shared.radius.client().stats() {
            for reason in DISCARDS {
                let n = s.discarded(reason);
                if n > 0 {
                    *discards.entry(format!("{reason:?}")).or_insert(0) += n;
                }
            }
        }
        WorkerReport {
            index: shared.cfg.index,
            seed: shared.cfg.seed,
            ran_s,
            ops: st.ops.clone(),
            logins: st.logins.clone(),
            journal: st.journal,
            security_failures: st.security_failures,
            security_notes: st.security_notes.clone(),
            revived: st.revived,
            identity_mismatches: st.identity_mismatches,
            clients_unfinished: unfinished,
            live_at_end: lock(&shared.own).live.len(),
            cached_users: shared.aaa.sessions().cached_users(),
            peak_rss_kib: config::rss_kib().0,
            rss_samples,
            radius_samples,
            radius_discards: discards,
        }
    };
    let text = serde_json::to_string(&report).map_err(|e| format!("report: {e}"))?;
    config::publish(
        &config::report_path(&shared.cfg.dir, shared.cfg.index),
        &text,
    )
    .map_err(|e| format!("report: {e}"))?;
    Ok(())
}

const DISCARDS: [Discard; 9] = [
    Discard::WrongSource,
    Discard::BadLength,
    Discard::UnknownIdentifier,
    Discard::UnexpectedCode,
    Discard::BadAttributes,
    Discard::MissingMessageAuthenticator,
    Discard::DuplicateMessageAuthenticator,
    Discard::BadMessageAuthenticator,
    Discard::BadResponseAuthenticator,
];

/// Every 500 ms the RADIUS counters, every 5 s the resident set size, until the deadline.
async fn sample(shared: Arc<Shared>) -> (Vec<(u64, u64)>, Vec<RadiusSample>) {
    let mut rss = Vec::new();
    let mut radius = Vec::new();
    let mut tick = 0u64;
    loop {
        let now = config::unix_ms();
        radius.push(RadiusSample {
            t_ms: now,
            servers: shared
                .radius
                .client()
                .stats()
                .iter()
                .map(|s| RadiusCounters {
                    requests: s.requests,
                    retransmissions: s.retransmissions,
                    replies: s.replies,
                    no_reply: s.no_reply,
                    discarded: s.discarded_total(),
                })
                .collect(),
        });
        if tick.is_multiple_of(10) {
            rss.push((now, config::rss_kib().1));
        }
        tick += 1;
        if !shared.running() || radius.len() > 100_000 {
            return (rss, radius);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every second, reads what the other workers appended to their journals.
async fn follow_journals(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    let mut followers: Vec<Follower> = (0..cfg.workers)
        .filter(|&w| w != cfg.index)
        .map(|w| Follower::new(config::journal_path(&cfg.dir, w)))
        .collect();
    while shared.running() {
        for f in &mut followers {
            let entries = f.poll();
            let mut o = lock(&shared.others);
            for e in entries {
                match e {
                    Entry::Started {
                        id, cookie, user, ..
                    } => {
                        if o.started.len() >= OTHERS_KEPT
                            && let Some((old, _, _)) = o.started.pop_front()
                        {
                            o.cookies.remove(&old);
                        }
                        o.cookies.insert(id.clone(), cookie.clone());
                        o.started.push_back((id, cookie, user));
                    }
                    Entry::Ended(id) | Entry::Cleared(id) => {
                        if o.ended.len() < OTHERS_ENDED_KEPT {
                            o.ended.insert(id);
                        }
                    }
                    Entry::Gone(_) | Entry::EndFailed(_) | Entry::ClearFailed(_) => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The operations of the mix.
#[derive(Debug, Clone, Copy)]
enum Op {
    Login,
    ValidateOwn,
    ValidateEnded,
    ValidateOther,
    Logout,
    Clear,
    List,
}

const MIX: [(Op, u64); 7] = [
    (Op::Login, 30),
    (Op::ValidateOwn, 25),
    (Op::ValidateEnded, 5),
    (Op::ValidateOther, 15),
    (Op::Logout, 15),
    (Op::Clear, 5),
    (Op::List, 5),
];

async fn client(shared: Arc<Shared>, k: usize) {
    let mut rng = Rng::new(shared.cfg.seed ^ ((k as u64 + 1) * 0x2545_f491_4f6c_dd1d));
    let weights: Vec<u64> = MIX.iter().map(|(_, w)| *w).collect();
    while shared.running() {
        let op = rng
            .weighted(&weights)
            .and_then(|i| MIX.get(i))
            .map_or(Op::Login, |(op, _)| *op);
        let live = lock(&shared.own).live.len();
        let op = match op {
            Op::Login if live >= shared.cfg.max_live => Op::Logout,
            Op::ValidateOwn | Op::Logout if live == 0 => Op::Login,
            other => other,
        };
        match op {
            Op::Login => login(&shared, &mut rng).await,
            Op::ValidateOwn => validate_own(&shared, &mut rng).await,
            Op::ValidateEnded => validate_ended(&shared, &mut rng).await,
            Op::ValidateOther => validate_other(&shared, &mut rng).await,
            Op::Logout => logout(&shared, &mut rng).await,
            Op::Clear => clear(&shared, &mut rng).await,
            Op::List => {
                if let Some(Ok(_)) = shared.timed("list", shared.aaa.get_sessions()).await {
                    shared.count(|s| s.op("list").ok += 1);
                }
            }
        }
        let think = rng.below(usize::try_from(2 * shared.cfg.think_ms + 1).unwrap_or(1));
        let wake = Instant::now() + Duration::from_millis(think as u64);
        tokio::time::sleep_until(wake.min(shared.deadline)).await;
    }
}

/// The password `p` with its last character changed (same length).
fn wrong(p: &str) -> String {
    let mut s = p.to_owned();
    let last = s.pop();
    s.push(if last == Some('x') { 'y' } else { 'x' });
    s
}

/// Picks who logs in, with which password, and what the answer must be.
fn pick_login<'a>(users: &'a [UserSpec], rng: &mut Rng) -> Option<(&'a UserSpec, String, Expect)> {
    let of = |pred: &dyn Fn(&UserSpec) -> bool| -> Vec<&'a UserSpec> {
        users.iter().filter(|u| pred(u)).collect()
    };
    let radius = of(&|u| u.realm == Realm::Radius);
    let local_ok = of(&|u| u.realm == Realm::Local && matches!(u.expect, Expect::Accept { .. }));
    let local_off = of(&|u| u.realm == Realm::Local && u.expect == Expect::Reject);
    let nowhere = of(&|u| u.realm == Realm::Nowhere);
    let accepting = of(&|u| matches!(u.expect, Expect::Accept { .. }));
    // RADIUS users 84 %, local-only 6 %, disabled local 2 %, wrong password 6 %, unknown 2 %:
    // the last four cost an argon2id verification each (default parameters).
    let class = rng.weighted(&[84, 6, 2, 6, 2])?;
    let pick = |v: &[&'a UserSpec], rng: &mut Rng| v.get(rng.below(v.len())).copied();
    match class {
        0 => pick(&radius, rng).map(|u| (u, u.password.clone(), u.expect)),
        1 => pick(&local_ok, rng).map(|u| (u, u.password.clone(), u.expect)),
        2 => pick(&local_off, rng).map(|u| (u, u.password.clone(), Expect::Reject)),
        3 => pick(&accepting, rng).map(|u| (u, wrong(&u.password), Expect::Reject)),
        _ => pick(&nowhere, rng).map(|u| (u, u.password.clone(), Expect::Reject)),
    }
}

async fn login(shared: &Shared, rng: &mut Rng) {
    let Some((user, password, expect)) = pick_login(&shared.cfg.users, rng) else {
        return;
    };
    let wrong_password = password != user.password;
    let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (rng.below(250) as u8)));
    shared.count(|s| {
        if wrong_password {
            s.logins.wrong_password += 1;
        }
        if user.realm == Realm::Nowhere {
            s.logins.unknown_user += 1;
        }
    });
    let result = shared
        .timed(
            "login",
            shared.aaa.authenticate_user(&user.name, &password, from),
        )
        .await;
    match result {
        Some(Ok(Some(accepted))) => {
            shared.count(|s| s.op("login").ok += 1);
            match expect {
                Expect::Accept { read_write } => {
                    let mechanism = accepted.mechanism().to_string();
                    shared.count(|s| {
                        *s.logins.accepted.entry(mechanism.clone()).or_insert(0) += 1;
                        if accepted.read_write() != read_write {
                            s.security(format!(
                                "{} accepted via {mechanism} with read_write = {}, expected {read_write}",
                                user.name,
                                accepted.read_write()
                            ));
                        }
                        let realm_ok = match user.realm {
                            Realm::Radius => mechanism == "radius",
                            Realm::Local => mechanism == "local",
                            Realm::Nowhere => false,
                        };
                        if !realm_ok {
                            s.security(format!(
                                "{} ({:?} user) accepted via {mechanism}",
                                user.name, user.realm
                            ));
                        }
                    });
                    if accepted.read_write() == read_write {
                        start(shared, accepted, from).await;
                    }
                }
                Expect::Reject => shared.count(|s| {
                    s.security(format!(
                        "{} accepted via {} although it must be rejected (wrong password: {wrong_password}, realm {:?})",
                        user.name,
                        accepted.mechanism(),
                        user.realm
                    ));
                }),
            }
        }
        Some(Ok(None)) => shared.count(|s| {
            s.op("login").none += 1;
            match expect {
                Expect::Reject => s.logins.rejected_expected += 1,
                Expect::Accept { .. } => s.logins.rejected_unexpected += 1,
            }
        }),
        Some(Err(_)) | None => {}
    }
}

async fn start(shared: &Shared, user: Arc<ExosUser>, from: IpAddr) {
    let Some(Ok(cookie)) = shared.timed("start", user.start_session(from)).await else {
        return;
    };
    let Some(id) = user.session_id() else {
        shared.count(|s| {
            s.security(format!(
                "{}: start_session gave no session id",
                user.username()
            ))
        });
        return;
    };
    let cookie = cookie.expose().to_owned();
    shared
        .journal(
            Entry::Started {
                id: id.to_string(),
                cookie: cookie.clone(),
                user: user.username().to_owned(),
                read_write: user.read_write(),
            },
            true,
        )
        .await;
    shared.count(|s| {
        s.op("start").ok += 1;
        s.journal.started += 1;
    });
    lock(&shared.own).live.push(OwnSession { id, cookie, user });
}

async fn validate_own(shared: &Shared, rng: &mut Rng) {
    let picked = {
        let own = lock(&shared.own);
        own.live.get(rng.below(own.live.len())).cloned()
    };
    let Some(session) = picked else { return };
    match shared
        .timed("validate-own", shared.aaa.validate_session(&session.cookie))
        .await
    {
        Some(Ok(Some(user))) => shared.count(|s| {
            s.op("validate-own").ok += 1;
            // `session_id()` is `None` if another client of ours ended it since: not a mismatch.
            if user.session_id().is_some_and(|i| i != session.id)
                || user.username() != session.user.username()
            {
                s.security(format!(
                    "own session {} validated to {} / {:?}",
                    session.id,
                    user.username(),
                    user.session_id()
                ));
            } else if !Arc::ptr_eq(&user, &session.user) {
                s.identity_mismatches += 1;
            }
        }),
        Some(Ok(None)) => {
            shared.count(|s| s.op("validate-own").none += 1);
            // Gone: unless another client of this process is ending it right now, it was
            // cleared by someone (journaled there) — or lost (the books will say).
            let still_mine = {
                let mut own = lock(&shared.own);
                let pos = own.live.iter().position(|o| o.id == session.id);
                pos.map(|p| own.live.swap_remove(p)).is_some()
            };
            if still_mine {
                shared
                    .journal(Entry::Gone(session.id.to_string()), false)
                    .await;
                shared.count(|s| s.journal.gone += 1);
            }
        }
        Some(Err(_)) | None => {}
    }
}

async fn validate_ended(shared: &Shared, rng: &mut Rng) {
    let picked = {
        let own = lock(&shared.own);
        own.ended.get(rng.below(own.ended.len())).cloned()
    };
    let Some((id, cookie)) = picked else { return };
    expect_ended(shared, &cookie, || {
        format!("session {id}, ended here, is valid again")
    })
    .await;
}

/// Validates the cookie of a session known to have ended: a user is a revived session, a
/// security failure described by `revived`.
async fn expect_ended(shared: &Shared, cookie: &str, revived: impl FnOnce() -> String) {
    match shared
        .timed("validate-ended", shared.aaa.validate_session(cookie))
        .await
    {
        Some(Ok(Some(_))) => shared.count(|s| {
            s.op("validate-ended").ok += 1;
            s.revived += 1;
            s.security(revived());
        }),
        Some(Ok(None)) => shared.count(|s| s.op("validate-ended").none += 1),
        Some(Err(_)) | None => {}
    }
}

async fn validate_other(shared: &Shared, rng: &mut Rng) {
    let picked = {
        let o = lock(&shared.others);
        o.started.get(rng.below(o.started.len())).cloned().map(|p| {
            let ended = o.ended.contains(&p.0);
            (p, ended)
        })
    };
    let Some(((id, cookie, username), known_ended)) = picked else {
        return;
    };
    match shared
        .timed("validate-other", shared.aaa.validate_session(&cookie))
        .await
    {
        Some(Ok(Some(user))) => shared.count(|s| {
            s.op("validate-other").ok += 1;
            if known_ended {
                s.revived += 1;
                s.security(format!("session {id}, known ended, is valid again"));
            }
            if user.username() != username || user.session_id().is_some_and(|i| i.to_string() != id)
            {
                s.security(format!(
                    "the cookie of session {id} ({username}) validated to {} / {:?}",
                    user.username(),
                    user.session_id()
                ));
            }
        }),
        Some(Ok(None)) => shared.count(|s| s.op("validate-other").none += 1),
        Some(Err(_)) | None => {}
    }
}

async fn logout(shared: &Shared, rng: &mut Rng) {
    // Taken out of the live list while it ends, so no other client of ours touches it.
    let picked = {
        let mut own = lock(&shared.own);
        let n = own.live.len();
        (n > 0).then(|| own.live.swap_remove(rng.below(n)))
    };
    let Some(session) = picked else { return };
    let id = session.id.to_string();
    match shared.timed("logout", session.user.end_session()).await {
        Some(Ok(())) => {
            shared.journal(Entry::Ended(id), false).await;
            shared.count(|s| {
                s.op("logout").ok += 1;
                s.journal.ended += 1;
            });
            let mut own = lock(&shared.own);
            if own.ended.len() >= ENDED_KEPT {
                own.ended.pop_front();
            }
            own.ended.push_back((session.id, session.cookie));
        }
        Some(Err(AaaError::SessionDoesNotExist)) => {
            shared.journal(Entry::Gone(id), false).await;
            shared.count(|s| s.journal.gone += 1);
        }
        Some(Err(_)) | None => {
            // The outcome is unknown; the user keeps its session (or finds it gone on retry).
            shared.journal(Entry::EndFailed(id), false).await;
            shared.count(|s| s.journal.end_failed += 1);
            lock(&shared.own).live.push(session);
        }
    }
}

async fn clear(shared: &Shared, rng: &mut Rng) {
    let Some(Ok(list)) = shared.timed("list", shared.aaa.get_sessions()).await else {
        return;
    };
    shared.count(|s| s.op("list").ok += 1);
    let Some(target) = list.get(rng.below(list.len())) else {
        return;
    };
    let id = target.id;
    let text = id.to_string();
    match shared.timed("clear", shared.aaa.clear_session(id)).await {
        Some(Ok(_)) => {
            shared.journal(Entry::Cleared(text.clone()), false).await;
            shared.count(|s| {
                s.op("clear").ok += 1;
                s.journal.cleared += 1;
            });
            // Known to have ended: whose cookie do we know?
            let mine = {
                let mut own = lock(&shared.own);
                let pos = own.live.iter().position(|o| o.id == id);
                let taken = pos.map(|p| own.live.swap_remove(p));
                if let Some(t) = &taken {
                    if own.ended.len() >= ENDED_KEPT {
                        own.ended.pop_front();
                    }
                    own.ended.push_back((t.id, t.cookie.clone()));
                }
                taken.map(|t| t.cookie)
            };
            let theirs = {
                let mut o = lock(&shared.others);
                if o.ended.len() < OTHERS_ENDED_KEPT {
                    o.ended.insert(text.clone());
                }
                o.cookies.get(&text).cloned()
            };
            // Revocation is immediate, in this process and every other.
            if let Some(cookie) = mine.or(theirs) {
                expect_ended(shared, &cookie, || {
                    format!("session {text} is valid right after its clear")
                })
                .await;
            }
        }
        Some(Err(AaaError::SessionDoesNotExist)) => {}
        Some(Err(_)) | None => {
            shared.journal(Entry::ClearFailed(text), false).await;
            shared.count(|s| s.journal.clear_failed += 1);
        }
    }
}
