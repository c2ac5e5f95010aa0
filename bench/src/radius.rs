//! RADIUS: `RadiusAuthenticator` against `radclient` (Debian `freeradius-utils`), both asking
//! the same FreeRADIUS (started by testkit on a free loopback port) to authenticate the same
//! user with PAP, every request carrying a Message-Authenticator:
//!
//! - (a) throughput with up to 255 requests outstanding: our client (255 tasks sharing one
//!   authenticator) against `radclient -p 255 -f FILE`, 20,000 requests a round, alternating,
//!   the median round of each (radclient slows down on much larger files, so the rounds are
//!   kept at a size it handles at full speed);
//! - (b) one request at a time: our median latency against `radclient -p 1`'s time per
//!   request (its total over the count).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aaa_core::{Authenticator, Credentials, Decision};
use aaa_radius::{RadiusAuthenticator, RadiusConfig, RadiusServer};
use testkit::radius::{ADMIN, FreeRadius, FreeRadiusOptions};

use crate::report::{Better, Row, median};

const RADCLIENT: &str = "/usr/bin/radclient";
const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// Requests outstanding at once in row (a), for us and for radclient (`-p`).
const OUTSTANDING: usize = 255;
/// Requests per round of row (a).
const ROUND: usize = 20_000;

pub(crate) async fn rows(quick: bool) -> Vec<Row> {
    let (rounds, sequential) = if quick { (1, 500) } else { (3, 1_000) };
    let server =
        match tokio::task::spawn_blocking(|| FreeRadius::start(FreeRadiusOptions::default())).await
        {
            Ok(server) => server,
            Err(e) => panic!("FreeRADIUS did not start: {e}"),
        };
    let radius = Arc::new(authenticator(&server));
    // Warm-up: sockets, FreeRADIUS threads, caches.
    for _ in 0..200 {
        login(&radius).await;
    }
    let rows = vec![
        throughput(&server, &radius, rounds).await,
        latency(&server, &radius, sequential).await,
    ];
    drop(radius);
    if let Err(e) = tokio::task::spawn_blocking(move || drop(server)).await {
        panic!("FreeRADIUS did not stop: {e}");
    }
    rows
}

fn authenticator(server: &FreeRadius) -> RadiusAuthenticator {
    let mut config = RadiusConfig::new(vec![RadiusServer::new(server.addr(), server.secret())]);
    config.nas_identifier = Some("aaa-bench".to_owned());
    match RadiusAuthenticator::new(config) {
        Ok(r) => r,
        Err(e) => panic!("cannot build the RADIUS client: {e}"),
    }
}

/// One login of the admin user; `true` if accepted, `false` if no server answered. Anything
/// else stops the benchmark.
async fn login(radius: &RadiusAuthenticator) -> bool {
    let creds = match Credentials::new(ADMIN.name, ADMIN.password, FROM) {
        Ok(c) => c,
        Err(e) => panic!("bad bench credentials: {e}"),
    };
    match radius.authenticate(&creds).await {
        Decision::Accept(_) => true,
        Decision::Unavailable(_) => false,
        other => panic!("the bench login was not accepted: {other:?}"),
    }
}

/// What radclient reported.
pub(crate) struct RadclientRun {
    pub(crate) seconds: f64,
    /// Requests not accepted (every request is one the server accepts when it answers).
    pub(crate) lost: usize,
}

/// Runs radclient (on a blocking thread) on `count` copies of the admin's Access-Request with
/// `parallel` outstanding.
async fn radclient(server: &FreeRadius, count: usize, parallel: usize) -> RadclientRun {
    let (addr, secret) = (server.addr(), server.secret().to_owned());
    match tokio::task::spawn_blocking(move || run_radclient(addr, &secret, count, parallel)).await {
        Ok(run) => run,
        Err(e) => panic!("radclient run failed: {e}"),
    }
}

fn run_radclient(addr: SocketAddr, secret: &str, count: usize, parallel: usize) -> RadclientRun {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    let file = dir.path().join("requests");
    let one = format!(
        "User-Name = \"{}\", User-Password = \"{}\", NAS-Identifier = \"aaa-bench\", Message-Authenticator = 0x00\n\n",
        ADMIN.name, ADMIN.password
    );
    let write = std::fs::File::create(&file).and_then(|mut f| {
        for _ in 0..count {
            f.write_all(one.as_bytes())?;
        }
        f.flush()
    });
    if let Err(e) = write {
        panic!("cannot write {}: {e}", file.display());
    }
    radclient_file(&file, addr, "auth", secret, count, parallel)
}

