//! Session cookies, their stored hash, and public session ids.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{AaaError, InvalidInput};

/// Bytes of entropy in a session cookie.
pub const COOKIE_BYTES: usize = 32;
/// Length of a cookie's text (base64url without padding).
pub const COOKIE_TEXT_LEN: usize = 43;

/// A session cookie: 32 bytes from the OS CSPRNG, as 43 characters of base64url.
///
/// It is a bearer secret: `Debug` and `Display` print `SessionCookie(<redacted>)`, and only
/// [`expose`](Self::expose) gives the text. Stores never see it, only its [`CookieHash`].
#[derive(Clone)]
pub struct SessionCookie {
    text: String,
}

impl SessionCookie {
    /// A fresh cookie from the operating system's random generator.
    pub fn generate() -> Result<Self, AaaError> {
        let mut raw = [0u8; COOKIE_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(AaaError::Entropy)?;
        Ok(Self {
            text: URL_SAFE_NO_PAD.encode(raw),
        })
    }

    /// Parses a cookie presented by a client. Checks the length and the alphabet only; whether it
    /// names a session is the store's answer.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        Self::check(text)?;
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// Checks that `text` is a well-formed cookie and returns its hash, without copying it:
    /// the fast path of session validation.
    pub fn hash_text(text: &str) -> Result<CookieHash, InvalidInput> {
        Self::check(text)?;
        Ok(CookieHash(Sha256::digest(text.as_bytes()).into()))
    }

    fn check(text: &str) -> Result<(), InvalidInput> {
        let bytes = text.as_bytes();
        let Some((&last, body)) = bytes.split_last() else {
            return Err(InvalidInput::CookieMalformed {
                reason: "expected 43 characters",
            });
        };
        if bytes.len() != COOKIE_TEXT_LEN {
            return Err(InvalidInput::CookieMalformed {
                reason: "expected 43 characters",
            });
        }
        // Only the canonical text of each 32-byte value: base64url characters, and the last one
        // carrying 4 data bits and 2 zero bits. Checked without decoding: the hash is taken over
        // the text, so validation never needs the raw bytes.
        // One table lookup per character, OR-ed: `INVALID` survives in the result if any
        // character is outside the alphabet.
        let body_bits = body.iter().fold(0u8, |acc, &b| acc | base64url_bits(b));
        let last_bits = base64url_bits(last);
        if body_bits & INVALID != 0 || last_bits & (INVALID | 0b11) != 0 {
            return Err(InvalidInput::CookieMalformed {
                reason: "not canonical base64url",
            });
        }
        Ok(())
    }

    /// The cookie's text, to hand to the client. Treat it as a password.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The SHA-256 of the cookie's text: the only form a store keeps.
    pub fn hash(&self) -> CookieHash {
        CookieHash(Sha256::digest(self.text.as_bytes()).into())
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCookie(<redacted>)")
    }
}

impl fmt::Display for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for SessionCookie {
    fn eq(&self, other: &Self) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}
impl Eq for SessionCookie {}

impl FromStr for SessionCookie {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// SHA-256 of a session cookie: the key a store files a session under.
///
/// Its `Debug` shows a short prefix only, enough to correlate log lines of one process. Its
/// equality is constant-time (maps keyed by it compare keys in constant time).
#[derive(Clone, Copy)]
pub struct CookieHash([u8; 32]);

impl PartialEq for CookieHash {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}
impl Eq for CookieHash {}

impl std::hash::Hash for CookieHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Hashes as one 8-byte write: with `CookieHashBuilder` that is the whole hash.
        let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = self.0;
        state.write_u64(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
    }
}

impl CookieHash {
    /// Wraps 32 bytes read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Lower-case hexadecimal, for store keys.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 0xf));
        }
        s
    }
    /// Constant-time equality: every byte is compared, whatever differs.
    #[inline]
    pub fn ct_eq(&self, other: &Self) -> bool {
        let mut diff = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.0.chunks_exact(8)) {
            let mut x = [0u8; 8];
            for ((x, a), b) in x.iter_mut().zip(a).zip(b) {
                *x = a ^ b;
            }
            diff |= u64::from_ne_bytes(x);
        }
        // The OR of all differences is tested once, hidden from the optimiser.
        std::hint::black_box(diff) == 0
    }
}

/// In [`BASE64URL`]: a byte outside the alphabet.
const INVALID: u8 = 0x80;

/// Each byte's base64url value (0–63), or [`INVALID`].
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build"
)]
const BASE64URL: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        let c = match i {
            0..=25 => b'A' + i,
            26..=51 => b'a' + (i - 26),
            52..=61 => b'0' + (i - 52),
            62 => b'-',
            _ => b'_',
        };
        table[c as usize] = i;
        i += 1;
    }
    table
};

/// `b`'s base64url value (0–63), or [`INVALID`].
#[inline]
fn base64url_bits(b: u8) -> u8 {
    BASE64URL.get(usize::from(b)).copied().unwrap_or(INVALID)
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

impl fmt::Debug for CookieHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        write!(f, "CookieHash({}…)", hex.get(..8).unwrap_or_default())
    }
}

