//! RADIUS accounting: records per second acknowledged by the same local FreeRADIUS (started by
//! testkit, its `detail` module writing every record to a file), ours against `radclient`
//! (Debian `freeradius-utils`) sending the same Accounting-Requests with `-p 255`:
//!
//! - ours: `Accounting` (128 records in flight, its default: an identifier is reused only
//!   after 128 others, so FreeRADIUS is done with the previous request) fed through its
//!   observer calls,
//!   as the session manager does — a Start for each of N distinct sessions — timed from the
//!   first call to the end of `flush` (every record acknowledged);
//! - radclient: `-p 255 -f FILE` on N Accounting-Requests with the same attributes;
//!
//! alternating, the median round of each. Lost: records not acknowledged.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aaa_core::{CookieHash, Mechanism, SessionId, SessionObserver, SessionRecord, unix_ms};
use aaa_radius::RadiusServer;
use aaa_radius::accounting::{Accounting, AccountingConfig};
use testkit::radius::{FreeRadius, FreeRadiusOptions};

use crate::report::{Better, Row, median};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// Records outstanding at once for radclient (`-p`).
const OUTSTANDING: usize = 255;
/// Records outstanding at once for us (`max_in_flight`, the default).
const OURS_OUTSTANDING: usize = 128;
const NAS: &str = "aaa-bench";

pub(crate) async fn rows(quick: bool) -> Vec<Row> {
    let (rounds, per_round) = if quick { (1, 5_000) } else { (3, 20_000) };
    let server =
        match tokio::task::spawn_blocking(|| FreeRadius::start(FreeRadiusOptions::default())).await
        {
            Ok(server) => server,
            Err(e) => panic!("FreeRADIUS did not start: {e}"),
        };
    let accounting = Arc::new(accounting(&server, per_round));
    // Warm-up: sockets, FreeRADIUS threads, the detail file.
    let _ = our_round(&accounting, 500, 0).await;
    let mut ours = Vec::with_capacity(rounds);
    let mut anchor = Vec::with_capacity(rounds);
    let (mut ours_lost, mut anchor_lost) = (0, 0);
    for round in 0..rounds {
        let (rate, lost) = our_round(&accounting, per_round, (round + 1) * per_round).await;
        ours.push(rate);
        ours_lost += lost;
        let run = radclient(&server, per_round).await;
        anchor.push(per_round as f64 / run.seconds);
        anchor_lost += run.lost;
    }
    drop(accounting);
    if let Err(e) = tokio::task::spawn_blocking(move || drop(server)).await {
        panic!("FreeRADIUS did not stop: {e}");
    }
    let (ours, anchor) = (median(ours), median(anchor));
    vec![Row {
        name: format!(
            "radius accounting: records/s acknowledged, {OURS_OUTSTANDING} outstanding (radclient \
             {OUTSTANDING}), {rounds} x {per_round} Starts (lost: ours {ours_lost}, radclient \
             {anchor_lost})"
        ),
        unit: "records/s",
        ours,
        anchor: Some((
            format!("radclient -p {OUTSTANDING} (freeradius-utils), same FreeRADIUS"),
            anchor,
        )),
        ratio: ours / anchor,
        ratio_note: "ours/anchor",
        target: 1.0,
        better: Better::Higher,
    }]
}

fn accounting(server: &FreeRadius, capacity: usize) -> Accounting {
    let mut config = AccountingConfig::new(vec![RadiusServer::accounting(
        server.acct_addr(),
        server.secret(),
    )]);
    config.radius.nas_identifier = Some(NAS.to_owned());
    config.max_in_flight = OURS_OUTSTANDING;
    config.queue_capacity = capacity.max(1_000);
    match Accounting::new(config) {
        Ok(a) => a,
        Err(e) => panic!("cannot build the accounting client: {e}"),
    }
}

/// One round: `count` Starts of distinct sessions (ids from `first_id`), through the observer,
/// until all are acknowledged: (records per second, lost).
async fn our_round(accounting: &Accounting, count: usize, first_id: usize) -> (f64, usize) {
    let before = accounting.stats();
    let now = SystemTime::now();
    let start = Instant::now();
    for i in 0..count {
        let record = SessionRecord {
            key: CookieHash::from_bytes([0; 32]),
            id: SessionId::from_u64((first_id + i) as u64),
            username: "bench".to_owned(),
            read_write: false,
            mechanism: Mechanism::Local,
            src_addr: FROM,
            start: now,
            last_activity: now,
            idle_timeout: None,
            absolute_deadline: None,
        };
        accounting.session_started(&record);
    }
    let flushed = accounting.flush(Duration::from_secs(300)).await;
    let seconds = start.elapsed().as_secs_f64();
    if let Err(e) = flushed {
        panic!("the accounting bench round did not complete: {e}");
    }
    let after = accounting.stats();
    let acknowledged = after.acknowledged.saturating_sub(before.acknowledged);
    let lost = (count as u64).saturating_sub(acknowledged);
    (
        count as f64 / seconds,
        usize::try_from(lost).unwrap_or(usize::MAX),
    )
}

async fn radclient(server: &FreeRadius, count: usize) -> crate::radius::RadclientRun {
    let (addr, secret) = (server.acct_addr(), server.secret().to_owned());
    match tokio::task::spawn_blocking(move || run_radclient(addr, &secret, count)).await {
        Ok(run) => run,
        Err(e) => panic!("radclient run failed: {e}"),
    }
}

fn run_radclient(addr: SocketAddr, secret: &str, count: usize) -> crate::radius::RadclientRun {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    let file = dir.path().join("requests");
    let event = unix_ms(SystemTime::now()) / 1000;
    let write = std::fs::File::create(&file).and_then(|mut f| {
        for i in 0..count {
            writeln!(
                f,
                "Acct-Status-Type = Start, Acct-Session-Id = \"radclient-{i:08x}-{event:x}\", \
                 User-Name = \"bench\", NAS-Identifier = \"{NAS}\", Calling-Station-Id = \"{FROM}\", \
                 Acct-Authentic = Local, Event-Timestamp = {event}, Acct-Delay-Time = 0\n"
            )?;
        }
        f.flush()
    });
    if let Err(e) = write {
        panic!("cannot write {}: {e}", file.display());
    }
    crate::radius::radclient_file(&file, addr, "acct", secret, count, OUTSTANDING)
}
