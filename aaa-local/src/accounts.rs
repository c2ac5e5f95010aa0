//! `LocalAccounts`: account management and the `Authenticator`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use aaa_core::{
    Authenticator, Clock, Credentials, Decision, Identity, InvalidInput, MAX_PASSWORD_BYTES,
    Mechanism, RejectReason, SystemClock, async_trait,
};
use tokio::sync::{Mutex, Semaphore};
use zeroize::Zeroizing;

use crate::LocalConfig;
use crate::error::LocalError;
use crate::file;
use crate::hasher::Hasher;
use crate::table::{Account, AccountInfo, AccountTable, Level, lock_end_ms};

/// A password on its way to a hashing thread, wiped from memory when the last copy goes.
type Secret = Arc<Zeroizing<String>>;

/// Local accounts kept in one account file: account management, and an
/// [`Authenticator`] ([`Mechanism::Local`]).
///
/// Cloning is cheap and clones share everything (the hashing limit, the counters). Several
/// instances, in one process or in many, may use the same file: every change is a
/// read-modify-write under an exclusive lock of `<file>.lock`, and every operation reads the
/// current file. See the [crate documentation](crate) for the file format and the rules.
///
/// The async methods need a tokio runtime (file I/O and hashing run on its blocking threads).
#[derive(Clone)]
pub struct LocalAccounts {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    lock_path: PathBuf,
    config: LocalConfig,
    clock: Arc<dyn Clock>,
    hasher: Hasher,
    /// Bounds the argon2 computations running at once.
    permits: Arc<Semaphore>,
    /// Serialises this process's writers before they queue on the file lock.
    writers: Mutex<()>,
    #[cfg(test)]
    fail_before_rename: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for LocalAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAccounts")
            .field("path", &self.inner.path)
            .field("config", &self.inner.config)
            .field("verifications", &self.inner.hasher.verifications())
            .finish_non_exhaustive()
    }
}

/// Which rewrite a locked operation ends with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// Write the file if the table changed.
    IfChanged,
    /// Write the file if the table changed, else rewrite it as it is (if it exists), so that
    /// every rejected login does the same file work whatever the reason.
    Always,
}

/// The outcome of a locked operation: its value, and the error of the final write if that
/// failed (the value was computed on the current file either way).
struct Locked<T> {
    value: T,
    write_error: Option<LocalError>,
}

/// What a login attempt verifies the password against.
enum Target {
    /// The account's hash.
    Account { hash: String },
    /// The dummy hash: the login fails for this reason whatever the password.
    Dummy(RejectReason),
}

/// The account's state when a verified login is recorded.
enum Recorded {
    Decided(Decision),
    /// The hash changed since it was verified (new password, or a re-hash elsewhere).
    HashChanged,
}

/// How many times a login is re-verified when the stored hash changes under it.
const MAX_ROUNDS: usize = 3;

