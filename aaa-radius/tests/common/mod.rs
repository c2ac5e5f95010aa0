//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use aaa_core::{Authenticator, Credentials, Decision};
use aaa_radius::{RadiusAuthenticator, RadiusConfig, RadiusError, RadiusServer, Retransmit};

/// Where the test logins come from.
pub(crate) const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77));

/// A secret for hostile servers.
pub(crate) const SECRET: &[u8] = b"hostile-server-shared-secret";

/// Quick retransmission for tests on real time: 50 ms, 2 retransmissions, 200 ms, 400 ms.
pub(crate) fn quick() -> Retransmit {
    Retransmit::new(
        Duration::from_millis(50),
        2,
        Duration::from_millis(200),
        Duration::from_millis(400),
    )
}

/// A configuration for `servers` (address, secret), quick retransmission, NAS-Identifier
/// `test-nas`.
pub(crate) fn config(servers: &[(SocketAddr, &[u8])]) -> RadiusConfig {
    let mut c = RadiusConfig::new(
        servers
            .iter()
            .map(|(a, s)| RadiusServer::new(*a, s.to_vec()))
            .collect(),
    );
    c.nas_identifier = Some("test-nas".to_owned());
    c.retransmit = quick();
    c
}

/// Logs `user` in with `password` from [`FROM`].
pub(crate) async fn login(radius: &RadiusAuthenticator, user: &str, password: &str) -> Decision {
    let creds = Credentials::new(user, password, FROM).unwrap();
    radius.authenticate(&creds).await
}

/// `Some(read_write)` for an Accept, panics on anything else.
pub(crate) fn accepted(d: Decision, user: &str) -> bool {
    match d {
        Decision::Accept(identity) => {
            assert_eq!(identity.username, user);
            identity.read_write
        }
        other => panic!("{user}: expected Accept, got {other:?}"),
    }
}

/// The RadiusError inside an Unavailable, panics on anything else.
pub(crate) fn unavailable(d: Decision) -> RadiusError {
    match d {
        Decision::Unavailable(e) => *e.downcast::<RadiusError>().expect("a RadiusError"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
