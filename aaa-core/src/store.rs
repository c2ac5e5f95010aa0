//! The `SessionStore` trait: where sessions live (memory, Redis, …).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{AaaError, CookieHash, LiveRef, LiveSlots, SessionId, SessionRecord, StoreError};

/// Limits a store enforces atomically when it creates a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// At most this many live sessions for one username.
    pub per_user: Option<u32>,
    /// At most this many live sessions in the store.
    pub total: Option<u32>,
}

/// The answer of [`SessionStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// Stored.
    Created,
    /// A session with this key exists already; nothing was changed.
    KeyTaken,
    /// A session with this id exists already; nothing was changed.
    IdTaken,
    /// The user has `SessionLimits::per_user` live sessions already.
    UserLimit,
    /// The store has `SessionLimits::total` live sessions already.
    TotalLimit,
}

/// A session store. Implementations: `aaa_session::MemoryStore`, `aaa_store_redis::RedisStore`.
///
/// Contract (checked by `testkit`'s conformance suite):
/// - Only [`CookieHash`]es are keys; the cookie never reaches a store.
/// - `create` is insert-if-absent on both the key and the id, and never overwrites.
/// - No operation recreates a removed record (revocation is final).
/// - A record whose deadline has passed at `now` is never returned by `get`, `validate` or
///   `list`; it stays until claimed, by `remove`, `remove_by_id` or `claim_expired`, exactly once.
/// - Every method fails with a [`StoreError`] rather than hang past the store's own timeout.
#[async_trait]
pub trait SessionStore: fmt::Debug + Send + Sync + 'static {
    /// A fresh id for a new session whose key is `key`: random, from the operating system's
    /// generator. The default is [`SessionId::generate`]; a store may shape the id for its
    /// layout (the Redis store puts the key's bucket in its low bits, so that the id's index
    /// entry lives beside the session). [`create`](Self::create) accepts any id all the same,
    /// and refuses a duplicate.
    fn new_id(&self, key: &CookieHash) -> Result<SessionId, AaaError> {
        let _ = key;
        SessionId::generate()
    }

    /// Inserts `record` under `record.key` if neither its key nor its id exists, and if the
    /// limits allow.
    ///
    /// An error leaves the outcome unknown to the caller, and a store may undo the attempt
    /// (the Redis store does, in the background): to try again, make a fresh record (a new
    /// cookie), never send the same one.
    async fn create(
        &self,
        record: &SessionRecord,
        limits: &SessionLimits,
    ) -> Result<CreateOutcome, StoreError>;

    /// The live record under `key` at `now`. If `touch` is set, its `last_activity` is raised
    /// to `now` (sliding the idle deadline); a store may skip that write when the stored
    /// `last_activity` is less than `touch_granularity` old. Never recreates a record.
    async fn validate(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// As [`validate`](Self::validate), answering only the session's id: the fast path of a
    /// validation whose user this process has cached. Stores that can answer without copying
    /// the record should override it.
    async fn validate_id(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionId>, StoreError> {
        Ok(self
            .validate(key, now, touch, touch_granularity)
            .await?
            .map(|r| r.id))
    }

    /// [`validate_id`](Self::validate_id) without awaiting, for stores that can answer at once
    /// (in-process stores): `Some(answer)`, or `None` to use `validate_id`. The default is
    /// `None`. It saves the cost of an async call on the hottest path of a local store.
    fn validate_id_now(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Option<Result<Option<SessionId>, StoreError>> {
        let _ = (key, now, touch, touch_granularity);
        None
    }

    /// The [`LiveSlots`] of an in-process store that keeps its sessions' live state there, so a
    /// session manager can check a cached session without asking the store (the slots are the
    /// store's own state: an end in the store is seen at once). The default is `None`.
    fn live_slots(&self) -> Option<Arc<LiveSlots>> {
        None
    }

    /// The id and [`LiveRef`] of the live session under `key` at `now`, in
    /// [`live_slots`](Self::live_slots). The default is `None`.
    fn live_ref(&self, key: &CookieHash, now: SystemTime) -> Option<(SessionId, LiveRef)> {
        let _ = (key, now);
        None
    }

    /// The live record under `key` at `now`, without touching it.
    async fn get(
        &self,
        key: &CookieHash,
        now: SystemTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.validate(key, now, false, Duration::ZERO).await
    }

    /// Removes the record under `key` and returns it (live or expired). `None` if absent.
    async fn remove(&self, key: &CookieHash) -> Result<Option<SessionRecord>, StoreError>;

    /// Removes the record with public id `id` and returns it (live or expired).
    async fn remove_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Every live record at `now`, in no particular order.
    async fn list(&self, now: SystemTime) -> Result<Vec<SessionRecord>, StoreError>;

    /// Removes and returns up to `max` records whose deadline has passed at `now`. Each expired
    /// record is returned by exactly one call, whichever process makes it.
    async fn claim_expired(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// For each key, whether a live record exists at `now` (used to prune per-process caches).
    async fn contains(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k, now).await?.is_some());
        }
        Ok(out)
    }
}
