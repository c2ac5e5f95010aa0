//! `MemoryStore`: the embedded default session store.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use aaa_core::{
    CookieHash, CookieHashBuilder, CreateOutcome, SessionId, SessionLimits, SessionRecord,
    SessionStore, StoreError, async_trait, from_unix_ms, unix_ms,
};

const SHARDS: usize = 64;

/// A session in memory: what a validation reads sits in the map's slot (one cache line or
/// two); the rest of the record is boxed. `last_ms` slides under a shard *read* lock, so
/// validations of different sessions never wait on each other.
struct Entry {
    id: SessionId,
    last_ms: AtomicU64,
    /// Idle timeout in ms; `u64::MAX`: none.
    idle_ms: u64,
    /// Absolute deadline in ms since the epoch; `u64::MAX`: none.
    absolute_ms: u64,
    record: Box<SessionRecord>,
}

impl Entry {
    fn new(record: &SessionRecord) -> Self {
        Self {
            id: record.id,
            last_ms: AtomicU64::new(unix_ms(record.last_activity)),
            idle_ms: record.idle_timeout.map_or(u64::MAX, |t| {
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
            }),
            absolute_ms: record.absolute_deadline.map_or(u64::MAX, unix_ms),
            record: Box::new(record.clone()),
        }
    }
    fn snapshot(&self) -> SessionRecord {
        let mut r = (*self.record).clone();
        r.last_activity = from_unix_ms(self.last_ms.load(Ordering::Acquire));
        r
    }
    /// The same rule as `SessionRecord::expiry`, in whole milliseconds (the precision records
    /// are kept in).
    fn expired_at_ms(&self, now_ms: u64) -> bool {
        let idle_deadline = self
            .last_ms
            .load(Ordering::Acquire)
            .saturating_add(self.idle_ms);
        (self.idle_ms != u64::MAX && idle_deadline <= now_ms)
            || (self.absolute_ms != u64::MAX && self.absolute_ms <= now_ms)
    }
    fn expired_at(&self, now: SystemTime) -> bool {
        self.expired_at_ms(unix_ms(now))
    }
}

type Shard = RwLock<HashMap<CookieHash, Entry, CookieHashBuilder>>;

#[derive(Default)]
struct Index {
    by_id: HashMap<SessionId, CookieHash>,
    by_user: HashMap<String, HashSet<SessionId>>,
}

impl Index {
    fn forget(&mut self, record: &SessionRecord) {
        self.by_id.remove(&record.id);
        if let Some(ids) = self.by_user.get_mut(&record.username) {
            ids.remove(&record.id);
            if ids.is_empty() {
                self.by_user.remove(&record.username);
            }
        }
    }
}

/// The in-memory session store: the embedded default, for one process.
///
/// Sessions are sharded by cookie hash into 64 read/write-locked maps; a validation takes one
/// shard's read lock and slides the idle deadline with an atomic store, so concurrent readers
/// scale. Mutations (create, remove, claim) take a small index lock first, then one shard's
/// write lock — always in that order.
pub struct MemoryStore {
    shards: Box<[Shard]>,
    index: Mutex<Index>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            index: Mutex::default(),
        }
    }

    /// How many records it holds, live or expired-and-unclaimed.
    pub fn len(&self) -> usize {
        self.index().by_id.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &CookieHash) -> &Shard {
        let i = usize::from(key.as_bytes()[0]) % SHARDS;
        #[allow(clippy::indexing_slicing)] // i < SHARDS == self.shards.len()
        &self.shards[i]
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live_count<'a>(&self, keys: impl Iterator<Item = &'a CookieHash>, now: SystemTime) -> usize {
        keys.filter(|k| {
            read(self.shard(k))
                .get(k)
                .is_some_and(|e| !e.expired_at(now))
        })
        .count()
    }
}

