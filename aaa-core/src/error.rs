//! The error type of aaa, shared by every layer that answers the application.

use std::error::Error as StdError;
use std::fmt;

use crate::Mechanism;

/// A boxed error from a backend (a mechanism or a store), kept as the source of an [`AaaError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in aaa.
///
/// A *rejected* login is not an error: `authenticate_user` answers `Ok(None)`. An `Err` means no
/// decision could be made (fail closed) or the caller asked for something impossible.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AaaError {
    /// `start_session` on a user that already has a session (the seed's `AaaSessionExistsError`).
    #[error("this user already has a session")]
    SessionExists,
    /// `end_session` or `clear_session` on a session that does not exist (never started, ended,
    /// cleared elsewhere or expired) — the seed's `AaaSessionDoesNotExistError`.
    #[error("the session does not exist")]
    SessionDoesNotExist,
    /// No mechanism could decide: every one was unavailable. Each cause is kept.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The session store failed (unreachable, timed out, corrupt value). Fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bad input from the caller: the message says which and why.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured session limit was reached.
    #[error("session limit reached: at most {limit} sessions {scope}")]
    SessionLimit {
        /// Which limit.
        scope: LimitScope,
        /// Its value.
        limit: u32,
    },
    /// The operating system's random generator failed; no cookie could be made.
    #[error("the operating system's random generator failed")]
    Entropy(#[source] rand::rngs::SysError),
    /// Every attempt to create a session collided with an existing one (never seen in practice:
    /// it means the store answers "taken" to everything).
    #[error("no free session key could be allocated after {attempts} attempts")]
    CollisionRetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
    },
    /// The session manager this user came from has been dropped.
    #[error("the session manager is shut down")]
    Shutdown,
    /// A blocking call was made from inside an async runtime, where it would deadlock (the
    /// seed's `DeadlockDetectedError`): use the async API there.
    #[error("a blocking aaa call was made inside an async runtime; use the async API there")]
    DeadlockDetected,
    /// The runtime of the blocking API could not be started.
    #[error("the async runtime could not be started")]
    Runtime(#[source] std::io::Error),
}

impl AaaError {
    /// The seed's `AaaSessionExistsError`.
    pub fn is_session_exists(&self) -> bool {
        matches!(self, Self::SessionExists)
    }
    /// The seed's `AaaSessionDoesNotExistError`.
    pub fn is_session_does_not_exist(&self) -> bool {
        matches!(self, Self::SessionDoesNotExist)
    }
    /// Every mechanism was unavailable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
    /// The session store failed.
    pub fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
    /// The caller's input was invalid.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput(_))
    }
}

/// Which session limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitScope {
    /// The limit of sessions of one user.
    PerUser,
    /// The limit of sessions in the whole store.
    Total,
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerUser => "per user",
            Self::Total => "in total",
        })
    }
}

/// Input that aaa refuses, with the reason. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The username is empty.
    #[error("username is empty")]
    UsernameEmpty,
    /// The username is longer than 64 bytes.
    #[error("username is {len} bytes long; at most {max} are allowed", max = crate::MAX_USERNAME_BYTES)]
    UsernameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The username contains a control character.
    #[error("username contains a control character")]
    UsernameControlChar,
    /// The password is longer than 128 bytes (it is never truncated).
    #[error("password is {len} bytes long; at most {max} are allowed", max = crate::MAX_PASSWORD_BYTES)]
    PasswordTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The password contains a NUL character, which RADIUS cannot carry unambiguously.
    #[error("password contains a NUL character")]
    PasswordNul,
    /// The text is not a session cookie (43 characters of base64url).
    #[error("malformed session cookie: {reason}")]
    CookieMalformed {
        /// What is wrong with it (never the cookie itself).
        reason: &'static str,
    },
    /// The text is not a session id.
    #[error("malformed session id: expected 1 to 16 hexadecimal digits")]
    SessionIdMalformed,
    /// The text is not an IPv4 or IPv6 address.
    #[error("malformed source address: expected an IPv4 or IPv6 address")]
    AddressMalformed(#[source] std::net::AddrParseError),
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No authentication mechanism was configured.
    #[error("no authentication mechanism is configured")]
    NoMechanism,
    /// `Aaa` needs a tokio runtime (for its reaper and the callback API): build it inside one,
    /// give it a handle, or use `aaa::blocking`.
    #[error(
        "no tokio runtime: build Aaa inside a runtime, pass one with .runtime(handle), or use aaa::blocking"
    )]
    NoRuntime,
    /// A limit or a timeout was set to zero.
    #[error("{what} must be greater than zero")]
    Zero {
        /// Which setting.
        what: &'static str,
    },
}