impl LocalAccounts {
    /// Local accounts in the file at `path`, with the default [`LocalConfig`] and the system
    /// clock.
    ///
    /// A missing file is no accounts (it is created, with its directory, by the first
    /// [`add`](Self::add)). An existing file must parse: otherwise the error names the file and
    /// the line. This reads the file once, blocking.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LocalError> {
        Self::with_config(path, LocalConfig::default(), Arc::new(SystemClock))
    }

    /// Like [`open`](Self::open), with a configuration and a clock (tests use
    /// [`aaa_core::ManualClock`]).
    ///
    /// Fails on a configuration out of range. Parameters below the OWASP minimum are accepted
    /// with a warning in the log (see [`HashParams::insecure_for_tests`](crate::HashParams::insecure_for_tests)).
    pub fn with_config(
        path: impl Into<PathBuf>,
        config: LocalConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LocalError> {
        let path = path.into();
        let params = config.validate()?;
        if !config.params.meets_owasp_minimum() {
            tracing::warn!(
                target: "aaa::local",
                params = %config.params,
                "argon2 parameters below the OWASP minimum (m=19456,t=2,p=1 or equivalent): \
                 acceptable for tests only"
            );
        }
        let lock_path = file::lock_path(&path)?;
        file::load(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                hasher: Hasher::new(config.params, params),
                permits: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
                path,
                lock_path,
                config,
                clock,
                writers: Mutex::new(()),
                #[cfg(test)]
                fail_before_rename: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The account file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The configuration.
    pub fn config(&self) -> &LocalConfig {
        &self.inner.config
    }

    /// How many argon2 verifications this instance and its clones have run, the dummy ones
    /// (for unknown, disabled and locked accounts) included. For metrics, and for tests that
    /// check that every login costs exactly one verification.
    pub fn verifications(&self) -> u64 {
        self.inner.hasher.verifications()
    }

    /// How many argon2 hashes this instance and its clones have made (new passwords, re-hashes,
    /// and the one dummy hash).
    pub fn hashes(&self) -> u64 {
        self.inner.hasher.hashes()
    }

    /// Adds an enabled account with a fresh argon2id hash of `password`.
    ///
    /// Errors: [`InvalidName`](LocalError::InvalidName), a password outside the policy
    /// ([`PasswordTooShort`](LocalError::PasswordTooShort),
    /// [`PasswordTooLong`](LocalError::PasswordTooLong)),
    /// [`AccountExists`](LocalError::AccountExists), and file errors.
    pub async fn add(&self, name: &str, password: &str, level: Level) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        self.check_new_password(password)?;
        // Fail fast, before paying for a hash.
        if self.load().await?.find(name).is_some() {
            return Err(LocalError::AccountExists(name.to_owned()));
        }
        let hash = self.hash(secret(password)).await?;
        let name = name.to_owned();
        self.mutate(true, move |t, _| {
            if t.find(&name).is_some() {
                return Err(LocalError::AccountExists(name));
            }
            tracing::info!(target: "aaa::local", account = %name, %level, "account added");
            t.accounts.push(Account::new(name, level, hash));
            Ok(())
        })
        .await
    }

    /// Deletes an account. Refused with [`LastAdmin`](LocalError::LastAdmin) for the last
    /// enabled admin account.
    pub async fn delete(&self, name: &str) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        let name = name.to_owned();
        self.mutate(false, move |t, _| {
            let i = t
                .position(&name)
                .ok_or_else(|| LocalError::NoSuchAccount(name.clone()))?;
            t.refuse_last_admin(&name, "delete")?;
            t.accounts.remove(i);
            tracing::info!(target: "aaa::local", account = %name, "account deleted");
            Ok(())
        })
        .await
    }

    /// Sets an account's password (a fresh argon2id hash). The failure count and any lockout
    /// are left as they are (see [`unlock`](Self::unlock)).
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        self.check_new_password(password)?;
        if self.load().await?.find(name).is_none() {
            return Err(LocalError::NoSuchAccount(name.to_owned()));
        }
        let hash = self.hash(secret(password)).await?;
        let name = name.to_owned();
        self.mutate(false, move |t, _| {
            let a = t.get_mut(&name)?;
            a.hash = hash;
            tracing::info!(target: "aaa::local", account = %name, "password changed");
            Ok(())
        })
        .await
    }

    /// Sets an account's level. Demoting the last enabled admin account is refused with
    /// [`LastAdmin`](LocalError::LastAdmin).
    pub async fn set_level(&self, name: &str, level: Level) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        let name = name.to_owned();
        self.mutate(false, move |t, _| {
            if level != Level::Admin {
                t.refuse_last_admin(&name, "demote")?;
            }
            let a = t.get_mut(&name)?;
            if a.level != level {
                a.level = level;
                tracing::info!(target: "aaa::local", account = %name, %level, "level changed");
            }
            Ok(())
        })
        .await
    }

    /// Enables or disables an account. A disabled account cannot log in (it is rejected like a
    /// wrong password). Disabling the last enabled admin account is refused with
    /// [`LastAdmin`](LocalError::LastAdmin).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        let name = name.to_owned();
        self.mutate(false, move |t, _| {
            if !enabled {
                t.refuse_last_admin(&name, "disable")?;
            }
            let a = t.get_mut(&name)?;
            if a.enabled != enabled {
                a.enabled = enabled;
                tracing::info!(target: "aaa::local", account = %name, enabled, "account enabled/disabled");
            }
            Ok(())
        })
        .await
    }

    /// Clears an account's failure count and lockout (an administrator's action).
    pub async fn unlock(&self, name: &str) -> Result<(), LocalError> {
        aaa_core::validate_username(name).map_err(LocalError::InvalidName)?;
        let name = name.to_owned();
        self.mutate(false, move |t, _| {
            let a = t.get_mut(&name)?;
            if a.failures != 0 || a.locked_until_ms.is_some() {
                a.clear_lockout();
                tracing::info!(target: "aaa::local", account = %name, "account unlocked");
            }
            Ok(())
        })
        .await
    }

    /// Every account, in file order. Never shows a hash.
    pub async fn list(&self) -> Result<Vec<AccountInfo>, LocalError> {
        Ok(self
            .load()
            .await?
            .accounts
            .iter()
            .map(Account::info)
            .collect())
    }

    /// Whether there are no accounts (no file, or a file without accounts): the first run of a
    /// device, when the application offers to create the admin account.
    pub async fn is_empty(&self) -> Result<bool, LocalError> {
        Ok(self.load().await?.accounts.is_empty())
    }

    /// Checks a new password against the policy: at least `min_password_chars` characters, at
    /// most 128 bytes, no NUL. Never truncates.
    fn check_new_password(&self, password: &str) -> Result<(), LocalError> {
        aaa_core::validate_password(password).map_err(|e| match e {
            InvalidInput::PasswordTooLong { len } => LocalError::PasswordTooLong {
                max: MAX_PASSWORD_BYTES,
                got: len,
            },
            e => LocalError::InvalidPassword(e),
        })?;
        let chars = password.chars().count();
        let min = self.inner.config.min_password_chars;
        if chars < min {
            return Err(LocalError::PasswordTooShort { min, got: chars });
        }
        Ok(())
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T, F>(&self, f: F) -> Result<T, LocalError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, LocalError> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::try_current().map_err(LocalError::NoRuntime)?;
        let inner = self.inner.clone();
        handle
            .spawn_blocking(move || f(&inner))
            .await
            .map_err(LocalError::Task)?
    }

    /// Runs an argon2 computation on a blocking thread, within the concurrency bound. The
    /// permit is held by the blocking task, so it is released only when the computation ends,
    /// even if the caller gives up waiting.
    async fn hashing<T, F>(&self, f: F) -> Result<T, LocalError>
    where
        T: Send + 'static,
        F: FnOnce(&Hasher) -> Result<T, LocalError> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::try_current().map_err(LocalError::NoRuntime)?;
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(LocalError::LimiterClosed)?;
        let inner = self.inner.clone();
        handle
            .spawn_blocking(move || {
                let _permit = permit;
                f(&inner.hasher)
            })
            .await
            .map_err(LocalError::Task)?
    }

    async fn hash(&self, password: Secret) -> Result<String, LocalError> {
        self.hashing(move |h| h.hash(password.as_bytes())).await
    }

    /// The current accounts (read without the lock: writes replace the file atomically).
    async fn load(&self) -> Result<AccountTable, LocalError> {
        self.blocking(|inner| Ok(file::load(&inner.path)?.table))
            .await
    }

    /// A read-modify-write of the file under the lock, for account management: `f`'s error
    /// leaves the file untouched, and a failed write is the operation's error.
    async fn mutate<T, F>(&self, create: bool, f: F) -> Result<T, LocalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AccountTable, SystemTime) -> Result<T, LocalError> + Send + 'static,
    {
        let locked = self.locked(create, Rewrite::IfChanged, f).await?;
        match locked.write_error {
            Some(e) => Err(e),
            None => Ok(locked.value),
        }
    }

    /// A read-modify-write of the file under the lock (see [`Inner::locked`]).
    async fn locked<T, F>(
        &self,
        create: bool,
        rewrite: Rewrite,
        f: F,
    ) -> Result<Locked<T>, LocalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AccountTable, SystemTime) -> Result<T, LocalError> + Send + 'static,
    {
        let _writer = self.inner.writers.lock().await;
        self.blocking(move |inner| inner.locked(create, rewrite, f))
            .await
    }

    /// One login attempt. Errors are "no decision" (the caller answers `Unavailable`).
    async fn login(&self, name: &str, password: Secret) -> Result<Decision, LocalError> {
        for _ in 0..MAX_ROUNDS {
            let table = self.load().await?;
            let now = self.inner.clock.now();
            let target = match table.find(name) {
                None => Target::Dummy(RejectReason::UnknownUser),
                Some(a) if !a.enabled => Target::Dummy(RejectReason::Disabled),
                Some(a) if a.is_locked_at(now) => Target::Dummy(RejectReason::LockedOut),
                Some(a) => Target::Account {
                    hash: a.hash.clone(),
                },
            };
            drop(table);
            match target {
                Target::Dummy(reason) => {
                    let pw = password.clone();
                    self.hashing(move |h| h.dummy_verify(pw.as_bytes())).await?;
                    self.record_rejection(name, reason).await;
                    return Ok(Decision::Reject(reason));
                }
                Target::Account { hash } => {
                    let pw = password.clone();
                    let stored = hash.clone();
                    let ok = self
                        .hashing(move |h| {
                            // Made before the first verification of any kind, so that an
                            // unknown user's first login costs what anyone's does.
                            h.ensure_dummy()?;
                            h.verify(pw.as_bytes(), &stored)
                        })
                        .await?;
                    if !ok {
                        self.record_failure(name).await;
                        return Ok(Decision::Reject(RejectReason::BadCredentials));
                    }
                    match self.record_success(name, hash, &password).await? {
                        Recorded::Decided(d) => return Ok(d),
                        Recorded::HashChanged => continue,
                    }
                }
            }
        }
        // The hash kept changing under this login: refuse it rather than loop.
        tracing::warn!(target: "aaa::local", account = %name, "password hash kept changing during the login; rejected");
        Ok(Decision::Reject(RejectReason::BadCredentials))
    }

    /// Records a wrong password: one more failure, and a lockout at the threshold.
    async fn record_failure(&self, name: &str) {
        let threshold = self.inner.config.lockout_threshold;
        let duration = self.inner.config.lockout_duration;
        let who = name.to_owned();
        let result = self
            .locked(false, Rewrite::Always, move |t, now| {
                if let Some(a) = t.find_mut(&who) {
                    a.cap_lockout(now, duration);
                    if a.lock_expired_at(now) {
                        // The lockout is over: counting starts again.
                        a.clear_lockout();
                    }
                    a.failures = a.failures.saturating_add(1);
                    if a.failures >= threshold && a.locked_until_ms.is_none() {
                        a.locked_until_ms = Some(lock_end_ms(now, duration));
                        tracing::warn!(
                            target: "aaa::local",
                            account = %who,
                            failures = a.failures,
                            lockout_secs = duration.as_secs(),
                            "account locked after consecutive failed logins"
                        );
                    }
                }
                Ok(())
            })
            .await;
        log_record_error("failure", name, result);
    }

    /// The file work of a login rejected without looking at the password (unknown, disabled or
    /// locked account): the same locked rewrite a wrong password costs, so that the answer's
    /// timing does not tell these cases apart. Caps a lockout that ends too far ahead.
    async fn record_rejection(&self, name: &str, reason: RejectReason) {
        let duration = self.inner.config.lockout_duration;
        let who = name.to_owned();
        let result = self
            .locked(false, Rewrite::Always, move |t, now| {
                if let Some(a) = t.find_mut(&who) {
                    a.cap_lockout(now, duration);
                }
                Ok(())
            })
            .await;
        log_record_error(reason.as_str(), name, result);
    }

    /// Records a correct password: the account is checked again under the lock (still there,
    /// enabled, not locked, same hash), the failure count is reset, and a weak hash is replaced.
    async fn record_success(
        &self,
        name: &str,
        verified: String,
        password: &Secret,
    ) -> Result<Recorded, LocalError> {
        let rehash = if self.inner.hasher.is_weak(&verified) {
            match self.hash(password.clone()).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(target: "aaa::local", account = %name, error = %e, "re-hash failed; keeping the old hash");
                    None
                }
            }
        } else {
            None
        };
        let duration = self.inner.config.lockout_duration;
        if rehash.is_none() {
            // The common case: nothing to write if the account is as it was (no failures to
            // reset). Check that on the current file without taking the lock.
            let mut table = self.load().await?;
            let before = table.clone();
            let recorded = settle(
                &mut table,
                name,
                &verified,
                None,
                self.inner.clock.now(),
                duration,
            );
            if table == before {
                return Ok(recorded);
            }
        }
        let who = name.to_owned();
        let result = self
            .locked(false, Rewrite::IfChanged, move |t, now| {
                Ok(settle(t, &who, &verified, rehash, now, duration))
            })
            .await?;
        if let Some(e) = result.write_error {
            tracing::warn!(
                target: "aaa::local",
                account = %name,
                error = %e,
                "could not record a successful login (failure count reset / re-hash)"
            );
        }
        Ok(result.value)
    }

    #[cfg(test)]
    pub(crate) fn inject_failure_before_rename(&self) {
        self.inner
            .fail_before_rename
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn peak_concurrent_hashes(&self) -> usize {
        self.inner.hasher.concurrency.peak()
    }
}