/// The entry if it is live at `now`, its idle deadline slid when `touch` is set.
fn live_touched(
    entry: Option<&Entry>,
    now: SystemTime,
    touch: bool,
    granularity: Duration,
) -> Option<&Entry> {
    let entry = entry?;
    let now_ms = unix_ms(now);
    if entry.expired_at_ms(now_ms) {
        return None;
    }
    if touch {
        let last = entry.last_ms.load(Ordering::Acquire);
        let gran = u64::try_from(granularity.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(last) >= gran {
            entry.last_ms.fetch_max(now_ms, Ordering::AcqRel);
        }
    }
    Some(entry)
}

fn read(s: &Shard) -> RwLockReadGuard<'_, HashMap<CookieHash, Entry, CookieHashBuilder>> {
    s.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(s: &Shard) -> RwLockWriteGuard<'_, HashMap<CookieHash, Entry, CookieHashBuilder>> {
    s.write().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(
        &self,
        record: &SessionRecord,
        limits: &SessionLimits,
    ) -> Result<CreateOutcome, StoreError> {
        let now = record.start;
        let mut index = self.index();
        if index.by_id.contains_key(&record.id) {
            return Ok(CreateOutcome::IdTaken);
        }
        let shard = self.shard(&record.key);
        if read(shard).contains_key(&record.key) {
            return Ok(CreateOutcome::KeyTaken);
        }
        if let Some(limit) = limits.per_user
            && let Some(ids) = index.by_user.get(&record.username)
        {
            // Counted exactly (skipping expired, unclaimed records) only when it matters.
            if ids.len() >= limit as usize {
                let keys: Vec<CookieHash> = ids
                    .iter()
                    .filter_map(|id| index.by_id.get(id).copied())
                    .collect();
                if self.live_count(keys.iter(), now) >= limit as usize {
                    return Ok(CreateOutcome::UserLimit);
                }
            }
        }
        if let Some(limit) = limits.total
            && index.by_id.len() >= limit as usize
            && self.live_count(index.by_id.values(), now) >= limit as usize
        {
            return Ok(CreateOutcome::TotalLimit);
        }
        let entry = Entry::new(record);
        write(shard).insert(record.key, entry);
        index.by_id.insert(record.id, record.key);
        index
            .by_user
            .entry(record.username.clone())
            .or_default()
            .insert(record.id);
        Ok(CreateOutcome::Created)
    }

    async fn validate(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let map = read(self.shard(key));
        Ok(live_touched(map.get(key), now, touch, touch_granularity).map(Entry::snapshot))
    }

    fn validate_id_now(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Option<Result<Option<SessionId>, StoreError>> {
        let map = read(self.shard(key));
        Some(Ok(live_touched(
            map.get(key),
            now,
            touch,
            touch_granularity,
        )
        .map(|e| e.id)))
    }

    async fn validate_id(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionId>, StoreError> {
        let map = read(self.shard(key));
        Ok(live_touched(map.get(key), now, touch, touch_granularity).map(|e| e.id))
    }

    async fn remove(&self, key: &CookieHash) -> Result<Option<SessionRecord>, StoreError> {
        let mut index = self.index();
        let removed = write(self.shard(key)).remove(key);
        Ok(removed.map(|e| {
            let r = e.snapshot();
            index.forget(&r);
            r
        }))
    }

    async fn remove_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let mut index = self.index();
        let Some(key) = index.by_id.get(&id).copied() else {
            return Ok(None);
        };
        let removed = write(self.shard(&key)).remove(&key);
        Ok(removed.map(|e| {
            let r = e.snapshot();
            index.forget(&r);
            r
        }))
    }

    async fn list(&self, now: SystemTime) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(
                read(shard)
                    .values()
                    .filter(|e| !e.expired_at(now))
                    .map(|e| e.snapshot()),
            );
        }
        Ok(out)
    }

    async fn claim_expired(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            if out.len() >= max {
                break;
            }
            // Find candidates under the read lock; most passes find none and write nothing.
            let candidates: Vec<CookieHash> = read(shard)
                .iter()
                .filter(|(_, e)| e.expired_at(now))
                .map(|(k, _)| *k)
                .take(max - out.len())
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let mut index = self.index();
            let mut map = write(shard);
            for k in candidates {
                // Re-checked under the write lock: a validation may have slid it meanwhile.
                if map.get(&k).is_some_and(|e| e.expired_at(now))
                    && let Some(e) = map.remove(&k)
                {
                    let r = e.snapshot();
                    index.forget(&r);
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    async fn contains(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, StoreError> {
        Ok(keys
            .iter()
            .map(|k| {
                read(self.shard(k))
                    .get(k)
                    .is_some_and(|e| !e.expired_at(now))
            })
            .collect())
    }
}
