//! The command's errors and their exit codes.

use std::error::Error as _;
use std::fmt::Write as _;

use aaa::AaaError;
use aaa::local::LocalError;

use crate::config::ConfigError;

/// Exit codes (README, DESIGN §7).
pub(crate) mod code {
    pub(crate) const OK: u8 = 0;
    /// Rejected, invalid or not found.
    pub(crate) const REJECTED: u8 = 1;
    /// Usage or configuration error.
    pub(crate) const USAGE: u8 = 2;
    /// A backend is unavailable (RADIUS silent, Redis down).
    pub(crate) const UNAVAILABLE: u8 = 3;
}

/// Why a command failed. Never carries a password or a cookie.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aaa(#[from] AaaError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("login rejected")]
    Rejected,
    #[error("no such session")]
    NoSuchSession,
    #[error(
        "no terminal to prompt for a password on: give it on standard input with --password-stdin"
    )]
    NoTerminal,
    #[error("no password on standard input")]
    NoPassword,
    #[error("the passwords do not match")]
    PasswordMismatch,
    #[error("cannot read the password")]
    ReadPassword(#[source] std::io::Error),
    #[error("not logged in")]
    NotLoggedIn,
    #[error("already logged in as {0}: log out first")]
    AlreadyLoggedIn(String),
    #[error("invalid source address")]
    BadAddress(#[source] aaa::InvalidInput),
    #[error(
        "cannot find the user's data directory: set XDG_DATA_HOME or HOME, or [local] accounts in a configuration file"
    )]
    NoDataDir,
    #[error("cannot connect to the session store")]
    StoreConnect(#[source] aaa::store_redis::RedisStoreError),
    #[error("invalid session store URL")]
    StoreUrl(#[source] aaa::store_redis::RedisStoreError),
    #[error("invalid RADIUS configuration")]
    Radius(#[source] aaa::radius::RadiusError),
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::NoTerminal
            | Self::NoDataDir
            | Self::StoreUrl(_)
            | Self::Radius(_) => code::USAGE,
            Self::Aaa(e) => aaa_code(e),
            Self::Local(e) => local_code(e),
            Self::StoreConnect(_) | Self::Output(_) => code::UNAVAILABLE,
            Self::Rejected
            | Self::NoSuchSession
            | Self::NoPassword
            | Self::PasswordMismatch
            | Self::ReadPassword(_)
            | Self::NotLoggedIn
            | Self::AlreadyLoggedIn(_)
            | Self::BadAddress(_) => code::REJECTED,
        }
    }

    /// One line for stderr: the error and its causes.
    pub(crate) fn line(&self) -> String {
        let mut line = self.to_string();
        let mut source = self.source();
        while let Some(s) = source {
            let text = s.to_string();
            // `transparent` variants repeat their inner error's text: skip repeats.
            if !line.ends_with(&text) {
                let _ = write!(line, ": {text}");
            }
            source = s.source();
        }
        line.replace('\n', " ")
    }
}

fn aaa_code(e: &AaaError) -> u8 {
    match e {
        AaaError::Unavailable(_) | AaaError::Store(_) => code::UNAVAILABLE,
        AaaError::Config(_) | AaaError::Runtime(_) | AaaError::DeadlockDetected => code::USAGE,
        _ => code::REJECTED,
    }
}

fn local_code(e: &LocalError) -> u8 {
    match e {
        LocalError::AccountExists(_)
        | LocalError::NoSuchAccount(_)
        | LocalError::InvalidName(_)
        | LocalError::PasswordTooShort { .. }
        | LocalError::PasswordTooLong { .. }
        | LocalError::InvalidPassword(_)
        | LocalError::LastAdmin { .. } => code::REJECTED,
        LocalError::Hash(_)
        | LocalError::Task(_)
        | LocalError::LimiterClosed(_)
        | LocalError::NoRuntime(_) => code::UNAVAILABLE,
        // The account file or the configuration is unusable.
        _ => code::USAGE,
    }
}