/// Decides a login whose password matched the hash `verified`, on the current `table`: the
/// account must still exist, be enabled, not be locked and have the same hash. Resets the
/// failure count, and installs `rehash` if given.
fn settle(
    table: &mut AccountTable,
    name: &str,
    verified: &str,
    rehash: Option<String>,
    now: SystemTime,
    max_lockout: std::time::Duration,
) -> Recorded {
    let Some(a) = table.find_mut(name) else {
        return Recorded::Decided(Decision::Reject(RejectReason::UnknownUser));
    };
    if !a.enabled {
        return Recorded::Decided(Decision::Reject(RejectReason::Disabled));
    }
    a.cap_lockout(now, max_lockout);
    if a.is_locked_at(now) {
        return Recorded::Decided(Decision::Reject(RejectReason::LockedOut));
    }
    if a.hash != verified {
        return Recorded::HashChanged;
    }
    a.clear_lockout();
    if let Some(h) = rehash {
        a.hash = h;
        tracing::info!(target: "aaa::local", account = %name, "password re-hashed at the current policy");
    }
    Recorded::Decided(Decision::Accept(Identity::new(name, a.level.read_write())))
}

fn secret(password: &str) -> Secret {
    Arc::new(Zeroizing::new(password.to_owned()))
}

fn log_record_error(what: &'static str, name: &str, result: Result<Locked<()>, LocalError>) {
    let error = match result {
        Ok(Locked {
            write_error: None, ..
        }) => return,
        Ok(Locked {
            write_error: Some(e),
            ..
        })
        | Err(e) => e,
    };
    tracing::warn!(
        target: "aaa::local",
        account = %name,
        attempt = what,
        error = %error,
        "could not record a rejected login in the account file"
    );
}

