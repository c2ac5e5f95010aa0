//! The configuration of the RADIUS client, and its validation.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::packet::MAX_ATTRIBUTE_VALUE;
use crate::{RadiusError, Secret};

/// Secrets shorter than this many bytes are accepted with a warning (BlastRADIUS guidance:
/// short secrets can be brute-forced from one captured packet).
pub const MIN_RECOMMENDED_SECRET_BYTES: usize = 16;

/// One RADIUS server: where it is, the secret shared with it, and whether its replies must
/// carry a Message-Authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RadiusServer {
    /// Its address and authentication port (usually 1812). Replies must come from exactly this
    /// address and port.
    pub address: SocketAddr,
    /// The shared secret. Must not be empty; under 16 bytes draws a warning.
    pub secret: Secret,
    /// Drop every reply to an Access-Request or Status-Server that carries no
    /// Message-Authenticator, before any other check (the BlastRADIUS protection). Default
    /// `true`. Turn it off only for a server that cannot send one (FreeRADIUS before 3.2.5
    /// does not, unless configured to); a Message-Authenticator that is present is always
    /// verified, whatever this flag says.
    pub require_message_authenticator: bool,
}

impl RadiusServer {
    /// A server at `address` with `secret`, requiring a Message-Authenticator in replies.
    pub fn new(address: SocketAddr, secret: impl Into<Secret>) -> Self {
        Self {
            address,
            secret: secret.into(),
            require_message_authenticator: true,
        }
    }

    /// An accounting server (usually port 1813) at `address` with `secret`: its
    /// Accounting-Responses need no Message-Authenticator (one that is present is verified).
    /// FreeRADIUS does not sign Accounting-Responses, and an Accounting-Response decides
    /// nothing: at worst a forged one acknowledges a record that was not recorded, and forging
    /// one still takes the secret or an MD5 collision on our request. Set
    /// `require_message_authenticator` for a server that signs them.
    pub fn accounting(address: SocketAddr, secret: impl Into<Secret>) -> Self {
        Self {
            require_message_authenticator: false,
            ..Self::new(address, secret)
        }
    }
}

/// How a request is retransmitted to one server before that server is given up on
/// (RFC 5080 §2.2.1: IRT, MRC, MRT, MRD).
///
/// The first wait is `initial`; each further wait doubles the previous one, up to
/// `max_interval`; every wait has ±10 % random jitter. After `max_count` retransmissions the
/// last wait runs out and the server counts as silent; whatever happens, a server is given up
/// on `max_duration` after the first transmission. Retransmissions are byte-identical: same
/// identifier, same Request Authenticator, same socket.
///
/// The defaults (1 s, 3, 4 s, 5 s) suit interactive logins: the request goes out at about 0,
/// 1 and 3 s and the server is given up on at 5 s, so a login with a dead primary and a dead
/// secondary falls through to local accounts after about 10 s. RFC 5080 suggests
/// MRD between 5 and 30 s for authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retransmit {
    /// IRT: the wait after the first transmission. Default 1 s.
    pub initial: Duration,
    /// MRC: how many retransmissions at most (0: send once). Default 3.
    pub max_count: u32,
    /// MRT: the longest wait between two transmissions. Default 4 s.
    pub max_interval: Duration,
    /// MRD: how long a server is given, from the first transmission. Default 5 s.
    pub max_duration: Duration,
}

impl Retransmit {
    /// A retransmission policy.
    pub fn new(
        initial: Duration,
        max_count: u32,
        max_interval: Duration,
        max_duration: Duration,
    ) -> Self {
        Self {
            initial,
            max_count,
            max_interval,
            max_duration,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RadiusError> {
        for (setting, value) in [
            ("retransmit.initial", self.initial),
            ("retransmit.max_interval", self.max_interval),
            ("retransmit.max_duration", self.max_duration),
        ] {
            if value.is_zero() {
                return Err(RadiusError::ZeroDuration { setting });
            }
        }
        Ok(())
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max_count: 3,
            max_interval: Duration::from_secs(4),
            max_duration: Duration::from_secs(5),
        }
    }
}

/// How an Access-Accept is mapped to read/write or read-only access.
///
/// Whatever the mapping, an Accept that does not carry what the mapping looks for — or
/// carries it malformed, several times, or with another value — gives read-only access, never
/// more.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PrivilegeMapping {
    /// The EXOS rule (the default): exactly one Service-Type attribute, with the value
    /// Administrative-User (6), gives read/write; any other value, or none, gives read-only.
    #[default]
    ServiceType,
    /// RFC 5607: exactly one Management-Privilege-Level attribute (136) with a value of at
    /// least `min` (e.g. 15, as on Cisco-style devices) gives read/write.
    ManagementPrivilegeLevel {
        /// The lowest level that is read/write.
        min: u32,
    },
    /// A vendor-specific attribute (26) of `vendor_id` whose sub-attribute `vendor_type` has
    /// exactly the bytes `value` gives read/write. For an integer attribute the value is its 4
    /// bytes in network order: see [`PrivilegeMapping::vendor_integer`].
    VendorAttribute {
        /// The SMI private enterprise number (e.g. 1916 for Extreme Networks).
        vendor_id: u32,
        /// The vendor's attribute number (e.g. 201 for Extreme-CLI-Authorization).
        vendor_type: u8,
        /// The value that grants read/write, as on the wire.
        value: Vec<u8>,
    },
}

