#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! The client against a scripted hostile server: what it sends, what it refuses, how it
//! retransmits, multiplexes and fails over.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aaa_core::{Decision, RejectReason};
use aaa_radius::{Discard, RadiusAuthenticator, RadiusError, Retransmit};
use common::{FROM, SECRET, accepted, config, login, unavailable};
use testkit::radius::{HostileRadius, MessageAuthenticator as Ma, ReplySpec, SilentRadius, Tamper};

fn client_for(server: &HostileRadius) -> RadiusAuthenticator {
    RadiusAuthenticator::new(config(&[(server.addr(), SECRET)])).unwrap()
}

/// Each hostile reply is discarded for the right reason, and the valid Access-Reject sent
/// right after it is the one taken: an accept that was forged, corrupted or unauthenticated
/// never wins.
#[tokio::test]
async fn hostile_replies_are_discarded() {
    let cases: Vec<(&str, ReplySpec, Discard)> = vec![
        (
            "no Message-Authenticator and a wrong Response Authenticator: the missing MA is seen first",
            ReplySpec::accept_admin()
                .message_authenticator(Ma::Absent)
                .tamper(Tamper::ResponseAuthenticator),
            Discard::MissingMessageAuthenticator,
        ),
        (
            "bit flip in the Response Authenticator, valid MA",
            ReplySpec::accept_admin().tamper(Tamper::ResponseAuthenticator),
            Discard::BadResponseAuthenticator,
        ),
        (
            "no Message-Authenticator",
            ReplySpec::accept_admin().message_authenticator(Ma::Absent),
            Discard::MissingMessageAuthenticator,
        ),
        (
            "wrong Message-Authenticator",
            ReplySpec::accept_admin().message_authenticator(Ma::Wrong),
            Discard::BadMessageAuthenticator,
        ),
        (
            "doubled Message-Authenticator",
            ReplySpec::accept_admin().message_authenticator(Ma::Doubled),
            Discard::DuplicateMessageAuthenticator,
        ),
        (
            "Message-Authenticator of 8 bytes",
            ReplySpec::accept_admin().message_authenticator(Ma::BadLength),
            Discard::BadMessageAuthenticator,
        ),
        (
            "signed with another secret",
            ReplySpec::accept_admin().signed_with(b"another-secret-entirely"),
            Discard::BadMessageAuthenticator,
        ),
        (
            "wrong identifier",
            ReplySpec::accept_admin().tamper(Tamper::Identifier),
            Discard::UnknownIdentifier,
        ),
        (
            "datagram shorter than Length",
            ReplySpec::accept_admin().tamper(Tamper::Truncated),
            Discard::BadLength,
        ),
        (
            "Length over 4096",
            ReplySpec::accept_admin().tamper(Tamper::LengthOver4096),
            Discard::BadLength,
        ),
        (
            "Length under 20",
            ReplySpec::accept_admin().tamper(Tamper::LengthUnder20),
            Discard::BadLength,
        ),
        (
            "attribute running past the packet",
            ReplySpec::accept_admin().tamper(Tamper::BadAttributeLength),
            Discard::BadAttributes,
        ),
        (
            "attribute of length 1",
            ReplySpec::accept_admin().tamper(Tamper::ZeroLengthAttribute),
            Discard::BadAttributes,
        ),
        (
            "Accounting-Response to an Access-Request",
            ReplySpec::code(5),
            Discard::UnexpectedCode,
        ),
        (
            "Access-Request as a reply",
            ReplySpec::code(1),
            Discard::UnexpectedCode,
        ),
        (
            "from another port",
            ReplySpec::accept_admin().from_other_port(),
            Discard::WrongSource,
        ),
    ];
    let server = HostileRadius::start(SECRET);
    // Long timeouts: the valid reply comes right after the hostile one, long before any
    // retransmission.
    let mut c = config(&[(server.addr(), SECRET)]);
    c.retransmit = Retransmit::new(
        Duration::from_secs(5),
        0,
        Duration::from_secs(5),
        Duration::from_secs(5),
    );
    let radius = RadiusAuthenticator::new(c).unwrap();
    for (name, hostile, reason) in cases {
        server.set_replies(vec![hostile, ReplySpec::reject()]);
        let before = radius.client().stats()[0].clone();
        let d = login(&radius, "admin", "admin-password").await;
        assert!(
            matches!(d, Decision::Reject(RejectReason::ServerReject)),
            "{name}: {d:?}"
        );
        let after = radius.client().stats()[0].clone();
        assert_eq!(
            after.discarded(reason),
            before.discarded(reason) + 1,
            "{name}: {after:?}"
        );
        assert_eq!(
            after.discarded_total(),
            before.discarded_total() + 1,
            "{name}: {after:?}"
        );
        assert_eq!(after.retransmissions, 0, "{name}");
    }
}

