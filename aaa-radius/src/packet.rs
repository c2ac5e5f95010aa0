//! The wire format: encoding requests, verifying and decoding replies.
//!
//! The `radius` crate assembles and parses attribute lists and provides the dictionaries. What
//! it lacks is done here on the raw bytes, with the RustCrypto `md-5` and `hmac` crates:
//! Message-Authenticator (RFC 3579 §3.2, HMAC-MD5) placed first in every Access-Request and
//! Status-Server and verified in replies, the accounting Request Authenticator (RFC 2866 §3), the Request Authenticator from the OS random generator (chosen by the
//! transport), User-Password hiding (RFC 2865 §5.2, done here so that no copy of the password
//! is left behind in freed memory) and the Response Authenticator check. Every comparison of
//! a digest is constant-time (`subtle`).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use radius::core::avp::AVP;
use radius::core::packet::Packet;
use radius::core::{rfc2865, rfc2869, rfc3162};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{RadiusError, Secret};

/// Length of the RADIUS header: Code, Identifier, Length, Authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest RADIUS packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// The longest attribute value (an attribute is at most 255 bytes, 2 of them the header).
pub const MAX_ATTRIBUTE_VALUE: usize = 253;
/// The longest password a User-Password attribute carries (RFC 2865 §5.2): 128 bytes, the
/// limit of every mechanism ([`aaa_core::MAX_PASSWORD_BYTES`]).
pub const MAX_PASSWORD_LEN: usize = aaa_core::MAX_PASSWORD_BYTES;
// RFC 2865 §5.2 allows no more.
const _: () = assert!(MAX_PASSWORD_LEN <= 128);

/// Attribute type of Message-Authenticator (RFC 3579).
pub(crate) const MESSAGE_AUTHENTICATOR: u8 = rfc2869::MESSAGE_AUTHENTICATOR_TYPE;
const MA_LEN: usize = 16;
/// Attribute type of EAP-Message (RFC 3579): never in an Accounting-Request.
const EAP_MESSAGE: u8 = 79;
/// Offset of the Message-Authenticator's value in a request: it is the first attribute.
const REQUEST_MA_VALUE: usize = HEADER_LEN + 2;

type HmacMd5 = Hmac<Md5>;

/// A RADIUS packet code (the first byte of a packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Access-Request (1).
    AccessRequest,
    /// Access-Accept (2).
    AccessAccept,
    /// Access-Reject (3).
    AccessReject,
    /// Accounting-Request (4).
    AccountingRequest,
    /// Accounting-Response (5).
    AccountingResponse,
    /// Access-Challenge (11).
    AccessChallenge,
    /// Status-Server (12).
    StatusServer,
}

impl Code {
    /// The code's number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::AccessRequest => 1,
            Self::AccessAccept => 2,
            Self::AccessReject => 3,
            Self::AccountingRequest => 4,
            Self::AccountingResponse => 5,
            Self::AccessChallenge => 11,
            Self::StatusServer => 12,
        }
    }
    /// The code of a number, if it is one of these.
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::AccessRequest,
            2 => Self::AccessAccept,
            3 => Self::AccessReject,
            4 => Self::AccountingRequest,
            5 => Self::AccountingResponse,
            11 => Self::AccessChallenge,
            12 => Self::StatusServer,
            _ => return None,
        })
    }
    /// Whether `self` is a valid reply to a request with code `request`: Accept, Reject or
    /// Challenge to an Access-Request (RFC 2865); Accept or Accounting-Response to a
    /// Status-Server (RFC 5997 §3); Accounting-Response to an Accounting-Request.
    pub fn answers(self, request: Self) -> bool {
        matches!(
            (request, self),
            (
                Self::AccessRequest,
                Self::AccessAccept | Self::AccessReject | Self::AccessChallenge
            ) | (
                Self::StatusServer,
                Self::AccessAccept | Self::AccountingResponse
            ) | (Self::AccountingRequest, Self::AccountingResponse)
        )
    }
    fn to_radius(self) -> radius::core::code::Code {
        use radius::core::code::Code as C;
        match self {
            Self::AccessRequest => C::AccessRequest,
            Self::AccessAccept => C::AccessAccept,
            Self::AccessReject => C::AccessReject,
            Self::AccountingRequest => C::AccountingRequest,
            Self::AccountingResponse => C::AccountingResponse,
            Self::AccessChallenge => C::AccessChallenge,
            Self::StatusServer => C::StatusServer,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_radius().string())
    }
}