impl PrivilegeMapping {
    /// [`VendorAttribute`](Self::VendorAttribute) for an integer attribute: e.g.
    /// `vendor_integer(1916, 201, 1)` is Extreme-CLI-Authorization = Enabled.
    pub fn vendor_integer(vendor_id: u32, vendor_type: u8, value: u32) -> Self {
        Self::VendorAttribute {
            vendor_id,
            vendor_type,
            value: value.to_be_bytes().to_vec(),
        }
    }
}

/// Everything the RADIUS client needs.
///
/// Build it with [`RadiusConfig::new`] and change the fields that differ from the defaults;
/// [`RadiusConfig::validate`] (called by the constructors of the client) says what cannot work.
///
/// | field | default |
/// |---|---|
/// | `servers` | (given) tried in order: primary first |
/// | `nas_identifier` | the host name (from `/proc/sys/kernel/hostname` or `/etc/hostname`), else `"aaa"` |
/// | `nas_ip_address` | none |
/// | `retransmit` | [`Retransmit::default`]: 1 s, 3 retransmissions, 4 s, 5 s per server |
/// | `dead_time` | 30 s |
/// | `status_server` | `false` |
/// | `privilege` | [`PrivilegeMapping::ServiceType`] |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RadiusConfig {
    /// The servers, in order of preference. At least one.
    pub servers: Vec<RadiusServer>,
    /// NAS-Identifier (32) sent in every request: 1–253 bytes. At least one of
    /// `nas_identifier` and `nas_ip_address` is required (RFC 2865 §4.1).
    pub nas_identifier: Option<String>,
    /// NAS-IP-Address (4) for an IPv4 address, NAS-IPv6-Address (95) for an IPv6 one.
    pub nas_ip_address: Option<IpAddr>,
    /// Retransmission to one server.
    pub retransmit: Retransmit,
    /// How long a server that did not answer is passed over (tried only after the servers that
    /// are not dead). Without `status_server` it is tried normally again afterwards; with it,
    /// it is probed every `dead_time` until it answers.
    pub dead_time: Duration,
    /// Probe dead servers with Status-Server (RFC 5997) and put one back in service only when
    /// it answers. Every probe carries a Message-Authenticator and is never retransmitted; an
    /// Access-Accept or an Accounting-Response is an answer. Default `false`: the server must
    /// accept Status-Server (FreeRADIUS: `status_server = yes`, its default).
    pub status_server: bool,
    /// How an Access-Accept maps to read/write or read-only.
    pub privilege: PrivilegeMapping,
}

impl RadiusConfig {
    /// The default configuration for `servers` (see the table above).
    pub fn new(servers: Vec<RadiusServer>) -> Self {
        Self {
            servers,
            nas_identifier: Some(default_nas_identifier()),
            nas_ip_address: None,
            retransmit: Retransmit::default(),
            dead_time: Duration::from_secs(30),
            status_server: false,
            privilege: PrivilegeMapping::default(),
        }
    }

    /// Checks that the configuration can work: at least one server; no server listed twice;
    /// every server with a usable address and a non-empty secret; a NAS-Identifier of 1–253
    /// bytes or a NAS-IP-Address; every duration non-zero.
    pub fn validate(&self) -> Result<(), RadiusError> {
        if self.servers.is_empty() {
            return Err(RadiusError::NoServers);
        }
        let mut seen = HashSet::new();
        for server in &self.servers {
            let address = server.address;
            if address.ip().is_unspecified() || address.port() == 0 {
                return Err(RadiusError::InvalidServerAddress { address });
            }
            if !seen.insert(address) {
                return Err(RadiusError::DuplicateServer { address });
            }
            if server.secret.is_empty() {
                return Err(RadiusError::EmptySecret { address });
            }
        }
        match (&self.nas_identifier, self.nas_ip_address) {
            (None, None) => return Err(RadiusError::NoNasIdentity),
            (Some(id), _) if id.is_empty() || id.len() > MAX_ATTRIBUTE_VALUE => {
                return Err(RadiusError::InvalidNasIdentifier { len: id.len() });
            }
            _ => {}
        }
        self.retransmit.validate()?;
        if self.dead_time.is_zero() {
            return Err(RadiusError::ZeroDuration {
                setting: "dead_time",
            });
        }
        Ok(())
    }