/// Runs radclient on the request file `file` (`count` requests, `kind` `auth` or `acct`) with
/// `parallel` outstanding, and reads its summary: time taken and requests not accepted.
pub(crate) fn radclient_file(
    file: &std::path::Path,
    addr: SocketAddr,
    kind: &str,
    secret: &str,
    count: usize,
    parallel: usize,
) -> RadclientRun {
    let start = Instant::now();
    let out = match Command::new(RADCLIENT)
        .args([
            "-q",
            "-s",
            "-t",
            "1",
            "-r",
            "4",
            "-p",
            &parallel.to_string(),
            "-f",
        ])
        .arg(file)
        .arg(addr.to_string())
        .arg(kind)
        .arg(secret)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{RADCLIENT} is missing: apt-get install freeradius-utils")
        }
        Err(e) => panic!("cannot run {RADCLIENT}: {e}"),
    };
    let seconds = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> usize {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
            })
            .unwrap_or_else(|| {
                panic!(
                    "no \"{name}\" in radclient's summary ({}): {text}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let accepted = field("Accepted");
    // Not answered: radclient's own "Lost" count can include a request that was answered
    // after a retransmission, so count what was not accepted.
    RadclientRun {
        seconds,
        lost: count.saturating_sub(accepted),
    }
}

/// (a) Authentications per second with up to 255 outstanding: `rounds` rounds of ours and
/// radclient's, alternating; the median of each.
async fn throughput(server: &FreeRadius, radius: &Arc<RadiusAuthenticator>, rounds: usize) -> Row {
    let mut ours = Vec::with_capacity(rounds);
    let mut anchor = Vec::with_capacity(rounds);
    let (mut ours_lost, mut anchor_lost) = (0, 0);
    for _ in 0..rounds {
        let (rate, lost) = our_round(radius, ROUND).await;
        ours.push(rate);
        ours_lost += lost;
        let run = radclient(server, ROUND, OUTSTANDING).await;
        anchor.push(ROUND as f64 / run.seconds);
        anchor_lost += run.lost;
    }
    let (ours, anchor) = (median(ours), median(anchor));
    Row {
        name: format!(
            "radius: PAP logins/s, {OUTSTANDING} outstanding, {rounds} x {ROUND} requests \
             (lost: ours {ours_lost}, radclient {anchor_lost})"
        ),
        unit: "logins/s",
        ours,
        anchor: Some((
            format!("radclient -p {OUTSTANDING} (freeradius-utils), same FreeRADIUS"),
            anchor,
        )),
        ratio: ours / anchor,
        ratio_note: "ours/anchor",
        target: 1.0,
        better: Better::Higher,
    }
}

/// One round of `requests` logins on `OUTSTANDING` tasks: (logins per second, lost).
async fn our_round(radius: &Arc<RadiusAuthenticator>, requests: usize) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..OUTSTANDING)
        .map(|_| {
            let (radius, next, lost) = (radius.clone(), next.clone(), lost.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    if !login(&radius).await {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            panic!("a bench task failed: {e}");
        }
    }
    (
        requests as f64 / start.elapsed().as_secs_f64(),
        lost.load(Ordering::Relaxed),
    )
}

/// (b) One request at a time: our median latency against radclient's mean time per request.
async fn latency(server: &FreeRadius, radius: &Arc<RadiusAuthenticator>, count: usize) -> Row {
    let mut samples = Vec::with_capacity(count);
    let mut lost = 0usize;
    for _ in 0..count {
        let start = Instant::now();
        if !login(radius).await {
            lost += 1;
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let p50 = median(samples);
    let anchor = radclient(server, count, 1).await;
    let anchor_us = anchor.seconds * 1e6 / count as f64;
    Row {
        name: format!(
            "radius: one login at a time, p50 (anchor: total/N), {count} requests \
             (lost: ours {lost}, radclient {})",
            anchor.lost
        ),
        unit: "µs",
        ours: p50,
        anchor: Some((
            "radclient -p 1 (freeradius-utils), same FreeRADIUS".to_owned(),
            anchor_us,
        )),
        ratio: p50 / anchor_us,
        ratio_note: "ours/anchor",
        target: 1.2,
        better: Better::Lower,
    }
}