enum RequestAttribute {
    Plain(u8, Vec<u8>),
    UserPassword(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for RequestAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(t, v) => write!(f, "{t}: {} bytes", v.len()),
            Self::UserPassword(_) => f.write_str("User-Password: <redacted>"),
        }
    }
}

/// A request before it has an identifier and an authenticator: its code and attributes.
///
/// The transport encodes it once per server (with that server's secret, a fresh identifier
/// and a fresh Request Authenticator) and sends the same bytes on each retransmission.
/// `Debug` never shows the password.
#[derive(Debug)]
pub struct Request {
    code: Code,
    attributes: Vec<RequestAttribute>,
}

impl Request {
    /// An empty Access-Request. Add a User-Name, a User-Password and a NAS-Identifier or
    /// NAS-IP-Address before sending it.
    pub fn access_request() -> Self {
        Self {
            code: Code::AccessRequest,
            attributes: Vec::new(),
        }
    }
    /// An empty Accounting-Request (RFC 2866). It is encoded without a Message-Authenticator
    /// and with the accounting Request Authenticator (see [`encode`](Self::encode)).
    pub fn accounting_request() -> Self {
        Self {
            code: Code::AccountingRequest,
            attributes: Vec::new(),
        }
    }
    /// An empty Status-Server request (RFC 5997).
    pub fn status_server() -> Self {
        Self {
            code: Code::StatusServer,
            attributes: Vec::new(),
        }
    }
    /// The request's code.
    pub fn code(&self) -> Code {
        self.code
    }
    /// Appends an attribute, encoded as on the wire (e.g. `rfc2865::USER_NAME_TYPE` and the
    /// name's bytes). Message-Authenticator and User-Password are refused: the encoder adds
    /// the first itself and [`user_password`](Self::user_password) the second.
    pub fn add(
        &mut self,
        attribute: u8,
        value: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, RadiusError> {
        if attribute == MESSAGE_AUTHENTICATOR || attribute == rfc2865::USER_PASSWORD_TYPE {
            return Err(RadiusError::ReservedAttribute { attribute });
        }
        let value = value.into();
        if value.len() > MAX_ATTRIBUTE_VALUE {
            return Err(RadiusError::AttributeTooLong {
                attribute,
                len: value.len(),
            });
        }
        self.attributes
            .push(RequestAttribute::Plain(attribute, value));
        Ok(self)
    }
    /// Appends each (type, value) with [`add`](Self::add), in order: the NAS attributes of
    /// [`Client::nas_attributes`](crate::Client::nas_attributes).
    pub(crate) fn add_all(
        &mut self,
        attributes: &[(u8, Vec<u8>)],
    ) -> Result<&mut Self, RadiusError> {
        for (t, v) in attributes {
            self.add(*t, v.clone())?;
        }
        Ok(self)
    }
    /// Appends a User-Password, hidden at encoding time (RFC 2865 §5.2). At most 128 bytes:
    /// a longer password is [`RadiusError::PasswordTooLong`], never truncated.
    pub fn user_password(&mut self, password: &[u8]) -> Result<&mut Self, RadiusError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(RadiusError::PasswordTooLong {
                len: password.len(),
            });
        }
        self.attributes
            .push(RequestAttribute::UserPassword(Zeroizing::new(
                password.to_vec(),
            )));
        Ok(self)
    }

    /// Encodes the request with `identifier`, the Request Authenticator `authenticator` and
    /// the server's `secret`: a Message-Authenticator first (HMAC-MD5 over the whole packet,
    /// computed with its own value zeroed), then the attributes in the order they were added,
    /// the User-Password hidden with `secret` and `authenticator`.
    ///
    /// `authenticator` must be 16 bytes from a cryptographic random generator, new for every
    /// new identifier; the transport takes care of that.
    ///
    /// An Accounting-Request is different (RFC 2866 §3, RFC 3579 §3.3): no
    /// Message-Authenticator and no EAP-Message ([`RadiusError::ReservedAttribute`]), and
    /// `authenticator` is not used: its Request Authenticator is
    /// MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
    pub fn encode(
        &self,
        identifier: u8,
        authenticator: &[u8; 16],
        secret: &Secret,
    ) -> Result<Vec<u8>, RadiusError> {
        if self.code == Code::AccountingRequest {
            return self.encode_accounting(identifier, secret);
        }
        if self.code == Code::AccessRequest {
            self.check_access_request()?;
        }
        // The codec's packet keeps a copy of the secret it is given: it needs none to encode
        // an Access-Request or a Status-Server, so it gets none.
        let mut packet = Packet::new_with_identifier(self.code.to_radius(), &[], identifier);
        rfc2869::add_message_authenticator(&mut packet, &[0; MA_LEN]);
        let mut len = HEADER_LEN + 2 + MA_LEN;
        for attribute in &self.attributes {
            let avp = match attribute {
                RequestAttribute::Plain(t, value) => AVP::from_bytes(*t, value),
                RequestAttribute::UserPassword(password) => AVP::from_bytes(
                    rfc2865::USER_PASSWORD_TYPE,
                    &hide_password(password, secret, authenticator)?,
                ),
            };
            len += 2 + avp.encode_bytes().len();
            packet.add(avp);
        }
        if len > MAX_PACKET_LEN {
            return Err(RadiusError::PacketTooLong { len });
        }
        let mut bytes = packet.encode().map_err(RadiusError::Codec)?;
        // The codec drew its own authenticator; ours replaces it before the MAC is computed.
        let Some(header_authenticator) = bytes.get_mut(4..HEADER_LEN) else {
            return Err(RadiusError::PacketTooLong { len });
        };
        header_authenticator.copy_from_slice(authenticator);
        let mac = hmac_md5(secret, &[&bytes]);
        match bytes.get_mut(REQUEST_MA_VALUE..REQUEST_MA_VALUE + MA_LEN) {
            Some(value) => value.copy_from_slice(&mac),
            None => return Err(RadiusError::PacketTooLong { len }),
        }
        Ok(bytes)
    }
}

