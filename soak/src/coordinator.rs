//! The coordinator: servers, workers, the fault schedule, then the books and the summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aaa::local::{HashParams, Level, LocalAccounts, LocalConfig};
use aaa::store_redis::{RedisConfig, RedisStore};
use aaa::{SessionConfig, SessionManager, SystemClock};
use testkit::radius::{FreeRadius, FreeRadiusOptions, USERS};
use testkit::redis::{RedisOptions, RedisServer};

use crate::config::{self, Expect, Realm, ServerSpec, UserSpec, WorkerConfig, publish, unix_ms};
use crate::faults::{self, Action, Impostor, ImpostorStats};
use crate::journal::{Entry, Follower};
use crate::report::WorkerReport;
use crate::summary;

const PRIMARY_SECRET: &str = "soak-primary-shared-secret-4c1d9e";
const SECONDARY_SECRET: &str = "soak-secondary-shared-secret-7a20f3";
/// A call slower than this is a hung call.
const HANG_BOUND: Duration = Duration::from_secs(10);
/// No legitimate expiry during a run.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// RADIUS: 200 ms, 2 retransmissions, 400 ms, 600 ms per server; dead for 2 s.
const RADIUS_INITIAL_MS: u64 = 200;
const RADIUS_MAX_COUNT: u32 = 2;
const RADIUS_MAX_INTERVAL_MS: u64 = 400;
const RADIUS_BUDGET_MS: u64 = 600;
const RADIUS_DEAD_TIME_MS: u64 = 2000;

/// The command-line options of a run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) minutes: u64,
    pub(crate) workers: usize,
    pub(crate) clients: usize,
    pub(crate) think_ms: u64,
    pub(crate) max_live: usize,
    pub(crate) rss_bound_mib: u64,
    pub(crate) seed: u64,
    pub(crate) keep: bool,
    /// argon2id with `HashParams::insecure_for_tests` (for comparison runs only).
    pub(crate) cheap_hash: bool,
    /// Redis without persistence: a negative control, whose books must show lost sessions.
    pub(crate) volatile_redis: bool,
}

/// One fault as it was carried out.
#[derive(Debug, Clone)]
pub(crate) struct FaultRecord {
    pub(crate) action: Action,
    /// When it began and ended (Unix ms).
    pub(crate) begin_ms: u64,
    pub(crate) end_ms: u64,
    /// For `HostileOff`: what the impostor did.
    pub(crate) impostor: Option<ImpostorStats>,
}

/// The worker processes; killed (by their pids) when dropped, however the coordinator ends.
#[derive(Debug, Default)]
struct Workers {
    children: Vec<Child>,
    status: Vec<Option<ExitStatus>>,
    killed: Vec<bool>,
}

impl Workers {
    fn poll(&mut self) {
        for (child, status) in self.children.iter_mut().zip(&mut self.status) {
            if status.is_none()
                && let Ok(Some(s)) = child.try_wait()
            {
                *status = Some(s);
            }
        }
    }

    fn all_exited(&self) -> bool {
        self.status.iter().all(Option::is_some)
    }

