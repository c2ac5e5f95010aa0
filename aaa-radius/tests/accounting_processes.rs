#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Accounting across real OS processes (this test binary, run again as children with
//! `--exact child_process_entry` and their part in the environment):
//!
//! - a process spools records while the accounting server is down and is killed with SIGKILL;
//!   the server comes back and a new process sends each spooled record, once;
//! - two processes on one Redis reap the same expired sessions at the same moment: each
//!   session gets exactly one Stop.
//!
//! The processes meet through files in a temporary directory, with timeouts.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aaa_core::{Identity, ManualClock, Mechanism, from_unix_ms, unix_ms};
use aaa_radius::RadiusServer;
use aaa_radius::accounting::{Accounting, AccountingConfig, SpoolConfig};
use aaa_session::{MemoryStore, SessionConfig, SessionManager};
use aaa_store_redis::{RedisConfig, RedisStore};
use common::{FROM, quick};
use testkit::radius::{FreeRadius, FreeRadiusOptions};
use testkit::redis::{RedisServer, unique_prefix};

const ENV_ROLE: &str = "AAA_ACCT_TEST_ROLE";
const ENV_ADDR: &str = "AAA_ACCT_TEST_ADDR";
const ENV_SECRET: &str = "AAA_ACCT_TEST_SECRET";
const ENV_DIR: &str = "AAA_ACCT_TEST_DIR";
const ENV_SPOOL: &str = "AAA_ACCT_TEST_SPOOL";
const ENV_REDIS: &str = "AAA_ACCT_TEST_REDIS";
const ENV_PREFIX: &str = "AAA_ACCT_TEST_PREFIX";
const ENV_T0: &str = "AAA_ACCT_TEST_T0";
const WAIT: Duration = Duration::from_secs(60);
/// Sessions started by the spooling process, and how many of them it ends.
const SPOOL_SESSIONS: usize = 5;
const SPOOL_ENDED: usize = 2;
/// Sessions that expire under the two reapers.
const EXPIRING: usize = 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn config(addr: SocketAddr, secret: &str) -> AccountingConfig {
    let mut c = AccountingConfig::new(vec![RadiusServer::accounting(addr, secret)]);
    c.radius.nas_identifier = Some("test-nas".to_owned());
    c.radius.retransmit = quick();
    c.retry_initial = Duration::from_millis(100);
    c.retry_max = Duration::from_millis(300);
    c
}

