//! Wiring the configuration into an `Aaa`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aaa::local::{LocalAccounts, LocalConfig};
use aaa::store_redis::{RedisConfig, RedisStore};
use aaa::{Aaa, SessionStore, SystemClock};

use aaa::radius::accounting::{Accounting, AccountingConfig, SpoolConfig};
use aaa::radius::{PrivilegeMapping, RadiusAuthenticator, RadiusConfig, RadiusServer};

use crate::config::{Config, RadiusSection, RadiusServerSection, StoreUrl};
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
    /// RADIUS accounting, when `[[radius.accounting]]` servers are configured; its queue is
    /// drained when the command ends (see `Drop`).
    pub(crate) accounting: Option<Arc<Accounting>>,
}

/// How long the command waits at its end for the accounting servers to acknowledge what it
/// queued (with a spool: only until every record is on disk, if no server answers).
const ACCOUNTING_DRAIN: Duration = Duration::from_secs(5);

/// The default account file: `$XDG_DATA_HOME/aaa/accounts.toml` (`~/.local/share/aaa/…`).
fn default_accounts() -> Result<PathBuf, CliError> {
    dirs::data_dir()
        .map(|d| d.join("aaa").join("accounts.toml"))
        .ok_or(CliError::NoDataDir)
}

/// The servers of a `[[radius.server]]` or `[[radius.accounting]]` list, each made by `make`
/// (which sets that kind's defaults), with the configured Message-Authenticator rule.
fn servers(
    list: &[RadiusServerSection],
    make: fn(std::net::SocketAddr, &str) -> RadiusServer,
) -> Vec<RadiusServer> {
    list.iter()
        .map(|s| {
            let mut server = make(s.address, s.secret.0.as_str());
            if let Some(flag) = s.require_message_authenticator {
                server.require_message_authenticator = flag;
            }
            server
        })
        .collect()
}

/// The RADIUS client of the `[radius]` section.
fn radius(section: &RadiusSection) -> Result<RadiusAuthenticator, CliError> {
    let mut config = RadiusConfig::new(servers(&section.server, |a, s| RadiusServer::new(a, s)));
    transport_settings(section, &mut config);
    if let Some(min) = section.admin_privilege_level {
        config.privilege = PrivilegeMapping::ManagementPrivilegeLevel { min };
    }
    RadiusAuthenticator::new(config).map_err(CliError::Radius)
}

/// The RADIUS accounting of the `[radius]` section (`[[radius.accounting]]` servers, the
/// spool, Interim-Updates), if it lists accounting servers. Interim-Updates check `store` so
/// that they end when another process ends the session.
fn accounting(
    section: &RadiusSection,
    store: Arc<dyn SessionStore>,
) -> Result<Option<Arc<Accounting>>, CliError> {
    if section.accounting.is_empty() {
        return Ok(None);
    }
    let mut config = AccountingConfig::new(servers(&section.accounting, |a, s| {
        RadiusServer::accounting(a, s)
    }));
    transport_settings(section, &mut config.radius);
    if let Some(dir) = &section.accounting_spool {
        config.spool = Some(SpoolConfig::new(dir));
    }
    if let Some(t) = section.accounting_interim {
        config.interim_interval = t.0;
    }
    Accounting::builder(config)
        .sessions(store)
        .build()
        .map(|a| Some(Arc::new(a)))
        .map_err(CliError::Radius)
}

/// The settings of `[radius]` shared by authentication and accounting servers.
fn transport_settings(section: &RadiusSection, config: &mut RadiusConfig) {
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
}

/// The shell's history file, next to the default account file.
pub(crate) fn history_file() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("aaa").join("shell_history"))
}

/// What a command needs of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The account file only (`aaa user …`): no session store, RADIUS or accounting is
    /// opened, so managing accounts works while Redis or the servers are down.
    Accounts,
    /// Everything: logins and sessions.
    All,
}

impl App {
    /// Builds the mechanisms and the session store of `config` (with `Scope::Accounts`, the
    /// local accounts over an unused in-memory store).
    pub(crate) async fn open(config: &Config, scope: Scope) -> Result<Self, CliError> {
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
        let (store, kind): (Arc<dyn SessionStore>, StoreKind) = match (&s.store, scope) {
            (_, Scope::Accounts) | (None | Some(StoreUrl::Memory), Scope::All) => {
                (Arc::new(aaa::MemoryStore::new()), StoreKind::Memory)
            }
            (Some(StoreUrl::Redis(url)), Scope::All) => {
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
        if scope == Scope::All && !config.radius.server.is_empty() {
            builder = builder.radius(radius(&config.radius)?);
        }
        // After the RADIUS client: a bad server entry is refused before a spool is opened.
        let accounting = match scope {
            Scope::All => accounting(&config.radius, store.clone())?,
            Scope::Accounts => None,
        };
        if let Some(a) = &accounting {
            builder = builder.accounting(a.clone());
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
            accounting,
        })
    }
}

impl Drop for App {
    /// Gives the accounting servers up to `ACCOUNTING_DRAIN` to acknowledge the records this
    /// command queued (logins, logouts, clears). The command runs on a multi-threaded runtime,
    /// whose other threads send meanwhile; records still unacknowledged are logged (and, with a
    /// spool, sent by the next `aaa` process).
    fn drop(&mut self) {
        let Some(accounting) = self.accounting.take() else {
            return;
        };
        if accounting.stats().queued == 0 {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            tracing::warn!(target: "aaa::radius", "accounting records not drained at exit (no multi-threaded runtime)");
            return;
        }
        let drained =
            tokio::task::block_in_place(|| handle.block_on(accounting.shutdown(ACCOUNTING_DRAIN)));
        if let Err(error) = drained {
            tracing::error!(target: "aaa::radius", %error, "accounting records not acknowledged at exit");
        }
    }
}
