#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Many processes, one session table: 4 OS processes (this test binary, run again as workers)
//! each start 500 sessions at once through a `SessionManager` on a `RedisStore`, then each sees
//! all 2,000, validates the others' cookies, and sees a session cleared by another process end.
//! The processes meet through files in a temporary directory, with timeouts.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aaa_core::{AaaError, Identity, Mechanism};
use aaa_session::SessionManager;
use aaa_store_redis::{RedisConfig, RedisStore};
use testkit::redis::{RedisServer, unique_prefix};

const WORKERS: usize = 4;
const PER_WORKER: usize = 500;
const ENV_INDEX: &str = "AAA_REDIS_TEST_WORKER";
const ENV_URL: &str = "AAA_REDIS_TEST_URL";
const ENV_PREFIX: &str = "AAA_REDIS_TEST_PREFIX";
const ENV_DIR: &str = "AAA_REDIS_TEST_DIR";
const BARRIER_TIMEOUT: Duration = Duration::from_secs(90);
const WORKER_TIMEOUT: Duration = Duration::from_secs(180);
const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

/// Writes `text` to `dir/name` atomically (a temporary file renamed into place).
fn publish(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Waits until `dir/<stem>-<i>` exists for every worker.
fn barrier(dir: &Path, stem: &str) {
    let deadline = Instant::now() + BARRIER_TIMEOUT;
    while !(0..WORKERS).all(|i| dir.join(format!("{stem}-{i}")).exists()) {
        assert!(Instant::now() < deadline, "barrier {stem}: timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + BARRIER_TIMEOUT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the cookies worker `i` published: `username cookie` per line.
fn cookies_of(dir: &Path, i: usize) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join(format!("cookies-{i}")))
        .unwrap()
        .lines()
        .map(|l| {
            let (u, c) = l.split_once(' ').unwrap();
            (u.to_owned(), c.to_owned())
        })
        .collect()
}

/// What one worker process does (see the file's documentation).
async fn worker(index: usize, url: &str, prefix: &str, dir: &Path) {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .with_prefix(prefix)
        .unwrap();
    let store = Arc::new(RedisStore::connect(config).await.unwrap());
    let manager = SessionManager::builder(store).build().unwrap();

    // 500 sessions at once.
    let tasks: Vec<_> = (0..PER_WORKER)
        .map(|j| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let user = manager.new_user(
                    Identity::new(format!("w{index}-u{j}"), j % 2 == 0),
                    Mechanism::Local,
                    FROM,
                );
                let cookie = user.start_session(FROM).await.unwrap();
                (user, cookie.expose().to_owned())
            })
        })
        .collect();
    let mut mine = Vec::new();
    for t in tasks {
        mine.push(t.await.unwrap());
    }
    let text: String = mine
        .iter()
        .map(|(u, c)| format!("{} {c}\n", u.username()))
        .collect();
    publish(dir, &format!("cookies-{index}"), &text);
    barrier(dir, "cookies");

    // Every process sees every session, each id once.
    let listed = manager.get_sessions().await.unwrap();
    assert_eq!(listed.len(), WORKERS * PER_WORKER);
    let names: HashSet<&str> = listed.iter().map(|s| s.username.as_str()).collect();
    assert_eq!(names.len(), WORKERS * PER_WORKER);
    let ids: HashSet<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(
        ids.len(),
        WORKERS * PER_WORKER,
        "ids are unique across processes"
    );

    // Own sessions: the very instances that started them.
    for (user, cookie) in &mine {
        let got = manager.validate_session(cookie).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(user, &got));
    }
    // The others' sessions are valid here, with the same instance on each lookup.
    let mut seen = HashMap::new();
    for other in (0..WORKERS).filter(|&o| o != index) {
        for (name, cookie) in cookies_of(dir, other) {
            let u1 = manager.validate_session(&cookie).await.unwrap().unwrap();
            assert_eq!(u1.username(), name);
            let u2 = manager.validate_session(&cookie).await.unwrap().unwrap();
            assert!(Arc::ptr_eq(&u1, &u2), "the same Arc on each lookup");
            seen.insert(cookie, u1);
        }
    }
    assert_eq!(seen.len(), (WORKERS - 1) * PER_WORKER);
    publish(dir, &format!("checked-{index}"), "");
    barrier(dir, "checked");

    // Process 0 clears process 1's first session; every process sees it end.
    let (victim_name, victim_cookie) = cookies_of(dir, 1)[0].clone();
    if index == 0 {
        let user = &seen[&victim_cookie];
        let info = manager
            .clear_session(user.session_id().unwrap())
            .await
            .unwrap();
        assert_eq!(info.username, victim_name);
        publish(dir, "cleared", "");
    } else {
        wait_for(&dir.join("cleared"));
    }
    assert!(
        manager
            .validate_session(&victim_cookie)
            .await
            .unwrap()
            .is_none()
    );
    if index == 1 {
        // The process that started it: its user learns the session is gone.
        let user = &mine[0].0;
        assert!(matches!(
            user.end_session().await,
            Err(AaaError::SessionDoesNotExist)
        ));
    }
    assert_eq!(
        manager.get_sessions().await.unwrap().len(),
        WORKERS * PER_WORKER - 1
    );
    publish(dir, &format!("done-{index}"), "");
}

