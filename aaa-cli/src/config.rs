//! The TOML configuration of the `aaa` command (DESIGN §7).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) local: LocalSection,
    #[serde(default)]
    pub(crate) session: SessionSection,
    #[serde(default)]
    pub(crate) radius: RadiusSection,
}

/// `[radius]` and its `[[radius.server]]` list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RadiusSection {
    /// The servers, in order: primary first.
    #[serde(default)]
    pub(crate) server: Vec<RadiusServerSection>,
    /// NAS-Identifier (default: the host name).
    pub(crate) nas_identifier: Option<String>,
    /// NAS-IP-Address.
    pub(crate) nas_ip_address: Option<std::net::IpAddr>,
    /// The first wait for an answer (default "1s"); it doubles on each retransmission.
    pub(crate) timeout: Option<Dur>,
    /// Retransmissions per server (default 3).
    pub(crate) retries: Option<u32>,
    /// The longest wait between retransmissions (default "4s").
    pub(crate) max_timeout: Option<Dur>,
    /// The most time spent on one server before failing over (default "5s").
    pub(crate) server_timeout: Option<Dur>,
    /// How long a server that did not answer is put after the others (default "30s").
    pub(crate) dead_time: Option<Dur>,
    /// Probe dead servers with Status-Server (default false).
    pub(crate) status_server: Option<bool>,
    /// Grant read/write for Management-Privilege-Level ≥ this value instead of the
    /// Service-Type rule (Administrative-User → read/write).
    pub(crate) admin_privilege_level: Option<u32>,
    /// The accounting servers (RFC 2866, usually port 1813), in order: primary first. Their
    /// `require_message_authenticator` defaults to false.
    #[serde(default)]
    pub(crate) accounting: Vec<RadiusServerSection>,
    /// Keep unacknowledged accounting records in this directory, so that they survive a
    /// restart (default: in memory only).
    pub(crate) accounting_spool: Option<PathBuf>,
    /// Send accounting Interim-Updates this often (default "off").
    pub(crate) accounting_interim: Option<Timeout>,
}

/// One `[[radius.server]]` or `[[radius.accounting]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RadiusServerSection {
    /// `ip:port`, e.g. `"192.0.2.10:1812"` or `"[2001:db8::10]:1812"`.
    pub(crate) address: std::net::SocketAddr,
    /// The shared secret.
    pub(crate) secret: SecretText,
    /// Drop replies without a valid Message-Authenticator (default true for authentication
    /// servers: BlastRADIUS; false for accounting servers).
    pub(crate) require_message_authenticator: Option<bool>,
}

/// A secret from the configuration: never shown by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct SecretText(pub(crate) String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[local]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalSection {
    /// The account file (default: `accounts.toml` in the user's data directory).
    pub(crate) accounts: Option<PathBuf>,
    /// Minimum password length in characters (default 8).
    pub(crate) min_password_length: Option<usize>,
    /// Consecutive failures before a lockout (default 5).
    pub(crate) lockout_threshold: Option<u32>,
    /// How long a lockout lasts (default "5m").
    pub(crate) lockout_duration: Option<Dur>,
}

/// `[session]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionSection {
    /// `"memory"` (default), `"redis://…"`, `"rediss://…"`, `"redis+cluster://h:p,h:p"`.
    pub(crate) store: Option<StoreUrl>,
    /// The Redis key prefix (default `aaa`).
    pub(crate) prefix: Option<String>,
    /// Idle timeout (default "20m"; "off" disables it).
    pub(crate) idle_timeout: Option<Timeout>,
    /// Absolute timeout (default "8h"; "off" disables it).
    pub(crate) absolute_timeout: Option<Timeout>,
    /// At most this many sessions per user.
    pub(crate) max_sessions_per_user: Option<u32>,
    /// At most this many sessions in total.
    pub(crate) max_sessions: Option<u32>,
}

/// A duration written like `"20m"`, `"8h"`, `"1h 30m"`, `"90s"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub(crate) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A timeout: a duration, or `"off"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeout(pub(crate) Option<Duration>);

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "off" {
            return Ok(Self(None));
        }
        parse_duration(&text)
            .map(|d| Self(Some(d)))
            .map_err(serde::de::Error::custom)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}); write e.g. \"90s\", \"20m\", \"8h\" or \"1h 30m\""
        )
    })?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(d)
}