/// Valid replies in unusual shapes are taken: Message-Authenticator last (its position does
/// not matter), padding past Length (ignored), unknown attributes.
#[tokio::test]
async fn valid_but_unusual_replies_are_accepted() {
    let server = HostileRadius::start(SECRET);
    let radius = client_for(&server);
    for (name, spec) in [
        (
            "MA last",
            ReplySpec::accept_admin().message_authenticator(Ma::Last),
        ),
        (
            "padding",
            ReplySpec::accept_admin().tamper(Tamper::Padding(40)),
        ),
        (
            "unknown attributes",
            ReplySpec::accept()
                .attribute(250, b"whatever".to_vec())
                .attribute(6, 6u32.to_be_bytes())
                .attribute(26, vec![0, 0, 0, 9, 1, 3, 7]),
        ),
    ] {
        server.set_replies(vec![spec]);
        assert!(
            accepted(login(&radius, "admin", "pw").await, "admin"),
            "{name}"
        );
    }
    assert_eq!(radius.client().stats()[0].discarded_total(), 0);
}

/// An Accept the library does not understand is read-only, never more.
#[tokio::test]
async fn doubtful_accepts_are_read_only() {
    let server = HostileRadius::start(SECRET);
    let radius = client_for(&server);
    for (name, spec) in [
        ("no Service-Type", ReplySpec::accept()),
        (
            "Login-User",
            ReplySpec::accept().attribute(6, 1u32.to_be_bytes()),
        ),
        (
            "unknown value",
            ReplySpec::accept().attribute(6, 99u32.to_be_bytes()),
        ),
        (
            "malformed value",
            ReplySpec::accept().attribute(6, vec![0, 6]),
        ),
        (
            "two Service-Types",
            ReplySpec::accept_admin().attribute(6, 7u32.to_be_bytes()),
        ),
        (
            "admin twice",
            ReplySpec::accept_admin().attribute(6, 6u32.to_be_bytes()),
        ),
    ] {
        server.set_replies(vec![spec]);
        assert!(
            !accepted(login(&radius, "admin", "pw").await, "admin"),
            "{name}"
        );
    }
}

/// An Access-Challenge is a reject (challenges are not supported); without a
/// Message-Authenticator requirement, a reply without one is accepted.
#[tokio::test]
async fn challenge_and_lax_server() {
    let server = HostileRadius::start(SECRET);
    let radius = client_for(&server);
    server.set_replies(vec![ReplySpec::challenge()]);
    assert!(matches!(
        login(&radius, "admin", "pw").await,
        Decision::Reject(RejectReason::Unsupported)
    ));

    let mut c = config(&[(server.addr(), SECRET)]);
    c.servers[0].require_message_authenticator = false;
    let lax = RadiusAuthenticator::new(c).unwrap();
    server.set_replies(vec![
        ReplySpec::accept_admin().message_authenticator(Ma::Absent),
    ]);
    assert!(accepted(login(&lax, "admin", "pw").await, "admin"));
    // Present, it is still verified.
    server.set_replies(vec![
        ReplySpec::accept_admin().message_authenticator(Ma::Wrong),
        ReplySpec::reject(),
    ]);
    assert!(matches!(
        login(&lax, "admin", "pw").await,
        Decision::Reject(RejectReason::ServerReject)
    ));
}

