//! Where the store connects ([`RedisUrl`]) and how ([`RedisConfig`]).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RedisStoreError;

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "aaa";
/// How long one connection attempt may take (TCP, TLS, `HELLO`/`AUTH`/`SELECT`): 1 second.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may take to answer one command: 500 ms.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a key outlives its session's deadline, so that a reaper can claim the session
/// (and report its end) before Redis drops it: 60 seconds.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// The deadline this store gives a session with neither an idle nor an absolute timeout:
/// 7 days after its last validation.
pub const DEFAULT_MAX_IDLE_BACKSTOP: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest key prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;
const DEFAULT_PORT: u16 = 6379;

/// One `host:port`.
#[derive(Clone, PartialEq, Eq)]
struct Node {
    /// A host name, an IPv4 address, or an IPv6 address without brackets.
    host: String,
    port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed Redis URL: a standalone server or a list of cluster nodes, with optional TLS,
/// credentials and database.
///
/// Accepted forms:
/// - `redis://[user:password@]host[:port][/db]` — one server (port 6379 and database 0 by
///   default; IPv6 hosts in brackets);
/// - `rediss://…` — the same over TLS (needs the `tls` feature);
/// - `redis+cluster://[user:password@]host:port,host:port[,…]` — a Redis Cluster, from any of
///   its nodes (`rediss+cluster://` over TLS).
///
/// User name and password are percent-decoded. `Debug` and `Display` never show the password,
/// and no parse error ever contains any part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    cluster: bool,
    tls: bool,
    nodes: Vec<Node>,
    username: Option<String>,
    password: Option<String>,
    db: u32,
}

impl RedisUrl {
    /// Parses `text` (see the type's documentation for the forms).
    pub fn parse(text: &str) -> Result<Self, RedisStoreError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or(RedisStoreError::UrlMissingScheme)?;
        let (cluster, tls, scheme_name) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, false, "redis"),
            "rediss" => (false, true, "rediss"),
            "redis+cluster" => (true, false, "redis+cluster"),
            "rediss+cluster" => (true, true, "rediss+cluster"),
            _ => {
                let looks_like_scheme = !scheme.is_empty()
                    && scheme.len() <= 32
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
                return Err(RedisStoreError::UrlScheme {
                    scheme: if looks_like_scheme {
                        scheme.to_owned()
                    } else {
                        "(not shown)".to_owned()
                    },
                });
            }
        };
        if tls && !cfg!(feature = "tls") {
            return Err(RedisStoreError::TlsNotEnabled {
                scheme: scheme_name,
            });
        }
        // The authority ends at the first '/', '?' or '#'.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (path, query_or_fragment) = match tail.find(['?', '#']) {
            Some(i) => tail.split_at(i),
            None => (tail, ""),
        };
        if query_or_fragment.starts_with('?') {
            return Err(RedisStoreError::UrlUnsupportedPart {
                part: "query (?…)"
            });
        }
        if query_or_fragment.starts_with('#') {
            return Err(RedisStoreError::UrlUnsupportedPart {
                part: "fragment (#…)",
            });
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user)?;
                let pass = percent_decode(pass)?;
                let user = (!user.is_empty()).then_some(user);
                let pass = (!pass.is_empty()).then_some(pass);
                if user.is_some() && pass.is_none() {
                    return Err(RedisStoreError::UrlUserWithoutPassword);
                }
                (user, pass)
            }
        };
        if hosts.is_empty() {
            return Err(RedisStoreError::UrlMissingHost);
        }
        let nodes = hosts
            .split(',')
            .enumerate()
            .map(|(i, h)| parse_node(h, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if !cluster && nodes.len() > 1 {
            return Err(RedisStoreError::UrlManyHosts);
        }
        let db = match path.strip_prefix('/') {
            None | Some("") => 0,
            Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse::<u32>().map_err(|_| RedisStoreError::UrlDatabase)?
            }
            Some(_) => return Err(RedisStoreError::UrlDatabase),
        };
        if cluster && db != 0 {
            return Err(RedisStoreError::UrlClusterDatabase);
        }
        Ok(Self {
            cluster,
            tls,
            nodes,
            username,
            password,
            db,
        })
    }

    /// Whether this names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }
    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
    /// The server (one) or the cluster nodes given, as `(host, port)`.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, u16)> + '_ {
        self.nodes.iter().map(|n| (n.host.as_str(), n.port))
    }
    /// The database number (always 0 for a cluster).
    pub fn db(&self) -> u32 {
        self.db
    }
    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl FromStr for RedisUrl {
    type Err = RedisStoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The URL with the password replaced by `***`.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.tls, self.cluster) {
            (false, false) => "redis",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (true, true) => "rediss+cluster",
        };
        write!(f, "{scheme}://")?;
        match (&self.username, self.password.is_some()) {
            (Some(u), _) => write!(f, "{u}:***@")?,
            (None, true) => f.write_str(":***@")?,
            (None, false) => {}
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        if self.cluster {
            Ok(())
        } else {
            write!(f, "/{}", self.db)
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

fn parse_node(text: &str, index: usize) -> Result<Node, RedisStoreError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or(RedisStoreError::UrlHost { index })?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(RedisStoreError::UrlHost { index });
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(RedisStoreError::UrlHost { index })?,
            ),
        };
        (v6, port)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(if text.is_empty() {
            RedisStoreError::UrlMissingHost
        } else {
            RedisStoreError::UrlHost { index }
        });
    }
    let bracketed = text.starts_with('[');
    if !bracketed
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(RedisStoreError::UrlHost { index });
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return Err(RedisStoreError::UrlPort { index }),
            }
        }
        Some(_) => return Err(RedisStoreError::UrlPort { index }),
    };
    Ok(Node {
        host: host.to_owned(),
        port,
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(text: &str) -> Result<String, RedisStoreError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(RedisStoreError::UrlUserInfo),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| RedisStoreError::UrlUserInfo)
}

