//! Small pieces shared by the transport and the accounting task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A [`LogLimit`] lets one line through per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Locks `m`, also when a thread panicked while holding it (the data stay usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts the task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// At most one log line per [`LOG_INTERVAL`] (10 s); counts the ones held back.
#[derive(Debug)]
pub(crate) struct LogLimit {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub(crate) fn new() -> Self {
        Self {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(number held back since the last one)` if a line may be logged now.
    pub(crate) fn permit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = lock(&self.last);
        match *last {
            Some(at) if now.saturating_duration_since(at) < LOG_INTERVAL => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}