impl Inner {
    /// Under the exclusive lock: reads the current file, applies `f`, and writes the result.
    ///
    /// - `create`: create the directory if needed (for `add`). Without it, a missing directory
    ///   means no accounts and `f` runs on an empty table whose changes are dropped (no
    ///   operation but `add` changes an empty table).
    /// - An error reading or parsing the file, or from `f`, is returned and nothing is written:
    ///   a malformed file is never overwritten.
    /// - The write's own error is returned in [`Locked::write_error`].
    fn locked<T>(
        &self,
        create: bool,
        rewrite: Rewrite,
        f: impl FnOnce(&mut AccountTable, SystemTime) -> Result<T, LocalError>,
    ) -> Result<Locked<T>, LocalError> {
        let dir = file::parent_dir(&self.path);
        if create {
            file::ensure_dir(dir)?;
        } else if !file::dir_exists(dir)? {
            let value = f(&mut AccountTable::default(), self.clock.now())?;
            return Ok(Locked {
                value,
                write_error: None,
            });
        }
        let _lock = file::lock_exclusive(&self.lock_path)?;
        let loaded = file::load(&self.path)?;
        let mut table = loaded.table.clone();
        let value = f(&mut table, self.clock.now())?;
        let write = if table != loaded.table {
            file::encode(&table).and_then(|bytes| self.write(&bytes))
        } else {
            match (rewrite, &loaded.raw) {
                (Rewrite::Always, Some(raw)) => self.write(raw),
                _ => Ok(()),
            }
        };
        Ok(Locked {
            value,
            write_error: write.err(),
        })
    }

