//! Session records (what a store keeps) and session info (what operators see).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{CookieHash, Mechanism, SessionId};

/// Milliseconds since the Unix epoch (0 for times before it).
#[inline]
pub fn unix_ms(t: SystemTime) -> u64 {
    // Seconds and sub-second millis: the same value as `as_millis`, without 128-bit division.
    t.duration_since(UNIX_EPOCH)
        .map(|d| {
            d.as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(d.subsec_millis()))
        })
        .unwrap_or(0)
}

/// The inverse of [`unix_ms`]; saturates instead of overflowing.
pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// Truncates a time to whole milliseconds, the precision every store keeps.
pub fn truncate_ms(t: SystemTime) -> SystemTime {
    from_unix_ms(unix_ms(t))
}

/// A session as a store keeps it. Times are whole milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie: the store's key.
    pub key: CookieHash,
    /// The public id.
    pub id: SessionId,
    /// Who.
    pub username: String,
    /// Read/write (true) or read-only (false).
    pub read_write: bool,
    /// Which mechanism authenticated the user.
    pub mechanism: Mechanism,
    /// Where the session was started from.
    pub src_addr: IpAddr,
    /// When it started.
    pub start: SystemTime,
    /// The last successful validation (or the start).
    pub last_activity: SystemTime,
    /// The idle timeout, if any: the session ends `idle_timeout` after `last_activity`.
    pub idle_timeout: Option<Duration>,
    /// The absolute deadline, if any.
    pub absolute_deadline: Option<SystemTime>,
}

impl SessionRecord {
    /// When the session ends if nothing happens: the earlier of the idle and absolute deadlines.
    pub fn deadline(&self) -> Option<SystemTime> {
        match (self.idle_deadline(), self.absolute_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `last_activity + idle_timeout`.
    pub fn idle_deadline(&self) -> Option<SystemTime> {
        self.idle_timeout.map(|t| {
            self.last_activity
                .checked_add(t)
                .unwrap_or(self.last_activity)
        })
    }

    /// `Some(cause)` if the session has expired at `now` (a deadline at or before `now`).
    /// The absolute deadline wins when both have passed.
    pub fn expiry(&self, now: SystemTime) -> Option<EndCause> {
        if self.absolute_deadline.is_some_and(|d| d <= now) {
            Some(EndCause::AbsoluteTimeout)
        } else if self.idle_deadline().is_some_and(|d| d <= now) {
            Some(EndCause::IdleTimeout)
        } else {
            None
        }
    }

    /// Whether the session is live at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.expiry(now).is_none()
    }

    /// What operators may see of it.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id,
            username: self.username.clone(),
            read_write: self.read_write,
            mechanism: self.mechanism.clone(),
            src_addr: self.src_addr,
            start: self.start,
            last_activity: self.last_activity,
            idle_deadline: self.idle_deadline(),
            absolute_deadline: self.absolute_deadline,
        }
    }
}

/// A live session as `get_sessions` lists it. Never the cookie, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The public id (`clear session <id>`).
    pub id: SessionId,
    /// Who.
    pub username: String,
    /// Read/write or read-only.
    pub read_write: bool,
    /// Which mechanism authenticated the user.
    pub mechanism: Mechanism,
    /// Where from.
    pub src_addr: IpAddr,
    /// When it started.
    pub start: SystemTime,
    /// The last successful validation.
    pub last_activity: SystemTime,
    /// When it ends for idleness, if nothing happens.
    pub idle_deadline: Option<SystemTime>,
    /// When it ends whatever happens.
    pub absolute_deadline: Option<SystemTime>,
}

/// Why a session ended. Maps onto RADIUS Acct-Terminate-Cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndCause {
    /// The user logged out (`end_session`): User-Request.
    Logout,
    /// An operator cleared it (`clear session`): Admin-Reset.
    Cleared,
    /// Idle too long: Idle-Timeout.
    IdleTimeout,
    /// Past the absolute deadline: Session-Timeout.
    AbsoluteTimeout,
}

impl EndCause {
    /// A short lower-case name, for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Cleared => "cleared",
            Self::IdleTimeout => "idle-timeout",
            Self::AbsoluteTimeout => "absolute-timeout",
        }
    }
}

impl fmt::Display for EndCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn rec(idle: Option<u64>, abs: Option<u64>) -> SessionRecord {
        SessionRecord {
            key: CookieHash::from_bytes([1; 32]),
            id: SessionId::from_u64(1),
            username: "alice".into(),
            read_write: true,
            mechanism: Mechanism::Local,
            src_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            start: from_unix_ms(1_000),
            last_activity: from_unix_ms(2_000),
            idle_timeout: idle.map(Duration::from_millis),
            absolute_deadline: abs.map(from_unix_ms),
        }
    }

    #[test]
    fn deadlines() {
        let r = rec(Some(500), Some(10_000));
        assert_eq!(r.deadline(), Some(from_unix_ms(2_500)));
        assert_eq!(r.expiry(from_unix_ms(2_499)), None);
        assert_eq!(r.expiry(from_unix_ms(2_500)), Some(EndCause::IdleTimeout));
        assert_eq!(
            r.expiry(from_unix_ms(10_000)),
            Some(EndCause::AbsoluteTimeout)
        );
        let r = rec(None, None);
        assert_eq!(r.deadline(), None);
        assert!(r.is_live(from_unix_ms(u64::MAX / 2)));
        let r = rec(None, Some(3_000));
        assert_eq!(r.deadline(), Some(from_unix_ms(3_000)));
    }

    #[test]
    fn ms_round_trip() {
        assert_eq!(unix_ms(from_unix_ms(123_456)), 123_456);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