/// Duplicates of a reply, a late reply and an unsolicited one are discarded.
#[tokio::test]
async fn duplicate_late_and_unsolicited_replies() {
    let server = HostileRadius::start(SECRET);
    let radius = client_for(&server);
    server.set_replies(vec![ReplySpec::accept_admin().copies(3)]);
    assert!(accepted(login(&radius, "admin", "pw").await, "admin"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = radius.client().stats()[0].clone();
    assert_eq!(
        (s.replies, s.discarded(Discard::UnknownIdentifier)),
        (1, 2),
        "{s:?}"
    );

    // Later than the whole retransmission budget (400 ms).
    server.set_replies(vec![
        ReplySpec::accept_admin().delay(Duration::from_millis(600)),
    ]);
    let e = unavailable(login(&radius, "admin", "pw").await);
    assert!(e.is_no_answer());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = radius.client().stats()[0].clone();
    // Three transmissions, three late replies: all discarded.
    assert_eq!(
        (s.replies, s.discarded(Discard::UnknownIdentifier)),
        (1, 5),
        "{s:?}"
    );

    // Unsolicited: a reply to a request the client never sent.
    server.silent();
    let mut fake = server.received().last().unwrap().clone();
    fake.bytes[1] = fake.bytes[1].wrapping_add(100);
    server.reply_to(&fake, &ReplySpec::accept_admin()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = radius.client().stats()[0].clone();
    assert_eq!(s.discarded(Discard::UnknownIdentifier), 6, "{s:?}");
}

/// The Access-Request: Message-Authenticator first and valid, User-Name, User-Password
/// (hidden, and un-hidden by an independent implementation), NAS-Identifier, NAS-IP-Address,
/// Service-Type = Login-User, Calling-Station-Id = the source address.
#[tokio::test]
async fn request_attributes() {
    let server = HostileRadius::start(SECRET);
    let mut c = config(&[(server.addr(), SECRET)]);
    c.nas_ip_address = Some("192.0.2.10".parse().unwrap());
    let radius = RadiusAuthenticator::new(c).unwrap();
    server.set_replies(vec![ReplySpec::reject()]);
    let password = "pässwörd with 20+ bytes, ünïcode";
    let _ = login(&radius, "operator", password).await;
    let r = &server.received()[0];
    assert_eq!(r.code(), 1);
    assert_eq!(&r.bytes[20..22], &[80, 18], "Message-Authenticator first");
    assert!(r.message_authenticator_ok(SECRET));
    assert!(!r.message_authenticator_ok(b"another secret"));
    let names: Vec<u8> = r.attributes().iter().map(|(t, _)| *t).collect();
    assert_eq!(names, [80, 1, 2, 32, 4, 6, 31]);
    assert_eq!(r.attribute(1).unwrap(), b"operator");
    assert_eq!(r.user_password(SECRET).unwrap(), password.as_bytes());
    assert_ne!(r.attribute(2).unwrap(), password.as_bytes());
    assert_eq!(r.attribute(32).unwrap(), b"test-nas");
    assert_eq!(r.attribute(4).unwrap(), [192, 0, 2, 10]);
    assert_eq!(r.attribute(6).unwrap(), 1u32.to_be_bytes());
    assert_eq!(r.attribute(31).unwrap(), FROM.to_string().as_bytes());

    // IPv6: NAS-IPv6-Address, and no NAS-Identifier when none is configured.
    let mut c = config(&[(server.addr(), SECRET)]);
    c.nas_identifier = None;
    c.nas_ip_address = Some("2001:db8::10".parse().unwrap());
    let radius = RadiusAuthenticator::new(c).unwrap();
    let _ = login(&radius, "operator", "pw").await;
    let r = &server.received()[1];
    let names: Vec<u8> = r.attributes().iter().map(|(t, _)| *t).collect();
    assert_eq!(names, [80, 1, 2, 95, 6, 31]);
    let v6: std::net::Ipv6Addr = "2001:db8::10".parse().unwrap();
    assert_eq!(r.attribute(95).unwrap(), v6.octets());
}

/// Failover: the secondary gets a request with a new identifier and Request Authenticator,
/// the password hidden with its own secret; retransmissions to the primary are
/// byte-identical from one source port.
#[tokio::test]
async fn failover_re_encodes_for_the_next_server() {
    let primary = HostileRadius::start(SECRET);
    let secondary = HostileRadius::start(b"the-secondary-has-its-own-secret");
    secondary.set_replies(vec![ReplySpec::accept_admin()]);
    let radius = RadiusAuthenticator::new(config(&[
        (primary.addr(), SECRET),
        (secondary.addr(), b"the-secondary-has-its-own-secret"),
    ]))
    .unwrap();
    assert!(accepted(login(&radius, "admin", "admin-pw").await, "admin"));
    let p = primary.received();
    assert_eq!(p.len(), 3);
    assert!(
        p.iter()
            .all(|r| r.bytes == p[0].bytes && r.from == p[0].from)
    );
    let s = secondary.received();
    assert_eq!(s.len(), 1);
    assert_ne!(s[0].authenticator(), p[0].authenticator());
    assert_eq!(
        s[0].user_password(b"the-secondary-has-its-own-secret")
            .unwrap(),
        b"admin-pw"
    );
    assert!(s[0].message_authenticator_ok(b"the-secondary-has-its-own-secret"));
    assert_eq!(p[0].user_password(SECRET).unwrap(), b"admin-pw");
}

/// 300 logins at once: while all are outstanding, every (socket, identifier) is unique, and
/// past 256 a second socket is used; then all are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_outstanding_requests() {
    let server = HostileRadius::start(SECRET);
    let mut c = config(&[(server.addr(), SECRET)]);
    c.retransmit = Retransmit::new(
        Duration::from_secs(20),
        0,
        Duration::from_secs(20),
        Duration::from_secs(20),
    );
    let radius = Arc::new(RadiusAuthenticator::new(c).unwrap());
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let radius = radius.clone();
            tokio::spawn(async move { login(&radius, "admin", "pw").await })
        })
        .collect();
    let got = server.wait_for(300, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 300);
    let keys: HashSet<_> = got.iter().map(|r| (r.from, r.identifier())).collect();
    assert_eq!(
        keys.len(),
        300,
        "an identifier was reused while outstanding"
    );
    let ports: HashSet<_> = got.iter().map(|r| r.from).collect();
    assert_eq!(ports.len(), 2, "300 outstanding need two sockets");
    let authenticators: HashSet<_> = got.iter().map(|r| r.authenticator()).collect();
    assert_eq!(authenticators.len(), 300);
    let stats = radius.client().stats()[0].clone();
    assert_eq!((stats.sockets, stats.outstanding), (2, 300));
    for r in &got {
        server.reply_to(r, &ReplySpec::accept_admin()).await;
    }
    for t in tasks {
        assert!(accepted(t.await.unwrap(), "admin"));
    }
    assert_eq!(radius.client().stats()[0].outstanding, 0);
}

