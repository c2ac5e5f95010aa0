//! One accounting record: what it says, how it becomes an Accounting-Request, and its spool
//! file format.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use aaa_core::{EndCause, Mechanism, SessionRecord, unix_ms};
use radius::core::{rfc2865, rfc2866, rfc2869};

use crate::packet::MAX_ATTRIBUTE_VALUE;
use crate::{RadiusError, Request};

/// The first line of a spool file (format version 1).
const SPOOL_HEADER: &str = "aaa-accounting-record 1";
/// The last line of a spool file: a file without it is incomplete.
const SPOOL_END: &str = "end";

/// Acct-Status-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Start (1).
    Start,
    /// Interim-Update (3).
    Interim,
    /// Stop (2), with its Acct-Terminate-Cause.
    Stop(TerminateCause),
}

/// Acct-Terminate-Cause (RFC 2866 §5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TerminateCause {
    /// User-Request (1): logout.
    UserRequest,
    /// Idle-Timeout (4).
    IdleTimeout,
    /// Session-Timeout (5): the absolute timeout.
    SessionTimeout,
    /// Admin-Reset (6): `clear session`.
    AdminReset,
    /// NAS-Request (10): an end cause this version does not know.
    NasRequest,
}

impl TerminateCause {
    fn of(cause: EndCause) -> Self {
        match cause {
            EndCause::Logout => Self::UserRequest,
            EndCause::Cleared => Self::AdminReset,
            EndCause::IdleTimeout => Self::IdleTimeout,
            EndCause::AbsoluteTimeout => Self::SessionTimeout,
            _ => Self::NasRequest,
        }
    }
    fn value(self) -> u32 {
        match self {
            Self::UserRequest => rfc2866::ACCT_TERMINATE_CAUSE_USER_REQUEST,
            Self::IdleTimeout => rfc2866::ACCT_TERMINATE_CAUSE_IDLE_TIMEOUT,
            Self::SessionTimeout => rfc2866::ACCT_TERMINATE_CAUSE_SESSION_TIMEOUT,
            Self::AdminReset => rfc2866::ACCT_TERMINATE_CAUSE_ADMIN_RESET,
            Self::NasRequest => rfc2866::ACCT_TERMINATE_CAUSE_NAS_REQUEST,
        }
    }
    fn from_value(v: u32) -> Option<Self> {
        [
            Self::UserRequest,
            Self::IdleTimeout,
            Self::SessionTimeout,
            Self::AdminReset,
            Self::NasRequest,
        ]
        .into_iter()
        .find(|c| c.value() == v)
    }
}

/// The Acct-Session-Id of a session: its id (8 hexadecimal digits) and its start in
/// milliseconds since the Unix epoch (hexadecimal), e.g. `1f2e3d4c-18bcfe56800`.
///
/// Every process computes the same value from the session record, so the Start (sent by the
/// process that started the session) and the Stop (sent by whichever process ended it) carry
/// the same Acct-Session-Id. It is unique across processes and restarts: a session id is
/// unique in the store while the session lives, and the start time tells apart two sessions
/// that had the same id at different times.
pub fn session_id(record: &SessionRecord) -> String {
    format!("{:08x}-{:x}", record.id.as_u64(), unix_ms(record.start))
}

