//! Local accounts for **aaa**: the mechanism every device has, as the only one or as the
//! fallback when no RADIUS server answers.
//!
//! [`LocalAccounts`] keeps accounts in one file and implements [`aaa_core::Authenticator`]
//! ([`Mechanism::Local`](aaa_core::Mechanism::Local)). Each account has a name, a [`Level`]
//! (`admin`: read/write, `user`: read only), an argon2id password hash, and an enabled flag.
//! Management: [`add`](LocalAccounts::add), [`delete`](LocalAccounts::delete),
//! [`set_password`](LocalAccounts::set_password), [`set_level`](LocalAccounts::set_level),
//! [`set_enabled`](LocalAccounts::set_enabled), [`unlock`](LocalAccounts::unlock),
//! [`list`](LocalAccounts::list) (never showing a hash).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use aaa_core::{Authenticator, Credentials, Decision};
//! use aaa_local::{Level, LocalAccounts};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build()?;
//! # rt.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let accounts = LocalAccounts::open(dir.path().join("aaa/accounts.toml"))?;
//! assert!(accounts.is_empty().await?); // no file yet: no accounts
//!
//! accounts.add("admin", "correct horse battery", Level::Admin).await?;
//!
//! let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let login = Credentials::new("admin", "correct horse battery", from)?;
//! match accounts.authenticate(&login).await {
//!     Decision::Accept(identity) => assert!(identity.read_write),
//!     other => panic!("expected Accept, got {other:?}"),
//! }
//! let wrong = Credentials::new("admin", "wrong horse", from)?;
//! assert!(matches!(accounts.authenticate(&wrong).await, Decision::Reject(_)));
//!
//! let listed = accounts.list().await?;
//! assert_eq!((listed[0].name.as_str(), listed[0].level, listed[0].failures), ("admin", Level::Admin, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # The account file (format version 1)
//!
//! A UTF-8 TOML document with a `version` and one `[[account]]` table per account, in order:
//!
//! ```toml
//! # Local accounts of aaa (account file format version 1, see the aaa-local documentation).
//! version = 1
//!
//! [[account]]
//! name = "admin"
//! level = "admin"
//! enabled = true
//! failures = 0
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$bWFkZSB1cCBzYWx0$GbkV9sNB3f3cMK2bbE1hRoXDLKnaD0x6sCa6j6G2dWk"
//!
//! [[account]]
//! name = "operator"
//! level = "user"
//! enabled = true
//! failures = 5
//! locked_until_unix_ms = 1767225900000
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$b3BlcmF0b3Igc2FsdA$yTz2Fwa4vPkfVhBBQrU/9ywHsx0XtCnc6PXmVPPbj5c"
//! ```
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `version` | integer, required | the format version: `1`. Another value is [`LocalError::UnsupportedVersion`]. |
//! | `account.name` | string, required | the username: 1–64 bytes of UTF-8 without control characters, unique, compared exactly (case-sensitive, not normalised). |
//! | `account.level` | `"admin"` or `"user"`, required | read/write or read only. |
//! | `account.hash` | string, required | an argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`); argon2i/argon2d hashes are accepted and re-hashed as argon2id at the next login. |
//! | `account.enabled` | boolean, default `true` | a disabled account cannot log in. |
//! | `account.failures` | integer ≥ 0, default `0` | consecutive failed logins. |
//! | `account.locked_until_unix_ms` | integer, optional | end of the current lockout, in milliseconds since the Unix epoch. |
//!
//! Parsing is strict: a syntax error, an unknown key, an invalid or duplicate name, or a hash
//! that is not an argon2 PHC string within [`HashParams`]' limits is a
//! [`LocalError::Parse`] naming the file, the line and the column (and never quoting a hash).
//! A malformed file is never overwritten: every operation fails on it (logins answer
//! `Unavailable`) until it is fixed. A missing file means no accounts; an empty file is
//! malformed (it has no `version`). The file may not exceed [`MAX_FILE_BYTES`].
//!
//! **Writes.** Every change is a read-modify-write of the current file under an exclusive
//! `flock` of the sidecar file `<file>.lock` (so several processes, and several instances in
//! one process, never lose each other's changes), and replaces the file atomically: a new
//! temporary file in the same directory (mode 0600), fsync, rename over the file, fsync of the
//! directory. A failure at any step leaves the previous file intact. The directory is created
//! with mode 0700 by the first `add`; an existing directory's mode is left alone. The file is
//! re-encoded on each change: comments and formatting are not kept, and a symbolic link at the
//! file's path is replaced by a regular file. Edits by hand (or by another process) are seen
//! by the next operation: nothing is cached. Unix only.
//!
//! # Passwords and hashes
//!
//! - New passwords: at least [`LocalConfig::min_password_chars`] characters (default 8,
//!   counted as Unicode scalar values, so `"ééééééé"` is 7 characters although 14 bytes), at
//!   most 128 bytes ([`aaa_core::MAX_PASSWORD_BYTES`]), never truncated, no NUL; violations
//!   are typed errors. Passwords are not normalised: the same bytes must be typed.
//! - Hashes: argon2id version 19 with a random 16-byte salt and the policy's parameters
//!   ([`LocalConfig::params`], default m = 19456 KiB, t = 2, p = 1). A stored hash weaker than
//!   the policy (see [`HashParams`]) is re-hashed at its owner's next successful login.
//! - Hashing and verification run on tokio's blocking threads, at most
//!   [`LocalConfig::max_concurrent_hashes`] at once (default: the number of CPUs); further
//!   logins queue, so a login storm neither blocks the async workers nor exhausts memory.
//!
//! # Logins
//!
//! [`authenticate`](aaa_core::Authenticator::authenticate) answers `Accept` (read/write for an
//! `admin` account), `Reject`, or `Unavailable` when the file cannot be read or parsed. It never
//! returns an error and never panics.
//!
//! - **No user enumeration.** A wrong password, an unknown account, a disabled account and a
//!   locked account all get the same `Reject`, after the same work: one argon2 verification
//!   (against a dummy hash made once at the policy parameters, when there is no hash to check)
//!   and one locked rewrite of the account file. The [`RejectReason`](aaa_core::RejectReason)
//!   differs, for the server's log only. [`LocalAccounts::verifications`] counts the
//!   verifications.
//! - **Throttling, per account.** After [`LocalConfig::lockout_threshold`] consecutive failures
//!   (default 5) the account is locked for [`LocalConfig::lockout_duration`] (default 5
//!   minutes). While locked, every login is rejected without the password being checked (a
//!   dummy verification keeps the timing); attempts during a lockout do not extend it. A
//!   success resets the count; the first failure after a lockout ends starts a new count. The
//!   count and the lockout's end are kept in the file, so every process sees them. An
//!   administrator clears them with [`unlock`](LocalAccounts::unlock).
//! - **Lockouts are always finite.** The duration is at most
//!   [`LocalConfig::MAX_LOCKOUT_DURATION`] (24 h), and a stored lockout ending further ahead
//!   than the configured duration (the clock went back, or the file was edited) is brought
//!   back to that duration when it is next seen. So an admin account that was locked out can
//!   always log in once the period has passed, and the device can always be managed.
//! - **A file that cannot be written** (read-only file system) still decides logins, but
//!   failures cannot be counted there: each such login logs a warning.
//! - **The last admin.** Deleting, disabling or demoting the last enabled admin account is
//!   refused ([`LocalError::LastAdmin`]).
//!
//! Time comes from an [`aaa_core::Clock`] ([`aaa_core::SystemClock`] by default, a
//! [`aaa_core::ManualClock`] in tests).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(not(unix))]
compile_error!("aaa-local supports Unix only (it relies on file modes and flock)");

mod accounts;
mod config;
mod error;
mod file;
mod hasher;
mod table;
#[cfg(test)]
mod tests;

pub use accounts::LocalAccounts;
pub use config::{HashParams, LocalConfig};
pub use error::{FormatError, HashError, LocalError, TomlError};
pub use file::MAX_FILE_BYTES;
pub use table::{AccountInfo, Level, ParseLevelError};

/// Entry points for the fuzzers and property tests (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    /// Parses `bytes` as an account file; `Ok(number of accounts)` or the error. Never panics.
    pub fn parse_account_file(bytes: &[u8]) -> Result<usize, crate::LocalError> {
        crate::file::parse(std::path::Path::new("fuzz/accounts.toml"), bytes)
            .map(|t| t.accounts.len())
    }
}
