//! The error type of the Redis store, and its mapping onto `aaa_core::StoreError`.

use std::fmt;
use std::time::Duration;

use aaa_core::{StoreError, StoreErrorKind};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Everything that can go wrong in the Redis store: a bad URL or setting, no connection, no
/// answer in time, an error from Redis, or a stored value that cannot be decoded.
///
/// No variant ever carries a password: URL errors name the part that is wrong, never the text.
/// At the [`SessionStore`](aaa_core::SessionStore) boundary it becomes a [`StoreError`] of the
/// [`kind`](Self::kind) it reports, with this error as the source.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL has no `scheme://`.
    #[error(
        "invalid Redis URL: no scheme (expected redis://, rediss://, redis+cluster:// or rediss+cluster://)"
    )]
    UrlMissingScheme,
    /// The URL's scheme is not one this store speaks.
    #[error(
        "invalid Redis URL: unsupported scheme {scheme:?} (expected redis, rediss, redis+cluster or rediss+cluster)"
    )]
    UrlScheme {
        /// The scheme given (shown only when it looks like a scheme).
        scheme: String,
    },
    /// A `rediss://` URL, but this build has no TLS support.
    #[error("{scheme}:// needs TLS support: build aaa-store-redis with its `tls` feature")]
    TlsNotEnabled {
        /// The scheme that asked for TLS.
        scheme: &'static str,
    },
    /// The URL names no host.
    #[error("invalid Redis URL: no host")]
    UrlMissingHost,
    /// A host is neither a host name, an IPv4 address nor a bracketed IPv6 address.
    #[error(
        "invalid Redis URL: host {index} is not a host name, an IPv4 address or a [bracketed] IPv6 address"
    )]
    UrlHost {
        /// Which host of the list, from 1.
        index: usize,
    },
    /// A port is not a number from 1 to 65535.
    #[error("invalid Redis URL: the port of host {index} is not a number from 1 to 65535")]
    UrlPort {
        /// Which host of the list, from 1.
        index: usize,
    },
    /// A standalone URL names more than one host.
    #[error(
        "invalid Redis URL: redis:// names exactly one host; use redis+cluster:// for a list of cluster nodes"
    )]
    UrlManyHosts,
    /// The path is not a database number.
    #[error("invalid Redis URL: the path must be a database number, e.g. /0")]
    UrlDatabase,
    /// A cluster URL names a database other than 0.
    #[error("invalid Redis URL: a Redis Cluster has only database 0")]
    UrlClusterDatabase,
    /// The user name or password is not valid percent-encoded UTF-8.
    #[error("invalid Redis URL: the user name or password is not valid percent-encoded UTF-8")]
    UrlUserInfo,
    /// A user name without a password.
    #[error("invalid Redis URL: a user name needs a password (redis://user:password@host)")]
    UrlUserWithoutPassword,
    /// A URL part this store does not accept (query, fragment).
    #[error("invalid Redis URL: a {part} is not supported")]
    UrlUnsupportedPart {
        /// Which part.
        part: &'static str,
    },
    /// The key prefix is empty or longer than 64 bytes.
    #[error("invalid key prefix: it is {len} bytes long; 1 to 64 are allowed")]
    PrefixLength {
        /// Its length in bytes.
        len: usize,
    },
    /// The key prefix contains `{` or `}` (it becomes the keys' cluster hash tag).
    #[error("invalid key prefix: it must not contain '{{' or '}}'")]
    PrefixBrace,
    /// A timeout or duration setting is zero.
    #[error("{what} must be greater than zero")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// The first connection to Redis failed.
    #[error("could not connect to Redis at {target}")]
    Connect {
        /// Where (the URL without its password).
        target: String,
        /// Why.
        #[source]
        source: RedisError,
    },
    /// Redis did not answer in time (connecting, reconnecting, or the command itself).
    #[error("Redis did not answer {operation} within {timeout:?}")]
    Timeout {
        /// The store operation.
        operation: &'static str,
        /// The time allowed.
        timeout: Duration,
    },
    /// Redis, or the connection to it, failed.
    #[error("Redis failed during {operation}")]
    Redis {
        /// The store operation.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: RedisError,
    },
    /// A stored session value cannot be decoded: corrupt, or written by an unknown version.
    /// The session is refused.
    #[error("corrupt session value in Redis: {reason}")]
    Corrupt {
        /// What is wrong with it.
        reason: CorruptReason,
    },
    /// Redis answered with a reply of a shape the store never asks for.
    #[error("unexpected reply from Redis to {operation}")]
    UnexpectedReply {
        /// The store operation.
        operation: &'static str,
    },
    /// The operating system's random generator failed (when the store is made: it draws the
    /// random part of its calls' nonces).
    #[error("the operating system's random generator failed")]
    Entropy(#[source] rand::rngs::SysError),
    /// A field of a record is too long for the value encoding (at most 255 bytes) or for the
    /// create script's argument.
    #[error("the session's {field} is {len} bytes long, more than this store keeps")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a stored value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptReason {
    /// The value is empty.
    Empty,
    /// The first byte names an encoding version this build does not know.
    UnknownVersion(u8),
    /// The value ends before its last field.
    Truncated,
    /// Bytes follow the last field.
    TrailingBytes,
    /// The flags byte sets bits this version does not define.
    Flags(u8),
    /// The mechanism name is not UTF-8.
    MechanismUtf8,
    /// The username is not UTF-8.
    UsernameUtf8,
    /// A field of a session bucket or a value of the id index is not a 32-byte key.
    KeyLength(usize),
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty value"),
            Self::UnknownVersion(v) => write!(f, "unknown encoding version {v}"),
            Self::Truncated => f.write_str("truncated value"),
            Self::TrailingBytes => f.write_str("trailing bytes after the last field"),
            Self::Flags(b) => write!(f, "unknown flags {b:#04x}"),
            Self::MechanismUtf8 => f.write_str("mechanism name is not UTF-8"),
            Self::UsernameUtf8 => f.write_str("username is not UTF-8"),
            Self::KeyLength(n) => write!(f, "key of {n} bytes where 32 were expected"),
        }
    }
}

