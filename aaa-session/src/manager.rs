//! `SessionManager`: cookies, the per-process instance cache, timeouts and the reaper.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use aaa_core::{
    AaaError, ActiveSession, Clock, ConfigError, CookieHash, CookieHashBuilder, CreateOutcome,
    EndCause, ExosUser, Identity, LimitScope, LiveRef, LiveSlots, Mechanism, SessionControl,
    SessionCookie, SessionId, SessionInfo, SessionLimits, SessionObserver, SessionRecord,
    SessionStore, SystemClock, async_trait, truncate_ms, unix_ms,
};
use tokio::task::JoinHandle;

/// How many times `start_session` draws a new cookie and id after a collision.
const CREATE_ATTEMPTS: u32 = 8;
const CACHE_SHARDS: usize = 64;

/// Session settings. The defaults are those of DESIGN §2.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Idle timeout, sliding on each successful validation (default 20 minutes; `None`: off).
    pub idle_timeout: Option<Duration>,
    /// Absolute lifetime from the start (default 8 hours; `None`: off).
    pub absolute_timeout: Option<Duration>,
    /// Limits on live sessions per user and in total (default: none).
    pub limits: SessionLimits,
    /// A validation within this time of the last recorded activity need not write to the store
    /// (default 1 second): it saves a write per request on a shared store.
    pub touch_granularity: Duration,
    /// How often the reaper claims expired sessions (default 5 seconds).
    pub reap_interval: Duration,
    /// How often the reaper checks that the sessions cached in this process still exist in the
    /// store, dropping those cleared by other processes (default 60 seconds).
    pub cache_check_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(20 * 60)),
            absolute_timeout: Some(Duration::from_secs(8 * 3600)),
            limits: SessionLimits::default(),
            touch_granularity: Duration::from_secs(1),
            reap_interval: Duration::from_secs(5),
            cache_check_interval: Duration::from_secs(60),
        }
    }
}

impl SessionConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let zero = |what| Err(ConfigError::Zero { what });
        if self.idle_timeout == Some(Duration::ZERO) {
            return zero("session idle timeout");
        }
        if self.absolute_timeout == Some(Duration::ZERO) {
            return zero("session absolute timeout");
        }
        if self.limits.per_user == Some(0) {
            return zero("sessions per user limit");
        }
        if self.limits.total == Some(0) {
            return zero("total sessions limit");
        }
        if self.reap_interval.is_zero() {
            return zero("reap interval");
        }
        if self.cache_check_interval.is_zero() {
            return zero("cache check interval");
        }
        Ok(())
    }
}

/// A cached user: one cache line, the full key (compared in constant time), the session id
/// (a hit is confirmed without locking the user), the user, and the session's slot in the
/// store's [`LiveSlots`] when the store has them.
#[repr(align(64))]
struct CacheEntry {
    key: CookieHash,
    id: SessionId,
    user: Arc<ExosUser>,
    live: Option<LiveRef>,
}

impl Borrow<CookieHash> for CacheEntry {
    fn borrow(&self) -> &CookieHash {
        &self.key
    }
}
impl Hash for CacheEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}
impl PartialEq for CacheEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for CacheEntry {}

/// A shard on its own cache lines, so validations on two cores do not share a lock's line.
#[repr(align(128))]
#[derive(Default)]
struct CacheShard(RwLock<HashSet<CacheEntry, CookieHashBuilder>>);

/// What the cache answers for a session whose live state it can check itself.
enum LiveCheck {
    Live(Arc<ExosUser>),
    Gone,
    /// Not cached, or cached without a slot: ask the store.
    Unknown,
}

/// This process's `ExosUser` instances of live sessions, by cookie hash.
struct Cache {
    shards: Box<[CacheShard]>,
}

