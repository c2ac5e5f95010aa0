#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Interoperability with a real FreeRADIUS (3.2.x, started by testkit on a free loopback
//! port), and failover between real and fake servers.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aaa_core::{Credentials, Decision, Mechanism, MethodList, Outcome, RejectReason};
use aaa_local::{Level, LocalAccounts};
use aaa_radius::{Discard, PrivilegeMapping, RadiusAuthenticator, RadiusError, Retransmit};
use common::{FROM, SECRET, accepted, config, login, unavailable};
use testkit::radius::{
    ADMIN, EXTREME, FreeRadius, FreeRadiusOptions, HostileRadius, LEVEL1, LEVEL15, LONG, OPER,
    PLAIN, ReplySpec, SIXTEEN, SilentRadius,
};

fn radius_for(server: &FreeRadius) -> RadiusAuthenticator {
    RadiusAuthenticator::new(config(&[(server.addr(), server.secret().as_bytes())])).unwrap()
}

/// The server sends a Message-Authenticator and the client requires one (the default):
/// admin is read/write, the others read-only; 16- and 128-byte passwords (User-Password
/// hiding at a block boundary and at the maximum) are accepted by the server.
#[tokio::test]
async fn users_get_their_privilege() {
    let server = FreeRadius::shared();
    let radius = radius_for(server);
    assert!(accepted(
        login(&radius, ADMIN.name, ADMIN.password).await,
        "admin"
    ));
    for u in [OPER, PLAIN, LEVEL15, LEVEL1, EXTREME] {
        assert!(
            !accepted(login(&radius, u.name, u.password).await, u.name),
            "{} must be read-only under the Service-Type mapping",
            u.name
        );
    }
    for u in [SIXTEEN, LONG] {
        assert!(accepted(login(&radius, u.name, u.password).await, u.name));
    }
    assert_eq!(LONG.password.len(), 128);
    let stats = &radius.client().stats()[0];
    assert_eq!(stats.discarded_total(), 0, "{stats:?}");
    assert_eq!(stats.retransmissions, 0, "{stats:?}");
}

#[tokio::test]
async fn privilege_mappings() {
    let server = FreeRadius::shared();
    let mut c = config(&[(server.addr(), server.secret().as_bytes())]);
    c.privilege = PrivilegeMapping::ManagementPrivilegeLevel { min: 15 };
    let radius = RadiusAuthenticator::new(c).unwrap();
    assert!(accepted(
        login(&radius, LEVEL15.name, LEVEL15.password).await,
        "level15"
    ));
    assert!(!accepted(
        login(&radius, LEVEL1.name, LEVEL1.password).await,
        "level1"
    ));
    assert!(!accepted(
        login(&radius, ADMIN.name, ADMIN.password).await,
        "admin"
    ));

    let mut c = config(&[(server.addr(), server.secret().as_bytes())]);
    // Extreme-CLI-Authorization = Enabled.
    c.privilege = PrivilegeMapping::vendor_integer(1916, 201, 1);
    let radius = RadiusAuthenticator::new(c).unwrap();
    assert!(accepted(
        login(&radius, EXTREME.name, EXTREME.password).await,
        "extreme"
    ));
    assert!(!accepted(
        login(&radius, ADMIN.name, ADMIN.password).await,
        "admin"
    ));
}