/// Checks a key prefix: 1 to 64 bytes, without `{` or `}`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), RedisStoreError> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(RedisStoreError::PrefixLength { len: prefix.len() });
    }
    if prefix.contains(['{', '}']) {
        return Err(RedisStoreError::PrefixBrace);
    }
    Ok(())
}

/// The settings of a [`RedisStore`](crate::RedisStore).
///
/// | setting | default | |
/// |---|---|---|
/// | `url` | — | see [`RedisUrl`] |
/// | `prefix` | `aaa` | every key starts with `{prefix}`: the cluster hash tag of one session table |
/// | `connect_timeout` | 1 s | one connection attempt, including TLS and authentication |
/// | `response_timeout` | 500 ms | one answer from Redis |
/// | `grace` | 60 s | how long keys outlive their session's deadline |
/// | `max_idle_backstop` | 7 days | the deadline of a session with no timeout at all |
///
/// A store call never takes longer than `connect_timeout + response_timeout`: less than the
/// budget of a login. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    url: RedisUrl,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    grace: Duration,
    max_idle_backstop: Duration,
    /// PEM certificates of the CAs trusted for `rediss://` instead of the system's roots.
    tls_root_ca: Option<Vec<u8>>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("grace", &self.grace)
            .field("max_idle_backstop", &self.max_idle_backstop)
            .field(
                "tls_root_ca",
                &self
                    .tls_root_ca
                    .as_ref()
                    .map(|pem| format!("{} bytes of PEM", pem.len())),
            )
            .finish()
    }
}

impl RedisConfig {
    /// The default settings for `url`.
    pub fn new(url: RedisUrl) -> Self {
        Self {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            grace: DEFAULT_GRACE,
            max_idle_backstop: DEFAULT_MAX_IDLE_BACKSTOP,
            tls_root_ca: None,
        }
    }

    /// The default settings for the URL `text` (see [`RedisUrl`]).
    pub fn from_url(text: &str) -> Result<Self, RedisStoreError> {
        Ok(Self::new(RedisUrl::parse(text)?))
    }

