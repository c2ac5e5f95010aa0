//! The stored form of a session record: compact, versioned, big-endian.
//!
//! Version 2, in order:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | version = 2 |
//! | 1 | 8 | session id |
//! | 9 | 6 | last activity, ms since the epoch (a touch rewrites these 6 bytes) |
//! | 15 | 6 | start, ms since the epoch |
//! | 21 | 6 | idle timeout in ms (0: none) |
//! | 27 | 6 | absolute deadline, ms since the epoch (0: none) |
//! | 33 | 1 | flags: bit 0 read/write, bit 1 IPv6, bits 2–3 mechanism (1 local, 2 radius, 0 named) |
//! | 34 | 4 or 16 | the address |
//! | … | 1 + n | mechanism name (length, UTF-8): only for a named mechanism |
//! | … | 1 + n | username (length, UTF-8) |
//!
//! Times are 48-bit (until the year 10889); later times are kept as the largest one.
//! The key (`SHA-256(cookie)`) is not in the value: it is the field name in its bucket.
//! A typical value (IPv4, `local`, a 10-character name) is 49 bytes: under Redis' 64-byte
//! limit for a compactly stored (listpack) hash entry.
//! Decoding is strict — any other version, a short or long value, unknown flag bits or
//! non-UTF-8 text is [`RedisStoreError::Corrupt`], never a panic. The Lua scripts read the same
//! offsets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use aaa_core::{CookieHash, Mechanism, SessionId, SessionRecord, from_unix_ms, unix_ms};

use crate::error::{CorruptReason, RedisStoreError};

/// The encoding version this build writes and reads.
pub(crate) const VERSION: u8 = 2;
/// The fixed part: version, id, four 48-bit times, flags.
pub(crate) const FIXED: usize = 1 + 8 + 6 * 4 + 1;
/// The largest time or duration a value holds, in ms.
pub(crate) const MAX_MS: u64 = (1 << 48) - 1;
const FLAG_READ_WRITE: u8 = 1;
const FLAG_V6: u8 = 2;
const MECH_SHIFT: u8 = 2;
const MECH_NAMED: u8 = 0;
const MECH_LOCAL: u8 = 1;
const MECH_RADIUS: u8 = 2;
/// Bits a version-2 value may set in its flags byte.
const FLAGS_KNOWN: u8 = 0b1111;

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).min(MAX_MS)
}

fn put48(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.min(MAX_MS).to_be_bytes()[2..]);
}

/// Encodes `record` (its key excepted).
pub(crate) fn encode(record: &SessionRecord) -> Result<Vec<u8>, RedisStoreError> {
    let user = record.username.as_bytes();
    let user_len = u8::try_from(user.len()).map_err(|_| RedisStoreError::FieldTooLong {
        field: "username",
        len: user.len(),
    })?;
    let (mech_code, mech_name) = match &record.mechanism {
        Mechanism::Local => (MECH_LOCAL, None),
        Mechanism::Radius => (MECH_RADIUS, None),
        other => {
            let name = other.as_str().as_bytes();
            let len = u8::try_from(name.len()).map_err(|_| RedisStoreError::FieldTooLong {
                field: "mechanism name",
                len: name.len(),
            })?;
            (MECH_NAMED, Some((len, name)))
        }
    };
    let mut v = Vec::with_capacity(FIXED + 16 + 2 + user.len());
    v.push(VERSION);
    v.extend_from_slice(&record.id.as_u64().to_be_bytes());
    put48(&mut v, unix_ms(record.last_activity));
    put48(&mut v, unix_ms(record.start));
    // 0 means "none", so a timeout or deadline that rounds to 0 ms is kept as 1 ms.
    put48(&mut v, record.idle_timeout.map_or(0, |d| ms_of(d).max(1)));
    put48(
        &mut v,
        record.absolute_deadline.map_or(0, |t| unix_ms(t).max(1)),
    );
    let mut flags = mech_code << MECH_SHIFT;
    if record.read_write {
        flags |= FLAG_READ_WRITE;
    }
    if record.src_addr.is_ipv6() {
        flags |= FLAG_V6;
    }
    v.push(flags);
    match record.src_addr {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
    if let Some((len, name)) = mech_name {
        v.push(len);
        v.extend_from_slice(name);
    }
    v.push(user_len);
    v.extend_from_slice(user);
    Ok(v)
}

/// A cursor over a value being decoded; every read checks the length.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RedisStoreError> {
        if self.rest.len() < n {
            return Err(RedisStoreError::corrupt(CorruptReason::Truncated));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RedisStoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, RedisStoreError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    fn u64(&mut self) -> Result<u64, RedisStoreError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }
    fn u48(&mut self) -> Result<u64, RedisStoreError> {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(self.take(6)?);
        Ok(u64::from_be_bytes(b))
    }
    fn text(&mut self, bad: CorruptReason) -> Result<&'a str, RedisStoreError> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).map_err(|_| RedisStoreError::corrupt(bad))
    }
}