    /// Waits until every worker has exited or `until`; kills the ones still running then.
    fn wait_all(&mut self, until: Instant) {
        loop {
            self.poll();
            if self.all_exited() {
                return;
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for ((child, status), killed) in self
            .children
            .iter_mut()
            .zip(&mut self.status)
            .zip(&mut self.killed)
        {
            if status.is_none() {
                let _ = child.kill();
                *status = child.wait().ok();
                *killed = true;
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (child, status) in self.children.iter_mut().zip(&self.status) {
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The users of the run: the FreeRADIUS test users, local-only accounts, and one that exists
/// nowhere.
fn users() -> Vec<UserSpec> {
    let mut users: Vec<UserSpec> = USERS
        .iter()
        .map(|u| UserSpec {
            name: u.name.to_owned(),
            password: u.password.to_owned(),
            realm: Realm::Radius,
            // The default privilege mapping: Service-Type = Administrative-User is read/write.
            expect: Expect::Accept {
                read_write: u.reply.contains("Service-Type = Administrative-User"),
            },
        })
        .collect();
    for (name, password, expect) in [
        (
            "localadmin",
            "local-admin-password",
            Expect::Accept { read_write: true },
        ),
        (
            "localuser",
            "local-user-password",
            Expect::Accept { read_write: false },
        ),
        ("localoff", "local-off-password", Expect::Reject),
    ] {
        users.push(UserSpec {
            name: name.to_owned(),
            password: password.to_owned(),
            realm: Realm::Local,
            expect,
        });
    }
    users.push(UserSpec {
        name: "ghost".to_owned(),
        password: "ghost-password".to_owned(),
        realm: Realm::Nowhere,
        expect: Expect::Reject,
    });
    users
}

/// Creates the account file: an admin, a read-only user, a disabled user (default argon2id
/// parameters, as on a device).
async fn make_accounts(path: &Path, params: HashParams) -> Result<(), String> {
    let mut config = LocalConfig::default();
    config.params = params;
    let accounts = LocalAccounts::with_config(path, config, Arc::new(SystemClock))
        .map_err(|e| format!("local accounts: {e}"))?;
    for u in users().iter().filter(|u| u.realm == Realm::Local) {
        let level = match u.expect {
            Expect::Accept { read_write: true } => Level::Admin,
            _ => Level::User,
        };
        accounts
            .add(&u.name, &u.password, level)
            .await
            .map_err(|e| format!("add {}: {e}", u.name))?;
        if u.expect == Expect::Reject {
            accounts
                .set_enabled(&u.name, false)
                .await
                .map_err(|e| format!("disable {}: {e}", u.name))?;
        }
    }
    Ok(())
}

/// The last line of `redis-cli CONFIG GET <name>`.
fn redis_setting(redis: &RedisServer, name: &str) -> String {
    redis
        .cli(&["CONFIG", "GET", name])
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Runs the whole soak; the process's exit code.
pub(crate) fn main(opts: &Options) -> i32 {
    match run(opts) {
        Ok(passed) => i32::from(!passed),
        Err(e) => {
            eprintln!("aaa-soak: {e}");
            2
        }
    }
}

fn run(opts: &Options) -> Result<bool, String> {
    let started = Instant::now();
    let total = Duration::from_secs(opts.minutes * 60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let tmp = tempfile::Builder::new()
        .prefix("aaa-soak-")
        .tempdir()
        .map_err(|e| format!("run directory: {e}"))?;
    let dir = tmp.path().to_owned();
    eprintln!(
        "soak: {} min, {} workers × {} clients, seed {:#x}; run directory {}",
        opts.minutes,
        opts.workers,
        opts.clients,
        opts.seed,
        dir.display()
    );

    // The servers.
    let redis = RedisServer::start_with(if opts.volatile_redis {
        RedisOptions::default()
    } else {
        RedisOptions::persistent()
    });
    let durability = format!(
        "appendonly {}, appendfsync {}",
        redis_setting(&redis, "appendonly"),
        redis_setting(&redis, "appendfsync")
    );
    let mut primary = FreeRadius::start(FreeRadiusOptions {
        message_authenticator: true,
        secret: PRIMARY_SECRET.to_owned(),
    });
    let secondary = FreeRadius::start(FreeRadiusOptions {
        message_authenticator: true,
        secret: SECONDARY_SECRET.to_owned(),
    });
    eprintln!(
        "soak: Redis {} ({durability}); FreeRADIUS primary {}, secondary {}",
        redis.url(),
        primary.addr(),
        secondary.addr()
    );
    let accounts = dir.join("accounts.toml");
    let hash_params = if opts.cheap_hash {
        HashParams::insecure_for_tests()
    } else {
        HashParams::default()
    };
    rt.block_on(make_accounts(&accounts, hash_params))?;
    let prefix = testkit::redis::unique_prefix("soak");

    // The workers.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut workers = Workers::default();
    for index in 0..opts.workers {
        let cfg = WorkerConfig {
            index,
            workers: opts.workers,
            dir: dir.clone(),
            redis_url: redis.url(),
            prefix: prefix.clone(),
            radius: vec![
                ServerSpec {
                    address: primary.addr(),
                    secret: PRIMARY_SECRET.to_owned(),
                },
                ServerSpec {
                    address: secondary.addr(),
                    secret: SECONDARY_SECRET.to_owned(),
                },
            ],
            accounts: accounts.clone(),
            users: users(),
            seconds: total.as_secs(),
            clients: opts.clients,
            think_ms: opts.think_ms,
            max_live: opts.max_live,
            hang_bound_ms: u64::try_from(HANG_BOUND.as_millis()).unwrap_or(10_000),
            idle_timeout_s: IDLE_TIMEOUT.as_secs(),
            cheap_hash: opts.cheap_hash,
            seed: opts
                .seed
                .wrapping_add((index as u64 + 1).wrapping_mul(0x9e37_79b9)),
            radius_initial_ms: RADIUS_INITIAL_MS,
            radius_max_count: RADIUS_MAX_COUNT,
            radius_max_interval_ms: RADIUS_MAX_INTERVAL_MS,
            radius_budget_ms: RADIUS_BUDGET_MS,
            radius_dead_time_ms: RADIUS_DEAD_TIME_MS,
        };
        let path = config::config_path(&dir, index);
        let text = serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())?;
        publish(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        let log = std::fs::File::create(config::log_path(&dir, index))
            .map_err(|e| format!("worker log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("worker log: {e}"))?;
        // Workers run with the allocator's defaults: aaa-local reuses argon2's memory, so RSS
        // stays bounded without tuning malloc (checked by the books).
        let mut command = Command::new(&exe);
        let child = command
            .arg("worker")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn worker {index}: {e}"))?;
        workers.children.push(child);
        workers.status.push(None);
        workers.killed.push(false);
    }

    // Everyone ready, then go.
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        workers.poll();
        if (0..opts.workers).all(|i| config::ready_path(&dir, i).exists()) {
            break;
        }
        if workers.status.iter().any(Option::is_some) || Instant::now() > ready_by {
            return Err(format!(
                "a worker did not get ready (see {}/worker-*.log)",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0_ms = unix_ms();
    let t0 = Instant::now();
    publish(&config::go_path(&dir), &t0_ms.to_string()).map_err(|e| format!("go: {e}"))?;
    eprintln!("soak: load started; faults follow");

    // The faults.
    let faults = run_faults(t0, t0_ms, total, &redis, &mut primary, &mut workers)?;

    // The end of the load.
    workers.wait_all(t0 + total + HANG_BOUND + Duration::from_secs(30));
    let load_end_ms = unix_ms();
    eprintln!("soak: load over; checking the books");

    // The books, on the settled system.
    let books = rt.block_on(books(&redis.url(), &prefix, &dir, opts.workers))?;

    let reports: Vec<Option<WorkerReport>> = (0..opts.workers)
        .map(|i| {
            std::fs::read_to_string(config::report_path(&dir, i))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
        })
        .collect();
    let panics: Vec<String> = (0..opts.workers)
        .filter_map(|i| std::fs::read_to_string(config::panic_path(&dir, i)).ok())
        .collect();
    let exits: Vec<String> = workers
        .status
        .iter()
        .zip(&workers.killed)
        .map(|(s, killed)| match (s, killed) {
            (_, true) => "killed (overran)".to_owned(),
            (Some(s), false) if s.success() => "0".to_owned(),
            (Some(s), false) => s.to_string(),
            (None, false) => "unknown".to_owned(),
        })
        .collect();

    let run = summary::Run {
        opts: opts.clone(),
        durability,
        t0_ms,
        load_end_ms,
        faults,
        reports,
        panics,
        exits,
        books,
        radius_dead_time_ms: RADIUS_DEAD_TIME_MS,
        elapsed: started.elapsed(),
        hash_params: hash_params.to_string(),
    };
    let passed = summary::print(&run);

    drop(workers);
    drop(primary);
    drop(secondary);
    drop(redis);
    if !passed || opts.keep {
        let kept = tmp.keep();
        eprintln!("soak: run directory kept: {}", kept.display());
    }
    Ok(passed)
}

/// Carries out the schedule; returns what was done, with its times.
fn run_faults(
    t0: Instant,
    t0_ms: u64,
    total: Duration,
    redis: &RedisServer,
    primary: &mut FreeRadius,
    workers: &mut Workers,
) -> Result<Vec<FaultRecord>, String> {
    let primary_addr = primary.addr();
    let mut impostor: Option<Impostor> = None;
    let mut records = Vec::new();
    for event in faults::schedule(total) {
        // Wait for its time (bounded by the schedule), watching the workers.
        while Instant::now() < t0 + event.at {
            workers.poll();
            std::thread::sleep(Duration::from_millis(20).min((t0 + event.at) - Instant::now()));
        }
        let begin_ms = unix_ms();
        let mut stats = None;
        match event.action {
            Action::RedisKill => redis.stop(),
            Action::RedisStart => redis.restart(),
            Action::PrimaryStop => primary.stop(),
            Action::PrimaryStart => primary.restart(),
            Action::HostileOn => {
                primary.stop();
                impostor = Some(
                    Impostor::start(primary_addr, PRIMARY_SECRET)
                        .map_err(|e| format!("the impostor could not bind {primary_addr}: {e}"))?,
                );
            }
            Action::HostileOff => {
                stats = impostor.take().map(Impostor::stop);
                primary.restart();
            }
        }
        let end_ms = unix_ms();
        eprintln!(
            "soak: {:>6.1} s  {:?} ({} ms)",
            begin_ms.saturating_sub(t0_ms) as f64 / 1000.0,
            event.action,
            end_ms.saturating_sub(begin_ms)
        );
        records.push(FaultRecord {
            action: event.action,
            begin_ms,
            end_ms,
            impostor: stats,
        });
    }
    Ok(records)
}

/// The verdict of the books.
#[derive(Debug, Clone, Default)]
pub(crate) struct Books {
    /// Sessions journaled `started` (acknowledged).
    pub(crate) acknowledged: u64,
    /// Sessions with one successful end: logout / clear.
    pub(crate) logged_out: u64,
    pub(crate) cleared: u64,
    /// Sessions whose end or clear failed (store error or hang) and that nobody ended for sure.
    pub(crate) unknown_outcome: u64,
    /// … of which still valid.
    pub(crate) unknown_valid: u64,
    /// Sessions started and never ended: must be valid.
    pub(crate) open: u64,
    pub(crate) valid: u64,
    /// Open sessions found invalid.
    pub(crate) lost: u64,
    pub(crate) lost_ids: Vec<String>,
    /// Ended sessions found valid.
    pub(crate) revived: u64,
    pub(crate) revived_ids: Vec<String>,
    /// Sessions with two successful ends (logout + clear, two clears).
    pub(crate) double_ends: u64,
    /// Valid sessions whose user or id did not match the journal.
    pub(crate) mismatched: u64,
    /// Sessions the books could not validate (store errors, three tries).
    pub(crate) unverifiable: u64,
    /// Sessions journaled `gone` by their owner.
    pub(crate) found_gone: u64,
    /// Live sessions in the store that no journal acknowledged (a start whose answer was lost).
    pub(crate) unacknowledged_in_store: u64,
    /// Live sessions in the store.
    pub(crate) in_store: u64,
}

/// What validating a session's cookie gave: `None` if the store never answered (three
/// tries), else the user and session id of the live session, if any.
type Checked = Option<Option<(String, String)>>;

#[derive(Debug, Default)]
struct Book {
    cookie: String,
    user: String,
    ok_ends: u32,
    logout: bool,
    failed_end: bool,
    gone: bool,
}

/// Reads every journal and validates every session through a fresh session manager.
async fn books(url: &str, prefix: &str, dir: &Path, workers: usize) -> Result<Books, String> {
    let mut book: HashMap<String, Book> = HashMap::new();
    for w in 0..workers {
        let path: PathBuf = config::journal_path(dir, w);
        let entries = Follower::read_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for e in entries {
            match e {
                Entry::Started {
                    id, cookie, user, ..
                } => {
                    let b = book.entry(id).or_default();
                    b.cookie = cookie;
                    b.user = user;
                }
                Entry::Ended(id) => {
                    let b = book.entry(id).or_default();
                    b.ok_ends += 1;
                    b.logout = true;
                }
                Entry::Cleared(id) => book.entry(id).or_default().ok_ends += 1,
                Entry::Gone(id) => book.entry(id).or_default().gone = true,
                Entry::EndFailed(id) | Entry::ClearFailed(id) => {
                    book.entry(id).or_default().failed_end = true;
                }
            }
        }
    }
    // Ends of sessions nobody acknowledged (a clear of an unacknowledged one) are not books'.
    book.retain(|_, b| !b.cookie.is_empty());

    let config = RedisConfig::from_url(url)
        .and_then(|c| c.with_prefix(prefix))
        .map_err(|e| format!("Redis config: {e}"))?;
    let store = RedisStore::connect(config)
        .await
        .map_err(|e| format!("Redis: {e}"))?;
    let mut sc = SessionConfig::default();
    sc.idle_timeout = Some(IDLE_TIMEOUT);
    let manager = SessionManager::builder(Arc::new(store))
        .config(sc)
        .build()
        .map_err(|e| format!("session manager: {e}"))?;

    // Validate, 32 at a time.
    let mut results: Vec<(String, Checked)> = Vec::new();
    let ids: Vec<String> = book.keys().cloned().collect();
    for chunk in ids.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let Some(cookie) = book.get(id).map(|b| b.cookie.clone()) else {
                continue;
            };
            let manager = manager.clone();
            let id = id.clone();
            set.spawn(async move {
                for attempt in 0..3 {
                    match manager.validate_session(&cookie).await {
                        Ok(Some(u)) => {
                            let sid = u.session_id().map(|s| s.to_string()).unwrap_or_default();
                            return (id, Some(Some((u.username().to_owned(), sid))));
                        }
                        Ok(None) => return (id, Some(None)),
                        Err(_) if attempt < 2 => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(_) => {}
                    }
                }
                (id, None)
            });
        }
        while let Some(r) = set.join_next().await {
            results.push(r.map_err(|e| format!("validation task: {e}"))?);
        }
    }

    let mut out = Books {
        acknowledged: book.len() as u64,
        ..Books::default()
    };
    for (id, result) in results {
        let Some(b) = book.get(&id) else { continue };
        if b.gone {
            out.found_gone += 1;
        }
        let Some(valid) = result else {
            out.unverifiable += 1;
            continue;
        };
        if let Some((user, sid)) = &valid
            && (*user != b.user || *sid != id)
        {
            out.mismatched += 1;
        }
        if b.ok_ends >= 2 {
            out.double_ends += 1;
        }
        if b.ok_ends >= 1 {
            if b.logout {
                out.logged_out += 1;
            } else {
                out.cleared += 1;
            }
            if valid.is_some() {
                out.revived += 1;
                out.revived_ids.push(id);
            }
        } else if b.failed_end {
            out.unknown_outcome += 1;
            if valid.is_some() {
                out.unknown_valid += 1;
            }
        } else {
            out.open += 1;
            if valid.is_some() {
                out.valid += 1;
            } else {
                out.lost += 1;
                out.lost_ids.push(id);
            }
        }
    }
    match manager.get_sessions().await {
        Ok(list) => {
            out.in_store = list.len() as u64;
            out.unacknowledged_in_store = list
                .iter()
                .filter(|s| !book.contains_key(&s.id.to_string()))
                .count() as u64;
        }
        Err(e) => eprintln!("soak: get_sessions at the end failed: {e}"),
    }
    Ok(out)
}