/// Retransmission timing on tokio's paused clock (no real waiting, no flakiness): the waits
/// follow RFC 5080 (initial ±10 %, then ×1.9–2.1 of the previous, capped at MRT ±10 %), every
/// retransmission is byte-identical from the same port, and the server is given up on when
/// MRC is reached.
#[tokio::test(start_paused = true)]
async fn retransmission_schedule() {
    let server = SilentRadius::start();
    let mut c = config(&[(server.addr(), SECRET)]);
    c.retransmit = Retransmit::new(
        Duration::from_secs(1),
        4,
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let radius = RadiusAuthenticator::new(c).unwrap();
    let start = tokio::time::Instant::now();
    let e = unavailable(login(&radius, "admin", "pw").await);
    let total = start.elapsed();
    let got = server.received();
    assert_eq!(got.len(), 5, "1 transmission + 4 retransmissions");
    assert!(
        got.iter()
            .all(|r| r.bytes == got[0].bytes && r.from == got[0].from)
    );
    let at: Vec<f64> = got.iter().map(|r| (r.at - start).as_secs_f64()).collect();
    assert!(at[0] < 0.001, "{at:?}");
    let mut previous: Option<f64> = None;
    let mut waits: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // The last wait: from the last transmission to the end.
    waits.push(total.as_secs_f64() - at[4]);
    for w in &waits {
        let ok = match previous {
            None => (0.9..=1.1).contains(w),
            Some(p) => (p * 1.9 - 0.002..=p * 2.1 + 0.002).contains(w) || (2.7..=3.3).contains(w),
        };
        assert!(ok, "wait {w} after {previous:?}: {waits:?}");
        assert!(*w <= 3.3 + 0.002, "{waits:?}");
        previous = Some(*w);
    }
    match e {
        RadiusError::NoServerAnswered { tried } => match &tried[0] {
            RadiusError::NoReply(n) => assert_eq!(n.transmissions, 5),
            other => panic!("{other}"),
        },
        other => panic!("{other}"),
    }
}

/// MRD cuts the exchange short: with 1 s, 10, 4 s, 5 s the request goes out at about 0, 1
/// and 3 s, and the server is given up on at exactly 5 s. Hostile datagrams arriving meanwhile
/// change nothing.
#[tokio::test(start_paused = true)]
async fn max_duration_and_invalid_replies_leave_timers_alone() {
    let server = HostileRadius::start(SECRET);
    server.set_replies(vec![
        ReplySpec::accept_admin().tamper(Tamper::ResponseAuthenticator),
        ReplySpec::accept_admin().message_authenticator(Ma::Absent),
        ReplySpec::accept_admin().tamper(Tamper::Truncated),
    ]);
    let mut c = config(&[(server.addr(), SECRET)]);
    c.retransmit = Retransmit::new(
        Duration::from_secs(1),
        10,
        Duration::from_secs(4),
        Duration::from_secs(5),
    );
    let radius = RadiusAuthenticator::new(c).unwrap();
    let start = tokio::time::Instant::now();
    let e = unavailable(login(&radius, "admin", "pw").await);
    assert!(e.is_no_answer());
    let total = start.elapsed();
    assert!(
        total >= Duration::from_secs(5) && total < Duration::from_millis(5010),
        "{total:?}"
    );
    let got = server.received();
    let at: Vec<f64> = got.iter().map(|r| (r.at - start).as_secs_f64()).collect();
    assert_eq!(at.len(), 3, "{at:?}");
    assert!((0.9..=1.1).contains(&at[1]), "{at:?}");
    assert!(
        (at[1] * 2.9 - 0.002..=at[1] * 3.1 + 0.002).contains(&at[2]),
        "{at:?}"
    );
    let s = radius.client().stats()[0].clone();
    assert_eq!(s.discarded_total(), 9, "{s:?}");
    assert_eq!(s.retransmissions, 2);
}

/// Dead servers: a silent primary is passed over for the dead time, then tried again; with
/// Status-Server probing it comes back only when a probe (with a Message-Authenticator, never
/// retransmitted) is answered.
#[tokio::test]
async fn dead_time_and_status_server_probes() {
    let primary = HostileRadius::start(SECRET);
    let secondary = HostileRadius::start(SECRET);
    secondary.set_replies(vec![ReplySpec::accept_admin()]);
    let mut c = config(&[(primary.addr(), SECRET), (secondary.addr(), SECRET)]);
    c.dead_time = Duration::from_millis(600);
    let radius = RadiusAuthenticator::new(c.clone()).unwrap();
    assert!(accepted(login(&radius, "admin", "pw").await, "admin"));
    assert_eq!(primary.received().len(), 3);
    assert!(accepted(login(&radius, "admin", "pw").await, "admin"));
    assert_eq!(primary.received().len(), 3, "a dead server was asked");
    tokio::time::sleep(Duration::from_millis(700)).await;
    primary.set_replies(vec![ReplySpec::reject()]);
    assert!(matches!(
        login(&radius, "admin", "pw").await,
        Decision::Reject(RejectReason::ServerReject)
    ));
    assert_eq!(primary.received().len(), 4);

    // With probes.
    let primary = HostileRadius::start(SECRET);
    let mut c = config(&[(primary.addr(), SECRET), (secondary.addr(), SECRET)]);
    c.dead_time = Duration::from_millis(1000);
    c.status_server = true;
    let radius = RadiusAuthenticator::new(c).unwrap();
    assert!(accepted(login(&radius, "admin", "pw").await, "admin"));
    assert_eq!(primary.received().len(), 3);
    // The primary answers only Status-Server, with an Accounting-Response (valid too).
    primary.set_responder(|r| {
        if r.code() == 12 {
            vec![ReplySpec::code(5)]
        } else {
            Vec::new()
        }
    });
    // Dead until a probe is answered (the first one goes out after the dead time).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!radius.client().stats()[0].alive);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !radius.client().stats()[0].alive {
        assert!(tokio::time::Instant::now() < deadline, "not revived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probes: Vec<_> = primary
        .received()
        .into_iter()
        .filter(|r| r.code() == 12)
        .collect();
    assert_eq!(probes.len(), 1, "one probe, never retransmitted");
    assert_eq!(&probes[0].bytes[20..22], &[80, 18]);
    assert!(probes[0].message_authenticator_ok(SECRET));
    assert_eq!(probes[0].attribute(32).unwrap(), b"test-nas");
    primary.set_replies(vec![ReplySpec::reject()]);
    assert!(matches!(
        login(&radius, "admin", "pw").await,
        Decision::Reject(RejectReason::ServerReject)
    ));
}

/// A probe answer that does not verify does not revive the server.
#[tokio::test]
async fn forged_probe_answers_do_not_revive() {
    let primary = HostileRadius::start(SECRET);
    let secondary = HostileRadius::start(SECRET);
    secondary.set_replies(vec![ReplySpec::reject()]);
    let mut c = config(&[(primary.addr(), SECRET), (secondary.addr(), SECRET)]);
    c.dead_time = Duration::from_millis(100);
    c.status_server = true;
    let radius = RadiusAuthenticator::new(c).unwrap();
    let _ = login(&radius, "admin", "pw").await;
    primary.set_responder(|r| {
        if r.code() == 12 {
            vec![
                ReplySpec::accept().message_authenticator(Ma::Absent),
                ReplySpec::accept().signed_with(b"wrong"),
                ReplySpec::reject(),
            ]
        } else {
            Vec::new()
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!radius.client().stats()[0].alive);
    let probes = primary.received().iter().filter(|r| r.code() == 12).count();
    assert!(probes >= 2, "{probes}");
}
