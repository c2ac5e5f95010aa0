//! `Aaa`: the method list and the session manager, wired.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aaa_core::{
    AaaError, Authenticator, Clock, ConfigError, Credentials, ExosUser, MethodList, OnReject,
    Outcome, SessionId, SessionInfo, SessionObserver, SessionStore,
};
use aaa_session::{MemoryStore, ReaperHandle, SessionConfig, SessionManager};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

struct Inner {
    methods: MethodList,
    sessions: SessionManager,
    runtime: Handle,
    _reaper: Option<ReaperHandle>,
}

/// Authentication through the configured mechanisms, and the sessions of authenticated users.
///
/// Cheap to clone: clones share everything. See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Aaa {
    inner: Arc<Inner>,
}

/// Builds an [`Aaa`]. Mechanisms are asked in the order they are added.
pub struct AaaBuilder {
    methods: MethodList,
    store: Option<Arc<dyn SessionStore>>,
    config: SessionConfig,
    clock: Option<Arc<dyn Clock>>,
    observers: Vec<Arc<dyn SessionObserver>>,
    reaper: bool,
    runtime: Option<Handle>,
}

impl fmt::Debug for AaaBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AaaBuilder")
            .field("methods", &self.methods)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AaaBuilder {
    /// Adds a mechanism whose reject is final (the default rule).
    pub fn mechanism(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.methods.push(authenticator);
        self
    }
    /// Adds a mechanism with its own rule on reject (`OnReject::Next`: fail through).
    pub fn mechanism_with(
        mut self,
        authenticator: Arc<dyn Authenticator>,
        on_reject: OnReject,
    ) -> Self {
        self.methods.push_with(authenticator, on_reject);
        self
    }
    /// Adds local accounts as the next mechanism (reject final). With RADIUS before it, local
    /// accounts are asked only when no RADIUS server answers.
    ///
    /// ```
    /// # fn demo(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    /// let accounts = aaa::local::LocalAccounts::open(dir.join("accounts.toml"))?;
    /// let builder = aaa::Aaa::builder().local(accounts);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "local")]
    pub fn local(self, accounts: aaa_local::LocalAccounts) -> Self {
        self.mechanism(Arc::new(accounts))
    }

    /// The session store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// Adds RADIUS as the next mechanism (reject final): the servers of the authenticator are
    /// tried in order, failing over only when one does not answer; when none answers, the next
    /// mechanism (typically local accounts) is asked.
    #[cfg(feature = "radius")]
    pub fn radius(self, radius: aaa_radius::RadiusAuthenticator) -> Self {
        self.mechanism(Arc::new(radius))
    }
    /// RADIUS accounting (RFC 2866) of every session, whatever mechanism authenticated it: a
    /// Start at `start_session`, a Stop at `end_session`, `clear_session` and expiry, each sent
    /// by the one process that decided it. Registers `accounting` as an observer; its queue,
    /// retries and spool are its own (see [`aaa_radius::accounting`]).
    #[cfg(feature = "radius")]
    pub fn accounting(self, accounting: Arc<aaa_radius::accounting::Accounting>) -> Self {
        self.observer(accounting)
    }

    /// Connects to Redis (standalone or Cluster, per the URL of `config`) and keeps the sessions
    /// there, shared with every process using the same Redis and prefix. Fails within the
    /// configured connect timeout if Redis does not answer.
    #[cfg(feature = "redis")]
    pub async fn redis(
        self,
        config: aaa_store_redis::RedisConfig,
    ) -> Result<Self, aaa_store_redis::RedisStoreError> {
        let store = aaa_store_redis::RedisStore::connect(config).await?;
        Ok(self.store(Arc::new(store)))
    }

    /// All session settings at once.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }
    /// The idle timeout (default 20 minutes; `None`: off).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }
    /// The absolute session lifetime (default 8 hours; `None`: off).
    pub fn absolute_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.absolute_timeout = timeout;
        self
    }
    /// At most this many live sessions per user (default: no limit).
    pub fn max_sessions_per_user(mut self, limit: Option<u32>) -> Self {
        self.config.limits.per_user = limit;
        self
    }
    /// At most this many live sessions in the store (default: no limit).
    pub fn max_sessions(mut self, limit: Option<u32>) -> Self {
        self.config.limits.total = limit;
        self
    }
    /// The clock (a `ManualClock` in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Adds an observer of session starts and ends.
    pub fn observer(mut self, observer: Arc<dyn SessionObserver>) -> Self {
        self.observers.push(observer);
        self
    }
    /// Whether to run the background reaper (default `true`). Without it, expired sessions are
    /// still refused on every read, but are only claimed by [`Aaa::reap`] or another process.
    pub fn reaper(mut self, run: bool) -> Self {
        self.reaper = run;
        self
    }
    /// The tokio runtime to run background work and callbacks on (default: the current one).
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Checks the configuration and builds. Needs a tokio runtime: the current one, or one given
    /// with [`runtime`](Self::runtime).
    pub fn build(self) -> Result<Aaa, AaaError> {
        if self.methods.is_empty() {
            return Err(ConfigError::NoMechanism.into());
        }
        let runtime = match self.runtime {
            Some(h) => h,
            None => Handle::try_current().map_err(|_| ConfigError::NoRuntime)?,
        };
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let mut b = SessionManager::builder(store).config(self.config);
        if let Some(clock) = self.clock {
            b = b.clock(clock);
        }
        for o in self.observers {
            b = b.observer(o);
        }
        let sessions = b.build()?;
        let reaper = if self.reaper {
            let _enter = runtime.enter();
            Some(sessions.spawn_reaper())
        } else {
            None
        };
        Ok(Aaa {
            inner: Arc::new(Inner {
                methods: self.methods,
                sessions,
                runtime,
                _reaper: reaper,
            }),
        })
    }
}