/// A well-formed value, its text borrowed: what [`decode`] and [`peek`] both check.
struct View<'a> {
    id: u64,
    last: u64,
    start: u64,
    idle: u64,
    abs: u64,
    flags: u8,
    src_addr: IpAddr,
    /// The mechanism's name, for a named one.
    mechanism_name: Option<&'a str>,
    username: &'a str,
}

/// Parses `value` strictly: any other version, a short or long value, unknown flags or text
/// that is not UTF-8 is `Corrupt`.
fn view(value: &[u8]) -> Result<View<'_>, RedisStoreError> {
    let mut r = Reader { rest: value };
    let Ok(version) = r.u8() else {
        return Err(RedisStoreError::corrupt(CorruptReason::Empty));
    };
    if version != VERSION {
        return Err(RedisStoreError::corrupt(CorruptReason::UnknownVersion(
            version,
        )));
    }
    let id = r.u64()?;
    let last = r.u48()?;
    let start = r.u48()?;
    let idle = r.u48()?;
    let abs = r.u48()?;
    let flags = r.u8()?;
    let mech_code = flags >> MECH_SHIFT & 0b11;
    if flags & !FLAGS_KNOWN != 0 || mech_code == 3 {
        return Err(RedisStoreError::corrupt(CorruptReason::Flags(flags)));
    }
    let src_addr = if flags & FLAG_V6 != 0 {
        IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
    };
    let mechanism_name = if mech_code == MECH_NAMED {
        Some(r.text(CorruptReason::MechanismUtf8)?)
    } else {
        None
    };
    let username = r.text(CorruptReason::UsernameUtf8)?;
    if !r.rest.is_empty() {
        return Err(RedisStoreError::corrupt(CorruptReason::TrailingBytes));
    }
    Ok(View {
        id,
        last,
        start,
        idle,
        abs,
        flags,
        src_addr,
        mechanism_name,
        username,
    })
}

/// Decodes the value stored under `key`.
pub(crate) fn decode(key: CookieHash, value: &[u8]) -> Result<SessionRecord, RedisStoreError> {
    let v = view(value)?;
    let mechanism = match (v.flags >> MECH_SHIFT & 0b11, v.mechanism_name) {
        (MECH_LOCAL, _) => Mechanism::Local,
        (MECH_RADIUS, _) => Mechanism::Radius,
        (_, name) => Mechanism::from_name(name.unwrap_or_default()),
    };
    Ok(SessionRecord {
        key,
        id: SessionId::from_u64(v.id),
        username: v.username.to_owned(),
        read_write: v.flags & FLAG_READ_WRITE != 0,
        mechanism,
        src_addr: v.src_addr,
        start: from_unix_ms(v.start),
        last_activity: from_unix_ms(v.last),
        idle_timeout: (v.idle != 0).then(|| Duration::from_millis(v.idle)),
        absolute_deadline: (v.abs != 0).then(|| from_unix_ms(v.abs)),
    })
}

/// What a validation needs from a value: its id and times (ms; 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) id: SessionId,
    pub(crate) last_ms: u64,
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
}

impl Times {
    /// The same rule as `SessionRecord::expiry`, in whole ms (for a session with a timeout).
    pub(crate) fn expired_at(&self, now_ms: u64) -> bool {
        (self.idle_ms != 0 && self.last_ms.saturating_add(self.idle_ms) <= now_ms)
            || (self.absolute_ms != 0 && self.absolute_ms <= now_ms)
    }
}

/// Checks `value` as strictly as [`decode`] does, without building the record: its id and
/// times.
pub(crate) fn peek(value: &[u8]) -> Result<Times, RedisStoreError> {
    let v = view(value)?;
    Ok(Times {
        id: SessionId::from_u64(v.id),
        last_ms: v.last,
        idle_ms: v.idle,
        absolute_ms: v.abs,
    })
}