    fn write(&self, bytes: &[u8]) -> Result<(), LocalError> {
        #[cfg(test)]
        let fail = self
            .fail_before_rename
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(test))]
        let fail = false;
        file::write_atomic(&self.path, bytes, fail)
    }
}

#[async_trait]
impl Authenticator for LocalAccounts {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Local
    }

    /// Checks a login against the account file.
    ///
    /// - `Accept` with `read_write` for an `admin` account, read-only for a `user` account.
    /// - `Reject` for a wrong password, an unknown, disabled or locked account: always after
    ///   one argon2 verification and one locked rewrite of the file, so neither the answer nor
    ///   its timing tells the cases apart (the [`RejectReason`] is for the server's log only).
    /// - `Unavailable` if the file cannot be read or parsed (or hashing fails): the method list
    ///   moves on to the next mechanism, or fails closed.
    async fn authenticate(&self, credentials: &Credentials<'_>) -> Decision {
        let name = credentials.username();
        if credentials.password().len() > MAX_PASSWORD_BYTES {
            // `Credentials` refuses these already; never hash an oversized input regardless.
            return Decision::Reject(RejectReason::BadCredentials);
        }
        match self.login(name, secret(credentials.password())).await {
            Ok(decision) => {
                match &decision {
                    Decision::Accept(_) => {
                        tracing::debug!(target: "aaa::local", account = %name, src = %credentials.src_addr(), "login accepted");
                    }
                    Decision::Reject(reason) => {
                        tracing::debug!(
                            target: "aaa::local",
                            account = %name,
                            src = %credentials.src_addr(),
                            reason = reason.as_str(),
                            "login rejected"
                        );
                    }
                    _ => {}
                }
                decision
            }
            Err(e) => {
                tracing::warn!(
                    target: "aaa::local",
                    account = %name,
                    src = %credentials.src_addr(),
                    error = %e,
                    "local accounts unavailable"
                );
                Decision::Unavailable(Box::new(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const H1: &str =
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy";
    const H2: &str =
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx1$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy";

    fn decided(r: &Recorded) -> Option<Result<bool, RejectReason>> {
        match r {
            Recorded::Decided(Decision::Accept(id)) => Some(Ok(id.read_write)),
            Recorded::Decided(Decision::Reject(why)) => Some(Err(*why)),
            _ => None,
        }
    }

    #[test]
    fn a_verified_login_is_settled_on_the_current_state() {
        let now = aaa_core::from_unix_ms(1_000_000);
        let max = Duration::from_secs(300);
        let mut t = AccountTable::default();
        t.accounts
            .push(Account::new("admin".into(), Level::Admin, H1.into()));
        // Accepted; the failure count is reset.
        t.accounts[0].failures = 3;
        assert_eq!(
            decided(&settle(&mut t, "admin", H1, None, now, max)),
            Some(Ok(true))
        );
        assert_eq!(t.accounts[0].failures, 0);
        // The password changed meanwhile: verify again.
        assert!(matches!(
            settle(&mut t, "admin", H2, None, now, max),
            Recorded::HashChanged
        ));
        // A re-hash is installed.
        settle(&mut t, "admin", H1, Some(H2.into()), now, max);
        assert_eq!(t.accounts[0].hash, H2);
        // Locked, disabled or deleted meanwhile: rejected.
        t.accounts[0].locked_until_ms = Some(1_000_001);
        assert_eq!(
            decided(&settle(&mut t, "admin", H2, None, now, max)),
            Some(Err(RejectReason::LockedOut))
        );
        t.accounts[0].enabled = false;
        assert_eq!(
            decided(&settle(&mut t, "admin", H2, None, now, max)),
            Some(Err(RejectReason::Disabled))
        );
        t.accounts.clear();
        assert_eq!(
            decided(&settle(&mut t, "admin", H2, None, now, max)),
            Some(Err(RejectReason::UnknownUser))
        );
    }
}
