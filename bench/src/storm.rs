//! `validate_session` latency on the memory store while 100 logins hash at once: the runtime
//! must not be blocked by argon2 (it runs on the blocking pool, bounded).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use aaa::Aaa;
use aaa::local::{Level, LocalAccounts};

use crate::report::{Better, Row};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));

pub(crate) async fn rows() -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temp dir");
    let accounts = LocalAccounts::open(dir.path().join("accounts.toml")).expect("account file");
    accounts
        .add("admin", "storm-password-1", Level::Admin)
        .await
        .expect("add admin");
    let aaa = Aaa::builder().local(accounts).build().expect("aaa");
    let user = aaa
        .authenticate_user("admin", "storm-password-1", FROM)
        .await
        .expect("login")
        .expect("accepted");
    let cookie = user.start_session(FROM).await.expect("session");

    // The storm: 100 logins at once (default argon2 parameters).
    let storm: Vec<_> = (0..100)
        .map(|i| {
            let aaa = aaa.clone();
            let pw = if i % 2 == 0 {
                "storm-password-1"
            } else {
                "wrong-password"
            };
            tokio::spawn(async move { aaa.authenticate_user("admin", pw, FROM).await })
        })
        .collect();
    let storm_running = Instant::now();

    // Meanwhile, validations on the same runtime, one at a time, measured one by one.
    let mut lat = Vec::new();
    while !storm.iter().all(tokio::task::JoinHandle::is_finished) {
        let t = Instant::now();
        let u = aaa
            .validate_session(cookie.expose())
            .await
            .expect("validate");
        lat.push(t.elapsed());
        assert!(u.is_some());
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let storm_time = storm_running.elapsed();
    for h in storm {
        h.await.expect("login task").expect("login decided");
    }
    lat.sort();
    let p99 = lat
        .get(lat.len() * 99 / 100)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1e6;
    vec![Row {
        name: format!(
            "memory validate_session p99 during 100 concurrent logins ({} samples over {:.1} s)",
            lat.len(),
            storm_time.as_secs_f64()
        ),
        unit: "µs",
        ours: p99,
        anchor: None,
        ratio: p99 / 1000.0,
        ratio_note: "p99/1ms",
        target: 1.0,
        better: Better::Lower,
    }]
}