impl Cache {
    fn new() -> Self {
        Self {
            shards: (0..CACHE_SHARDS).map(|_| CacheShard::default()).collect(),
        }
    }
    fn shard(&self, key: &CookieHash) -> &RwLock<HashSet<CacheEntry, CookieHashBuilder>> {
        // Not from the first 8 bytes, which are the maps' hash: a shard's keys would share bits
        // of it and crowd a few buckets.
        let i = usize::from(key.as_bytes()[8]) % CACHE_SHARDS;
        #[allow(clippy::indexing_slicing)] // i < CACHE_SHARDS == self.shards.len()
        &self.shards[i].0
    }
    /// The fast path: the cached user of the session under `key`, checked (and slid) in the
    /// store's slots, without asking the store.
    #[inline]
    fn check_live(
        &self,
        key: &CookieHash,
        slots: &LiveSlots,
        now_ms: u64,
        touch_granularity_ms: Option<u64>,
    ) -> LiveCheck {
        let map = self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = map.get(key) else {
            return LiveCheck::Unknown;
        };
        let Some(live) = entry.live else {
            return LiveCheck::Unknown;
        };
        if slots.check(live, now_ms, touch_granularity_ms) {
            LiveCheck::Live(entry.user.clone())
        } else {
            LiveCheck::Gone
        }
    }
    /// The cached user of session `id` under `key`.
    fn get(&self, key: &CookieHash, id: SessionId) -> Option<Arc<ExosUser>> {
        match self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            Some(e) if e.id == id => Some(e.user.clone()),
            _ => None,
        }
    }
    /// The id of the session cached under `key`.
    fn cached_id(&self, key: &CookieHash) -> Option<SessionId> {
        self.shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|e| e.id)
    }
    /// The entry cached under `key`.
    fn entry(&self, key: &CookieHash) -> Option<(SessionId, Arc<ExosUser>)> {
        self.shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|e| (e.id, e.user.clone()))
    }
    /// Inserts `user` unless an instance of the same session is there; returns the one kept.
    fn insert_or_get(
        &self,
        key: CookieHash,
        user: Arc<ExosUser>,
        id: SessionId,
        live: Option<LiveRef>,
    ) -> Arc<ExosUser> {
        let mut map = self
            .shard(&key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let user = match map.get(&key) {
            Some(e) if e.id == id => {
                if e.live.is_some() || live.is_none() {
                    return e.user.clone();
                }
                // Same instance, now with its slot.
                e.user.clone()
            }
            _ => user,
        };
        map.replace(CacheEntry {
            key,
            id,
            user: user.clone(),
            live,
        });
        user
    }
    fn remove(&self, key: &CookieHash) -> Option<Arc<ExosUser>> {
        self.shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take(key)
            .map(|e| e.user)
    }
    fn keys(&self) -> Vec<CookieHash> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.0.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|e| e.key)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

struct Inner {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    observers: Vec<Arc<dyn SessionObserver>>,
    cache: Cache,
    /// The store's live slots, if it has them: cached sessions are checked there.
    slots: Option<Arc<LiveSlots>>,
    /// `touch_granularity` in ms, if validations touch (an idle timeout is set).
    touch_ms: Option<u64>,
    /// Given to each `ExosUser`; weak, so users kept by the application do not keep the manager
    /// (and its cache of users) alive.
    control: Arc<Control>,
    /// Counts the removals from the cache (logout, clear, claim, eviction): a validation that
    /// sees it move while it caches a user checks the store once more.
    removals: AtomicU64,
}

/// Manages sessions on a [`SessionStore`]: creates them with fresh cookies, validates them
/// (the same `Arc<ExosUser>` each time in this process), lists, clears and reaps them.
///
/// Cheap to clone: clones share one manager.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

/// Builds a [`SessionManager`].
#[derive(Debug)]
pub struct SessionManagerBuilder {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    observers: Vec<Arc<dyn SessionObserver>>,
}

impl SessionManagerBuilder {
    /// The settings.
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }
    /// The clock (a `ManualClock` in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Adds an observer of session starts and ends (accounting).
    pub fn observer(mut self, observer: Arc<dyn SessionObserver>) -> Self {
        self.observers.push(observer);
        self
    }
    /// Checks the settings and builds the manager. Starts no task: see
    /// [`SessionManager::spawn_reaper`].
    pub fn build(self) -> Result<SessionManager, AaaError> {
        self.config.check()?;
        let slots = self.store.live_slots();
        let touch_ms = self
            .config
            .idle_timeout
            .map(|_| u64::try_from(self.config.touch_granularity.as_millis()).unwrap_or(u64::MAX));
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            slots,
            touch_ms,
            store: self.store,
            clock: self.clock,
            config: self.config,
            observers: self.observers,
            cache: Cache::new(),
            control: Arc::new(Control {
                inner: weak.clone(),
            }),
            removals: AtomicU64::new(0),
        });
        Ok(SessionManager { inner })
    }
}