impl Request {
    /// An Accounting-Request: the attributes in order, no Message-Authenticator, the
    /// accounting Request Authenticator.
    fn encode_accounting(&self, identifier: u8, secret: &Secret) -> Result<Vec<u8>, RadiusError> {
        let mut packet = Packet::new_with_identifier(self.code.to_radius(), &[], identifier);
        let mut len = HEADER_LEN;
        for attribute in &self.attributes {
            match attribute {
                RequestAttribute::Plain(EAP_MESSAGE, _) => {
                    return Err(RadiusError::ReservedAttribute {
                        attribute: EAP_MESSAGE,
                    });
                }
                RequestAttribute::Plain(t, value) => {
                    len += 2 + value.len();
                    packet.add(AVP::from_bytes(*t, value));
                }
                RequestAttribute::UserPassword(_) => {
                    return Err(RadiusError::ReservedAttribute {
                        attribute: rfc2865::USER_PASSWORD_TYPE,
                    });
                }
            }
        }
        if len > MAX_PACKET_LEN {
            return Err(RadiusError::PacketTooLong { len });
        }
        let mut bytes = packet.encode().map_err(RadiusError::Codec)?;
        let Some(header_authenticator) = bytes.get_mut(4..HEADER_LEN) else {
            return Err(RadiusError::PacketTooLong { len });
        };
        // The codec computed one with an empty secret: zero it, then compute ours.
        header_authenticator.fill(0);
        let digest: [u8; 16] = Md5::new()
            .chain_update(&bytes)
            .chain_update(secret.bytes())
            .finalize()
            .into();
        match bytes.get_mut(4..HEADER_LEN) {
            Some(field) => field.copy_from_slice(&digest),
            None => return Err(RadiusError::PacketTooLong { len }),
        }
        Ok(bytes)
    }

    /// RFC 2865 §4.1: exactly one of User-Password, CHAP-Password and State; a NAS-IP-Address
    /// or NAS-Identifier (or, RFC 3162, a NAS-IPv6-Address).
    fn check_access_request(&self) -> Result<(), RadiusError> {
        let plain = |types: &[u8]| {
            self.attributes
                .iter()
                .filter(|a| matches!(a, RequestAttribute::Plain(t, _) if types.contains(t)))
                .count()
        };
        let passwords = self
            .attributes
            .iter()
            .filter(|a| matches!(a, RequestAttribute::UserPassword(_)))
            .count();
        let found = passwords + plain(&[rfc2865::CHAP_PASSWORD_TYPE, rfc2865::STATE_TYPE]);
        if found != 1 {
            return Err(RadiusError::CredentialAttributes { found });
        }
        if plain(&[
            rfc2865::NAS_IP_ADDRESS_TYPE,
            rfc2865::NAS_IDENTIFIER_TYPE,
            rfc3162::NAS_IPV6_ADDRESS_TYPE,
        ]) == 0
        {
            return Err(RadiusError::NoNasAttribute);
        }
        Ok(())
    }
}

