#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure
//! Secrets and passwords never appear in Debug output, errors or logs; input limits and
//! configuration errors are clear and typed.

mod common;

use std::net::IpAddr;

use aaa_core::{Authenticator, Credentials, InvalidInput};
use aaa_radius::{
    RadiusAuthenticator, RadiusConfig, RadiusError, RadiusServer, Request, Secret, hide_password,
};
use common::{FROM, config};
use testkit::observe::capture_logs;
use testkit::radius::{HostileRadius, ReplySpec, SilentRadius};

const SERVER_SECRET: &str = "Server-Secret-Never-Shown";
const SHORT_SECRET: &str = "Short-Secret";
const PASSWORD: &str = "Password-Never-Shown";

fn assert_clean(text: &str) {
    for secret in [SERVER_SECRET, SHORT_SECRET, PASSWORD] {
        assert!(!text.contains(secret), "{secret} leaked into: {text}");
    }
}

#[test]
fn secrets_never_shown() {
    let (logs, _guard) = capture_logs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let silent = SilentRadius::start();
        let forger = HostileRadius::start(b"the-forger-does-not-know-it");
        forger.set_replies(vec![ReplySpec::accept_admin(), ReplySpec::reject()]);
        let mut c = config(&[
            (silent.addr(), SERVER_SECRET.as_bytes()),
            (forger.addr(), SHORT_SECRET.as_bytes()),
        ]);
        c.servers[1].require_message_authenticator = false;
        let radius = RadiusAuthenticator::new(c.clone()).unwrap();
        let creds = Credentials::new("admin", PASSWORD, FROM).unwrap();
        let d = radius.authenticate(&creds).await;
        // The forged accept (signed with another secret) is discarded, and the forger's
        // reject too: nobody answered validly.
        let text = format!("{d:?}");
        assert!(text.contains("Unavailable"), "{text}");
        if let aaa_core::Decision::Unavailable(e) = d {
            assert_clean(&e.to_string());
            assert_clean(&format!("{e:?}"));
        }
        let request = radius.access_request(&creds).unwrap();
        for debug in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{radius:?}"),
            format!("{:?}", radius.client()),
            format!("{request:?}"),
            format!("{creds:?}"),
            format!("{:?}", radius.client().stats()),
        ] {
            assert_clean(&debug);
        }
    });
    let text = logs.text();
    assert!(text.contains("shorter than 16 bytes"), "{text}");
    assert!(text.contains("marked dead"), "{text}");
    assert!(text.contains("discarded a datagram"), "{text}");
    assert_clean(&text);
}

#[test]
fn too_long_password_is_a_clear_error() {
    let long = "p".repeat(129);
    let mut r = Request::access_request();
    let e = r.user_password(long.as_bytes()).unwrap_err();
    assert!(matches!(e, RadiusError::PasswordTooLong { len: 129 }));
    assert_eq!(
        e.to_string(),
        "the password is 129 bytes long; RADIUS carries at most 128 bytes (it is never truncated)"
    );
    assert!(r.user_password("p".repeat(128).as_bytes()).is_ok());
    assert!(matches!(
        hide_password(long.as_bytes(), &Secret::from("s"), &[0; 16]),
        Err(RadiusError::PasswordTooLong { len: 129 })
    ));
    // The login API refuses it before any mechanism runs.
    assert!(matches!(
        Credentials::new("admin", &long, IpAddr::from([127, 0, 0, 1])),
        Err(InvalidInput::PasswordTooLong { len: 129 })
    ));
}

#[test]
fn configuration_errors_are_typed() {
    let server = |secret: &str| RadiusServer::new("127.0.0.1:1812".parse().unwrap(), secret);
    // No runtime.
    let e = RadiusAuthenticator::new(RadiusConfig::new(vec![server("a-good-long-secret")]))
        .unwrap_err();
    assert!(matches!(e, RadiusError::NoRuntime(_)), "{e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = RadiusAuthenticator::new(RadiusConfig::new(vec![server("")])).unwrap_err();
        assert!(matches!(e, RadiusError::EmptySecret { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "the shared secret of RADIUS server 127.0.0.1:1812 is empty"
        );
        let e = RadiusAuthenticator::new(RadiusConfig::new(Vec::new())).unwrap_err();
        assert!(matches!(e, RadiusError::NoServers));
        let mut c = RadiusConfig::new(vec![server("a-good-long-secret")]);
        c.nas_identifier = None;
        let e = RadiusAuthenticator::new(c).unwrap_err();
        assert!(matches!(e, RadiusError::NoNasIdentity));
        let mut c = RadiusConfig::new(vec![server("a-good-long-secret")]);
        c.retransmit.initial = std::time::Duration::ZERO;
        let e = RadiusAuthenticator::new(c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "retransmit.initial must be greater than zero"
        );
    });
}
