//! `MemoryStore`: the embedded default session store.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use aaa_core::{
    CookieHash, CookieHashBuilder, CreateOutcome, LiveRef, LiveSlots, SessionId, SessionLimits,
    SessionRecord, SessionStore, StoreError, StoreErrorKind, async_trait, from_unix_ms, unix_ms,
};

const SHARDS: usize = 64;

/// A session in memory: its live state (last activity, deadlines, ended) is in the store's
/// [`LiveSlots`], shared with the session managers that cache it; the rest of the record is
/// boxed.
struct Entry {
    id: SessionId,
    live: LiveRef,
    record: Box<SessionRecord>,
}

impl Entry {
    fn snapshot(&self, slots: &LiveSlots) -> SessionRecord {
        let mut r = (*self.record).clone();
        if let Some(last) = slots.last_ms(self.live) {
            r.last_activity = from_unix_ms(last);
        }
        r
    }
    /// The record as it ended, its last activity `last_ms`.
    fn ended(self, last_ms: Option<u64>) -> SessionRecord {
        let mut r = *self.record;
        if let Some(last) = last_ms {
            r.last_activity = from_unix_ms(last);
        }
        r
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
/// Sessions are sharded by cookie hash into 64 read/write-locked maps; their live state is in
/// [`LiveSlots`] ([`SessionStore::live_slots`]): a validation by key takes one shard's read lock
/// and checks (and slides) the slot with atomics, a session manager that cached the session
/// checks the slot directly. Mutations (create, remove, claim) take a small index lock first,
/// then one shard's write lock — always in that order — and end the slot before they return.
pub struct MemoryStore {
    shards: Box<[Shard]>,
    index: Mutex<Index>,
    slots: Arc<LiveSlots>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            index: Mutex::default(),
            slots: Arc::new(LiveSlots::new()),
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
        // Not from the first 8 bytes, which are the maps' hash: a shard's keys would share bits of
        // it and crowd a few buckets.
        let i = usize::from(key.as_bytes()[9]) % SHARDS;
        #[allow(clippy::indexing_slicing)] // i < SHARDS == self.shards.len()
        &self.shards[i]
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live_count<'a>(&self, keys: impl Iterator<Item = &'a CookieHash>, now: SystemTime) -> usize {
        keys.filter(|k| self.is_live(k, now)).count()
    }

    fn is_live(&self, key: &CookieHash, now: SystemTime) -> bool {
        read(self.shard(key))
            .get(key)
            .is_some_and(|e| !self.slots.expired_at(e.live, unix_ms(now)))
    }

    /// The entry under `key` if it is live at `now`, its idle deadline slid when `touch` is set.
    fn live_touched<'a>(
        &self,
        entry: Option<&'a Entry>,
        now: SystemTime,
        touch: bool,
        granularity: Duration,
    ) -> Option<&'a Entry> {
        let entry = entry?;
        let gran = touch.then(|| u64::try_from(granularity.as_millis()).unwrap_or(u64::MAX));
        self.slots
            .check(entry.live, unix_ms(now), gran)
            .then_some(entry)
    }
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

impl MemoryStore {
    /// The id of the live session under `key`, slid when `touch` is set.
    fn live_id(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Option<SessionId> {
        let map = read(self.shard(key));
        self.live_touched(map.get(key), now, touch, touch_granularity)
            .map(|e| e.id)
    }

    /// Removes the record under `key` (its slot ended, its index entries gone), under the
    /// index lock the caller holds.
    fn take(&self, index: &mut Index, key: &CookieHash) -> Option<SessionRecord> {
        let e = write(self.shard(key)).remove(key)?;
        let last = self.slots.end(e.live);
        let r = e.ended(last);
        index.forget(&r);
        Some(r)
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
        let Some(live) = self.slots.insert(
            unix_ms(record.last_activity),
            record.idle_timeout.map_or(u64::MAX, |t| {
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
            }),
            record.absolute_deadline.map_or(u64::MAX, unix_ms),
        ) else {
            return Err(StoreError::bare(
                StoreErrorKind::Backend,
                "memory store full",
            ));
        };
        let entry = Entry {
            id: record.id,
            live,
            record: Box::new(record.clone()),
        };
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
        Ok(self
            .live_touched(map.get(key), now, touch, touch_granularity)
            .map(|e| e.snapshot(&self.slots)))
    }

    fn validate_id_now(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Option<Result<Option<SessionId>, StoreError>> {
        Some(Ok(self.live_id(key, now, touch, touch_granularity)))
    }

    async fn validate_id(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionId>, StoreError> {
        Ok(self.live_id(key, now, touch, touch_granularity))
    }

    fn live_slots(&self) -> Option<Arc<LiveSlots>> {
        Some(self.slots.clone())
    }

    fn live_ref(&self, key: &CookieHash, now: SystemTime) -> Option<(SessionId, LiveRef)> {
        read(self.shard(key))
            .get(key)
            .filter(|e| !self.slots.expired_at(e.live, unix_ms(now)))
            .map(|e| (e.id, e.live))
    }

    async fn remove(&self, key: &CookieHash) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.take(&mut self.index(), key))
    }

    async fn remove_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let mut index = self.index();
        let Some(key) = index.by_id.get(&id).copied() else {
            return Ok(None);
        };
        Ok(self.take(&mut index, &key))
    }

    async fn list(&self, now: SystemTime) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(
                read(shard)
                    .values()
                    .filter(|e| !self.slots.expired_at(e.live, unix_ms(now)))
                    .map(|e| e.snapshot(&self.slots)),
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
        let now_ms = unix_ms(now);
        for shard in &self.shards {
            if out.len() >= max {
                break;
            }
            // Find candidates under the read lock; most passes find none and write nothing.
            let candidates: Vec<CookieHash> = read(shard)
                .iter()
                .filter(|(_, e)| self.slots.expired_at(e.live, now_ms))
                .map(|(k, _)| *k)
                .take(max - out.len())
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let mut index = self.index();
            let mut map = write(shard);
            for k in candidates {
                // Ended only if still expired: a validation may have slid it meanwhile (the
                // slot's compare-and-swap decides between the two).
                let Some(e) = map.get(&k) else { continue };
                let last = match self.slots.end_if_expired(e.live, now_ms) {
                    Some(last) => Some(last),
                    // A slot already ended while its record is still here (ended by someone
                    // other than this store): the record is claimed too, so it never stays.
                    None if self.slots.last_ms(e.live).is_none() => None,
                    None => continue,
                };
                if let Some(e) = map.remove(&k) {
                    let r = e.ended(last);
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
        Ok(keys.iter().map(|k| self.is_live(k, now)).collect())
    }
}