/// A `BuildHasher` for maps keyed by [`CookieHash`]: the key is already a uniform SHA-256
/// output of a CSPRNG cookie, so its first 8 bytes are the hash (no SipHash round per lookup).
/// Only stored keys come from the CSPRNG, so lookups of crafted cookies cannot crowd a bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookieHashBuilder;

/// The hasher of [`CookieHashBuilder`].
#[derive(Debug, Default)]
pub struct CookieHasher(u64);

impl std::hash::BuildHasher for CookieHashBuilder {
    type Hasher = CookieHasher;
    fn build_hasher(&self) -> CookieHasher {
        CookieHasher(0)
    }
}

impl std::hash::Hasher for CookieHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Any other input still hashes deterministically, just not as fast.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            for (d, s) in b.iter_mut().zip(chunk) {
                *d = *s;
            }
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.rotate_left(5) ^ v;
    }
}

/// A session's public identifier, for operators (`show session`, `clear session <id>`).
///
/// Random, unique in the store, and tells nothing of use about the cookie: knowing it grants
/// nothing. (A store may shape the ids it makes: the Redis store's carry the 12 bits of the
/// cookie hash's bucket, of 256 random bits.) Written as lower-case hexadecimal (8 digits for
/// the ids aaa makes).
#[derive(Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh random id from the operating system's random generator (32 bits; the store
    /// refuses duplicates and the manager retries).
    pub fn generate() -> Result<Self, AaaError> {
        let mut raw = [0u8; 4];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(AaaError::Entropy)?;
        Ok(Self(u64::from(u32::from_be_bytes(raw))))
    }
    /// Wraps a raw value (read back from a store).
    pub fn from_u64(v: u64) -> Self {
        Self(v)
    }
    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidInput::SessionIdMalformed);
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| InvalidInput::SessionIdMalformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_cookie_round_trips_and_is_redacted() {
        let c = SessionCookie::generate().unwrap();
        assert_eq!(c.expose().len(), COOKIE_TEXT_LEN);
        let back = SessionCookie::parse(c.expose()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.hash(), c.hash());
        assert_eq!(format!("{c:?}"), "SessionCookie(<redacted>)");
        assert_eq!(format!("{c}"), "<redacted>");
        assert!(!format!("{:?}", c.hash()).contains(&c.hash().to_hex()));
    }

    #[test]
    fn cookies_differ() {
        let a = SessionCookie::generate().unwrap();
        let b = SessionCookie::generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_cookies_are_typed_errors() {
        let good = SessionCookie::generate().unwrap();
        let cases = [
            String::new(),
            "short".to_owned(),
            format!("{}A", good.expose()),
            // '+' and '/' are standard base64, not base64url.
            format!("+{}", good.expose().get(1..).unwrap()),
            format!("{}=", good.expose().get(1..).unwrap()),
            // Non-ASCII of the right byte length.
            format!("é{}", good.expose().get(2..).unwrap()),
        ];
        for text in cases {
            assert!(
                matches!(
                    SessionCookie::parse(&text),
                    Err(InvalidInput::CookieMalformed { .. })
                ),
                "{text:?} was accepted"
            );
        }
    }

    #[test]
    fn the_alphabet_table_holds_base64url_and_nothing_else() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for b in 0..=u8::MAX {
            let expected = alphabet
                .iter()
                .position(|&c| c == b)
                .map_or(INVALID, |i| u8::try_from(i).unwrap());
            assert_eq!(base64url_bits(b), expected, "byte {b}");
        }
    }

    #[test]
    fn non_canonical_last_char_is_refused() {
        // 32 bytes → 43 chars; the last char holds 2 data bits and 4 zero bits.
        let text = format!("{}B", "A".repeat(42));
        assert!(SessionCookie::parse(&text).is_err());
        let text = format!("{}E", "A".repeat(42));
        assert!(SessionCookie::parse(&text).is_ok());
    }

    #[test]
    fn session_id_text_round_trips() {
        let id = SessionId::from_u64(0x3fa9_c2d1);
        assert_eq!(id.to_string(), "3fa9c2d1");
        assert_eq!("3fa9c2d1".parse::<SessionId>().unwrap(), id);
        for bad in ["", "xyz", "-1", "+1", "12345678901234567", " 1"] {
            assert_eq!(
                bad.parse::<SessionId>(),
                Err(InvalidInput::SessionIdMalformed),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = SessionCookie::parse(&s);
            let _ = s.parse::<SessionId>();
        }

        /// The hand check agrees with a real base64url decoder on every 43-character text.
        #[test]
        fn check_agrees_with_the_decoder(s in "[A-Za-z0-9_=+/-]{43}") {
            let mut raw = [0u8; COOKIE_BYTES];
            let decodes = matches!(URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut raw), Ok(COOKIE_BYTES));
            prop_assert_eq!(SessionCookie::parse(&s).is_ok(), decodes);
        }

        #[test]
        fn every_random_cookie_round_trips(raw in proptest::array::uniform32(any::<u8>())) {
            let text = URL_SAFE_NO_PAD.encode(raw);
            prop_assert!(SessionCookie::parse(&text).is_ok());
        }
    }
}