/// Hides a User-Password (RFC 2865 §5.2): the password, padded with NULs to a multiple of 16
/// bytes (at least 16), XORed block by block with `MD5(secret + previous)`, where `previous`
/// is the Request Authenticator for the first block and the previous ciphertext block after.
pub fn hide_password(
    password: &[u8],
    secret: &Secret,
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, RadiusError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(RadiusError::PasswordTooLong {
            len: password.len(),
        });
    }
    let blocks = password.len().div_ceil(16).max(1);
    // The buffer starts as the padded password and is encrypted in place.
    let mut out = vec![0u8; blocks * 16];
    for (o, p) in out.iter_mut().zip(password) {
        *o = *p;
    }
    let mut previous = *authenticator;
    for block in out.chunks_mut(16) {
        let key: [u8; 16] = Md5::new()
            .chain_update(secret.bytes())
            .chain_update(previous)
            .finalize()
            .into();
        for (c, k) in block.iter_mut().zip(key) {
            *c ^= k;
        }
        for (p, c) in previous.iter_mut().zip(block.iter()) {
            *p = *c;
        }
    }
    Ok(out)
}

/// HMAC-MD5 keyed with the secret over the concatenation of `parts`.
fn hmac_md5(secret: &Secret, parts: &[&[u8]]) -> [u8; 16] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = HmacMd5::new_from_slice(secret.bytes()) else {
        return [0; 16];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Why a datagram was discarded instead of being taken as a reply. Discarded datagrams are
/// counted per server and logged at a limited rate; they never disturb the retransmission of
/// the request they might have answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Discard {
    /// It came from another address or port than the server's.
    #[error("the datagram came from another address or port than the server's")]
    WrongSource,
    /// Shorter than 20 bytes, a Length field under 20 or over 4096, or shorter than its
    /// Length field.
    #[error("the datagram's length or Length field is invalid")]
    BadLength,
    /// Its identifier matches no outstanding request: unsolicited, late, or a duplicate of a
    /// reply already taken.
    #[error("the identifier matches no outstanding request (unsolicited, late or duplicate)")]
    UnknownIdentifier,
    /// Its code is not a valid reply to the request.
    #[error("the code is not a valid reply to the request")]
    UnexpectedCode,
    /// An attribute's length is under 2 or runs past the packet.
    #[error("an attribute is malformed")]
    BadAttributes,
    /// No Message-Authenticator, while the server's `require_message_authenticator` is on.
    #[error("the reply carries no Message-Authenticator, which this server requires")]
    MissingMessageAuthenticator,
    /// More than one Message-Authenticator.
    #[error("the reply carries more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
    /// The Message-Authenticator is not 16 bytes or does not verify.
    #[error("the Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    /// The Response Authenticator does not verify (forged, corrupted, or another secret).
    #[error("the Response Authenticator does not verify")]
    BadResponseAuthenticator,
}

/// The checks of a datagram that need no outstanding request: the length rules of RFC 2865
/// §3. Returns the identifier and the packet (the datagram cut at its Length: bytes past it
/// are padding and ignored).
pub(crate) fn reply_header(datagram: &[u8]) -> Result<(u8, &[u8]), Discard> {
    let (Some(&identifier), Some(length)) = (datagram.get(1), datagram.get(2..4)) else {
        return Err(Discard::BadLength);
    };
    let length = usize::from(u16::from_be_bytes([
        length.first().copied().unwrap_or(0),
        length.get(1).copied().unwrap_or(0),
    ]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(Discard::BadLength);
    }
    match datagram.get(..length) {
        Some(packet) => Ok((identifier, packet)),
        None => Err(Discard::BadLength),
    }
}

/// Walks the attributes of `packet` (a whole packet, header included), calling `f(offset of
/// the value, type, value)` on each. Fails on a malformed attribute.
fn walk_attributes<'a>(
    packet: &'a [u8],
    mut f: impl FnMut(usize, u8, &'a [u8]),
) -> Result<(), Discard> {
    let mut at = HEADER_LEN;
    while at < packet.len() {
        let (Some(&t), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
            return Err(Discard::BadAttributes);
        };
        let len = usize::from(len);
        if len < 2 {
            return Err(Discard::BadAttributes);
        }
        let Some(value) = packet.get(at + 2..at + len) else {
            return Err(Discard::BadAttributes);
        };
        f(at + 2, t, value);
        at += len;
    }
    Ok(())
}

/// What a reply is checked against: the request it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected {
    pub(crate) code: Code,
    pub(crate) identifier: u8,
    pub(crate) authenticator: [u8; 16],
}

