//! Authentication: credentials, the `Authenticator` trait and the ordered method list.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{AaaError, BoxError, ConfigError, InvalidInput, MechanismFailure, Unavailable};

/// Longest username accepted, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Longest password accepted, in bytes (the RADIUS User-Password limit). Never truncated.
pub const MAX_PASSWORD_BYTES: usize = 128;

/// Which mechanism authenticated a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// Local accounts.
    Local,
    /// A RADIUS server.
    Radius,
    /// An application-supplied mechanism, by name.
    Custom(Cow<'static, str>),
}

impl Mechanism {
    /// The name used in logs, listings and stores: `local`, `radius`, or the custom name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Local => "local",
            Self::Radius => "radius",
            Self::Custom(name) => name,
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn from_name(name: &str) -> Self {
        match name {
            "local" => Self::Local,
            "radius" => Self::Radius,
            other => Self::Custom(Cow::Owned(other.to_owned())),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a username against DESIGN §2: 1–64 bytes of UTF-8, no control characters.
pub fn validate_username(username: &str) -> Result<(), InvalidInput> {
    if username.is_empty() {
        return Err(InvalidInput::UsernameEmpty);
    }
    if username.len() > MAX_USERNAME_BYTES {
        return Err(InvalidInput::UsernameTooLong {
            len: username.len(),
        });
    }
    if username.chars().any(char::is_control) {
        return Err(InvalidInput::UsernameControlChar);
    }
    Ok(())
}

/// Checks a password: at most 128 bytes, no NUL. Never truncated.
pub fn validate_password(password: &str) -> Result<(), InvalidInput> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(InvalidInput::PasswordTooLong {
            len: password.len(),
        });
    }
    if password.contains('\0') {
        return Err(InvalidInput::PasswordNul);
    }
    Ok(())
}

/// A login attempt, validated. `Debug` never shows the password.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
    src_addr: IpAddr,
}

impl<'a> Credentials<'a> {
    /// Validates the username and password (DESIGN §2 input limits).
    pub fn new(
        username: &'a str,
        password: &'a str,
        src_addr: IpAddr,
    ) -> Result<Self, InvalidInput> {
        validate_username(username)?;
        validate_password(password)?;
        Ok(Self {
            username,
            password,
            src_addr,
        })
    }
    /// The username as typed.
    pub fn username(&self) -> &'a str {
        self.username
    }
    /// The password. Never log it.
    pub fn password(&self) -> &'a str {
        self.password
    }
    /// Where the login comes from.
    pub fn src_addr(&self) -> IpAddr {
        self.src_addr
    }
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("src_addr", &self.src_addr)
            .finish()
    }
}

/// Who a mechanism says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The username (as the mechanism knows it).
    pub username: String,
    /// Read/write (true) or read-only (false).
    pub read_write: bool,
}

impl Identity {
    /// An identity.
    pub fn new(username: impl Into<String>, read_write: bool) -> Self {
        Self {
            username: username.into(),
            read_write,
        }
    }
}

/// Why a mechanism rejected a login: for the AAA log only, never for the client (no user
/// enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Wrong password (or unknown user, where the mechanism cannot tell).
    BadCredentials,
    /// No such user.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// The account is locked after too many failures.
    LockedOut,
    /// The server rejected it (RADIUS Access-Reject).
    ServerReject,
    /// The server answered something aaa does not support (e.g. an Access-Challenge).
    Unsupported,
}

impl RejectReason {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadCredentials => "bad-credentials",
            Self::UnknownUser => "unknown-user",
            Self::Disabled => "disabled",
            Self::LockedOut => "locked-out",
            Self::ServerReject => "server-reject",
            Self::Unsupported => "unsupported-answer",
        }
    }
}

/// A mechanism's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Decision {
    /// The credentials are good.
    Accept(Identity),
    /// The credentials are bad. Final by default.
    Reject(RejectReason),
    /// No decision could be made (server silent, file unreadable): the next mechanism is asked.
    Unavailable(BoxError),
}

/// An authentication mechanism (local accounts, RADIUS, or the application's own).
#[async_trait]
pub trait Authenticator: fmt::Debug + Send + Sync {
    /// Which mechanism this is (recorded in the session).
    fn mechanism(&self) -> Mechanism;
    /// Decides on one login attempt. Must not panic and must return within the mechanism's own
    /// time budget.
    async fn authenticate(&self, credentials: &Credentials<'_>) -> Decision;
}

/// What to do when a mechanism rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnReject {
    /// The reject is final (the default, as on EXOS, IOS and SONiC).
    #[default]
    Stop,
    /// Ask the next mechanism anyway (fail-through).
    Next,
}

