//! RADIUS for **aaa**: management logins against primary/secondary RADIUS servers, the EXOS
//! way, with the protections BlastRADIUS (CVE-2024-3596) made mandatory.
//!
//! [`RadiusAuthenticator`] implements [`aaa_core::Authenticator`]
//! ([`Mechanism::Radius`](aaa_core::Mechanism::Radius)) with PAP. It rests on [`Client`], a
//! transport of its own (the `radius` crate serves only as packet codec and dictionaries):
//!
//! - **One UDP socket per server** multiplexes up to 224 outstanding requests (identifiers
//!   handed out least recently used first, 32 of the 256 kept free so that none is reused right
//!   after its answer; another socket past 224). Nothing blocks per
//!   request.
//! - **Requests**: a Request Authenticator of 16 bytes from the OS random generator for every
//!   new identifier; a Message-Authenticator (HMAC-MD5) as the first attribute of every
//!   Access-Request and Status-Server; User-Password hidden (RFC 2865 §5.2, at most 128 bytes,
//!   never truncated); byte-identical retransmissions with RFC 5080 backoff ([`Retransmit`]).
//! - **Every reply checked before use**, digests compared in constant time: source address
//!   and port, Length (20–4096, not past the datagram; bytes past it ignored), attribute
//!   syntax, Message-Authenticator (required when the server's
//!   `require_message_authenticator` is on — the default — verified whenever present, never
//!   doubled), identifier of an outstanding request, code valid for the request, Response
//!   Authenticator. Anything else is discarded silently ([`Discard`], counted in
//!   [`ServerStats`], logged at a limited rate) without disturbing the retransmission timers.
//! - **Servers in order**: failover only when a server does not answer; an Access-Reject is
//!   final; a silent server is dead for `dead_time` and, with `status_server`, probed with
//!   Status-Server (RFC 5997) until it answers. When no server answers, the decision is
//!   `Unavailable`, so a method list `[radius, local]` falls through to local accounts.
//! - **Privilege**: Service-Type = Administrative-User gives read/write, anything else
//!   read-only; or RFC 5607 Management-Privilege-Level, or a vendor attribute
//!   ([`PrivilegeMapping`]). An Access-Challenge is a reject.
//! - **Secrets** ([`Secret`]) and passwords never appear in `Debug` output, logs or errors.
//! - **Accounting** ([`accounting`], RFC 2866): a Start and a Stop (and optional
//!   Interim-Updates) for every session, as an [`aaa_core::SessionObserver`] — queued without
//!   blocking, sent through a [`Client`] of its own, retried until acknowledged, optionally
//!   spooled to disk so that nothing is lost across restarts.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, UdpSocket};
//! use std::time::Duration;
//! use aaa_core::{Authenticator, Credentials, Decision};
//! use aaa_radius::{RadiusAuthenticator, RadiusConfig, RadiusError, RadiusServer, Request,
//!                  Retransmit, Secret};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! // A "server" that never answers.
//! let silent = UdpSocket::bind("127.0.0.1:0")?;
//!
//! let mut config = RadiusConfig::new(vec![RadiusServer::new(
//!     silent.local_addr()?,
//!     "a long random shared secret",
//! )]);
//! config.nas_identifier = Some("switch-1".to_owned());
//! // Short timeouts for the example; the defaults are 1 s, 3, 4 s and 5 s.
//! config.retransmit = Retransmit::new(
//!     Duration::from_millis(20), 2, Duration::from_millis(80), Duration::from_millis(200));
//! let radius = RadiusAuthenticator::new(config)?;
//!
//! let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let login = Credentials::new("admin", "correct horse", from)?;
//!
//! // What goes on the wire: Message-Authenticator first, then User-Name.
//! let request = radius.access_request(&login)?;
//! let bytes = request.encode(7, &[0x5a; 16], &Secret::from("a long random shared secret"))?;
//! assert_eq!((bytes[0], bytes[1]), (1, 7)); // Access-Request, identifier 7
//! assert_eq!(&bytes[20..22], &[80, 18]); // Message-Authenticator, 18 bytes
//! assert_eq!(&bytes[38..45], b"\x01\x07admin"); // User-Name
//!
//! // Nobody answers: no decision, the method list would try the next mechanism.
//! match radius.authenticate(&login).await {
//!     Decision::Unavailable(e) => {
//!         let e = e.downcast::<RadiusError>().expect("a RadiusError");
//!         assert!(matches!(*e, RadiusError::NoServerAnswered { .. }));
//!     }
//!     other => panic!("expected Unavailable, got {other:?}"),
//! }
//! let stats = &radius.client().stats()[0];
//! assert_eq!((stats.requests, stats.retransmissions, stats.no_reply), (1, 2, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`Retransmit`] | first wait 1 s, doubling (±10 % jitter) up to 4 s, at most 3 retransmissions, 5 s per server |
//! | `dead_time` | 30 s |
//! | `status_server` | off |
//! | `require_message_authenticator` | on, per server |
//! | NAS-Identifier | the host name, else `aaa` |
//! | privilege | Service-Type = Administrative-User → read/write |
//!
//! With the defaults a login whose primary and secondary servers are both down is decided
//! `Unavailable` after about 10 s.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounting;
mod accounting_record;
mod accounting_spool;
mod accounting_worker;
mod authenticator;
mod backoff;
mod config;
mod error;
mod packet;
mod secret;
mod stats;
mod transport;
mod util;

pub use authenticator::RadiusAuthenticator;
pub use config::{
    MIN_RECOMMENDED_SECRET_BYTES, PrivilegeMapping, RadiusConfig, RadiusServer, Retransmit,
};
pub use error::{NoReply, RadiusError};
pub use packet::{
    Code, Discard, HEADER_LEN, MAX_ATTRIBUTE_VALUE, MAX_PACKET_LEN, MAX_PASSWORD_LEN, Reply,
    Request, hide_password,
};
pub use secret::Secret;
pub use stats::ServerStats;
pub use transport::Client;