/// Verifies `packet` (cut at its Length by [`reply_header`]) as the reply to `expected`, in
/// this order: attributes well-formed; Message-Authenticator present if required, never
/// doubled, and correct if present; identifier and code right for the request; Response
/// Authenticator correct. Then decodes it.
pub(crate) fn verify_reply(
    packet: &[u8],
    expected: &Expected,
    secret: &Secret,
    require_message_authenticator: bool,
) -> Result<Reply, Discard> {
    let mut ma_count = 0usize;
    let mut ma_value_at = None;
    walk_attributes(packet, |at, t, value| {
        if t == MESSAGE_AUTHENTICATOR {
            ma_count += 1;
            ma_value_at = Some((at, value.len()));
        }
    })?;
    match (ma_count, ma_value_at) {
        (0, _) if require_message_authenticator => {
            return Err(Discard::MissingMessageAuthenticator);
        }
        (0, _) => {}
        (1, Some((at, MA_LEN))) => {
            let (Some(head), Some(before), Some(received), Some(after)) = (
                packet.get(..4),
                packet.get(HEADER_LEN..at),
                packet.get(at..at + MA_LEN),
                packet.get(at + MA_LEN..),
            ) else {
                return Err(Discard::BadMessageAuthenticator);
            };
            // RFC 3579 §3.2: computed over the reply with the Request Authenticator in the
            // authenticator field and the Message-Authenticator's value zeroed.
            let mac = hmac_md5(
                secret,
                &[head, &expected.authenticator, before, &[0; MA_LEN], after],
            );
            if !bool::from(mac.ct_eq(received)) {
                return Err(Discard::BadMessageAuthenticator);
            }
        }
        (1, _) => return Err(Discard::BadMessageAuthenticator),
        _ => return Err(Discard::DuplicateMessageAuthenticator),
    }
    let (Some(&code), Some(&identifier)) = (packet.first(), packet.get(1)) else {
        return Err(Discard::BadLength);
    };
    if identifier != expected.identifier {
        return Err(Discard::UnknownIdentifier);
    }
    let code = match Code::from_u8(code) {
        Some(code) if code.answers(expected.code) => code,
        _ => return Err(Discard::UnexpectedCode),
    };
    let (Some(head), Some(received), Some(attributes)) = (
        packet.get(..4),
        packet.get(4..HEADER_LEN),
        packet.get(HEADER_LEN..),
    ) else {
        return Err(Discard::BadLength);
    };
    let digest: [u8; 16] = Md5::new()
        .chain_update(head)
        .chain_update(expected.authenticator)
        .chain_update(attributes)
        .chain_update(secret.bytes())
        .finalize()
        .into();
    if !bool::from(digest.ct_eq(received)) {
        return Err(Discard::BadResponseAuthenticator);
    }
    // The codec's packet keeps a copy of the secret it is given: it needs none to read
    // attributes, so it gets none.
    let decoded = Packet::decode(packet, &[]).map_err(|_| Discard::BadAttributes)?;
    Ok(Reply {
        code,
        identifier,
        bytes: packet.to_vec(),
        decoded,
    })
}

/// A reply that passed every check.
#[derive(Clone)]
pub struct Reply {
    code: Code,
    identifier: u8,
    bytes: Vec<u8>,
    decoded: Packet,
}

