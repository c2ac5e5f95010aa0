//! The error type of aaa-local. Messages name the file (and the line for a malformed file);
//! they never contain a password or a password hash.

use std::fmt;
use std::io;
use std::path::PathBuf;

use aaa_core::InvalidInput;

use crate::HashParams;

/// Everything that can go wrong managing local accounts.
///
/// Authentication itself never returns this error: a file that cannot be read or parsed at
/// login time makes [`Authenticator::authenticate`](aaa_core::Authenticator::authenticate)
/// answer [`Decision::Unavailable`](aaa_core::Decision::Unavailable) with this error inside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A file-system operation on the account file, its lock file, a temporary file or the
    /// directory failed.
    #[error("{}: cannot {action}", path.display())]
    Io {
        /// What was being done, e.g. `"read the account file"`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The account file is malformed. It is left as it is: no operation overwrites it until it
    /// has been fixed.
    #[error("{}, line {line}, column {column}: malformed account file", path.display())]
    Parse {
        /// The account file.
        path: PathBuf,
        /// The line of the problem, from 1.
        line: usize,
        /// The column of the problem, from 1, in characters.
        column: usize,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// The account file has a `version` this library does not know (it was written by a newer
    /// one). It is left as it is.
    #[error(
        "{}: unsupported account file version {found} (this library reads version {supported})",
        path.display(),
        supported = crate::file::FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The account file.
        path: PathBuf,
        /// The version found in it.
        found: i64,
    },
    /// The account file is larger than [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES).
    #[error("{}: the account file is {size} bytes long, more than the {max} bytes allowed", path.display())]
    FileTooLarge {
        /// The account file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The path given for the account file does not name a file (e.g. `/` or `..`).
    #[error("{}: the account file path must name a file", path.display())]
    InvalidPath {
        /// The path given.
        path: PathBuf,
    },
    /// `add` of a name that is taken.
    #[error("account `{0}` already exists")]
    AccountExists(String),
    /// The account does not exist.
    #[error("no account named `{0}`")]
    NoSuchAccount(String),
    /// The name is not a valid username (1–64 bytes of UTF-8, no control characters).
    #[error("invalid account name")]
    InvalidName(#[source] InvalidInput),
    /// The new password has fewer characters than the policy's minimum.
    #[error("the password has {got} characters; at least {min} are required")]
    PasswordTooShort {
        /// The policy's minimum, in characters.
        min: usize,
        /// The password's length, in characters (Unicode scalar values).
        got: usize,
    },
    /// The new password is longer than 128 bytes. Passwords are never truncated.
    #[error(
        "the password is {got} bytes long; at most {max} bytes are allowed (it is never truncated)"
    )]
    PasswordTooLong {
        /// The limit, in bytes ([`aaa_core::MAX_PASSWORD_BYTES`]).
        max: usize,
        /// The password's length, in bytes.
        got: usize,
    },
    /// The new password is otherwise unusable (it contains a NUL character).
    #[error("invalid password")]
    InvalidPassword(#[source] InvalidInput),
    /// The operation would leave no enabled admin account, so the device could no longer be
    /// managed: deleting, disabling or demoting the last enabled admin is refused.
    #[error("cannot {action} `{name}`: it is the last enabled admin account")]
    LastAdmin {
        /// The account.
        name: String,
        /// `"delete"`, `"disable"` or `"demote"`.
        action: &'static str,
    },
    /// Hashing or verifying a password failed (out of memory, no randomness for a salt).
    #[error("password hashing failed")]
    Hash(#[source] HashError),
    /// The argon2 parameters of the configuration are refused by argon2.
    #[error("invalid argon2 parameters {params}")]
    InvalidHashParams {
        /// The parameters.
        params: HashParams,
        /// argon2's reason.
        #[source]
        source: HashError,
    },
    /// A setting of the [`LocalConfig`](crate::LocalConfig) is out of range.
    #[error("invalid local accounts configuration: {setting} {reason}")]
    InvalidConfig {
        /// The field of `LocalConfig`.
        setting: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The accounts could not be encoded as TOML (not expected to happen).
    #[error("cannot encode the account file")]
    Encode(#[source] toml::ser::Error),
    /// An async method was called outside a tokio runtime.
    #[error("aaa-local needs a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// A blocking task (file I/O, hashing) failed to complete: the runtime is shutting down.
    #[error("a background task of aaa-local did not complete")]
    Task(#[source] tokio::task::JoinError),
    /// The hashing limiter was closed (not expected to happen).
    #[error("the hashing limiter is closed")]
    LimiterClosed(#[source] tokio::sync::AcquireError),
}

/// What is wrong in a malformed account file (the source of [`LocalError::Parse`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is not valid UTF-8.
    #[error("the file is not valid UTF-8")]
    NotUtf8,
    /// The TOML parser's or decoder's complaint.
    #[error(transparent)]
    Toml(TomlError),
    /// The file has no `version` field.
    #[error("the `version` field is missing")]
    MissingVersion,
    /// An account's name is not a valid username.
    #[error("invalid account name")]
    InvalidName(#[source] InvalidInput),
    /// Two accounts have the same name.
    #[error("duplicate account `{0}`")]
    DuplicateName(String),
    /// An account's `hash` is not a PHC string.
    #[error("the password hash is not a valid PHC string")]
    InvalidHash(#[source] HashError),
    /// An account's `hash` is not an argon2 hash.
    #[error("the password hash is not an argon2 hash")]
    UnsupportedHashAlgorithm,
    /// An account's `hash` has parameters outside the limits of [`HashParams`] (`MAX_*`) or of
    /// argon2.
    #[error("the password hash's parameters are out of range (m <= 2097152, t <= 64, p <= 64)")]
    HashParamsOutOfRange,
}

/// The TOML parser's message about a malformed account file.
///
/// Only the message is kept: the parser's own rendering quotes the offending line, which may
/// hold a password hash.
#[derive(Debug, Clone)]
pub struct TomlError {
    message: String,
}

impl TomlError {
    /// Keeps the message of a toml error, with anything that looks like a PHC hash redacted.
    pub(crate) fn new(e: &toml::de::Error) -> Self {
        Self {
            message: redact_hashes(e.message().trim_end()),
        }
    }
    /// The parser's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TomlError {}

/// Replaces every `$argon2…` token (up to a quote, backtick or whitespace) by `<redacted>`.
fn redact_hashes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("$argon2") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        out.push_str("<redacted>");
        let end = from
            .find(|c: char| c == '"' || c == '\'' || c == '`' || c.is_whitespace())
            .unwrap_or(from.len());
        rest = from.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// An error of the argon2 implementation. Its message never contains the password or the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashError {
    repr: HashErrorRepr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashErrorRepr {
    PasswordHash(argon2::password_hash::Error),
    Params(argon2::Error),
}

impl HashError {
    pub(crate) fn hash(e: argon2::password_hash::Error) -> Self {
        Self {
            repr: HashErrorRepr::PasswordHash(e),
        }
    }
    pub(crate) fn params(e: argon2::Error) -> Self {
        Self {
            repr: HashErrorRepr::Params(e),
        }
    }
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            HashErrorRepr::PasswordHash(e) => fmt::Display::fmt(e, f),
            HashErrorRepr::Params(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for HashError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact_hashes(
                "invalid type: string \"$argon2id$v=19$m=8,t=1,p=1$abc$def\", expected a boolean"
            ),
            "invalid type: string \"<redacted>\", expected a boolean"
        );
        assert_eq!(
            redact_hashes("a $argon2i$x b $argon2d$y"),
            "a <redacted> b <redacted>"
        );
        assert_eq!(redact_hashes("nothing here"), "nothing here");
        assert_eq!(redact_hashes("$argon2"), "<redacted>");
    }
}
