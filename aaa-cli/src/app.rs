//! Wiring the configuration into an `Aaa`.

use std::path::PathBuf;
use std::sync::Arc;

use aaa::local::{LocalAccounts, LocalConfig};
use aaa::store_redis::{RedisConfig, RedisStore};
use aaa::{Aaa, SessionStore, SystemClock};

use aaa::radius::{PrivilegeMapping, RadiusAuthenticator, RadiusConfig, RadiusServer};

use crate::config::{Config, RadiusSection, StoreUrl};
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

/// The RADIUS client of the `[radius]` section.
fn radius(section: &RadiusSection) -> Result<RadiusAuthenticator, CliError> {
    let servers = section
        .server
        .iter()
        .map(|s| {
            let mut server = RadiusServer::new(s.address, s.secret.0.as_str());
            if let Some(flag) = s.require_message_authenticator {
                server.require_message_authenticator = flag;
            }
            server
        })
        .collect();
    let mut config = RadiusConfig::new(servers);
    if let Some(id) = &section.nas_identifier {
        config.nas_identifier = Some(id.clone());
    }
    config.nas_ip_address = section.nas_ip_address;
    if let Some(t) = section.timeout {
        config.retransmit.initial = t.0;
    }
    if let Some(n) = section.retries {
        config.retransmit.max_count = n;
    }
    if let Some(t) = section.max_timeout {
        config.retransmit.max_interval = t.0;
    }
    if let Some(t) = section.server_timeout {
        config.retransmit.max_duration = t.0;
    }
    if let Some(t) = section.dead_time {
        config.dead_time = t.0;
    }
    if let Some(on) = section.status_server {
        config.status_server = on;
    }
    if let Some(min) = section.admin_privilege_level {
        config.privilege = PrivilegeMapping::ManagementPrivilegeLevel { min };
    }
    RadiusAuthenticator::new(config).map_err(CliError::Radius)
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
            Some(StoreUrl::Redis(url)) => {
                let mut rc = RedisConfig::from_url(url).map_err(CliError::StoreUrl)?;
                if let Some(prefix) = &s.prefix {
                    rc = rc.with_prefix(prefix).map_err(CliError::StoreUrl)?;
                }
                let store = RedisStore::connect(rc)
                    .await
                    .map_err(CliError::StoreConnect)?;
                (Arc::new(store), StoreKind::Redis)
            }
        };

        let mut builder = Aaa::builder();
        // RADIUS first when configured; local accounts decide only when no server answers.
        if !config.radius.server.is_empty() {
            builder = builder.radius(radius(&config.radius)?);
        }
        let mut builder = builder.local(accounts.clone()).store(store);
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