impl Reply {
    /// Verifies `datagram` as the reply to `request` (the bytes of the request as sent) from a
    /// server with `secret`, as the transport does for each datagram from the server's
    /// address: length rules, attribute syntax, Message-Authenticator (required when
    /// `require_message_authenticator`, always verified when present, never doubled),
    /// identifier, code, Response Authenticator. Bytes past the Length field are ignored.
    pub fn verify(
        datagram: &[u8],
        request: &[u8],
        secret: &Secret,
        require_message_authenticator: bool,
    ) -> Result<Self, Discard> {
        let (Some(code), Some(&identifier), Some(authenticator)) = (
            request.first().copied().and_then(Code::from_u8),
            request.get(1),
            request
                .get(4..HEADER_LEN)
                .and_then(|a| <[u8; 16]>::try_from(a).ok()),
        ) else {
            return Err(Discard::UnexpectedCode);
        };
        let (_, packet) = reply_header(datagram)?;
        verify_reply(
            packet,
            &Expected {
                code,
                identifier,
                authenticator,
            },
            secret,
            require_message_authenticator,
        )
    }
    /// The reply's code.
    pub fn code(&self) -> Code {
        self.code
    }
    /// The reply's identifier.
    pub fn identifier(&self) -> u8 {
        self.identifier
    }
    /// The packet as received, cut at its Length field.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The attributes, in order, as (type, value).
    pub fn attributes(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        let mut all = Vec::new();
        // Verified at construction: the walk cannot fail here.
        let _ = walk_attributes(&self.bytes, |_, t, v| all.push((t, v)));
        all.into_iter()
    }
    /// The values of every attribute of type `attribute`, in order.
    pub fn attribute_values(&self, attribute: u8) -> Vec<&[u8]> {
        self.attributes()
            .filter(|(t, _)| *t == attribute)
            .map(|(_, v)| v)
            .collect()
    }
    /// The decoded packet, for the dictionaries of the `radius` crate.
    pub(crate) fn decoded(&self) -> &Packet {
        &self.decoded
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("code", &self.code)
            .field("identifier", &self.identifier)
            .field("length", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2865 §7.1: the example Access-Request (user nemo, password arctangent, secret
    /// xyzzy5461) and its Access-Accept.
    const SECRET: &str = "xyzzy5461";
    const RFC_REQUEST: [u8; 56] = [
        0x01, 0x00, 0x00, 0x38, 0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5,
        0xcb, 0x98, 0xf4, 0x22, 0x7a, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x02, 0x12, 0x0d, 0xbe,
        0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a, 0xee, 0x04,
        0x06, 0xc0, 0xa8, 0x01, 0x10, 0x05, 0x06, 0x00, 0x00, 0x00, 0x03,
    ];
    const RFC_ACCEPT: [u8; 38] = [
        0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05, 0xf6,
        0xbf, 0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06, 0x00, 0x00,
        0x00, 0x00, 0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
    ];

    fn rfc_authenticator() -> [u8; 16] {
        RFC_REQUEST[4..20].try_into().unwrap()
    }

    #[test]
    fn password_hiding_matches_the_rfc_example() {
        let hidden =
            hide_password(b"arctangent", &Secret::from(SECRET), &rfc_authenticator()).unwrap();
        assert_eq!(hidden, RFC_REQUEST[28..44]);
    }

    /// The RFC algorithm, written out naively (concatenate, hash, XOR), against ours and
    /// against the `radius` crate's, for every length from 0 to 128 bytes; and ours decoded
    /// by the `radius` crate gives the password back.
    #[test]
    fn password_hiding_round_trips_at_every_length() {
        let secret = Secret::from("a shared secret of some length");
        let ra: [u8; 16] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(5));
        for len in 0..=MAX_PASSWORD_LEN {
            let password: Vec<u8> = (0..len).map(|i| b'!' + (i % 90) as u8).collect();
            let ours = hide_password(&password, &secret, &ra).unwrap();

            let mut padded = password.clone();
            padded.resize(len.div_ceil(16).max(1) * 16, 0);
            let mut expected = Vec::new();
            let mut prev = ra.to_vec();
            for p in padded.chunks(16) {
                let mut input = secret.bytes().to_vec();
                input.extend_from_slice(&prev);
                let b = Md5::digest(&input);
                let c: Vec<u8> = p.iter().zip(b.iter()).map(|(p, b)| p ^ b).collect();
                expected.extend_from_slice(&c);
                prev = c;
            }
            assert_eq!(ours, expected, "length {len}");
            assert_eq!(ours.len(), len.div_ceil(16).max(1) * 16);

            let theirs = AVP::from_user_password(2, &password, secret.bytes(), &ra).unwrap();
            assert_eq!(theirs.encode_bytes(), ours, "length {len}");
            let back = AVP::from_bytes(2, &ours)
                .encode_user_password(secret.bytes(), &ra)
                .unwrap();
            assert_eq!(back, password, "length {len}");
        }
        assert!(matches!(
            hide_password(&[b'x'; 129], &secret, &ra),
            Err(RadiusError::PasswordTooLong { len: 129 })
        ));
    }

    #[test]
    fn rfc_example_reply_verifies() {
        let reply = Reply::verify(&RFC_ACCEPT, &RFC_REQUEST, &Secret::from(SECRET), false).unwrap();
        assert_eq!(reply.code(), Code::AccessAccept);
        assert_eq!(reply.attribute_values(6), vec![&[0, 0, 0, 1][..]]);
        // It carries no Message-Authenticator: refused when one is required.
        assert_eq!(
            Reply::verify(&RFC_ACCEPT, &RFC_REQUEST, &Secret::from(SECRET), true).unwrap_err(),
            Discard::MissingMessageAuthenticator
        );
        // Another secret.
        assert_eq!(
            Reply::verify(&RFC_ACCEPT, &RFC_REQUEST, &Secret::from("xyzzy5462"), false)
                .unwrap_err(),
            Discard::BadResponseAuthenticator
        );
        // Any flipped bit.
        for byte in 0..RFC_ACCEPT.len() {
            let mut bad = RFC_ACCEPT;
            bad[byte] ^= 0x01;
            assert!(
                Reply::verify(&bad, &RFC_REQUEST, &Secret::from(SECRET), false).is_err(),
                "bit flip in byte {byte} accepted"
            );
        }
        // Padding past Length is ignored.
        let mut padded = RFC_ACCEPT.to_vec();
        padded.extend_from_slice(&[0xff; 10]);
        assert!(Reply::verify(&padded, &RFC_REQUEST, &Secret::from(SECRET), false).is_ok());
    }

    #[test]
    fn request_layout() {
        let secret = Secret::from("s3cret-s3cret-s3cret");
        let ra = [7u8; 16];
        let mut r = Request::access_request();
        r.add(rfc2865::USER_NAME_TYPE, "alice").unwrap();
        r.user_password(b"pw").unwrap();
        r.add(rfc2865::NAS_IDENTIFIER_TYPE, "nas").unwrap();
        let bytes = r.encode(42, &ra, &secret).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 42);
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            bytes.len()
        );
        assert_eq!(&bytes[4..20], &ra);
        // Message-Authenticator first, and it verifies.
        assert_eq!(&bytes[20..22], &[80, 18]);
        let mut zeroed = bytes.clone();
        zeroed[22..38].fill(0);
        assert_eq!(hmac_md5(&secret, &[&zeroed]), bytes[22..38]);
        assert_eq!(&bytes[38..45], &[1, 7, b'a', b'l', b'i', b'c', b'e']);
        assert_eq!(&bytes[45..47], &[2, 18]);
        assert_eq!(
            bytes[47..63],
            hide_password(b"pw", &secret, &ra).unwrap()[..]
        );
        assert_eq!(&bytes[63..], &[32, 5, b'n', b'a', b's']);
        assert_eq!(bytes.len(), 68);
        // Debug shows no password.
        let mut r = Request::access_request();
        r.user_password(b"very-secret-password").unwrap();
        assert!(!format!("{r:?}").contains("very-secret"));
    }