/// The entry point of the worker processes that `four_processes_share_one_table` starts (this
/// test binary, run again with `--exact worker_process_entry` and the worker's settings in the
/// environment). Run as part of the suite, without those settings, it has nothing to do.
#[test]
fn worker_process_entry() {
    let Ok(index) = std::env::var(ENV_INDEX) else {
        return;
    };
    let index: usize = index.parse().unwrap();
    let url = std::env::var(ENV_URL).unwrap();
    let prefix = std::env::var(ENV_PREFIX).unwrap();
    let dir = PathBuf::from(std::env::var(ENV_DIR).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(worker(index, &url, &prefix, &dir));
}

#[test]
fn four_processes_share_one_table() {
    let server = RedisServer::start();
    let prefix = unique_prefix("procs");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|i| {
            let log = std::fs::File::create(dir.path().join(format!("worker-{i}.log"))).unwrap();
            Command::new(&exe)
                .args([
                    "--exact",
                    "worker_process_entry",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(ENV_INDEX, i.to_string())
                .env(ENV_URL, server.url())
                .env(ENV_PREFIX, &prefix)
                .env(ENV_DIR, dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    let logs = |dir: &Path| -> String {
        (0..WORKERS)
            .map(|i| {
                let text = std::fs::read_to_string(dir.join(format!("worker-{i}.log")))
                    .unwrap_or_default();
                format!("--- worker {i} ---\n{text}")
            })
            .collect()
    };
    let deadline = Instant::now() + WORKER_TIMEOUT;
    let mut statuses = [None; WORKERS];
    while statuses.iter().any(Option::is_none) {
        for (i, c) in children.iter_mut().enumerate() {
            if statuses[i].is_none() {
                statuses[i] = c.try_wait().unwrap();
            }
        }
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            panic!("workers did not finish in time\n{}", logs(dir.path()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, status) in statuses.iter().enumerate() {
        let status = status.unwrap();
        assert!(
            status.success(),
            "worker {i}: {status}\n{}",
            logs(dir.path())
        );
        // It ran the worker (not a filtered-out, empty run).
        assert!(
            dir.path().join(format!("done-{i}")).exists(),
            "worker {i} did not finish its steps\n{}",
            logs(dir.path())
        );
    }

    // And the table as a fresh process sees it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = RedisConfig::from_url(&server.url())
            .unwrap()
            .with_prefix(&prefix)
            .unwrap();
        let store = Arc::new(RedisStore::connect(config).await.unwrap());
        let manager = SessionManager::builder(store).build().unwrap();
        assert_eq!(
            manager.get_sessions().await.unwrap().len(),
            WORKERS * PER_WORKER - 1
        );
        let (_, cookie) = cookies_of(dir.path(), 3)[7].clone();
        assert!(manager.validate_session(&cookie).await.unwrap().is_some());
    });
}