    /// Logs a warning for each server whose secret is shorter than 16 bytes (never the secret)
    /// and, with `missing_ma`, for each not requiring a Message-Authenticator.
    pub(crate) fn warn_weak_secrets(&self, missing_ma: bool) {
        for server in &self.servers {
            if server.secret.len() < MIN_RECOMMENDED_SECRET_BYTES {
                tracing::warn!(
                    target: "aaa::radius",
                    server = %server.address,
                    secret_bytes = server.secret.len(),
                    "the shared secret of this RADIUS server is shorter than {MIN_RECOMMENDED_SECRET_BYTES} bytes: \
                     use a long random secret"
                );
            }
            if missing_ma && !server.require_message_authenticator {
                tracing::warn!(
                    target: "aaa::radius",
                    server = %server.address,
                    "replies of this RADIUS server are accepted without a Message-Authenticator \
                     (require_message_authenticator = false): vulnerable to BlastRADIUS"
                );
            }
        }
    }
}

/// The host name, as the kernel knows it, or `"aaa"`.
fn default_nas_identifier() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty() && name.len() <= MAX_ATTRIBUTE_VALUE)
        .unwrap_or_else(|| "aaa".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    fn config() -> RadiusConfig {
        RadiusConfig::new(vec![RadiusServer::new(
            addr(1812),
            "a-long-enough-shared-secret",
        )])
    }

    #[test]
    fn defaults() {
        let c = config();
        assert!(c.validate().is_ok());
        let r = c.retransmit;
        assert_eq!(
            (r.initial, r.max_count, r.max_interval, r.max_duration),
            (
                Duration::from_secs(1),
                3,
                Duration::from_secs(4),
                Duration::from_secs(5)
            )
        );
        assert_eq!(c.dead_time, Duration::from_secs(30));
        assert!(!c.status_server);
        assert_eq!(c.privilege, PrivilegeMapping::ServiceType);
        assert!(c.servers[0].require_message_authenticator);
        let id = c.nas_identifier.unwrap();
        assert!(!id.is_empty() && id.len() <= 253);
    }

    #[test]
    fn validation_errors() {
        let mut c = config();
        c.servers.clear();
        assert!(matches!(c.validate(), Err(RadiusError::NoServers)));

        let mut c = config();
        c.servers[0].secret = Secret::from("");
        assert!(matches!(
            c.validate(),
            Err(RadiusError::EmptySecret { address }) if address == addr(1812)
        ));

        let mut c = config();
        c.servers.push(c.servers[0].clone());
        assert!(matches!(
            c.validate(),
            Err(RadiusError::DuplicateServer { .. })
        ));

        for bad in [addr(0), "0.0.0.0:1812".parse().unwrap()] {
            let mut c = config();
            c.servers[0].address = bad;
            assert!(matches!(
                c.validate(),
                Err(RadiusError::InvalidServerAddress { .. })
            ));
        }

        let mut c = config();
        c.nas_identifier = None;
        assert!(matches!(c.validate(), Err(RadiusError::NoNasIdentity)));
        c.nas_ip_address = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(c.validate().is_ok());
        c.nas_identifier = Some(String::new());
        assert!(matches!(
            c.validate(),
            Err(RadiusError::InvalidNasIdentifier { len: 0 })
        ));
        c.nas_identifier = Some("x".repeat(254));
        assert!(matches!(
            c.validate(),
            Err(RadiusError::InvalidNasIdentifier { len: 254 })
        ));

        for which in 0..4 {
            let mut c = config();
            match which {
                0 => c.retransmit.initial = Duration::ZERO,
                1 => c.retransmit.max_interval = Duration::ZERO,
                2 => c.retransmit.max_duration = Duration::ZERO,
                _ => c.dead_time = Duration::ZERO,
            }
            let e = c.validate().unwrap_err();
            assert!(matches!(e, RadiusError::ZeroDuration { .. }), "{e}");
        }
        // No retransmission at all is allowed.
        let mut c = config();
        c.retransmit.max_count = 0;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = config();
        let text = format!("{c:?} {c:#?}");
        assert!(!text.contains("a-long-enough-shared-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
