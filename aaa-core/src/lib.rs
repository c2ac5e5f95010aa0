//! Core types of **aaa**: authentication and session management for the management plane of
//! network devices.
//!
//! This crate depends on no backend. It defines:
//! - [`ExosUser`], the authenticated user and its session (the seed's `exos.api.ExosUser`);
//! - [`SessionCookie`] (32 bytes from the OS CSPRNG, redacted in `Debug`), its [`CookieHash`]
//!   (the only form a store keeps), and the public [`SessionId`];
//! - [`SessionRecord`] (what a store keeps) and [`SessionInfo`] (what operators see);
//! - the traits [`Authenticator`] and [`SessionStore`], and the ordered [`MethodList`];
//! - [`AaaError`], the one error type the application sees.
//!
//! Applications use the facade crate `aaa`; backends implement the traits.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::Arc;
//! use aaa_core::{async_trait, Authenticator, Credentials, Decision, Identity, Mechanism,
//!                MethodList, Outcome, RejectReason};
//!
//! #[derive(Debug)]
//! struct OnlyBob;
//!
//! #[async_trait]
//! impl Authenticator for OnlyBob {
//!     fn mechanism(&self) -> Mechanism { Mechanism::Custom("only-bob".into()) }
//!     async fn authenticate(&self, c: &Credentials<'_>) -> Decision {
//!         if c.username() == "bob" && c.password() == "s3cret!!" {
//!             Decision::Accept(Identity::new("bob", false))
//!         } else {
//!             Decision::Reject(RejectReason::BadCredentials)
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut list = MethodList::new();
//! list.push(Arc::new(OnlyBob));
//! let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let creds = Credentials::new("bob", "s3cret!!", from)?;
//! assert!(matches!(list.run(&creds).await?, Outcome::Accepted { .. }));
//! let creds = Credentials::new("bob", "wrong", from)?;
//! assert!(matches!(list.run(&creds).await?, Outcome::Rejected { .. }));
//! # Ok::<(), aaa_core::AaaError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod clock;
mod cookie;
mod error;
mod live;
mod observer;
mod session;
mod store;
mod user;

pub use async_trait::async_trait;
pub use auth::{
    Authenticator, Credentials, Decision, Identity, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES,
    Mechanism, MethodList, OnReject, Outcome, RejectReason, validate_password, validate_username,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cookie::{
    COOKIE_BYTES, COOKIE_TEXT_LEN, CookieHash, CookieHashBuilder, CookieHasher, SessionCookie,
    SessionId,
};
pub use error::{
    AaaError, BoxError, ConfigError, InvalidInput, LimitScope, MechanismFailure, StoreError,
    StoreErrorKind, Unavailable,
};
pub use live::{LiveRef, LiveSlots};
pub use observer::SessionObserver;
pub use session::{EndCause, SessionInfo, SessionRecord, from_unix_ms, truncate_ms, unix_ms};
pub use store::{CreateOutcome, SessionLimits, SessionStore};
pub use user::{ActiveSession, ExosUser, Extensions, SessionControl};

/// Parses a source address given as text (the seed takes strings), as a typed error.
pub fn parse_addr(text: &str) -> Result<std::net::IpAddr, InvalidInput> {
    text.trim().parse().map_err(InvalidInput::AddressMalformed)
}
