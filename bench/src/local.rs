//! Local accounts: argon2id verification next to the reference `argon2` CLI, and whether two
//! concurrent logins take as long as one (hashing runs off the async workers, in parallel).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use aaa_core::{Authenticator, Credentials, Decision};
use aaa_local::{HashParams, Level, LocalAccounts};
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordVerifier};

use crate::report::{Better, Row, median};

/// The reference implementation's command-line tool (Debian package `argon2`).
const ARGON2_CLI: &str = "/usr/bin/argon2";
const PASSWORD: &str = "password";
const SALT: &str = "somesalt";
/// Samples per measurement; each row reports the median.
const RUNS: usize = 20;

pub(crate) async fn rows() -> Vec<Row> {
    vec![verify_vs_reference_cli().await, two_logins_vs_one().await]
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Runs the reference CLI once: hashes `PASSWORD` with `SALT` as argon2id with `m_kib`, `t`,
/// p = 1, and returns the encoded (PHC) hash. `-e` prints only the encoded hash; without it the
/// CLI also verifies its own hash, which would double the work measured.
fn run_cli(m_kib: u32, t: u32) -> String {
    let mut child = match Command::new(ARGON2_CLI)
        .args([
            SALT,
            "-id",
            "-k",
            &m_kib.to_string(),
            "-t",
            &t.to_string(),
            "-p",
            "1",
            "-e",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "the reference argon2 CLI ({ARGON2_CLI}) is missing: install it: apt-get install argon2"
            )
        }
        Err(e) => panic!("cannot run {ARGON2_CLI}: {e}"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // Like `echo -n password |`: no newline.
        if let Err(e) = stdin.write_all(PASSWORD.as_bytes()) {
            panic!("cannot write the password to {ARGON2_CLI}: {e}");
        }
    }
    let out = match child.wait_with_output() {
        Ok(out) => out,
        Err(e) => panic!("{ARGON2_CLI} failed: {e}"),
    };
    if !out.status.success() {
        panic!(
            "{ARGON2_CLI} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Median wall time (ms) of `RUNS` runs of the CLI, spawn included.
fn time_cli(m_kib: u32, t: u32) -> f64 {
    let samples = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run_cli(m_kib, t);
            ms_since(start)
        })
        .collect();
    median(samples)
}

/// (a) argon2id verification at the default parameters (m=19456 KiB, t=2, p=1): the argon2
/// crate, as aaa-local calls it, against the reference C implementation's CLI computing the
/// same hash. The CLI's time is its wall time minus the cost of spawning it, measured by
/// running it with the smallest parameters (m=8 KiB, t=1).
async fn verify_vs_reference_cli() -> Row {
    let p = HashParams::default();
    let (anchor_ms, spawn_ms, ours_ms) = match tokio::task::spawn_blocking(move || {
        // The CLI's hash, which ours must verify: the same work on both sides.
        let phc = run_cli(p.m_kib, p.t);
        let parsed = match PasswordHash::new(&phc) {
            Ok(h) => h,
            Err(e) => panic!("{ARGON2_CLI} printed an invalid PHC string {phc:?}: {e}"),
        };
        let expected = format!("$argon2id$v=19${p}$");
        assert!(
            phc.starts_with(&expected),
            "{ARGON2_CLI} hashed with other parameters: {phc}"
        );
        let verify = || Argon2::default().verify_password(PASSWORD.as_bytes(), &parsed);
        if let Err(e) = verify() {
            panic!("the argon2 crate does not verify the CLI's hash: {e}");
        }
        let ours = median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let ok = verify().is_ok();
                    let ms = ms_since(start);
                    assert!(ok);
                    ms
                })
                .collect(),
        );
        let spawn = time_cli(8, 1);
        let full = time_cli(p.m_kib, p.t);
        ((full - spawn).max(f64::MIN_POSITIVE), spawn, ours)
    })
    .await
    {
        Ok(measured) => measured,
        Err(e) => panic!("the argon2 measurement failed: {e}"),
    };
    Row {
        name: format!(
            "local: argon2id verify {p} (anchor: argon2 CLI -e, minus {spawn_ms:.2} ms spawn)"
        ),
        unit: "ms",
        ours: ours_ms,
        anchor: Some((
            "argon2 CLI (reference C, Debian `argon2`)".to_owned(),
            anchor_ms,
        )),
        ratio: ours_ms / anchor_ms,
        ratio_note: "ours/anchor",
        target: 1.15,
        better: Better::Lower,
    }
}

/// (b) `LocalAccounts::authenticate` at the default configuration: wall time of two concurrent
/// logins over the wall time of one. Near 1 when hashing runs in parallel off the async workers.
async fn two_logins_vs_one() -> Row {
    let dir = std::env::temp_dir().join(format!("aaa-bench-local-{}", std::process::id()));
    let row = measure_logins(dir.join("accounts.toml")).await;
    let _ = std::fs::remove_dir_all(&dir);
    row
}

async fn measure_logins(path: PathBuf) -> Row {
    let accounts = match LocalAccounts::open(&path) {
        Ok(a) => a,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    };
    if let Err(e) = accounts.add("admin", "bench-password", Level::Admin).await {
        panic!("cannot add the bench account: {e}");
    }
    let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let login = |accounts: LocalAccounts| async move {
        let creds = match Credentials::new("admin", "bench-password", from) {
            Ok(c) => c,
            Err(e) => panic!("bad bench credentials: {e}"),
        };
        match accounts.authenticate(&creds).await {
            Decision::Accept(_) => {}
            other => panic!("the bench login was not accepted: {other:?}"),
        }
    };
    // Warm-up (makes the dummy hash, faults the memory in).
    login(accounts.clone()).await;
    let mut one = Vec::with_capacity(RUNS);
    let mut two = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        login(accounts.clone()).await;
        one.push(ms_since(start));

        let start = Instant::now();
        let a = tokio::spawn(login(accounts.clone()));
        let b = tokio::spawn(login(accounts.clone()));
        for task in [a, b] {
            if let Err(e) = task.await {
                panic!("a bench login failed: {e}");
            }
        }
        two.push(ms_since(start));
    }
    let (one, two) = (median(one), median(two));
    Row {
        name: format!(
            "local: 2 concurrent logins vs 1 (LocalAccounts, {}, 1 login {one:.1} ms)",
            accounts.config().params
        ),
        unit: "ms",
        ours: two,
        anchor: None,
        ratio: two / one,
        ratio_note: "2 concurrent / 1",
        target: 1.2,
        better: Better::Lower,
    }
}
