//! `cargo xtask soak [--minutes N]`: mixed load from several OS processes against a real Redis
//! and two real FreeRADIUS servers while faults are injected, then the books are checked.
//!
//! **The coordinator** (`aaa-soak --minutes N`, default 10) starts, on loopback ports in a
//! temporary directory, a Redis with `appendonly yes` and `appendfsync always`, a primary and a
//! secondary FreeRADIUS (each with its own secret), and an account file (argon2id with the
//! default parameters) with an admin, a read-only user and a disabled user. It then runs W
//! worker processes (this binary again: `aaa-soak worker --config FILE`) and, while they run,
//! injects faults on a schedule of one cycle per minute, followed by a quiet end
//! ([`faults::schedule`]):
//!
//! - Redis SIGKILLed, restarted 2 s later on the same port (its AOF replayed);
//! - the primary FreeRADIUS stopped for 5 s, then started again;
//! - an impostor on the primary's own address for 8 s (its FreeRADIUS stopped), answering
//!   every datagram with 14 forged or invalid replies (wrong Response Authenticator, wrong,
//!   missing, doubled or short Message-Authenticator, another secret, wrong identifier, bad
//!   lengths, bad attributes, a correctly signed Accept from another port, an
//!   Accounting-Response), all made by testkit's independent encoder;
//! - in odd cycles, Redis dies during the primary's outage and during the impostor's window.
//!
//! **A worker** has its own tokio runtime and `Aaa`: RADIUS (primary, secondary; 200 ms
//! initial wait, 2 retransmissions, 600 ms per server, dead time 2 s) whose reject falls
//! through (`OnReject::Next`) to the local accounts, so that local-only users can log in while
//! RADIUS answers, and sessions in the shared Redis (one prefix for all; idle timeout 1 h, so
//! nothing expires during a run). Its clients (tokio tasks) loop until the deadline over a mix:
//! logins (RADIUS users, local users, a disabled account, wrong passwords, a user that exists
//! nowhere) each followed by `start_session`; validations of own live sessions (must be the
//! same `Arc<ExosUser>`), of own ended sessions (must be invalid), of other workers' sessions
//! (read from their journals); logouts; `get_sessions` + `clear_session` of a random session
//! (its cookie, when known, must be invalid at once). Every call runs under a 10 s hang bound.
//! A session counts as acknowledged once its `started` line is fsynced in the worker's
//! journal; ends are journaled after the call returned (`journal.rs`). A panic anywhere writes
//! a marker file and exits with 101. At the end the worker writes its report: calls by
//! operation and outcome, latency histograms, login outcomes against expectations, RADIUS
//! counters every 500 ms, `VmRSS` every 5 s and `VmHWM`.
//!
//! **The books** (after the workers exit, Redis up): every session started and not ended must
//! be valid (else *lost*); every session logged out or cleared must be invalid (else
//! *revived*); no session may be ended twice; a session whose end failed with an error has an
//! unknown outcome and is only counted. The summary (markdown on stdout) has the faults, the
//! load per worker and per operation, RADIUS counters, the books and the checks; the exit code
//! is 1 if a check failed (lost, revived, double end, panic, hung call, security failure,
//! memory over the bound, no failover or no return to the primary), 2 if the run could not be
//! set up.
#![forbid(unsafe_code)]
// A harness that cannot set itself up should stop loudly: unwrap/expect are allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod coordinator;
mod faults;
mod journal;
mod report;
mod rng;
mod summary;
mod worker;

use std::path::PathBuf;

const USAGE: &str = "usage: aaa-soak [options]
  --minutes N        how long the load runs (default 10)
  --workers W        worker processes (default 3)
  --clients C        concurrent clients per worker (default 4)
  --think-ms T       mean pause between two calls of a client (default 40)
  --max-live L       own live sessions per worker at most (default 150)
  --rss-bound-mib M  peak RSS allowed per worker (default 128)
  --seed S           seed of the operation mix (default: the time)
  --keep             keep the run directory (always kept when a check fails)
  --cheap-hash       argon2id with test parameters instead of the defaults
  --volatile-redis   Redis without persistence: a negative control (sessions are lost)
       aaa-soak worker --config FILE";

/// Logs of `aaa` and of the harness at `warn` and above on stderr (`AAA_SOAK_LOG` to change).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AAA_SOAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn number<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, name: &str) -> T {
    match args.next().and_then(|v| v.parse().ok()) {
        Some(v) => v,
        None => {
            eprintln!("{name} needs a number\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("worker") {
        args.next();
        let config = match (args.next().as_deref(), args.next()) {
            (Some("--config"), Some(path)) => PathBuf::from(path),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        };
        std::process::exit(worker::main(&config));
    }
    let mut opts = coordinator::Options {
        minutes: 10,
        workers: 3,
        clients: 4,
        think_ms: 40,
        max_live: 150,
        rss_bound_mib: 128,
        seed: config::unix_ms(),
        keep: false,
        cheap_hash: false,
        volatile_redis: false,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => opts.minutes = number(&mut args, "--minutes"),
            "--workers" => opts.workers = number(&mut args, "--workers"),
            "--clients" => opts.clients = number(&mut args, "--clients"),
            "--think-ms" => opts.think_ms = number(&mut args, "--think-ms"),
            "--max-live" => opts.max_live = number(&mut args, "--max-live"),
            "--rss-bound-mib" => opts.rss_bound_mib = number(&mut args, "--rss-bound-mib"),
            "--seed" => opts.seed = number(&mut args, "--seed"),
            "--keep" => opts.keep = true,
            "--cheap-hash" => opts.cheap_hash = true,
            "--volatile-redis" => opts.volatile_redis = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if opts.minutes == 0 || opts.minutes > 24 * 60 || !(2..=16).contains(&opts.workers) {
        eprintln!("--minutes must be 1 to 1440 and --workers 2 to 16\n{USAGE}");
        std::process::exit(2);
    }
    if opts.clients == 0 || opts.clients > 64 {
        eprintln!("--clients must be 1 to 64\n{USAGE}");
        std::process::exit(2);
    }
    init_tracing();
    std::process::exit(coordinator::main(&opts));
}