impl Aaa {
    /// A builder with no mechanism, the memory store and the default session settings.
    pub fn builder() -> AaaBuilder {
        AaaBuilder {
            methods: MethodList::new(),
            store: None,
            config: SessionConfig::default(),
            clock: None,
            observers: Vec::new(),
            reaper: true,
            runtime: None,
        }
    }

    /// Authenticates through the configured mechanisms, in order (the seed's
    /// `authenticate_user`).
    ///
    /// `Ok(Some(user))`: accepted (the user has no session yet: call
    /// [`ExosUser::start_session`]). `Ok(None)`: rejected. `Err`: no decision could be made
    /// (`Unavailable`: every mechanism was; `InvalidInput`: the username or password breaks the
    /// limits of DESIGN §2) — fail closed.
    pub async fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        src_addr: IpAddr,
    ) -> Result<Option<Arc<ExosUser>>, AaaError> {
        let credentials = match Credentials::new(username, password, src_addr) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(
                    target: "aaa::auth",
                    user = %username.escape_debug(),
                    src = %src_addr,
                    result = "invalid-input",
                    reason = %e,
                    "login refused"
                );
                return Err(e.into());
            }
        };
        match self.inner.methods.run(&credentials).await {
            Ok(Outcome::Accepted {
                identity,
                mechanism,
            }) => {
                tracing::info!(
                    target: "aaa::auth",
                    user = %identity.username,
                    %mechanism,
                    src = %src_addr,
                    read_write = identity.read_write,
                    result = "accept",
                    "login accepted"
                );
                Ok(Some(
                    self.inner.sessions.new_user(identity, mechanism, src_addr),
                ))
            }
            Ok(Outcome::Rejected { mechanism, reason }) => {
                tracing::info!(
                    target: "aaa::auth",
                    user = %username,
                    %mechanism,
                    src = %src_addr,
                    result = "reject",
                    reason = reason.as_str(),
                    "login rejected"
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(
                    target: "aaa::auth",
                    user = %username,
                    src = %src_addr,
                    result = "unavailable",
                    reason = %e,
                    "login undecided"
                );
                Err(e)
            }
            // An outcome this version does not know: fail closed.
            Ok(_) => Ok(None),
        }
    }

    /// The seed's `authenticate_user_async`: returns at once; `callback` gets the result of
    /// [`authenticate_user`](Self::authenticate_user) later, on the runtime.
    pub fn authenticate_user_async<F>(
        &self,
        callback: F,
        username: &str,
        password: &str,
        src_addr: IpAddr,
    ) -> JoinHandle<()>
    where
        F: FnOnce(Result<Option<Arc<ExosUser>>, AaaError>) + Send + 'static,
    {
        let this = self.clone();
        let username = username.to_owned();
        let password = Secret(password.to_owned());
        self.inner.runtime.spawn(async move {
            let result = this
                .authenticate_user(&username, &password.0, src_addr)
                .await;
            drop(password);
            callback(result);
        })
    }

    /// The user of the session whose cookie is `cookie`, if it is live (the seed's
    /// `validate_session`). The same `Arc<ExosUser>` each time in this process.
    pub async fn validate_session(&self, cookie: &str) -> Result<Option<Arc<ExosUser>>, AaaError> {
        self.inner.sessions.validate_session(cookie).await
    }

    /// Every live session, of every process sharing the store (the seed's `get_sessions`).
    pub async fn get_sessions(&self) -> Result<Vec<SessionInfo>, AaaError> {
        self.inner.sessions.get_sessions().await
    }

    /// Ends session `id`, wherever it was started (the operator's `clear session <id>`).
    pub async fn clear_session(&self, id: SessionId) -> Result<SessionInfo, AaaError> {
        self.inner.sessions.clear_session(id).await
    }

    /// Claims expired sessions now (the reaper does this periodically).
    pub async fn reap(&self) -> Result<usize, AaaError> {
        self.inner.sessions.reap().await
    }

    /// The session manager.
    pub fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// The runtime this instance runs its background work on.
    pub fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }
}

impl fmt::Debug for Aaa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aaa")
            .field("methods", &self.inner.methods)
            .field("sessions", &self.inner.sessions)
            .finish_non_exhaustive()
    }
}

/// A password in flight to a spawned task: never printed.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
