//! The accounts in memory: levels, accounts, the table, and what listings show.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::LocalError;

/// An account's privilege level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Read/write (`admin` in the file).
    Admin,
    /// Read only (`user` in the file).
    User,
}

impl Level {
    /// `"admin"` or `"user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }
    /// Whether the level grants read/write access (`ExosUser::read_write`).
    pub fn read_write(self) -> bool {
        matches!(self, Self::Admin)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is neither `admin` nor `user`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown account level: expected `admin` or `user`")]
pub struct ParseLevelError;

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            _ => Err(ParseLevelError),
        }
    }
}

/// What a listing shows of an account: never its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountInfo {
    /// The account's name (the username).
    pub name: String,
    /// Its level.
    pub level: Level,
    /// Whether it may log in.
    pub enabled: bool,
    /// Consecutive failed logins since the last success (or the last lockout's end).
    pub failures: u32,
    /// Until when the account is (or was) locked after too many failures.
    pub locked_until: Option<SystemTime>,
}

impl AccountInfo {
    /// Whether the account is locked at `now`.
    pub fn is_locked_at(&self, now: SystemTime) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

/// One account as stored. `Debug` redacts the hash.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) level: Level,
    pub(crate) enabled: bool,
    /// The argon2 PHC string.
    pub(crate) hash: String,
    pub(crate) failures: u32,
    /// Unix time in milliseconds.
    pub(crate) locked_until_ms: Option<u64>,
}

impl Account {
    pub(crate) fn new(name: String, level: Level, hash: String) -> Self {
        Self {
            name,
            level,
            enabled: true,
            hash,
            failures: 0,
            locked_until_ms: None,
        }
    }

    pub(crate) fn info(&self) -> AccountInfo {
        AccountInfo {
            name: self.name.clone(),
            level: self.level,
            enabled: self.enabled,
            failures: self.failures,
            locked_until: self.locked_until_ms.map(aaa_core::from_unix_ms),
        }
    }

    /// Whether the account is locked at `now`.
    pub(crate) fn is_locked_at(&self, now: SystemTime) -> bool {
        self.locked_until_ms
            .is_some_and(|ms| aaa_core::from_unix_ms(ms) > now)
    }

    /// Whether a lockout was set and has ended at `now`.
    pub(crate) fn lock_expired_at(&self, now: SystemTime) -> bool {
        self.locked_until_ms
            .is_some_and(|ms| aaa_core::from_unix_ms(ms) <= now)
    }

    /// Brings a lockout that ends later than `now + max` (the clock went back, or the file was
    /// edited) down to `now + max`, so no lockout lasts longer than the configured duration
    /// from the moment it is seen. Returns whether it changed anything.
    pub(crate) fn cap_lockout(&mut self, now: SystemTime, max: Duration) -> bool {
        let cap = lock_end_ms(now, max);
        match self.locked_until_ms {
            Some(ms) if ms > cap => {
                self.locked_until_ms = Some(cap);
                true
            }
            _ => false,
        }
    }

    /// Whether the account is an enabled admin.
    pub(crate) fn is_enabled_admin(&self) -> bool {
        self.enabled && self.level == Level::Admin
    }

    /// Clears the failure count and any lockout.
    pub(crate) fn clear_lockout(&mut self) {
        self.failures = 0;
        self.locked_until_ms = None;
    }
}

/// `now + duration` in Unix milliseconds, kept within what the file can hold (a TOML integer).
pub(crate) fn lock_end_ms(now: SystemTime, duration: Duration) -> u64 {
    let end = now.checked_add(duration).unwrap_or(now);
    aaa_core::unix_ms(end).min(crate::file::MAX_TIMESTAMP_MS)
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("level", &self.level)
            .field("enabled", &self.enabled)
            .field("hash", &"<redacted>")
            .field("failures", &self.failures)
            .field("locked_until_ms", &self.locked_until_ms)
            .finish()
    }
}

/// Every account, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountTable {
    pub(crate) accounts: Vec<Account>,
}

impl AccountTable {
    pub(crate) fn find(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }
    pub(crate) fn find_mut(&mut self, name: &str) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.name == name)
    }
    /// The account `name`, or [`LocalError::NoSuchAccount`].
    pub(crate) fn get_mut(&mut self, name: &str) -> Result<&mut Account, LocalError> {
        self.find_mut(name)
            .ok_or_else(|| LocalError::NoSuchAccount(name.to_owned()))
    }
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.name == name)
    }
    pub(crate) fn enabled_admins(&self) -> usize {
        self.accounts
            .iter()
            .filter(|a| a.is_enabled_admin())
            .count()
    }
    /// Refuses `action` on `name` with [`LocalError::LastAdmin`] if it is the last enabled
    /// admin account. An account that does not exist is not refused here.
    pub(crate) fn refuse_last_admin(
        &self,
        name: &str,
        action: &'static str,
    ) -> Result<(), LocalError> {
        if self.find(name).is_some_and(Account::is_enabled_admin) && self.enabled_admins() == 1 {
            return Err(LocalError::LastAdmin {
                name: name.to_owned(),
                action,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_text() {
        for l in [Level::Admin, Level::User] {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
            assert_eq!(l.to_string(), l.as_str());
        }
        assert_eq!("Admin".parse::<Level>(), Err(ParseLevelError));
        assert!(Level::Admin.read_write());
        assert!(!Level::User.read_write());
    }

    #[test]
    fn debug_redacts_hash() {
        let a = Account::new(
            "alice".into(),
            Level::User,
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        );
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("argon2"), "{dbg}");
        assert!(dbg.contains("alice"));
    }

    #[test]
    fn lockout_cap() {
        let now = aaa_core::from_unix_ms(1_000_000);
        let mut a = Account::new("a".into(), Level::User, String::new());
        a.locked_until_ms = Some(u64::MAX);
        assert!(a.cap_lockout(now, Duration::from_secs(60)));
        assert_eq!(a.locked_until_ms, Some(1_060_000));
        assert!(!a.cap_lockout(now, Duration::from_secs(60)));
        assert!(a.is_locked_at(now));
        assert!(!a.is_locked_at(aaa_core::from_unix_ms(1_060_000)));
        assert!(a.lock_expired_at(aaa_core::from_unix_ms(1_060_000)));
    }
}
