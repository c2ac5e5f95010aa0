//! The same API, blocking, for programs without an async runtime.
//!
//! [`Aaa`] owns a small tokio runtime (one worker thread, which also runs the reaper) and blocks
//! on it. Calling it from inside an async runtime would deadlock, so that is refused with
//! [`AaaError::DeadlockDetected`] (the seed's `DeadlockDetectedError`). Source addresses and
//! session ids are taken as text, as the seed takes them, and malformed text is an
//! `InvalidInput` error.
//!
//! ```
//! use std::sync::Arc;
//! use aaa::{async_trait, Authenticator, Credentials, Decision, Identity, Mechanism, RejectReason};
//!
//! #[derive(Debug)]
//! struct Fixed;
//! #[async_trait]
//! impl Authenticator for Fixed {
//!     fn mechanism(&self) -> Mechanism { Mechanism::Custom("fixed".into()) }
//!     async fn authenticate(&self, c: &Credentials<'_>) -> Decision {
//!         if c.password() == "correct horse" {
//!             Decision::Accept(Identity::new(c.username(), true))
//!         } else {
//!             Decision::Reject(RejectReason::BadCredentials)
//!         }
//!     }
//! }
//!
//! let aaa = aaa::blocking::Aaa::new(aaa::Aaa::builder().mechanism(Arc::new(Fixed)))?;
//! let user = aaa.authenticate_user("admin", "correct horse", "192.0.2.1")?.expect("accepted");
//! let cookie = aaa.start_session(&user, "192.0.2.1")?;
//! let same = aaa.validate_session(cookie.expose())?.expect("live");
//! assert!(Arc::ptr_eq(&user, &same));
//! aaa.end_session(&user)?;
//! assert!(aaa.validate_session(cookie.expose())?.is_none());
//! assert!(aaa.authenticate_user("admin", "wrong", "192.0.2.1")?.is_none());
//! assert!(aaa.authenticate_user("admin", "x", "not an address").unwrap_err().is_invalid_input());
//! # Ok::<(), aaa::AaaError>(())
//! ```

use std::future::Future;
use std::sync::Arc;

use aaa_core::{AaaError, ExosUser, SessionCookie, SessionId, SessionInfo, parse_addr};
use tokio::runtime::{Handle, Runtime};

use crate::{AaaBuilder, facade};

/// The blocking twin of [`crate::Aaa`].
#[derive(Debug)]
pub struct Aaa {
    inner: facade::Aaa,
    runtime: Runtime,
}

impl Aaa {
    /// Starts a runtime and builds `builder` on it.
    pub fn new(builder: AaaBuilder) -> Result<Self, AaaError> {
        refuse_inside_runtime()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aaa-blocking")
            .enable_all()
            .build()
            .map_err(AaaError::Runtime)?;
        let inner = builder.runtime(runtime.handle().clone()).build()?;
        Ok(Self { inner, runtime })
    }

    fn block_on<T>(&self, f: impl Future<Output = Result<T, AaaError>>) -> Result<T, AaaError> {
        refuse_inside_runtime()?;
        self.runtime.block_on(f)
    }

    /// Authenticates through the configured mechanisms. `src_addr` is IPv4 or IPv6 text.
    pub fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        src_addr: &str,
    ) -> Result<Option<Arc<ExosUser>>, AaaError> {
        let addr = parse_addr(src_addr)?;
        self.block_on(self.inner.authenticate_user(username, password, addr))
    }

    /// Starts a session for `user`; returns its cookie.
    pub fn start_session(
        &self,
        user: &Arc<ExosUser>,
        src_addr: &str,
    ) -> Result<SessionCookie, AaaError> {
        let addr = parse_addr(src_addr)?;
        self.block_on(user.start_session(addr))
    }

    /// Ends `user`'s session.
    pub fn end_session(&self, user: &ExosUser) -> Result<(), AaaError> {
        self.block_on(user.end_session())
    }

    /// The user of a live session.
    pub fn validate_session(&self, cookie: &str) -> Result<Option<Arc<ExosUser>>, AaaError> {
        self.block_on(self.inner.validate_session(cookie))
    }

    /// Every live session.
    pub fn get_sessions(&self) -> Result<Vec<SessionInfo>, AaaError> {
        self.block_on(self.inner.get_sessions())
    }

    /// Ends the session whose id is `id` (hexadecimal, as `get_sessions` shows it).
    pub fn clear_session(&self, id: &str) -> Result<SessionInfo, AaaError> {
        let id: SessionId = id.trim().parse()?;
        self.block_on(self.inner.clear_session(id))
    }

    /// The async instance, for code that has both worlds.
    pub fn as_async(&self) -> &facade::Aaa {
        &self.inner
    }
}

fn refuse_inside_runtime() -> Result<(), AaaError> {
    if Handle::try_current().is_ok() {
        Err(AaaError::DeadlockDetected)
    } else {
        Ok(())
    }
}
