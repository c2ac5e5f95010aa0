//! No user enumeration by timing: a login for an unknown user against a login for a known user
//! with a wrong password, on local accounts at the default argon2 parameters.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use aaa_core::{Authenticator, Credentials, Decision};
use aaa_local::{Level, LocalAccounts};

use crate::report::{Better, Row, median};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 33));

async fn login_ms(accounts: &LocalAccounts, user: &str) -> f64 {
    let creds = Credentials::new(user, "not-the-password", FROM).expect("valid input");
    let t = Instant::now();
    let d = accounts.authenticate(&creds).await;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(matches!(d, Decision::Reject(_)), "{d:?}");
    ms
}

pub(crate) async fn rows(quick: bool) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temp dir");
    let accounts = LocalAccounts::open(dir.path().join("accounts.toml")).expect("account file");
    accounts
        .add("known", "the-right-password", Level::User)
        .await
        .expect("add");
    // Unlocks before each wrong login so the known account never locks (a locked account
    // would also be answered after one dummy verification, but measure the plain case).
    let n = if quick { 15 } else { 60 };
    // Warm-up: the dummy hash is made on the first login.
    login_ms(&accounts, "ghost").await;
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    for i in 0..n {
        accounts.unlock("known").await.expect("unlock");
        // Interleaved, alternating order, so drift affects both sides alike.
        if i % 2 == 0 {
            unknown.push(login_ms(&accounts, &format!("ghost{i}")).await);
            known.push(login_ms(&accounts, "known").await);
        } else {
            known.push(login_ms(&accounts, "known").await);
            unknown.push(login_ms(&accounts, &format!("ghost{i}")).await);
        }
    }
    let (u, k) = (median(unknown), median(known));
    vec![Row {
        name: format!(
            "local: rejected login, unknown user vs known user with a wrong password (median of {n})"
        ),
        unit: "ms",
        ours: u,
        anchor: Some(("known user, wrong password".to_owned(), k)),
        ratio: u / k,
        ratio_note: "unknown/known",
        target: 1.1,
        better: Better::Band(0.9),
    }]
}
