//! What the coordinator tells each worker (a JSON file), and the file layout of a run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a login of a [`UserSpec`] must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Expect {
    /// Accepted, with this read/write flag.
    Accept {
        /// The privilege the login must get.
        read_write: bool,
    },
    /// Rejected (disabled account, unknown user, wrong password).
    Reject,
}

/// Where a user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Realm {
    /// A FreeRADIUS test user.
    Radius,
    /// A local account only.
    Local,
    /// Nowhere (the hostile server forges Accepts for it).
    Nowhere,
}

/// One user the workers log in as, with the answer their correct password must get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserSpec {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) realm: Realm,
    /// The answer to the correct password (a wrong one must always be rejected).
    pub(crate) expect: Expect,
}

/// One RADIUS server, in order of preference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerSpec {
    pub(crate) address: std::net::SocketAddr,
    pub(crate) secret: String,
}

/// The settings of one worker process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub(crate) index: usize,
    pub(crate) workers: usize,
    /// The run directory: journals, reports, barrier files.
    pub(crate) dir: PathBuf,
    pub(crate) redis_url: String,
    pub(crate) prefix: String,
    pub(crate) radius: Vec<ServerSpec>,
    pub(crate) accounts: PathBuf,
    pub(crate) users: Vec<UserSpec>,
    /// How long the load runs, from the `go` file's start time.
    pub(crate) seconds: u64,
    /// Concurrent clients (tokio tasks) in this process.
    pub(crate) clients: usize,
    /// Mean pause between two operations of one client.
    pub(crate) think_ms: u64,
    /// Own live sessions at most; above, a login becomes a logout.
    pub(crate) max_live: usize,
    /// Any call taking longer than this is a hung call.
    pub(crate) hang_bound_ms: u64,
    pub(crate) idle_timeout_s: u64,
    /// argon2id with `HashParams::insecure_for_tests` instead of the defaults.
    pub(crate) cheap_hash: bool,
    pub(crate) seed: u64,
    /// The RADIUS retransmission policy: initial wait, retransmissions, longest wait, budget
    /// per server (ms), and the dead time (ms).
    pub(crate) radius_initial_ms: u64,
    pub(crate) radius_max_count: u32,
    pub(crate) radius_max_interval_ms: u64,
    pub(crate) radius_budget_ms: u64,
    pub(crate) radius_dead_time_ms: u64,
}

impl WorkerConfig {
    pub(crate) fn hang_bound(&self) -> Duration {
        Duration::from_millis(self.hang_bound_ms)
    }
}

/// The files of a run, all in its directory.
pub(crate) fn config_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("worker-{worker}.json"))
}
pub(crate) fn journal_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("journal-{worker}.log"))
}
pub(crate) fn report_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("report-{worker}.json"))
}
pub(crate) fn ready_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("ready-{worker}"))
}
pub(crate) fn panic_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("panic-{worker}.txt"))
}
pub(crate) fn log_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("worker-{worker}.log"))
}
/// Written by the coordinator when every worker is ready: the start time, in Unix ms.
pub(crate) fn go_path(dir: &Path) -> PathBuf {
    dir.join("go")
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `text` to `path` atomically (a temporary file renamed into place).
pub(crate) fn publish(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The peak and current resident set size of this process, in KiB (`VmHWM`, `VmRSS`).
pub(crate) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
