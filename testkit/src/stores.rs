//! Store wrappers for fault injection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aaa_core::{
    CookieHash, CreateOutcome, SessionId, SessionLimits, SessionRecord, SessionStore, StoreError,
    StoreErrorKind, async_trait,
};

/// Wraps a store; while `fail` is set, every call fails with `StoreErrorKind::Unreachable`, as a
/// store that went down would. Counts calls.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn SessionStore>,
    fail: AtomicBool,
    calls: AtomicUsize,
}

impl FaultyStore {
    /// Wraps `inner`, healthy.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self {
            inner,
            fail: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        }
    }
    /// Makes every call fail (`true`) or pass through (`false`).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
    /// How many calls were made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::new(
                StoreErrorKind::Unreachable,
                op,
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "injected fault"),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    fn new_id(&self, key: &CookieHash) -> Result<SessionId, aaa_core::AaaError> {
        self.inner.new_id(key)
    }
    async fn create(
        &self,
        record: &SessionRecord,
        limits: &SessionLimits,
    ) -> Result<CreateOutcome, StoreError> {
        self.check("create")?;
        self.inner.create(record, limits).await
    }
    async fn validate(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.check("validate")?;
        self.inner
            .validate(key, now, touch, touch_granularity)
            .await
    }
    async fn remove(&self, key: &CookieHash) -> Result<Option<SessionRecord>, StoreError> {
        self.check("remove")?;
        self.inner.remove(key).await
    }
    async fn remove_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.check("remove_by_id")?;
        self.inner.remove_by_id(id).await
    }
    async fn list(&self, now: SystemTime) -> Result<Vec<SessionRecord>, StoreError> {
        self.check("list")?;
        self.inner.list(now).await
    }
    async fn claim_expired(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.check("claim_expired")?;
        self.inner.claim_expired(now, max).await
    }
    async fn contains(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, StoreError> {
        self.check("contains")?;
        self.inner.contains(keys, now).await
    }
}