    #[test]
    fn request_limits() {
        let mut r = Request::access_request();
        assert!(matches!(
            r.user_password(&[b'p'; 129]),
            Err(RadiusError::PasswordTooLong { len: 129 })
        ));
        assert!(r.user_password(&[b'p'; 128]).is_ok());
        assert!(matches!(
            r.add(1, vec![b'u'; 254]),
            Err(RadiusError::AttributeTooLong {
                attribute: 1,
                len: 254
            })
        ));
        assert!(matches!(
            r.add(80, vec![0; 16]),
            Err(RadiusError::ReservedAttribute { attribute: 80 })
        ));
        assert!(matches!(
            r.add(2, vec![0; 16]),
            Err(RadiusError::ReservedAttribute { attribute: 2 })
        ));
        let mut big = Request::access_request();
        big.user_password(b"pw").unwrap();
        big.add(rfc2865::NAS_IDENTIFIER_TYPE, "nas").unwrap();
        for _ in 0..16 {
            big.add(18, vec![b'm'; 253]).unwrap();
        }
        assert!(matches!(
            big.encode(0, &[0; 16], &Secret::from("s")),
            Err(RadiusError::PacketTooLong { .. })
        ));
    }

    #[test]
    fn access_request_shape() {
        let secret = Secret::from("s3cret-s3cret-s3cret");
        let encode = |r: &Request| r.encode(1, &[0; 16], &secret);
        let mut r = Request::access_request();
        r.add(rfc2865::USER_NAME_TYPE, "alice").unwrap();
        assert!(matches!(
            encode(&r),
            Err(RadiusError::CredentialAttributes { found: 0 })
        ));
        r.user_password(b"pw").unwrap();
        assert!(matches!(encode(&r), Err(RadiusError::NoNasAttribute)));
        for nas in [
            rfc2865::NAS_IDENTIFIER_TYPE,
            rfc2865::NAS_IP_ADDRESS_TYPE,
            rfc3162::NAS_IPV6_ADDRESS_TYPE,
        ] {
            let mut ok = Request::access_request();
            ok.user_password(b"pw")
                .unwrap()
                .add(nas, vec![1; 4])
                .unwrap();
            assert!(encode(&ok).is_ok());
        }
        r.add(rfc2865::NAS_IDENTIFIER_TYPE, "nas").unwrap();
        assert!(encode(&r).is_ok());
        r.add(rfc2865::STATE_TYPE, b"state".to_vec()).unwrap();
        assert!(matches!(
            encode(&r),
            Err(RadiusError::CredentialAttributes { found: 2 })
        ));
        // Status-Server needs neither.
        assert!(encode(&Request::status_server()).is_ok());
    }