/// The answer of the whole method list.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// A mechanism accepted.
    Accepted {
        /// Who.
        identity: Identity,
        /// Which mechanism.
        mechanism: Mechanism,
    },
    /// A mechanism rejected, and that was final.
    Rejected {
        /// The mechanism whose reject decided.
        mechanism: Mechanism,
        /// Why (for the log).
        reason: RejectReason,
    },
}

#[derive(Debug, Clone)]
struct Method {
    authenticator: Arc<dyn Authenticator>,
    on_reject: OnReject,
}

/// The ordered list of mechanisms (DESIGN §2).
///
/// - `Accept` ends the list.
/// - `Reject` ends it when the mechanism's [`OnReject`] is `Stop` (the default); with `Next` the
///   next mechanism is asked, and the reject stands if nothing later accepts.
/// - `Unavailable` moves on. If every mechanism was unavailable, the answer is
///   [`AaaError::Unavailable`] naming each cause (fail closed).
#[derive(Debug, Clone)]
pub struct MethodList {
    methods: Vec<Method>,
}

impl MethodList {
    /// An empty list; [`run`](Self::run) refuses it with [`ConfigError::NoMechanism`].
    pub fn new() -> Self {
        Self {
            methods: Vec::new(),
        }
    }
    /// Appends a mechanism whose reject is final.
    pub fn push(&mut self, authenticator: Arc<dyn Authenticator>) -> &mut Self {
        self.push_with(authenticator, OnReject::Stop)
    }
    /// Appends a mechanism with its reject rule.
    pub fn push_with(
        &mut self,
        authenticator: Arc<dyn Authenticator>,
        on_reject: OnReject,
    ) -> &mut Self {
        self.methods.push(Method {
            authenticator,
            on_reject,
        });
        self
    }
    /// How many mechanisms.
    pub fn len(&self) -> usize {
        self.methods.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// Runs the list on one login attempt.
    pub async fn run(&self, credentials: &Credentials<'_>) -> Result<Outcome, AaaError> {
        if self.methods.is_empty() {
            return Err(ConfigError::NoMechanism.into());
        }
        let mut causes = Vec::new();
        let mut first_reject = None;
        for m in &self.methods {
            let mechanism = m.authenticator.mechanism();
            match m.authenticator.authenticate(credentials).await {
                Decision::Accept(identity) => {
                    return Ok(Outcome::Accepted {
                        identity,
                        mechanism,
                    });
                }
                Decision::Reject(reason) => {
                    if m.on_reject == OnReject::Stop {
                        return Ok(Outcome::Rejected { mechanism, reason });
                    }
                    first_reject.get_or_insert((mechanism, reason));
                }
                Decision::Unavailable(source) => {
                    tracing::warn!(
                        target: "aaa::auth",
                        user = credentials.username(),
                        %mechanism,
                        src = %credentials.src_addr(),
                        error = %source,
                        "mechanism unavailable, trying the next"
                    );
                    causes.push(MechanismFailure { mechanism, source });
                }
            }
        }
        match first_reject {
            Some((mechanism, reason)) => Ok(Outcome::Rejected { mechanism, reason }),
            None => Err(Unavailable::new(causes).into()),
        }
    }
}

impl Default for MethodList {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, Copy)]
    enum A {
        Acc,
        Rej,
        Unav,
    }

    #[derive(Debug)]
    struct Fixed {
        name: &'static str,
        answer: A,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Authenticator for Fixed {
        fn mechanism(&self) -> Mechanism {
            Mechanism::Custom(Cow::Borrowed(self.name))
        }
        async fn authenticate(&self, c: &Credentials<'_>) -> Decision {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.answer {
                A::Acc => Decision::Accept(Identity::new(c.username(), true)),
                A::Rej => Decision::Reject(RejectReason::BadCredentials),
                A::Unav => Decision::Unavailable(format!("{} down", self.name).into()),
            }
        }
    }

    /// The method-list rules as a table: the answers and reject rules of each mechanism, the
    /// expected outcome ("accept:m", "reject:m", "unavailable"), and which mechanisms were asked.
    #[tokio::test]
    async fn method_list_rules() {
        use A::*;
        use OnReject::{Next, Stop};
        type Row<'a> = (&'a [(A, OnReject)], &'a str, &'a [bool]);
        let table: &[Row<'_>] = &[
            (&[(Acc, Stop)], "accept:m0", &[true]),
            (&[(Rej, Stop)], "reject:m0", &[true]),
            (&[(Unav, Stop)], "unavailable", &[true]),
            // A reject is final: the next mechanism is never asked.
            (&[(Rej, Stop), (Acc, Stop)], "reject:m0", &[true, false]),
            // Unavailable moves on.
            (&[(Unav, Stop), (Acc, Stop)], "accept:m1", &[true, true]),
            (&[(Unav, Stop), (Rej, Stop)], "reject:m1", &[true, true]),
            (&[(Unav, Stop), (Unav, Stop)], "unavailable", &[true, true]),
            // on_reject = next: fail-through.
            (&[(Rej, Next), (Acc, Stop)], "accept:m1", &[true, true]),
            (&[(Rej, Next), (Unav, Stop)], "reject:m0", &[true, true]),
            (&[(Rej, Next), (Rej, Stop)], "reject:m1", &[true, true]),
            // Accept ends the list.
            (&[(Acc, Stop), (Rej, Stop)], "accept:m0", &[true, false]),
            (
                &[(Unav, Stop), (Unav, Stop), (Acc, Stop)],
                "accept:m2",
                &[true, true, true],
            ),
        ];
        let names = ["m0", "m1", "m2"];
        for (row, (spec, expected, asked)) in table.iter().enumerate() {
            let mechs: Vec<Arc<Fixed>> = spec
                .iter()
                .zip(names)
                .map(|(&(answer, _), name)| {
                    Arc::new(Fixed {
                        name,
                        answer,
                        calls: AtomicUsize::new(0),
                    })
                })
                .collect();
            let mut list = MethodList::new();
            for (m, &(_, on_reject)) in mechs.iter().zip(spec.iter()) {
                list.push_with(m.clone(), on_reject);
            }
            let creds = Credentials::new("alice", "pw", IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
            let got = match list.run(&creds).await {
                Ok(Outcome::Accepted { mechanism, .. }) => format!("accept:{mechanism}"),
                Ok(Outcome::Rejected { mechanism, .. }) => format!("reject:{mechanism}"),
                Err(AaaError::Unavailable(u)) => {
                    assert_eq!(u.causes().len(), spec.len(), "row {row}");
                    "unavailable".to_owned()
                }
                Err(e) => panic!("row {row}: {e}"),
            };
            assert_eq!(&got, expected, "row {row}");
            let was_asked: Vec<bool> = mechs
                .iter()
                .map(|m| m.calls.load(Ordering::SeqCst) == 1)
                .collect();
            assert_eq!(&was_asked[..], *asked, "row {row}");
        }
    }

    #[tokio::test]
    async fn empty_list_is_a_config_error() {
        let creds = Credentials::new("alice", "pw", IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(matches!(
            MethodList::new().run(&creds).await,
            Err(AaaError::Config(ConfigError::NoMechanism))
        ));
    }

    #[test]
    fn input_limits() {
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            Credentials::new("", "pw", a).unwrap_err(),
            InvalidInput::UsernameEmpty
        );
        assert!(Credentials::new(&"u".repeat(64), "pw", a).is_ok());
        assert_eq!(
            Credentials::new(&"u".repeat(65), "pw", a).unwrap_err(),
            InvalidInput::UsernameTooLong { len: 65 }
        );
        // 64 bytes of multi-byte characters is the limit, in bytes.
        assert!(Credentials::new(&"é".repeat(32), "pw", a).is_ok());
        assert!(Credentials::new(&"é".repeat(33), "pw", a).is_err());
        for bad in ["al\nice", "al\u{7f}ice", "\u{0}", "a\u{9b}"] {
            assert_eq!(
                Credentials::new(bad, "pw", a).unwrap_err(),
                InvalidInput::UsernameControlChar,
                "{bad:?}"
            );
        }
        assert!(Credentials::new("alice", &"p".repeat(128), a).is_ok());
        let e = Credentials::new("alice", &"p".repeat(129), a).unwrap_err();
        assert_eq!(e, InvalidInput::PasswordTooLong { len: 129 });
        assert_eq!(
            e.to_string(),
            "password is 129 bytes long; at most 128 are allowed"
        );
        assert_eq!(
            Credentials::new("alice", "p\0w", a).unwrap_err(),
            InvalidInput::PasswordNul
        );
        let c = Credentials::new("alice", "hunter2", a).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