    /// Sets the key prefix: 1 to 64 bytes, without `{` or `}`. Several device groups can share
    /// one Redis (or one cluster) with different prefixes.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, RedisStoreError> {
        check_prefix(prefix)?;
        prefix.clone_into(&mut self.prefix);
        Ok(self)
    }
    /// Sets the connect timeout (checked to be non-zero by [`RedisStore::connect`](crate::RedisStore::connect)).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Sets the response timeout (checked to be non-zero by `connect`).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }
    /// Sets how long keys outlive their session's deadline (checked to be non-zero by `connect`).
    /// It must also cover the clock difference between the hosts sharing the store.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
    /// Sets the deadline of sessions without any timeout (checked to be non-zero by `connect`).
    pub fn with_max_idle_backstop(mut self, backstop: Duration) -> Self {
        self.max_idle_backstop = backstop;
        self
    }

    /// Trusts the CA certificates in `pem` (PEM format) for `rediss://` connections, instead of
    /// the system's root certificates: for a Redis whose certificate a private CA signed.
    #[cfg(feature = "tls")]
    pub fn with_tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_ca = Some(pem.into());
        self
    }

    /// The CA certificates trusted instead of the system's, if set.
    pub fn tls_root_ca(&self) -> Option<&[u8]> {
        self.tls_root_ca.as_deref()
    }

    /// Where to connect.
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// The response timeout.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
    /// How long keys outlive their session's deadline.
    pub fn grace(&self) -> Duration {
        self.grace
    }
    /// The deadline of sessions without any timeout, after their last validation.
    pub fn max_idle_backstop(&self) -> Duration {
        self.max_idle_backstop
    }
    /// The longest a store call may take: a reconnection plus an answer.
    pub fn operation_timeout(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }

    pub(crate) fn check(&self) -> Result<(), RedisStoreError> {
        check_prefix(&self.prefix)?;
        for (what, d) in [
            ("the connect timeout", self.connect_timeout),
            ("the response timeout", self.response_timeout),
            ("the grace period", self.grace),
            ("the idle backstop", self.max_idle_backstop),
        ] {
            if d.is_zero() {
                return Err(RedisStoreError::ZeroDuration { what });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(u: &RedisUrl) -> Vec<(String, u16)> {
        u.nodes().map(|(h, p)| (h.to_owned(), p)).collect()
    }

    #[test]
    fn good_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380").unwrap();
        assert!(!u.is_cluster() && !u.is_tls());
        assert_eq!(nodes(&u), vec![("127.0.0.1".into(), 6380)]);
        assert_eq!(u.db(), 0);
        assert_eq!(u.to_string(), "redis://127.0.0.1:6380/0");

        let u = RedisUrl::parse("redis://localhost").unwrap();
        assert_eq!(nodes(&u), vec![("localhost".into(), 6379)]);

        let u = RedisUrl::parse("REDIS://:s3cret@db.example:7000/3").unwrap();
        assert_eq!(u.db(), 3);
        assert_eq!(u.password(), Some("s3cret"));
        assert_eq!(u.username(), None);
        assert_eq!(u.to_string(), "redis://:***@db.example:7000/3");

        let u = RedisUrl::parse("redis://aaa:p%40ss%3Aw%2Fd@h:1/").unwrap();
        assert_eq!(u.username(), Some("aaa"));
        assert_eq!(u.password(), Some("p@ss:w/d"));
        assert_eq!(u.to_string(), "redis://aaa:***@h:1/0");

        let u = RedisUrl::parse("redis://[::1]:6381/2").unwrap();
        assert_eq!(nodes(&u), vec![("::1".into(), 6381)]);
        assert_eq!(u.to_string(), "redis://[::1]:6381/2");
        let u = RedisUrl::parse("redis://[2001:db8::1]").unwrap();
        assert_eq!(nodes(&u), vec![("2001:db8::1".into(), 6379)]);

        let u = RedisUrl::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002").unwrap();
        assert!(u.is_cluster());
        assert_eq!(
            nodes(&u),
            vec![
                ("10.0.0.1".into(), 7000),
                ("10.0.0.2".into(), 7001),
                ("::1".into(), 7002)
            ]
        );
        assert_eq!(
            u.to_string(),
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"
        );
        let u = RedisUrl::parse("redis+cluster://u:pw@n1:7000/0").unwrap();
        assert_eq!(u.to_string(), "redis+cluster://u:***@n1:7000");
        assert_eq!("redis://h".parse::<RedisUrl>().unwrap().db(), 0);
    }

    #[test]
    fn bad_urls_are_typed_and_never_show_the_password() {
        use RedisStoreError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::UrlMissingScheme)),
            ("127.0.0.1:6379", |e| matches!(e, E::UrlMissingScheme)),
            ("user:hunter2@host", |e| matches!(e, E::UrlMissingScheme)),
            (
                "http://host",
                |e| matches!(e, E::UrlScheme { scheme } if scheme == "http"),
            ),
            (
                "x:hunter2@y://host",
                |e| matches!(e, E::UrlScheme { scheme } if scheme == "(not shown)"),
            ),
            ("redis://", |e| matches!(e, E::UrlMissingHost)),
            ("redis://:hunter2@", |e| matches!(e, E::UrlMissingHost)),
            ("redis://:hunter2@/0", |e| matches!(e, E::UrlMissingHost)),
            ("redis://host:0", |e| matches!(e, E::UrlPort { index: 1 })),
            ("redis://host:65536", |e| {
                matches!(e, E::UrlPort { index: 1 })
            }),
            ("redis://host:", |e| matches!(e, E::UrlPort { index: 1 })),
            ("redis://host:+1", |e| matches!(e, E::UrlPort { index: 1 })),
            ("redis://user:hunter2", |e| {
                matches!(e, E::UrlPort { index: 1 })
            }),
            ("redis://user:hunter2x@", |e| matches!(e, E::UrlMissingHost)),
            ("redis://ho st", |e| matches!(e, E::UrlHost { index: 1 })),
            ("redis://[::1", |e| matches!(e, E::UrlHost { index: 1 })),
            ("redis://[nothex]:1", |e| {
                matches!(e, E::UrlHost { index: 1 })
            }),
            ("redis://[::1]x", |e| matches!(e, E::UrlHost { index: 1 })),
            ("redis://a:1,b:2", |e| matches!(e, E::UrlManyHosts)),
            ("redis+cluster://a:1,,b:2", |e| {
                matches!(e, E::UrlMissingHost)
            }),
            ("redis+cluster://a:1,b:hunter2", |e| {
                matches!(e, E::UrlPort { index: 2 })
            }),
            ("redis://h/abc", |e| matches!(e, E::UrlDatabase)),
            ("redis://h/-1", |e| matches!(e, E::UrlDatabase)),
            ("redis://h/99999999999", |e| matches!(e, E::UrlDatabase)),
            ("redis://h/0/1", |e| matches!(e, E::UrlDatabase)),
            ("redis+cluster://a:1,b:2/1", |e| {
                matches!(e, E::UrlClusterDatabase)
            }),
            ("redis://:hunter2%zz@h", |e| matches!(e, E::UrlUserInfo)),
            ("redis://:hunter2%ff@h", |e| matches!(e, E::UrlUserInfo)),
            ("redis://user@h", |e| matches!(e, E::UrlUserWithoutPassword)),
            ("redis://h/0?password=hunter2", |e| {
                matches!(e, E::UrlUnsupportedPart { .. })
            }),
            ("redis://h#hunter2", |e| {
                matches!(e, E::UrlUnsupportedPart { .. })
            }),
            ("unix:///tmp/redis.sock", |e| {
                matches!(e, E::UrlScheme { .. })
            }),
        ];
        for (text, ok) in cases {
            let err = RedisUrl::parse(text).expect_err(text);
            assert!(ok(&err), "{text:?} gave {err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{text:?} leaked: {shown}");
            assert_eq!(err.kind(), aaa_core::StoreErrorKind::Backend);
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_needs_the_feature() {
        for (text, scheme) in [
            ("rediss://:hunter2@h:6380", "rediss"),
            ("rediss+cluster://a:1,b:2", "rediss+cluster"),
        ] {
            let err = RedisUrl::parse(text).unwrap_err();
            assert!(
                matches!(err, RedisStoreError::TlsNotEnabled { scheme: s } if s == scheme),
                "{err:?}"
            );
            assert!(err.to_string().contains("`tls` feature"));
            assert!(!format!("{err:?}").contains("hunter2"));
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_urls_parse_with_the_feature() {
        let u = RedisUrl::parse("rediss://:hunter2@h:6380").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.to_string(), "rediss://:***@h:6380/0");
        let u = RedisUrl::parse("rediss+cluster://a:1,b:2").unwrap();
        assert!(u.is_tls() && u.is_cluster());
    }

    #[test]
    fn config_defaults_and_debug_hide_the_password() {
        let c = RedisConfig::from_url("redis://admin:hunter2@10.0.0.1:6379/1").unwrap();
        assert_eq!(c.prefix(), "aaa");
        assert_eq!(c.connect_timeout(), Duration::from_secs(1));
        assert_eq!(c.response_timeout(), Duration::from_millis(500));
        assert_eq!(c.grace(), Duration::from_secs(60));
        assert_eq!(c.max_idle_backstop(), Duration::from_secs(604_800));
        assert_eq!(c.operation_timeout(), Duration::from_millis(1500));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("admin:***@10.0.0.1:6379/1"), "{dbg}");
        assert!(c.check().is_ok());
    }

    #[test]
    fn prefixes_are_checked() {
        let c = RedisConfig::from_url("redis://h").unwrap();
        assert_eq!(
            c.clone().with_prefix("dev-group-1").unwrap().prefix(),
            "dev-group-1"
        );
        assert!(c.clone().with_prefix(&"p".repeat(64)).is_ok());
        assert!(matches!(
            c.clone().with_prefix(""),
            Err(RedisStoreError::PrefixLength { len: 0 })
        ));
        assert!(matches!(
            c.clone().with_prefix(&"p".repeat(65)),
            Err(RedisStoreError::PrefixLength { len: 65 })
        ));
        for bad in ["a{b", "a}b", "{x}"] {
            assert!(matches!(
                c.clone().with_prefix(bad),
                Err(RedisStoreError::PrefixBrace)
            ));
        }
    }

    #[test]
    fn zero_durations_are_refused() {
        let c = RedisConfig::from_url("redis://h").unwrap();
        for bad in [
            c.clone().with_connect_timeout(Duration::ZERO),
            c.clone().with_response_timeout(Duration::ZERO),
            c.clone().with_grace(Duration::ZERO),
            c.clone().with_max_idle_backstop(Duration::ZERO),
        ] {
            assert!(matches!(
                bad.check(),
                Err(RedisStoreError::ZeroDuration { .. })
            ));
        }
    }
}