/// One mechanism's reason for being unavailable.
#[derive(Debug)]
pub struct MechanismFailure {
    /// The mechanism that could not decide.
    pub mechanism: Mechanism,
    /// Why.
    pub source: BoxError,
}

/// Every mechanism of the method list was unavailable; the causes, in order.
#[derive(Debug)]
pub struct Unavailable {
    causes: Vec<MechanismFailure>,
}

impl Unavailable {
    /// Wraps the causes, in method-list order.
    pub fn new(causes: Vec<MechanismFailure>) -> Self {
        Self { causes }
    }
    /// The causes, in method-list order.
    pub fn causes(&self) -> &[MechanismFailure] {
        &self.causes
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no authentication mechanism could decide")?;
        for (i, c) in self.causes.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{}: {}", c.mechanism, c.source)?;
            let mut src = c.source.source();
            while let Some(s) = src {
                write!(f, ": {s}")?;
                src = s.source();
            }
        }
        Ok(())
    }
}

impl StdError for Unavailable {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.causes
            .first()
            .map(|c| &*c.source as &(dyn StdError + 'static))
    }
}

/// What kind of store failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached.
    Unreachable,
    /// The store did not answer in time.
    Timeout,
    /// A stored value could not be decoded (corrupt, or from an unknown version).
    Corrupt,
    /// The store answered with an error.
    Backend,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timed out",
            Self::Corrupt => "corrupt value",
            Self::Backend => "backend error",
        })
    }
}

/// A failure of a [`SessionStore`](crate::SessionStore), with the backend's error as source.
#[derive(Debug, thiserror::Error)]
#[error("session store {kind} during {operation}")]
pub struct StoreError {
    kind: StoreErrorKind,
    operation: &'static str,
    #[source]
    source: Option<BoxError>,
}

impl StoreError {
    /// A store error of `kind` during `operation` (e.g. `"create"`), caused by `source`.
    pub fn new(kind: StoreErrorKind, operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            operation,
            source: Some(source.into()),
        }
    }
    /// A store error without an underlying error value.
    pub fn bare(kind: StoreErrorKind, operation: &'static str) -> Self {
        Self {
            kind,
            operation,
            source: None,
        }
    }
    /// What kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
    /// The store operation that failed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_each_cause() {
        let e = AaaError::from(Unavailable::new(vec![
            MechanismFailure {
                mechanism: Mechanism::Radius,
                source: "no answer from 192.0.2.1:1812".into(),
            },
            MechanismFailure {
                mechanism: Mechanism::Local,
                source: "account file unreadable".into(),
            },
        ]));
        assert!(e.is_unavailable());
        let text = e.to_string();
        assert_eq!(
            text,
            "no authentication mechanism could decide: radius: no answer from 192.0.2.1:1812; \
             local: account file unreadable"
        );
    }

    #[test]
    fn store_error_keeps_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = AaaError::from(StoreError::new(StoreErrorKind::Unreachable, "get", io));
        assert!(e.is_store());
        assert_eq!(e.to_string(), "session store unreachable during get");
        // `transparent`: the store error's own source comes next in the chain.
        let src = StdError::source(&e).unwrap();
        assert_eq!(src.to_string(), "refused");
    }
}