impl SessionManager {
    /// A builder over `store`, with the default settings and the system clock.
    pub fn builder(store: Arc<dyn SessionStore>) -> SessionManagerBuilder {
        SessionManagerBuilder {
            store,
            clock: Arc::new(SystemClock),
            config: SessionConfig::default(),
            observers: Vec::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// A new, session-less user for an identity a mechanism accepted.
    pub fn new_user(
        &self,
        identity: Identity,
        mechanism: Mechanism,
        src_addr: IpAddr,
    ) -> Arc<ExosUser> {
        ExosUser::__new(
            identity,
            mechanism,
            Some(src_addr),
            None,
            self.inner.control.clone(),
        )
    }

    /// The user of the session whose cookie is `cookie`, if it is live; slides its idle deadline.
    ///
    /// Within this process, every call for one session returns the same `Arc<ExosUser>` while the
    /// session lives. `Ok(None)` for an unknown, ended, cleared or expired session;
    /// `Err(InvalidInput)` for text that is not a cookie; `Err(Store)` if the store fails
    /// (fail closed: never a user).
    pub async fn validate_session(&self, cookie: &str) -> Result<Option<Arc<ExosUser>>, AaaError> {
        let key = SessionCookie::hash_text(cookie)?;
        let inner = &self.inner;
        let now = inner.clock.now();
        let touch = inner.config.idle_timeout.is_some();
        let granularity = inner.config.touch_granularity;
        // Fastest path: this process has the user and the store's slot of the session.
        if let Some(slots) = &inner.slots {
            match inner
                .cache
                .check_live(&key, slots, unix_ms(now), inner.touch_ms)
            {
                LiveCheck::Live(user) => return Ok(Some(user)),
                LiveCheck::Gone => {
                    inner.evict(&key);
                    return Ok(None);
                }
                LiveCheck::Unknown => {}
            }
        }
        // Fast path: this process has the user; the store only confirms the session lives.
        if let Some((cached, user)) = inner.cache.entry(&key) {
            let answer = match inner.store.validate_id_now(&key, now, touch, granularity) {
                Some(answer) => answer?,
                None => {
                    inner
                        .store
                        .validate_id(&key, now, touch, granularity)
                        .await?
                }
            };
            match answer {
                Some(id) if id == cached => return Ok(Some(user)),
                Some(_) => {}
                None => {
                    inner.evict(&key);
                    return Ok(None);
                }
            }
        }
        let removals = inner.removals.load(Ordering::SeqCst);
        let record = inner.store.validate(&key, now, touch, granularity).await?;
        let Some(record) = record else {
            inner.evict(&key);
            return Ok(None);
        };
        if let Some(user) = inner.cache.get(&key, record.id) {
            return Ok(Some(user));
        }
        let cookie = SessionCookie::parse(cookie)?;
        let session = ActiveSession {
            cookie,
            key,
            id: record.id,
            start: record.start,
            src_addr: record.src_addr,
        };
        let id = record.id;
        let user = ExosUser::__new(
            Identity::new(record.username, record.read_write),
            record.mechanism,
            Some(record.src_addr),
            Some(session),
            inner.control.clone(),
        );
        let live = inner.live_ref(&key, now, id);
        let user = inner.cache.insert_or_get(key, user, id, live);
        // A logout, clear or claim in this process may have removed the record between the
        // store's answer and the insert (its eviction then found nothing to evict): if any
        // removal happened meanwhile, check once more, so an ended session is never left in the
        // cache. (A removal counts before it touches the cache, so one that missed this insert
        // has counted by now.)
        if inner.removals.load(Ordering::SeqCst) != removals
            && inner.store.contains(&[key], now).await?.first() != Some(&true)
        {
            inner.evict(&key);
            return Ok(None);
        }
        Ok(Some(user))
    }

    /// Every live session in the store (all processes), oldest first. Never a cookie.
    pub async fn get_sessions(&self) -> Result<Vec<SessionInfo>, AaaError> {
        let now = self.inner.clock.now();
        let mut list: Vec<SessionInfo> = self
            .inner
            .store
            .list(now)
            .await?
            .iter()
            .map(SessionRecord::info)
            .collect();
        list.sort_by_key(|s| (s.start, s.id));
        Ok(list)
    }

    /// Ends session `id` wherever it was started (the operator's `clear session <id>`).
    ///
    /// `SessionDoesNotExist` if there is no live session with that id.
    pub async fn clear_session(&self, id: SessionId) -> Result<SessionInfo, AaaError> {
        let inner = &self.inner;
        let record = inner.store.remove_by_id(id).await?;
        if let Some(record) = &record {
            inner.forget(record);
        }
        inner.finish(record, EndCause::Cleared).map(|r| r.info())
    }

    /// Claims the sessions that have expired and reports their end (idle or absolute timeout).
    /// Each expired session is claimed by exactly one manager sharing the store. Returns how many
    /// this call claimed.
    pub async fn reap(&self) -> Result<usize, AaaError> {
        const BATCH: usize = 1000;
        let inner = &self.inner;
        let mut total = 0;
        loop {
            let now = inner.clock.now();
            let batch = inner.store.claim_expired(now, BATCH).await?;
            total += batch.len();
            for record in &batch {
                inner.forget(record);
                let cause = record.expiry(now).unwrap_or(EndCause::IdleTimeout);
                inner.ended(record, cause, now);
            }
            if batch.len() < BATCH {
                return Ok(total);
            }
        }
    }

    /// Drops from this process's cache the users whose session no longer exists in the store
    /// (cleared by another process, or expired and claimed elsewhere). Returns how many.
    pub async fn prune_cache(&self) -> Result<usize, AaaError> {
        let inner = &self.inner;
        let keys = inner.cache.keys();
        if keys.is_empty() {
            return Ok(0);
        }
        let live = inner.store.contains(&keys, inner.clock.now()).await?;
        let mut pruned = 0;
        for (key, live) in keys.iter().zip(live) {
            if !live && inner.cache.cached_id(key).is_some() {
                inner.evict(key);
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// How many users this process's cache holds (bounded by the live sessions it has seen).
    pub fn cached_users(&self) -> usize {
        self.inner.cache.len()
    }

    /// Starts the background task that reaps expired sessions every `reap_interval` and prunes
    /// the cache every `cache_check_interval`. It stops when the returned handle is dropped, or
    /// when the manager is. Must be called within a tokio runtime.
    pub fn spawn_reaper(&self) -> ReaperHandle {
        let weak = Arc::downgrade(&self.inner);
        let reap_every = self.inner.config.reap_interval;
        let check_every = self.inner.config.cache_check_interval;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(reap_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut since_check = Duration::ZERO;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let manager = Self { inner };
                if let Err(e) = manager.reap().await {
                    tracing::warn!(target: "aaa::session", error = %e, "reaper: claiming expired sessions failed");
                }
                since_check += reap_every;
                if since_check >= check_every {
                    since_check = Duration::ZERO;
                    if let Err(e) = manager.prune_cache().await {
                        tracing::warn!(target: "aaa::session", error = %e, "reaper: checking cached sessions failed");
                    }
                }
            }
        });
        ReaperHandle { task }
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .field("cached_users", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

/// The reaper task; dropping it stops the task.
#[derive(Debug)]
pub struct ReaperHandle {
    task: JoinHandle<()>,
}

impl Drop for ReaperHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    /// The slot of session `id` under `key`, if the store has live slots.
    fn live_ref(&self, key: &CookieHash, now: SystemTime, id: SessionId) -> Option<LiveRef> {
        self.slots.as_ref()?;
        self.store
            .live_ref(key, now)
            .filter(|(live_id, _)| *live_id == id)
            .map(|(_, r)| r)
    }

    /// Drops whatever the cache holds under `key`, telling the user its session is gone.
    fn evict(&self, key: &CookieHash) {
        self.removals.fetch_add(1, Ordering::SeqCst);
        if let Some(user) = self.cache.remove(key)
            && let Some(id) = user.session_id()
        {
            user.__session_gone(id);
        }
    }

    /// Drops a session that ended from the cache, and tells its cached user.
    fn forget(&self, record: &SessionRecord) {
        self.removals.fetch_add(1, Ordering::SeqCst);
        if let Some(user) = self.cache.remove(&record.key) {
            user.__session_gone(record.id);
        }
    }

    fn ended(&self, record: &SessionRecord, cause: EndCause, now: SystemTime) {
        // A timeout ends the session at its deadline, not when the reaper noticed.
        let at = match cause {
            EndCause::IdleTimeout | EndCause::AbsoluteTimeout => {
                record.deadline().unwrap_or(now).min(now)
            }
            _ => now,
        };
        tracing::info!(
            target: "aaa::session",
            user = %record.username,
            session = %record.id,
            mechanism = %record.mechanism,
            src = %record.src_addr,
            cause = %cause,
            "session ended"
        );
        for o in &self.observers {
            o.session_ended(record, cause, at);
        }
    }

    async fn start(
        &self,
        user: &Arc<ExosUser>,
        src_addr: IpAddr,
    ) -> Result<ActiveSession, AaaError> {
        let limits = self.config.limits;
        for _ in 0..CREATE_ATTEMPTS {
            let cookie = SessionCookie::generate()?;
            let key = cookie.hash();
            let id = self.store.new_id(&key)?;
            let now = truncate_ms(self.clock.now());
            let record = SessionRecord {
                key,
                id,
                username: user.username().to_owned(),
                read_write: user.read_write(),
                mechanism: user.mechanism().clone(),
                src_addr,
                start: now,
                last_activity: now,
                idle_timeout: self.config.idle_timeout,
                absolute_deadline: self
                    .config
                    .absolute_timeout
                    .and_then(|t| now.checked_add(t)),
            };
            match self.store.create(&record, &limits).await? {
                CreateOutcome::Created => {
                    let live = self.live_ref(&record.key, now, id);
                    self.cache.insert_or_get(record.key, user.clone(), id, live);
                    tracing::info!(
                        target: "aaa::session",
                        user = %record.username,
                        session = %id,
                        mechanism = %record.mechanism,
                        src = %src_addr,
                        read_write = record.read_write,
                        "session started"
                    );
                    for o in &self.observers {
                        o.session_started(&record);
                    }
                    return Ok(ActiveSession {
                        key: record.key,
                        cookie,
                        id,
                        start: now,
                        src_addr,
                    });
                }
                CreateOutcome::UserLimit => {
                    return Err(limit_error(LimitScope::PerUser, limits.per_user, &record));
                }
                CreateOutcome::TotalLimit => {
                    return Err(limit_error(LimitScope::Total, limits.total, &record));
                }
                // KeyTaken, IdTaken, and anything a newer store may answer: draw again.
                outcome => {
                    tracing::warn!(target: "aaa::session", ?outcome, "session key or id collision, drawing again");
                }
            }
        }
        Err(AaaError::CollisionRetriesExhausted {
            attempts: CREATE_ATTEMPTS,
        })
    }

    async fn end(&self, session: &ActiveSession) -> Result<(), AaaError> {
        let record = self.store.remove(&session.key).await?;
        // Whatever instance this process cached for the session is told it ended.
        self.evict(&session.key);
        self.finish(record, EndCause::Logout).map(|_| ())
    }

    /// Reports the end of a session this process removed from the store: by `cause`, or by its
    /// timeout if it had expired (then `SessionDoesNotExist`: it was no longer live).
    fn finish(
        &self,
        record: Option<SessionRecord>,
        cause: EndCause,
    ) -> Result<SessionRecord, AaaError> {
        let now = self.clock.now();
        let record = record.ok_or(AaaError::SessionDoesNotExist)?;
        match record.expiry(now) {
            Some(timeout) => {
                self.ended(&record, timeout, now);
                Err(AaaError::SessionDoesNotExist)
            }
            None => {
                self.ended(&record, cause, now);
                Ok(record)
            }
        }
    }
}

fn limit_error(scope: LimitScope, limit: Option<u32>, record: &SessionRecord) -> AaaError {
    tracing::warn!(
        target: "aaa::session",
        user = %record.username,
        src = %record.src_addr,
        %scope,
        "session refused: limit reached"
    );
    AaaError::SessionLimit {
        scope,
        limit: limit.unwrap_or(0),
    }
}

/// The `SessionControl` each `ExosUser` holds: a weak link back to its manager.
struct Control {
    inner: Weak<Inner>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionControl")
    }
}

#[async_trait]
impl SessionControl for Control {
    async fn start_session(
        &self,
        user: &Arc<ExosUser>,
        src_addr: IpAddr,
    ) -> Result<ActiveSession, AaaError> {
        let inner = self.inner.upgrade().ok_or(AaaError::Shutdown)?;
        inner.start(user, src_addr).await
    }
    async fn end_session(&self, _user: &ExosUser, session: &ActiveSession) -> Result<(), AaaError> {
        let inner = self.inner.upgrade().ok_or(AaaError::Shutdown)?;
        inner.end(session).await
    }
}
