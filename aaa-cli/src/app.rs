//! Wiring the configuration into an `Aaa`.

use std::path::PathBuf;
use std::sync::Arc;

use aaa::local::{LocalAccounts, LocalConfig};
use aaa::{Aaa, SessionStore, SystemClock};

use crate::config::{Config, StoreUrl};
use crate::error::CliError;

/// Where sessions live, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Memory,
    Redis,
}

/// Everything a command needs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) aaa: Aaa,
    pub(crate) accounts: LocalAccounts,
    pub(crate) store: StoreKind,
}

/// The default account file: `$XDG_DATA_HOME/aaa/accounts.toml` (`~/.local/share/aaa/…`).
fn default_accounts() -> Result<PathBuf, CliError> {
    dirs::data_dir()
        .map(|d| d.join("aaa").join("accounts.toml"))
        .ok_or(CliError::NoDataDir)
}

/// The shell's history file, next to the default account file.
pub(crate) fn history_file() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("aaa").join("shell_history"))
}

impl App {
    /// Builds the mechanisms and the session store of `config`.
    pub(crate) async fn open(config: &Config) -> Result<Self, CliError> {
        let path = match &config.local.accounts {
            Some(p) => p.clone(),
            None => default_accounts()?,
        };
        let mut local = LocalConfig::default();
        if let Some(n) = config.local.min_password_length {
            local.min_password_chars = n;
        }
        if let Some(n) = config.local.lockout_threshold {
            local.lockout_threshold = n;
        }
        if let Some(d) = config.local.lockout_duration {
            local.lockout_duration = d.0;
        }
        let accounts = LocalAccounts::with_config(path, local, Arc::new(SystemClock))?;

        let s = &config.session;
        let (store, kind): (Arc<dyn SessionStore>, StoreKind) = match &s.store {
            None | Some(StoreUrl::Memory) => (Arc::new(aaa::MemoryStore::new()), StoreKind::Memory),
            Some(StoreUrl::Redis(_)) => return Err(CliError::NoDataDir),
        };

        let mut builder = Aaa::builder()
            .mechanism(Arc::new(accounts.clone()))
            .store(store);
        if let Some(t) = s.idle_timeout {
            builder = builder.idle_timeout(t.0);
        }
        if let Some(t) = s.absolute_timeout {
            builder = builder.absolute_timeout(t.0);
        }
        builder = builder
            .max_sessions_per_user(s.max_sessions_per_user)
            .max_sessions(s.max_sessions);
        let aaa = builder.build()?;
        Ok(Self {
            aaa,
            accounts,
            store: kind,
        })
    }
}
