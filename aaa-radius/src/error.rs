//! The error type of aaa-radius. No message ever contains a shared secret or a password.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the RADIUS client.
///
/// Authentication itself never returns this error: when no decision can be made,
/// [`RadiusAuthenticator`](crate::RadiusAuthenticator) answers
/// [`Decision::Unavailable`](aaa_core::Decision::Unavailable) with this error inside (most
/// often [`RadiusError::NoServerAnswered`]), so the method list moves on to the next
/// mechanism.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RadiusError {
    /// The configuration lists no server.
    #[error("no RADIUS server is configured")]
    NoServers,
    /// A server's address is the unspecified address or has port 0.
    #[error("RADIUS server address {address} is not usable (unspecified address or port 0)")]
    InvalidServerAddress {
        /// The address configured.
        address: SocketAddr,
    },
    /// The same server address is configured twice.
    #[error("RADIUS server {address} is configured more than once")]
    DuplicateServer {
        /// The address.
        address: SocketAddr,
    },
    /// A server's shared secret is empty (RFC 2865 §3 forbids it).
    #[error("the shared secret of RADIUS server {address} is empty")]
    EmptySecret {
        /// The server.
        address: SocketAddr,
    },
    /// Neither a NAS-Identifier nor a NAS-IP-Address is configured; RFC 2865 requires one in
    /// every Access-Request.
    #[error("neither a NAS-Identifier nor a NAS-IP-Address is configured (one is required)")]
    NoNasIdentity,
    /// The NAS-Identifier is empty or longer than 253 bytes.
    #[error("the NAS-Identifier is {len} bytes long; it must be 1 to 253 bytes")]
    InvalidNasIdentifier {
        /// Its length in bytes.
        len: usize,
    },
    /// A duration of the configuration is zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// Which setting, e.g. `"retransmit.initial"`.
        setting: &'static str,
    },
    /// The client was built outside a tokio runtime.
    #[error("the RADIUS client needs a tokio runtime: build it inside one")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// The password is longer than the 128 bytes a User-Password can carry. It is never
    /// truncated.
    #[error(
        "the password is {len} bytes long; RADIUS carries at most 128 bytes (it is never truncated)"
    )]
    PasswordTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// An attribute value is longer than the 253 bytes an attribute can carry.
    #[error("the value of attribute {attribute} is {len} bytes long; at most 253 fit")]
    AttributeTooLong {
        /// The attribute type.
        attribute: u8,
        /// The value's length in bytes.
        len: usize,
    },
    /// The attribute is added by the encoder itself (Message-Authenticator, User-Password) and
    /// cannot be added as a plain attribute.
    #[error("attribute {attribute} is managed by the encoder and cannot be added directly")]
    ReservedAttribute {
        /// The attribute type.
        attribute: u8,
    },
    /// An Access-Request must carry exactly one of User-Password, CHAP-Password and State
    /// (RFC 2865 §4.1).
    #[error(
        "an Access-Request must carry exactly one of User-Password, CHAP-Password and State, not {found}"
    )]
    CredentialAttributes {
        /// How many it carries.
        found: usize,
    },
    /// An Access-Request must carry a NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier
    /// (RFC 2865 §4.1, RFC 3162).
    #[error("an Access-Request must carry a NAS-IP-Address, NAS-IPv6-Address or NAS-Identifier")]
    NoNasAttribute,
    /// The encoded request would be longer than 4096 bytes.
    #[error("the request would be {len} bytes long; a RADIUS packet holds at most 4096")]
    PacketTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The RADIUS codec refused the packet.
    #[error("the RADIUS codec refused the packet")]
    Codec(#[source] radius::core::packet::PacketError),
    /// The operating system's random generator failed: no Request Authenticator could be made.
    #[error("the operating system's random generator failed")]
    Entropy(#[source] rand::rngs::SysError),
    /// A UDP socket for a server could not be opened.
    #[error("cannot open a UDP socket on {bind} for RADIUS server {address}")]
    Socket {
        /// The server.
        address: SocketAddr,
        /// The local address the socket was to be bound to.
        bind: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// [`Client::exchange`](crate::Client::exchange) was given a server index out of range.
    #[error("there is no RADIUS server number {index}")]
    NoSuchServer {
        /// The index given.
        index: usize,
    },
    /// One server gave no valid reply in time.
    #[error(transparent)]
    NoReply(#[from] NoReply),
    /// No server gave a valid reply: each one tried failed as listed, in the order tried.
    #[error("no RADIUS server answered{}", FailureList(tried))]
    NoServerAnswered {
        /// Why each server tried failed ([`RadiusError::NoReply`] or
        /// [`RadiusError::Socket`]), in the order they were tried.
        tried: Vec<Self>,
    },
    /// A count of the accounting configuration is zero (queue capacity, requests in flight,
    /// spool limits).
    #[error("{setting} must be greater than zero")]
    ZeroLimit {
        /// Which setting, e.g. `"queue_capacity"`.
        setting: &'static str,
    },
    /// The accounting queue is full: a record was refused (and counted in
    /// [`AccountingStats::dropped`](crate::accounting::AccountingStats::dropped)).
    #[error(
        "the accounting queue is full ({capacity} records not yet acknowledged or spooled): a record was refused"
    )]
    QueueFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The accounting spool reached one of its limits: a record could not be spooled (it
    /// stays in the memory queue, if there is room).
    #[error(
        "the accounting spool {} is full ({records} records, {bytes} bytes; limits {max_records} records, {max_bytes} bytes)",
        dir.display()
    )]
    SpoolFull {
        /// This process's spool directory.
        dir: PathBuf,
        /// Records in it.
        records: usize,
        /// Their size in bytes.
        bytes: u64,
        /// The configured limit on records.
        max_records: usize,
        /// The configured limit on bytes.
        max_bytes: u64,
    },
    /// A file operation on the accounting spool failed.
    #[error("cannot {action} {}", path.display())]
    Spool {
        /// What was being done, e.g. `"write a spool file"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A spool file is not an accounting record this version can read. It is moved to the
    /// spool's `corrupt` directory, never sent and never deleted.
    #[error("the accounting spool file {} is not a valid record: {reason}", path.display())]
    SpoolCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Accounting::flush`](crate::accounting::Accounting::flush) or
    /// [`shutdown`](crate::accounting::Accounting::shutdown) gave up with records still
    /// unacknowledged.
    #[error(
        "{pending} accounting record(s) still unacknowledged after {} ms ({unspooled} of them not in a spool)",
        waited.as_millis()
    )]
    FlushTimedOut {
        /// Records not yet acknowledged.
        pending: usize,
        /// Of those, the ones only in memory (lost if the process ends now).
        unspooled: usize,
        /// How long it waited.
        waited: Duration,
    },
}

impl RadiusError {
    /// Whether this is a server's silence (one, or all of them), as opposed to a configuration
    /// or input error.
    pub fn is_no_answer(&self) -> bool {
        matches!(self, Self::NoReply(_) | Self::NoServerAnswered { .. })
    }
}

/// Formats the failures of [`RadiusError::NoServerAnswered`] as `: a; b`.
struct FailureList<'a>(&'a [RadiusError]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            fmt::Display::fmt(e, f)?;
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                write!(f, ": {s}")?;
                source = s.source();
            }
        }
        Ok(())
    }
}

/// A server that gave no valid reply within its retransmission budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "RADIUS server {address} gave no valid reply to {transmissions} transmission(s) in {} ms",
    elapsed.as_millis()
)]
pub struct NoReply {
    /// The server.
    pub address: SocketAddr,
    /// How many times the request was sent.
    pub transmissions: u32,
    /// How long the client waited.
    pub elapsed: Duration,
    /// The last error of a send, if a send failed.
    #[source]
    pub last_send_error: Option<io::Error>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_answered_lists_each() {
        let a: SocketAddr = "192.0.2.1:1812".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1812".parse().unwrap();
        let e = RadiusError::NoServerAnswered {
            tried: vec![
                NoReply {
                    address: a,
                    transmissions: 3,
                    elapsed: Duration::from_millis(5000),
                    last_send_error: None,
                }
                .into(),
                NoReply {
                    address: b,
                    transmissions: 1,
                    elapsed: Duration::from_millis(5000),
                    last_send_error: Some(io::Error::other("network unreachable")),
                }
                .into(),
            ],
        };
        assert!(e.is_no_answer());
        assert_eq!(
            e.to_string(),
            "no RADIUS server answered: RADIUS server 192.0.2.1:1812 gave no valid reply to 3 \
             transmission(s) in 5000 ms; RADIUS server 192.0.2.2:1812 gave no valid reply to 1 \
             transmission(s) in 5000 ms: network unreachable"
        );
    }
}