/// Writes `text` to `dir/name` atomically.
fn publish(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn wait_for(path: &Path) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn acct_id(id: u64, start: SystemTime) -> String {
    format!("{id:08x}-{:x}", unix_ms(start))
}

/// The spooling process: starts sessions (ends some) with the server down, waits until every
/// record is in the spool, says so, and waits to be killed.
async fn spool_child(dir: &Path) {
    let mut c = config(env(ENV_ADDR).parse().unwrap(), &env(ENV_SECRET));
    c.spool = Some(SpoolConfig::new(env(ENV_SPOOL)));
    let accounting = Arc::new(Accounting::new(c).unwrap());
    let manager = SessionManager::builder(Arc::new(MemoryStore::new()))
        .observer(accounting.clone())
        .build()
        .unwrap();
    let mut expected = String::new();
    for i in 0..SPOOL_SESSIONS {
        let user = manager.new_user(
            Identity::new(format!("spooled{i}"), true),
            Mechanism::Local,
            FROM,
        );
        user.start_session(FROM).await.unwrap();
        let id = acct_id(
            user.session_id().unwrap().as_u64(),
            user.session_start().unwrap(),
        );
        expected.push_str(&format!("{id} Start\n"));
        if i < SPOOL_ENDED {
            user.end_session().await.unwrap();
            expected.push_str(&format!("{id} Stop\n"));
        }
    }
    let total = SPOOL_SESSIONS + SPOOL_ENDED;
    let deadline = Instant::now() + WAIT;
    while accounting.stats().spooled < total {
        assert!(Instant::now() < deadline, "{:?}", accounting.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(accounting.stats().acknowledged, 0);
    publish(dir, "spooled", &expected);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The process after the restart: takes over the spool and sends it.
async fn drain_child(dir: &Path) {
    let mut c = config(env(ENV_ADDR).parse().unwrap(), &env(ENV_SECRET));
    c.spool = Some(SpoolConfig::new(env(ENV_SPOOL)));
    let accounting = Accounting::new(c).unwrap();
    let loaded = accounting.stats().loaded;
    accounting.flush(WAIT).await.unwrap();
    let stats = accounting.stats();
    publish(
        dir,
        "drained",
        &format!("{loaded} {} {}", stats.acknowledged, stats.dropped),
    );
}

/// One of the two reapers: process 0 starts the sessions; both move their clock past the
/// idle deadline, meet, reap at once, flush, and report how many they claimed.
async fn reaper_child(dir: &Path, index: usize) {
    let store = RedisStore::connect(
        RedisConfig::from_url(&env(ENV_REDIS))
            .unwrap()
            .with_prefix(&env(ENV_PREFIX))
            .unwrap(),
    )
    .await
    .unwrap();
    let t0: u64 = env(ENV_T0).parse().unwrap();
    let clock = Arc::new(ManualClock::new(from_unix_ms(t0)));
    let accounting = Arc::new(
        Accounting::new(config(env(ENV_ADDR).parse().unwrap(), &env(ENV_SECRET))).unwrap(),
    );
    let mut sc = SessionConfig::default();
    sc.idle_timeout = Some(Duration::from_secs(60));
    let manager = SessionManager::builder(Arc::new(store))
        .config(sc)
        .clock(clock.clone())
        .observer(accounting.clone())
        .build()
        .unwrap();
    if index == 0 {
        let mut ids = String::new();
        for i in 0..EXPIRING {
            let user = manager.new_user(
                Identity::new(format!("idle{i}"), false),
                Mechanism::Radius,
                FROM,
            );
            user.start_session(FROM).await.unwrap();
            ids.push_str(&acct_id(
                user.session_id().unwrap().as_u64(),
                user.session_start().unwrap(),
            ));
            ids.push('\n');
        }
        publish(dir, "sessions", &ids);
    } else {
        wait_for(&dir.join("sessions"));
    }
    clock.advance(Duration::from_secs(61));
    publish(dir, &format!("ready-{index}"), "");
    wait_for(&dir.join(format!("ready-{}", 1 - index)));
    let claimed = manager.reap().await.unwrap();
    accounting.flush(WAIT).await.unwrap();
    publish(dir, &format!("claimed-{index}"), &claimed.to_string());
}

/// The entry point of the child processes (see the file's documentation). Run as part of the
/// suite, without a role in the environment, it has nothing to do.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ENV_ROLE) else {
        return;
    };
    let dir = PathBuf::from(env(ENV_DIR));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "spool" => rt.block_on(spool_child(&dir)),
        "drain" => rt.block_on(drain_child(&dir)),
        "reaper-0" => rt.block_on(reaper_child(&dir, 0)),
        "reaper-1" => rt.block_on(reaper_child(&dir, 1)),
        other => panic!("unknown role {other}"),
    }
}

fn spawn_child(role: &str, dir: &Path, vars: &[(&str, String)]) -> Child {
    let log = std::fs::File::create(dir.join(format!("{role}.log"))).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_ROLE, role)
        .env(ENV_DIR, dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in vars {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

fn log_of(dir: &Path, role: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{role}.log"))).unwrap_or_default()
}

/// Waits for `child` to exit successfully (kills it and fails after the timeout).
fn finish(mut child: Child, dir: &Path, role: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{role}: {status}\n{}", log_of(dir, role));
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{role} did not finish\n{}", log_of(dir, role));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `dir/name`, failing with the child's log if the child exits first.
fn wait_for_child(child: &mut Child, dir: &Path, name: &str, role: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{role} exited ({status}) before {name}\n{}",
                log_of(dir, role)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{role}: no {name}\n{}",
            log_of(dir, role)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn spooled_records_survive_a_killed_process() {
    let mut server = FreeRadius::start(FreeRadiusOptions::default());
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let vars = [
        (ENV_ADDR, server.acct_addr().to_string()),
        (ENV_SECRET, server.secret().to_owned()),
        (ENV_SPOOL, spool.display().to_string()),
    ];
    let mut first = spawn_child("spool", dir.path(), &vars);
    let expected = wait_for_child(&mut first, dir.path(), "spooled", "spool");
    // SIGKILL: no destructor, no flush.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(server.detail().is_empty());

    server.restart();
    let second = spawn_child("drain", dir.path(), &vars);
    finish(second, dir.path(), "drain");
    let total = SPOOL_SESSIONS + SPOOL_ENDED;
    assert_eq!(
        wait_for(&dir.path().join("drained")),
        format!("{total} {total} 0")
    );
    let mut got: HashMap<(String, String), usize> = HashMap::new();
    for r in server.detail() {
        let key = (
            r.get("Acct-Session-Id").unwrap().to_owned(),
            r.get("Acct-Status-Type").unwrap().to_owned(),
        );
        *got.entry(key).or_default() += 1;
    }
    let mut want: HashMap<(String, String), usize> = HashMap::new();
    for line in expected.lines() {
        let (id, status) = line.split_once(' ').unwrap();
        want.insert((id.to_owned(), status.to_owned()), 1);
    }
    assert_eq!(got, want, "each spooled record exactly once");
    // Nothing is left in the spool.
    let left: Vec<_> = walk(&spool);
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn two_reapers_one_stop_per_expired_session() {
    let redis = RedisServer::start();
    let server = FreeRadius::start(FreeRadiusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let t0 = unix_ms(SystemTime::now()) / 1000 * 1000;
    let vars = [
        (ENV_ADDR, server.acct_addr().to_string()),
        (ENV_SECRET, server.secret().to_owned()),
        (ENV_REDIS, redis.url()),
        (ENV_PREFIX, unique_prefix("acct")),
        (ENV_T0, t0.to_string()),
    ];
    let children: Vec<Child> = (0..2)
        .map(|i| spawn_child(&format!("reaper-{i}"), dir.path(), &vars))
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        finish(child, dir.path(), &format!("reaper-{i}"));
    }
    let claimed: Vec<usize> = (0..2)
        .map(|i| {
            wait_for(&dir.path().join(format!("claimed-{i}")))
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(claimed.iter().sum::<usize>(), EXPIRING, "{claimed:?}");
    let ids = wait_for(&dir.path().join("sessions"));
    let detail = server.detail();
    for id in ids.lines() {
        let records: Vec<_> = detail
            .iter()
            .filter(|r| r.get("Acct-Session-Id") == Some(id))
            .collect();
        let stops: Vec<_> = records
            .iter()
            .filter(|r| r.get("Acct-Status-Type") == Some("Stop"))
            .collect();
        assert_eq!(stops.len(), 1, "{id}: {records:#?}");
        assert_eq!(stops[0].get("Acct-Terminate-Cause"), Some("Idle-Timeout"));
        assert_eq!(stops[0].integer("Acct-Session-Time"), Some(60));
        assert_eq!(stops[0].unix_time("Event-Timestamp"), Some(t0 / 1000 + 60));
        assert_eq!(stops[0].get("Acct-Authentic"), Some("RADIUS"));
        assert_eq!(records.len(), 2, "one Start, one Stop: {records:#?}");
    }
}