impl RedisStoreError {
    /// What kind of store failure this is: `Unreachable` (no connection), `Timeout` (no answer
    /// in time), `Corrupt` (a value that cannot be decoded) or `Backend` (anything else,
    /// including configuration errors).
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::Connect { source, .. } | Self::Redis { source, .. } => classify(source),
            Self::Timeout { .. } => StoreErrorKind::Timeout,
            Self::Corrupt { .. } => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Backend,
        }
    }

    /// This error as the [`StoreError`] of `operation`, keeping it as the source.
    pub fn into_store_error(self, operation: &'static str) -> StoreError {
        StoreError::new(self.kind(), operation, self)
    }

    pub(crate) fn corrupt(reason: CorruptReason) -> Self {
        Self::Corrupt { reason }
    }

    /// Whether the operation may be sent again at once: the connection dropped (and is being
    /// replaced), as when the server closed an idle connection or restarted.
    pub(crate) fn is_connection_lost(&self) -> bool {
        match self {
            // A refusal means the server is down: sending again at once would only wait.
            Self::Redis { source, .. } => {
                !source.is_timeout()
                    && !source.is_connection_refusal()
                    && (source.is_connection_dropped() || source.is_unrecoverable_error())
            }
            _ => false,
        }
    }

    /// Whether the connection manager holds a failed connection it will not replace by itself.
    pub(crate) fn needs_new_connection(&self) -> bool {
        matches!(self, Self::Redis { source, .. } if source.kind() == ErrorKind::AuthenticationFailed)
    }
}

fn classify(e: &RedisError) -> StoreErrorKind {
    if e.is_timeout() {
        return StoreErrorKind::Timeout;
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => StoreErrorKind::Unreachable,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain,
        ) => StoreErrorKind::Unreachable,
        _ if e.is_connection_dropped() || e.is_connection_refusal() => StoreErrorKind::Unreachable,
        _ => StoreErrorKind::Backend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            RedisStoreError::Redis {
                operation: "get",
                source: io
            }
            .kind(),
            StoreErrorKind::Unreachable
        );
        let to = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(
            RedisStoreError::Connect {
                target: "redis://h:1/0".into(),
                source: to
            }
            .kind(),
            StoreErrorKind::Timeout
        );
        assert_eq!(
            RedisStoreError::Timeout {
                operation: "get",
                timeout: Duration::from_millis(5)
            }
            .kind(),
            StoreErrorKind::Timeout
        );
        assert_eq!(
            RedisStoreError::corrupt(CorruptReason::Truncated).kind(),
            StoreErrorKind::Corrupt
        );
        assert_eq!(
            RedisStoreError::UnexpectedReply { operation: "x" }.kind(),
            StoreErrorKind::Backend
        );
        let e = RedisStoreError::corrupt(CorruptReason::UnknownVersion(2)).into_store_error("get");
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        assert_eq!(e.operation(), "get");
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(
            src,
            "corrupt session value in Redis: unknown encoding version 2"
        );
    }
}