/// A wrong password is an Access-Reject, which is final: the secondary (a hostile server
/// recording everything) never sees the request.
#[tokio::test]
async fn reject_is_final_no_failover() {
    let server = FreeRadius::shared();
    let secondary = HostileRadius::start(SECRET);
    secondary.set_replies(vec![ReplySpec::accept_admin()]);
    let radius = RadiusAuthenticator::new(config(&[
        (server.addr(), server.secret().as_bytes()),
        (secondary.addr(), SECRET),
    ]))
    .unwrap();
    for (user, password) in [(ADMIN.name, "wrong-password"), ("nobody", "whatever")] {
        assert!(matches!(
            login(&radius, user, password).await,
            Decision::Reject(RejectReason::ServerReject)
        ));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(secondary.received().is_empty(), "the secondary was asked");
    assert!(radius.client().stats()[0].alive);
}

/// A FreeRADIUS that sends no Message-Authenticator: with the flag on (the default) every
/// reply is dropped, so no login is ever accepted (Unavailable); with the flag off, it works.
#[tokio::test]
async fn message_authenticator_required_or_not() {
    let server = FreeRadius::shared_without_message_authenticator();
    let radius = radius_for(server);
    let e = unavailable(login(&radius, ADMIN.name, ADMIN.password).await);
    assert!(matches!(e, RadiusError::NoServerAnswered { .. }), "{e}");
    let stats = &radius.client().stats()[0];
    assert!(
        stats.discarded(Discard::MissingMessageAuthenticator) >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.replies, 0);
    // Not even a reject gets through.
    let e = unavailable(login(&radius, ADMIN.name, "wrong-password").await);
    assert!(e.is_no_answer());

    let mut c = config(&[(server.addr(), server.secret().as_bytes())]);
    c.servers[0].require_message_authenticator = false;
    let lax = RadiusAuthenticator::new(c).unwrap();
    assert!(accepted(
        login(&lax, ADMIN.name, ADMIN.password).await,
        "admin"
    ));
    assert!(matches!(
        login(&lax, ADMIN.name, "wrong-password").await,
        Decision::Reject(RejectReason::ServerReject)
    ));
}

/// A client with the wrong shared secret is never accepted: FreeRADIUS drops its requests
/// (bad Message-Authenticator), so the answer is Unavailable.
#[tokio::test]
async fn wrong_shared_secret_never_accepts() {
    let server = FreeRadius::shared();
    let radius = RadiusAuthenticator::new(config(&[(
        server.addr(),
        b"not-the-shared-secret-at-all".as_slice(),
    )]))
    .unwrap();
    let e = unavailable(login(&radius, ADMIN.name, ADMIN.password).await);
    assert!(e.is_no_answer(), "{e}");
}

/// The primary is silent: the secondary (FreeRADIUS) answers, and the primary is then passed
/// over while dead.
#[tokio::test]
async fn silent_primary_fails_over_to_freeradius() {
    let server = FreeRadius::shared();
    let primary = SilentRadius::start();
    let radius = RadiusAuthenticator::new(config(&[
        (primary.addr(), SECRET),
        (server.addr(), server.secret().as_bytes()),
    ]))
    .unwrap();
    let start = Instant::now();
    assert!(accepted(
        login(&radius, ADMIN.name, ADMIN.password).await,
        "admin"
    ));
    assert!(start.elapsed() >= Duration::from_millis(300));
    // 0, 50, 150 ms: the first transmission and two retransmissions.
    assert_eq!(primary.received().len(), 3);
    let stats = radius.client().stats();
    assert!(!stats[0].alive && stats[1].alive, "{stats:?}");
    // Dead for 30 s: the next login goes straight to the secondary — nothing more is sent to
    // the primary (a wait for it would be three more transmissions).
    assert!(!accepted(
        login(&radius, OPER.name, OPER.password).await,
        "oper"
    ));
    assert_eq!(primary.received().len(), 3);
}

/// Both servers silent: Unavailable naming both; with a method list [radius, local] the local
/// account logs in.
#[tokio::test]
async fn all_silent_falls_through_to_local_accounts() {
    let a = SilentRadius::start();
    let b = SilentRadius::start();
    let radius = Arc::new(
        RadiusAuthenticator::new(config(&[(a.addr(), SECRET), (b.addr(), SECRET)])).unwrap(),
    );
    let e = unavailable(login(&radius, ADMIN.name, ADMIN.password).await);
    match &e {
        RadiusError::NoServerAnswered { tried } => {
            assert_eq!(tried.len(), 2);
            let text = e.to_string();
            assert!(
                text.contains(&a.addr().to_string()) && text.contains(&b.addr().to_string()),
                "{text}"
            );
        }
        other => panic!("{other}"),
    }
    // All dead: they are still tried, in order.
    let _ = login(&radius, ADMIN.name, ADMIN.password).await;
    assert_eq!((a.received().len(), b.received().len()), (6, 6));

    let dir = tempfile::tempdir().unwrap();
    let local = LocalAccounts::open(dir.path().join("accounts.toml")).unwrap();
    local
        .add("admin", "local-admin-password", Level::Admin)
        .await
        .unwrap();
    let mut list = MethodList::new();
    list.push(radius.clone()).push(Arc::new(local));
    let creds = Credentials::new("admin", "local-admin-password", FROM).unwrap();
    match list.run(&creds).await.unwrap() {
        Outcome::Accepted {
            identity,
            mechanism,
        } => {
            assert_eq!(mechanism, Mechanism::Local);
            assert!(identity.read_write);
        }
        other => panic!("{other:?}"),
    }
    // A RADIUS server that answers decides, local accounts are not asked.
    let server = FreeRadius::shared();
    let radius = Arc::new(radius_for(server));
    let mut list = MethodList::new();
    list.push(radius);
    let creds = Credentials::new(ADMIN.name, "local-admin-password", FROM).unwrap();
    assert!(matches!(
        list.run(&creds).await.unwrap(),
        Outcome::Rejected {
            mechanism: Mechanism::Radius,
            reason: RejectReason::ServerReject
        }
    ));
}

/// 300 logins at once through one client: all accepted by FreeRADIUS, on two sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_logins() {
    let server = FreeRadius::shared();
    let mut c = config(&[(server.addr(), server.secret().as_bytes())]);
    c.retransmit = Retransmit::new(
        Duration::from_secs(2),
        2,
        Duration::from_secs(4),
        Duration::from_secs(8),
    );
    let radius = Arc::new(RadiusAuthenticator::new(c).unwrap());
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let radius = radius.clone();
            tokio::spawn(async move {
                let (u, p) = if i % 2 == 0 {
                    (ADMIN.name, ADMIN.password)
                } else {
                    (OPER.name, OPER.password)
                };
                (i, accepted(login(&radius, u, p).await, u))
            })
        })
        .collect();
    for t in tasks {
        let (i, rw) = t.await.unwrap();
        assert_eq!(rw, i % 2 == 0);
    }
    let stats = &radius.client().stats()[0];
    assert_eq!((stats.requests, stats.replies), (300, 300), "{stats:?}");
    assert_eq!(stats.outstanding, 0);
    assert!(stats.sockets >= 1);
}

/// Dead-server handling against a FreeRADIUS that goes down and comes back: with
/// Status-Server probing, the server is back in service once a probe is answered (FreeRADIUS
/// answers Status-Server with an Access-Accept carrying a Message-Authenticator).
#[tokio::test]
async fn status_server_revives_a_restarted_server() {
    let mut server = FreeRadius::start(FreeRadiusOptions::default());
    let mut c = config(&[(server.addr(), server.secret().as_bytes())]);
    c.status_server = true;
    c.dead_time = Duration::from_millis(200);
    let radius = RadiusAuthenticator::new(c).unwrap();
    assert!(
        radius.client().probe(0).await.is_ok(),
        "FreeRADIUS answers Status-Server"
    );
    server.stop();
    let e = unavailable(login(&radius, ADMIN.name, ADMIN.password).await);
    assert!(e.is_no_answer());
    assert!(!radius.client().stats()[0].alive);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !radius.client().stats()[0].alive {
        assert!(Instant::now() < deadline, "not revived by the probes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted(
        login(&radius, ADMIN.name, ADMIN.password).await,
        "admin"
    ));
    assert!(server.log().contains("Ready to process requests"));
}
