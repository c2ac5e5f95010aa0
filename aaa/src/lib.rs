//! **aaa**: authentication and login sessions for the management plane of network devices —
//! the web UI, REST/JSON-RPC API and NETCONF agent of a switch agreeing on who is logged in.
//!
//! - [`Aaa::authenticate_user`] asks the configured mechanisms in order (local accounts,
//!   RADIUS, or your own [`Authenticator`]): a reject is final, an unavailable mechanism passes
//!   to the next, and if none can decide the answer is an error (fail closed).
//! - An accepted [`ExosUser`] can [`start_session`](ExosUser::start_session); the cookie it
//!   returns finds the *same* `Arc<ExosUser>` again through [`Aaa::validate_session`].
//! - [`Aaa::get_sessions`] and [`Aaa::clear_session`] are the operator's `show session` and
//!   `clear session <id>`.
//! - Sessions live in a [`SessionStore`]: the in-memory [`MemoryStore`] by default.
//! - [`blocking`] has the same API for programs without an async runtime.
//!
//! Features: `local` (default) — local accounts in an argon2id account file (`aaa::local`,
//! `AaaBuilder::local`); `radius` — RADIUS servers, primary first, hardened against
//! BlastRADIUS (`aaa::radius`, `AaaBuilder::radius`); `redis` — sessions in Redis or Redis Cluster, shared by processes and
//! hosts (`aaa::store_redis`, `AaaBuilder::redis`); `redis-tls` — `rediss://`.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::Arc;
//! use aaa::{async_trait, Aaa, Authenticator, Credentials, Decision, Identity, Mechanism,
//!           RejectReason};
//!
//! /// A toy mechanism: one operator with a fixed password.
//! #[derive(Debug)]
//! struct Toy;
//!
//! #[async_trait]
//! impl Authenticator for Toy {
//!     fn mechanism(&self) -> Mechanism { Mechanism::Custom("toy".into()) }
//!     async fn authenticate(&self, c: &Credentials<'_>) -> Decision {
//!         if c.username() == "oper" && c.password() == "s3cret-pass" {
//!             Decision::Accept(Identity::new("oper", true))
//!         } else {
//!             Decision::Reject(RejectReason::BadCredentials)
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), aaa::AaaError> {
//! let aaa = Aaa::builder().mechanism(Arc::new(Toy)).build()?;
//! let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
//!
//! assert!(aaa.authenticate_user("oper", "wrong", from).await?.is_none());
//! let user = aaa.authenticate_user("oper", "s3cret-pass", from).await?.expect("accepted");
//! assert!(user.read_write());
//!
//! let cookie = user.start_session(from).await?;
//! let again = aaa.validate_session(cookie.expose()).await?.expect("live");
//! assert!(Arc::ptr_eq(&user, &again));
//! assert_eq!(aaa.get_sessions().await?.len(), 1);
//!
//! user.end_session().await?;
//! assert!(aaa.validate_session(cookie.expose()).await?.is_none());
//! assert!(user.end_session().await.unwrap_err().is_session_does_not_exist());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blocking;
mod facade;

pub use aaa_core::{
    AaaError, Authenticator, Clock, ConfigError, Credentials, Decision, EndCause, ExosUser,
    Extensions, Identity, InvalidInput, LimitScope, ManualClock, Mechanism, OnReject, RejectReason,
    SessionCookie, SessionId, SessionInfo, SessionLimits, SessionObserver, SessionRecord,
    SessionStore, StoreError, StoreErrorKind, SystemClock, Unavailable, async_trait, from_unix_ms,
    parse_addr, unix_ms,
};
pub use aaa_session::{MemoryStore, SessionConfig, SessionManager};
pub use facade::{Aaa, AaaBuilder};

/// The core crate, for implementers of mechanisms and stores.
pub use aaa_core as core;

/// Local accounts (feature `local`, on by default): see [`aaa_local`].
#[cfg(feature = "local")]
pub use aaa_local as local;

/// RADIUS authentication (feature `radius`): see [`aaa_radius`].
#[cfg(feature = "radius")]
pub use aaa_radius as radius;

/// The Redis / Redis Cluster session store (feature `redis`): see [`aaa_store_redis`].
#[cfg(feature = "redis")]
pub use aaa_store_redis as store_redis;