    /// An Accounting-Request and its Accounting-Response, computed independently (Python's
    /// hashlib, RFC 2866 §3): no Message-Authenticator, the accounting Request
    /// Authenticator; the `radius` crate agrees it is authentic.
    const ACCT_REQUEST: [u8; 42] = [
        0x04, 0x2a, 0x00, 0x2a, 0x4c, 0x8d, 0x47, 0x34, 0x8b, 0x8f, 0xb2, 0xb9, 0x98, 0x16, 0x50,
        0x90, 0x01, 0x4e, 0x9b, 0x95, 0x28, 0x06, 0x00, 0x00, 0x00, 0x01, 0x2c, 0x05, 0x61, 0x62,
        0x63, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x20, 0x05, 0x6e, 0x61, 0x73,
    ];
    const ACCT_RESPONSE: [u8; 20] = [
        0x05, 0x2a, 0x00, 0x14, 0x71, 0x18, 0x88, 0xbf, 0xec, 0x4c, 0xa8, 0xb3, 0x99, 0x92, 0xbe,
        0xe5, 0x1b, 0x65, 0x92, 0x3f,
    ];

    #[test]
    fn accounting_request_golden_vector() {
        let secret = Secret::from(SECRET);
        let mut r = Request::accounting_request();
        r.add(40, 1u32.to_be_bytes())
            .unwrap()
            .add(44, "abc")
            .unwrap()
            .add(rfc2865::USER_NAME_TYPE, "nemo")
            .unwrap()
            .add(rfc2865::NAS_IDENTIFIER_TYPE, "nas")
            .unwrap();
        // The random authenticator given is not used.
        let bytes = r.encode(0x2a, &[0x77; 16], &secret).unwrap();
        assert_eq!(bytes, ACCT_REQUEST);
        assert!(Packet::is_authentic_request(&bytes, SECRET.as_bytes()));
        assert_eq!(r.encode(0x2a, &[0; 16], &secret).unwrap(), ACCT_REQUEST);
        // Another identifier, another authenticator.
        let other = r.encode(0x2b, &[0x77; 16], &secret).unwrap();
        assert_ne!(other[4..20], ACCT_REQUEST[4..20]);

        let reply = Reply::verify(&ACCT_RESPONSE, &ACCT_REQUEST, &secret, false).unwrap();
        assert_eq!(reply.code(), Code::AccountingResponse);
        assert_eq!(
            Reply::verify(&ACCT_RESPONSE, &ACCT_REQUEST, &secret, true).unwrap_err(),
            Discard::MissingMessageAuthenticator
        );
        for byte in 0..ACCT_RESPONSE.len() {
            let mut bad = ACCT_RESPONSE;
            bad[byte] ^= 0x10;
            assert!(
                Reply::verify(&bad, &ACCT_REQUEST, &secret, false).is_err(),
                "bit flip in byte {byte} accepted"
            );
        }
        assert_eq!(
            Reply::verify(&ACCT_RESPONSE, &ACCT_REQUEST, &Secret::from("other"), false)
                .unwrap_err(),
            Discard::BadResponseAuthenticator
        );
    }

    #[test]
    fn accounting_request_refuses_eap_and_passwords() {
        let secret = Secret::from(SECRET);
        let mut r = Request::accounting_request();
        r.add(79, vec![1, 2, 3]).unwrap();
        assert!(matches!(
            r.encode(1, &[0; 16], &secret),
            Err(RadiusError::ReservedAttribute { attribute: 79 })
        ));
        let mut r = Request::accounting_request();
        r.user_password(b"pw").unwrap();
        assert!(matches!(
            r.encode(1, &[0; 16], &secret),
            Err(RadiusError::ReservedAttribute { attribute: 2 })
        ));
        let mut big = Request::accounting_request();
        for _ in 0..17 {
            big.add(18, vec![b'm'; 253]).unwrap();
        }
        assert!(matches!(
            big.encode(0, &[0; 16], &secret),
            Err(RadiusError::PacketTooLong { .. })
        ));
    }

    #[test]
    fn reply_codes() {
        use Code::*;
        for (req, ok) in [
            (
                AccessRequest,
                &[AccessAccept, AccessReject, AccessChallenge][..],
            ),
            (StatusServer, &[AccessAccept, AccountingResponse][..]),
            (AccountingRequest, &[AccountingResponse][..]),
        ] {
            for c in 0..=255u8 {
                let Some(code) = Code::from_u8(c) else {
                    continue;
                };
                assert_eq!(code.as_u8(), c);
                assert_eq!(code.answers(req), ok.contains(&code), "{code} to {req}");
            }
        }
    }
}