/// A 32-byte key read back from an index (the deadline index or the id index).
pub(crate) fn key_of(member: &[u8]) -> Result<CookieHash, RedisStoreError> {
    <[u8; 32]>::try_from(member)
        .map(CookieHash::from_bytes)
        .map_err(|_| RedisStoreError::corrupt(CorruptReason::KeyLength(member.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aaa_core::StoreErrorKind;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn record() -> SessionRecord {
        SessionRecord {
            key: CookieHash::from_bytes([7; 32]),
            id: SessionId::from_u64(0x3fa9_c2d1),
            username: "admin".into(),
            read_write: true,
            mechanism: Mechanism::Local,
            src_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            start: from_unix_ms(1_700_000_000_000),
            last_activity: from_unix_ms(1_700_000_005_000),
            idle_timeout: Some(Duration::from_secs(1200)),
            absolute_deadline: Some(from_unix_ms(1_700_028_800_000)),
        }
    }

    fn reason(v: &[u8]) -> CorruptReason {
        match decode(CookieHash::from_bytes([7; 32]), v) {
            Err(RedisStoreError::Corrupt { reason }) => reason,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        let mut r = record();
        let v = encode(&r).unwrap();
        // IPv4, `local` as a flag, "admin".
        assert_eq!(v.len(), FIXED + 4 + 1 + 5);
        assert_eq!(v[0], VERSION);
        assert_eq!(decode(r.key, &v).unwrap(), r);

        r.src_addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        r.mechanism = Mechanism::Custom(Cow::Borrowed("tacacs+"));
        r.username = "José-ü".into();
        r.read_write = false;
        r.idle_timeout = None;
        r.absolute_deadline = None;
        let v = encode(&r).unwrap();
        assert_eq!(decode(r.key, &v).unwrap(), r);

        r.mechanism = Mechanism::Radius;
        r.username = String::new();
        let v = encode(&r).unwrap();
        assert_eq!(decode(r.key, &v).unwrap(), r);
    }

    #[test]
    fn last_activity_sits_at_offset_one() {
        let r = record();
        let mut v = encode(&r).unwrap();
        v[9..15].copy_from_slice(&1_700_000_009_000u64.to_be_bytes()[2..]);
        let back = decode(r.key, &v).unwrap();
        assert_eq!(back.last_activity, from_unix_ms(1_700_000_009_000));
        assert_eq!(back.id, r.id);
    }

    #[test]
    fn times_past_48_bits_are_capped() {
        let mut r = record();
        r.absolute_deadline = Some(from_unix_ms(u64::MAX / 2));
        r.idle_timeout = Some(Duration::from_secs(u64::MAX / 4));
        let back = decode(r.key, &encode(&r).unwrap()).unwrap();
        assert_eq!(back.absolute_deadline, Some(from_unix_ms(MAX_MS)));
        assert_eq!(back.idle_timeout, Some(Duration::from_millis(MAX_MS)));
    }

    #[test]
    fn zero_ms_timeouts_stay_some() {
        let mut r = record();
        r.idle_timeout = Some(Duration::from_micros(300));
        r.absolute_deadline = Some(from_unix_ms(0));
        let back = decode(r.key, &encode(&r).unwrap()).unwrap();
        assert_eq!(back.idle_timeout, Some(Duration::from_millis(1)));
        assert_eq!(back.absolute_deadline, Some(from_unix_ms(1)));
    }

    #[test]
    fn too_long_fields_are_refused() {
        let mut r = record();
        r.username = "x".repeat(256);
        assert!(matches!(
            encode(&r),
            Err(RedisStoreError::FieldTooLong {
                field: "username",
                len: 256
            })
        ));
        let mut r = record();
        r.mechanism = Mechanism::Custom(Cow::Owned("m".repeat(300)));
        assert!(matches!(
            encode(&r),
            Err(RedisStoreError::FieldTooLong {
                field: "mechanism name",
                ..
            })
        ));
        r.username = "x".repeat(255);
        r.mechanism = Mechanism::Local;
        assert_eq!(decode(r.key, &encode(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn every_corrupt_form_is_refused() {
        let good = encode(&record()).unwrap();
        assert_eq!(reason(&[]), CorruptReason::Empty);
        for version in [0u8, 1, 3, 0x7f, 0xff] {
            let mut v = good.clone();
            v[0] = version;
            assert_eq!(reason(&v), CorruptReason::UnknownVersion(version));
        }
        // Every truncation.
        for len in 1..good.len() {
            assert_eq!(reason(&good[..len]), CorruptReason::Truncated, "len {len}");
        }
        // Trailing bytes.
        let mut v = good.clone();
        v.push(0);
        assert_eq!(reason(&v), CorruptReason::TrailingBytes);
        // Unknown flag bits, and the mechanism code 3.
        for flags in [0x10u8, 0x80, 0xff, 0b1100, 0b1101] {
            let mut v = good.clone();
            v[33] = flags;
            assert_eq!(reason(&v), CorruptReason::Flags(flags));
        }
        // The IPv6 bit on a v4 body reads past the end.
        let mut v = good.clone();
        v[33] |= 2;
        assert_eq!(reason(&v), CorruptReason::Truncated);
        // Bad UTF-8 in the username ("admin" at 39..44).
        let mut v = good.clone();
        v[40] = 0xc3;
        assert_eq!(reason(&v), CorruptReason::UsernameUtf8);
        // A length byte pointing past the end.
        let mut v = good.clone();
        v[38] = 200;
        assert_eq!(reason(&v), CorruptReason::Truncated);
        // Bad UTF-8 in a mechanism name ("tacacs" at 39..45, after its length byte).
        let mut r = record();
        r.mechanism = Mechanism::Custom(Cow::Borrowed("tacacs"));
        let mut v = encode(&r).unwrap();
        assert_eq!(v[33] >> 2 & 3, 0);
        v[39] = 0xff;
        assert_eq!(reason(&v), CorruptReason::MechanismUtf8);
        // Plain garbage.
        assert_eq!(reason(b"garbage"), CorruptReason::UnknownVersion(b'g'));
        assert_eq!(reason(&[2]), CorruptReason::Truncated);
    }

    #[test]
    fn corrupt_is_the_corrupt_kind() {
        let e = decode(CookieHash::from_bytes([0; 32]), b"\x01").unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        assert_eq!(
            e.to_string(),
            "corrupt session value in Redis: unknown encoding version 1"
        );
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert_eq!(key_of(&[1; 32]).unwrap(), CookieHash::from_bytes([1; 32]));
        for n in [0, 31, 33, 64] {
            assert!(matches!(
                key_of(&vec![0; n]),
                Err(RedisStoreError::Corrupt {
                    reason: CorruptReason::KeyLength(m)
                }) if m == n
            ));
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(v in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = decode(CookieHash::from_bytes([0; 32]), &v);
        }

        #[test]
        fn mutations_of_a_good_value_never_panic(i in 0usize..59, b in any::<u8>()) {
            let mut v = encode(&record()).unwrap();
            if let Some(slot) = v.get_mut(i) {
                *slot = b;
            }
            let full = decode(CookieHash::from_bytes([0; 32]), &v);
            // The validation's quick check refuses exactly what decoding refuses.
            match (peek(&v), full) {
                (Ok(t), Ok(r)) => {
                    prop_assert_eq!(t.id, r.id);
                    prop_assert_eq!(from_unix_ms(t.last_ms), r.last_activity);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "peek {a:?} but decode {b:?}"),
            }
        }

        #[test]
        fn any_record_round_trips(
            last in 0u64..(1 << 48), id in any::<u64>(), start in 0u64..(1 << 48),
            idle in proptest::option::of(1u64..(1 << 40)), abs in proptest::option::of(1u64..(1 << 48)),
            rw in any::<bool>(), v6 in any::<bool>(), octets in proptest::array::uniform16(any::<u8>()),
            user in "\\PC{0,20}", mech in "[a-z+]{1,10}",
        ) {
            let src_addr = if v6 {
                IpAddr::V6(Ipv6Addr::from(octets))
            } else {
                IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
            };
            let r = SessionRecord {
                key: CookieHash::from_bytes([3; 32]),
                id: SessionId::from_u64(id),
                username: user,
                read_write: rw,
                mechanism: Mechanism::from_name(&mech),
                src_addr,
                start: from_unix_ms(start),
                last_activity: from_unix_ms(last),
                idle_timeout: idle.map(Duration::from_millis),
                absolute_deadline: abs.map(from_unix_ms),
            };
            let v = encode(&r).unwrap();
            prop_assert_eq!(decode(r.key, &v).unwrap(), r);
        }
    }
}