/// Whole seconds from `from` to `to` (0 if `to` is earlier), at most `u32::MAX`.
pub(crate) fn seconds_between(from: SystemTime, to: SystemTime) -> u32 {
    to.duration_since(from)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// Seconds since the Unix epoch for a time in milliseconds, at most `u32::MAX` (RADIUS times
/// are 32 bits).
fn unix_seconds(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// One accounting record, as queued, spooled and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcctRecord {
    pub(crate) status: Status,
    /// Acct-Session-Id.
    pub(crate) session_id: String,
    /// User-Name.
    pub(crate) username: String,
    /// Calling-Station-Id (as text).
    pub(crate) src_addr: IpAddr,
    /// Acct-Authentic: RADIUS (true) or Local (false).
    pub(crate) radius_authentic: bool,
    /// Event-Timestamp, in milliseconds since the epoch (the session clock's time).
    pub(crate) event_ms: u64,
    /// Acct-Session-Time (Stop and Interim-Update).
    pub(crate) session_time: Option<u32>,
    /// When the record was queued, by the wall clock: Acct-Delay-Time counts from there.
    pub(crate) queued_ms: u64,
}

impl AcctRecord {
    fn base(record: &SessionRecord, status: Status, event: SystemTime) -> Self {
        Self {
            status,
            session_id: session_id(record),
            username: record.username.clone(),
            src_addr: record.src_addr,
            radius_authentic: record.mechanism == Mechanism::Radius,
            event_ms: unix_ms(event),
            session_time: None,
            queued_ms: unix_ms(SystemTime::now()),
        }
    }

    /// The Start of `record`, at its start time.
    pub(crate) fn start(record: &SessionRecord) -> Self {
        Self::base(record, Status::Start, record.start)
    }

    /// The Stop of `record`, ended at `at` for `cause`.
    pub(crate) fn stop(record: &SessionRecord, cause: EndCause, at: SystemTime) -> Self {
        Self {
            session_time: Some(seconds_between(record.start, at)),
            ..Self::base(record, Status::Stop(TerminateCause::of(cause)), at)
        }
    }

    /// An Interim-Update of the session `start` describes, at `now`.
    pub(crate) fn interim(start: &Self, start_time: SystemTime, now: SystemTime) -> Self {
        Self {
            status: Status::Interim,
            event_ms: unix_ms(now),
            session_time: Some(seconds_between(start_time, now)),
            queued_ms: unix_ms(SystemTime::now()),
            ..start.clone()
        }
    }

    /// Acct-Delay-Time at `now`: whole seconds since the record was queued.
    pub(crate) fn delay_at(&self, now: SystemTime) -> u32 {
        seconds_between(aaa_core::from_unix_ms(self.queued_ms), now)
    }

    /// The Accounting-Request, with the NAS attributes `nas` and Acct-Delay-Time `delay`.
    ///
    /// Attributes, in order: Acct-Status-Type, Acct-Session-Id, User-Name, the NAS
    /// attributes, Calling-Station-Id, Acct-Authentic, Event-Timestamp, then for a Stop or an
    /// Interim-Update Acct-Session-Time, for a Stop Acct-Terminate-Cause, and last
    /// Acct-Delay-Time.
    pub(crate) fn to_request(
        &self,
        nas: &[(u8, Vec<u8>)],
        delay: u32,
    ) -> Result<Request, RadiusError> {
        let status = match self.status {
            Status::Start => rfc2866::ACCT_STATUS_TYPE_START,
            Status::Stop(_) => rfc2866::ACCT_STATUS_TYPE_STOP,
            Status::Interim => rfc2866::ACCT_STATUS_TYPE_INTERIM_UPDATE,
        };
        let authentic = if self.radius_authentic {
            rfc2866::ACCT_AUTHENTIC_RADIUS
        } else {
            rfc2866::ACCT_AUTHENTIC_LOCAL
        };
        let mut r = Request::accounting_request();
        r.add(rfc2866::ACCT_STATUS_TYPE_TYPE, status.to_be_bytes())?
            .add(rfc2866::ACCT_SESSION_ID_TYPE, self.session_id.as_bytes())?
            .add(rfc2865::USER_NAME_TYPE, self.username.as_bytes())?
            .add_all(nas)?
            .add(rfc2865::CALLING_STATION_ID_TYPE, self.src_addr.to_string())?
            .add(rfc2866::ACCT_AUTHENTIC_TYPE, authentic.to_be_bytes())?
            .add(
                rfc2869::EVENT_TIMESTAMP_TYPE,
                unix_seconds(self.event_ms).to_be_bytes(),
            )?;
        if let Some(t) = self.session_time {
            r.add(rfc2866::ACCT_SESSION_TIME_TYPE, t.to_be_bytes())?;
        }
        if let Status::Stop(cause) = self.status {
            r.add(
                rfc2866::ACCT_TERMINATE_CAUSE_TYPE,
                cause.value().to_be_bytes(),
            )?;
        }
        r.add(rfc2866::ACCT_DELAY_TIME_TYPE, delay.to_be_bytes())?;
        Ok(r)
    }

    /// The spool file's text: `key value` lines between a versioned header and `end`. The
    /// user name is in hexadecimal (it is the only free text); no secret is ever written.
    pub(crate) fn to_spool_text(&self) -> String {
        let mut s = String::with_capacity(256);
        let (status, cause) = match self.status {
            Status::Start => ("start", None),
            Status::Interim => ("interim", None),
            Status::Stop(c) => ("stop", Some(c.value())),
        };
        let _ = writeln!(s, "{SPOOL_HEADER}");
        let _ = writeln!(s, "status {status}");
        if let Some(c) = cause {
            let _ = writeln!(s, "cause {c}");
        }
        let _ = writeln!(s, "session-id {}", self.session_id);
        let _ = write!(s, "user-hex ");
        for b in self.username.as_bytes() {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
        let _ = writeln!(s, "src {}", self.src_addr);
        let authentic = if self.radius_authentic {
            "radius"
        } else {
            "local"
        };
        let _ = writeln!(s, "authentic {authentic}");
        let _ = writeln!(s, "event-ms {}", self.event_ms);
        if let Some(t) = self.session_time {
            let _ = writeln!(s, "session-time {t}");
        }
        let _ = writeln!(s, "queued-ms {}", self.queued_ms);
        let _ = writeln!(s, "{SPOOL_END}");
        s
    }

    /// Parses a spool file's text (see [`to_spool_text`](Self::to_spool_text)); the reason
    /// when it is not a valid record.
    pub(crate) fn from_spool_text(text: &str) -> Result<Self, &'static str> {
        let mut lines = text.lines();
        if lines.next() != Some(SPOOL_HEADER) {
            return Err("unknown format or version");
        }
        let mut fields: Vec<(&str, &str)> = Vec::new();
        let mut ended = false;
        for line in lines {
            if ended {
                return Err("text after the end line");
            }
            if line == SPOOL_END {
                ended = true;
                continue;
            }
            let (key, value) = line.split_once(' ').ok_or("a line without a value")?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err("a field is repeated");
            }
            fields.push((key, value));
        }
        if !ended {
            return Err("incomplete (no end line)");
        }
        let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let known = [
            "status",
            "cause",
            "session-id",
            "user-hex",
            "src",
            "authentic",
            "event-ms",
            "session-time",
            "queued-ms",
        ];
        if fields.iter().any(|(k, _)| !known.contains(k)) {
            return Err("an unknown field");
        }
        let number = |key: &str| -> Result<Option<u64>, &'static str> {
            get(key)
                .map(|v| v.parse::<u64>().map_err(|_| "a malformed number"))
                .transpose()
        };
        let cause = number("cause")?;
        let status = match (get("status"), cause) {
            (Some("start"), None) => Status::Start,
            (Some("interim"), None) => Status::Interim,
            (Some("stop"), Some(c)) => Status::Stop(
                u32::try_from(c)
                    .ok()
                    .and_then(TerminateCause::from_value)
                    .ok_or("an unknown terminate cause")?,
            ),
            _ => return Err("a missing or invalid status"),
        };
        let session_id = get("session-id").ok_or("no session id")?;
        if session_id.is_empty()
            || session_id.len() > MAX_ATTRIBUTE_VALUE
            || !session_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("an invalid session id");
        }
        let username = decode_hex(get("user-hex").ok_or("no user name")?)
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|u| !u.is_empty() && u.len() <= MAX_ATTRIBUTE_VALUE)
            .ok_or("an invalid user name")?;
        let src_addr = get("src")
            .ok_or("no source address")?
            .parse()
            .map_err(|_| "an invalid source address")?;
        let radius_authentic = match get("authentic") {
            Some("radius") => true,
            Some("local") => false,
            _ => return Err("a missing or invalid authentic"),
        };
        let event_ms = number("event-ms")?.ok_or("no event time")?;
        let queued_ms = number("queued-ms")?.ok_or("no queue time")?;
        let session_time = number("session-time")?
            .map(|t| u32::try_from(t).map_err(|_| "a session time out of range"))
            .transpose()?;
        if matches!(status, Status::Start) == session_time.is_some() {
            return Err("a session time where none belongs, or none where one does");
        }
        Ok(Self {
            status,
            session_id: session_id.to_owned(),
            username,
            src_addr,
            radius_authentic,
            event_ms,
            session_time,
            queued_ms,
        })
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aaa_core::{CookieHash, SessionId, from_unix_ms};
    use std::net::Ipv4Addr;

    fn session(mechanism: Mechanism) -> SessionRecord {
        SessionRecord {
            key: CookieHash::from_bytes([3; 32]),
            id: SessionId::from_u64(0x1f2e_3d4c),
            username: "alice smith".into(),
            read_write: true,
            mechanism,
            src_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
            start: from_unix_ms(1_700_000_000_250),
            last_activity: from_unix_ms(1_700_000_000_250),
            idle_timeout: None,
            absolute_deadline: None,
        }
    }

    #[test]
    fn session_ids_are_derived_from_the_record() {
        let s = session(Mechanism::Local);
        assert_eq!(session_id(&s), "1f2e3d4c-18bcfe568fa");
        let mut later = s.clone();
        later.start = from_unix_ms(1_700_000_000_251);
        assert_ne!(session_id(&s), session_id(&later));
        let mut small = s;
        small.id = SessionId::from_u64(7);
        assert!(session_id(&small).starts_with("00000007-"));
    }

    #[test]
    fn request_attributes() {
        let s = session(Mechanism::Radius);
        let at = from_unix_ms(1_700_000_090_900);
        let stop = AcctRecord::stop(&s, EndCause::Cleared, at);
        assert_eq!(stop.session_time, Some(90));
        let nas = [(32u8, b"nas-1".to_vec())];
        let r = stop.to_request(&nas, 7).unwrap();
        let bytes = r
            .encode(9, &[0; 16], &crate::Secret::from("acct-secret"))
            .unwrap();
        let attrs = parse(&bytes);
        let expect: Vec<(u8, Vec<u8>)> = vec![
            (40, 2u32.to_be_bytes().to_vec()),
            (44, b"1f2e3d4c-18bcfe568fa".to_vec()),
            (1, b"alice smith".to_vec()),
            (32, b"nas-1".to_vec()),
            (31, b"192.0.2.9".to_vec()),
            (45, 1u32.to_be_bytes().to_vec()),
            (55, 1_700_000_090u32.to_be_bytes().to_vec()),
            (46, 90u32.to_be_bytes().to_vec()),
            (49, 6u32.to_be_bytes().to_vec()),
            (41, 7u32.to_be_bytes().to_vec()),
        ];
        assert_eq!(attrs, expect);

        let start = AcctRecord::start(&session(Mechanism::Local));
        let r = start.to_request(&nas, 0).unwrap();
        let bytes = r
            .encode(9, &[0; 16], &crate::Secret::from("acct-secret"))
            .unwrap();
        let attrs = parse(&bytes);
        assert_eq!(attrs[0], (40, 1u32.to_be_bytes().to_vec()));
        assert!(attrs.contains(&(45, 2u32.to_be_bytes().to_vec())));
        assert!(attrs.contains(&(55, 1_700_000_000u32.to_be_bytes().to_vec())));
        assert!(!attrs.iter().any(|(t, _)| *t == 46 || *t == 49 || *t == 80));
    }

    #[test]
    fn causes() {
        for (cause, value) in [
            (EndCause::Logout, 1),
            (EndCause::IdleTimeout, 4),
            (EndCause::AbsoluteTimeout, 5),
            (EndCause::Cleared, 6),
        ] {
            assert_eq!(TerminateCause::of(cause).value(), value);
            assert_eq!(
                TerminateCause::from_value(value),
                Some(TerminateCause::of(cause))
            );
        }
        assert_eq!(TerminateCause::from_value(2), None);
    }

    #[test]
    fn spool_text_round_trips() {
        let s = session(Mechanism::Radius);
        for r in [
            AcctRecord::start(&s),
            AcctRecord::stop(&s, EndCause::IdleTimeout, from_unix_ms(1_700_000_100_000)),
            AcctRecord::interim(
                &AcctRecord::start(&s),
                s.start,
                from_unix_ms(1_700_000_060_000),
            ),
        ] {
            let text = r.to_spool_text();
            assert_eq!(AcctRecord::from_spool_text(&text), Ok(r.clone()), "{text}");
            // Any truncation is refused, never misread.
            for cut in 0..text.len() {
                if let Some(part) = text.get(..cut) {
                    assert!(
                        AcctRecord::from_spool_text(part).is_err()
                            || part.trim_end() == text.trim_end(),
                        "{part:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn spool_text_rejects_garbage() {
        let good = AcctRecord::start(&session(Mechanism::Local)).to_spool_text();
        let bad = [
            String::new(),
            "garbage".to_owned(),
            good.replace("aaa-accounting-record 1", "aaa-accounting-record 2"),
            good.replace("status start", "status stop"),
            good.replace("status start", "status start\ncause 1"),
            good.replace("status start", "status start\nsession-time 3"),
            good.replace("user-hex ", "user-hex z"),
            good.replace("user-hex ", "user-hex 0"),
            good.replace("src ", "src not-an-address-"),
            good.replace("authentic local", "authentic magic"),
            good.replace("event-ms ", "event-ms -"),
            good.replace("end\n", "end\nmore\n"),
            good.replace("end\n", "colour blue\nend\n"),
            good.replace("session-id ", "session-id \u{7f}"),
            format!("{good}{good}"),
        ];
        for text in bad {
            assert!(AcctRecord::from_spool_text(&text).is_err(), "{text}");
        }
    }

    fn parse(packet: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 20;
        while at < packet.len() {
            let len = usize::from(packet[at + 1]);
            out.push((packet[at], packet[at + 2..at + len].to_vec()));
            at += len;
        }
        out
    }
}
