//! Hooks for what happens to sessions (the AAA log, accounting).

use std::fmt;
use std::time::SystemTime;

use crate::{EndCause, SessionRecord};

/// Told of every session start and end that this process decided.
///
/// Each end is reported by exactly one process: the one whose logout, clear or reaper claim
/// removed the record from the store. Calls happen on the async worker threads: an observer must
/// not block (queue the work instead).
pub trait SessionObserver: fmt::Debug + Send + Sync {
    /// A session was created.
    fn session_started(&self, record: &SessionRecord);
    /// A session ended at `at`, for `cause`.
    fn session_ended(&self, record: &SessionRecord, cause: EndCause, at: SystemTime);
}