/// Where sessions live.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// In this process only.
    Memory,
    /// A Redis URL (standalone, TLS or cluster), checked for its scheme here and parsed in full
    /// by the store.
    Redis(String),
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            // The URL may carry a password.
            Self::Redis(_) => f.write_str("redis(<url>)"),
        }
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        if t == "memory" {
            return Ok(Self::Memory);
        }
        let known = [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
        ];
        if known.iter().any(|p| t.starts_with(p)) {
            return Ok(Self::Redis(t.to_owned()));
        }
        Err(serde::de::Error::custom(
            "invalid session store: expected \"memory\", \"redis://host:port\", \
             \"rediss://host:port\" or \"redis+cluster://host:port,host:port\"",
        ))
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("{}: cannot read the configuration file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}, line {line}, column {column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Reads and checks `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, naming `path` in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str::<Self>(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/aaa.toml"))
    }

    #[test]
    fn a_full_config() {
        let c = parse(
            r#"
[local]
accounts = "/var/lib/aaa/accounts.toml"
lockout_duration = "10m"
[session]
store = "redis://127.0.0.1:6380/"
idle_timeout = "20m"
absolute_timeout = "off"
max_sessions_per_user = 4
"#,
        )
        .unwrap();
        assert_eq!(
            c.local.accounts.as_deref(),
            Some(Path::new("/var/lib/aaa/accounts.toml"))
        );
        assert_eq!(
            c.local.lockout_duration.unwrap().0,
            Duration::from_secs(600)
        );
        assert_eq!(
            c.session.store,
            Some(StoreUrl::Redis("redis://127.0.0.1:6380/".into()))
        );
        assert_eq!(
            c.session.idle_timeout.unwrap().0,
            Some(Duration::from_secs(1200))
        );
        assert_eq!(c.session.absolute_timeout.unwrap().0, None);
        assert_eq!(c.session.max_sessions_per_user, Some(4));
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "[session]\nidle_timeout = \"20 parsecs\"\n",
                2,
                "invalid duration",
            ),
            (
                "[session]\n\nstore = \"postgres://x\"\n",
                3,
                "invalid session store",
            ),
            (
                "[local]\naccounts = \"a\"\ncolour = \"blue\"\n",
                3,
                "unknown field `colour`",
            ),
            ("[sesion]\n", 1, "unknown field `sesion`"),
            ("[session]\nmax_sessions = \"many\"\n", 2, "invalid type"),
            ("[session]\nidle_timeout = \"0s\"\n", 2, "greater than zero"),
            ("[session\n", 1, ""),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("/etc/aaa.toml, line {line},")),
                "{msg}"
            );
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn radius_servers() {
        let c = parse(
            r#"
[radius]
nas_identifier = "sw1"
timeout = "500ms"
[[radius.server]]
address = "192.0.2.1:1812"
secret = "s3cret-shared"
[[radius.server]]
address = "[2001:db8::1]:1812"
secret = "other"
require_message_authenticator = false
"#,
        )
        .unwrap();
        assert_eq!(c.radius.server.len(), 2);
        assert_eq!(
            c.radius.server[1].require_message_authenticator,
            Some(false)
        );
        assert!(!format!("{c:?}").contains("s3cret-shared"));
        let e =
            parse("[[radius.server]]\naddress = \"radius.example\"\nsecret = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse("[[radius.server]]\naddress = \"192.0.2.1:1812\"\n").unwrap_err();
        assert!(e.to_string().contains("missing field `secret`"), "{e}");
    }

    #[test]
    fn radius_accounting() {
        let c = parse(
            r#"
[radius]
accounting_spool = "/var/spool/aaa/accounting"
accounting_interim = "10m"
[[radius.accounting]]
address = "192.0.2.1:1813"
secret = "acct-s3cret-shared"
[[radius.accounting]]
address = "192.0.2.2:1813"
secret = "other"
require_message_authenticator = true
"#,
        )
        .unwrap();
        assert!(c.radius.server.is_empty());
        assert_eq!(c.radius.accounting.len(), 2);
        assert_eq!(c.radius.accounting[0].require_message_authenticator, None);
        assert_eq!(
            c.radius.accounting[1].require_message_authenticator,
            Some(true)
        );
        assert_eq!(
            c.radius.accounting_spool.as_deref(),
            Some(Path::new("/var/spool/aaa/accounting"))
        );
        assert_eq!(
            c.radius.accounting_interim.unwrap().0,
            Some(Duration::from_secs(600))
        );
        assert!(!format!("{c:?}").contains("acct-s3cret-shared"));
        let c = parse("[radius]\naccounting_interim = \"off\"\n").unwrap();
        assert_eq!(c.radius.accounting_interim.unwrap().0, None);
        let e = parse("[radius]\n\naccounting_interim = \"often\"\n").unwrap_err();
        assert!(e.to_string().starts_with("/etc/aaa.toml, line 3,"), "{e}");
        let e = parse(
            "[[radius.accounting]]\naddress = \"192.0.2.1:1813\"\nsecret = \"x\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        assert!(e.to_string().contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn store_url_debug_hides_passwords() {
        let s = StoreUrl::Redis("redis://:hunter2@10.0.0.1/".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
