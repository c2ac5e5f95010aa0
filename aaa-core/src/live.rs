//! Live slots: the hot state of the sessions of an in-process store, shared with the session
//! managers that validate them, so a cached session is checked against the store's own state
//! without a lookup in the store.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The state word of a slot whose session ended (or that holds none).
const ENDED: u64 = u64::MAX;
/// The state word keeps the low 16 bits of the incarnation tag next to the activity time.
const TAG_BITS: u32 = 16;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Largest activity time a state word holds (ms since the epoch: year 10889).
const MAX_MS: u64 = (1 << (64 - TAG_BITS)) - 2;
/// Chunk 0 holds `1 << BASE_BITS` slots, chunk `c > 0` holds `1 << (BASE_BITS + c - 1)`.
const BASE_BITS: u32 = 10;
/// Enough chunks for every `u32` index.
const CHUNKS: usize = 33 - BASE_BITS as usize;

/// One session's live state: 32 bytes, two to a cache line.
#[derive(Default)]
#[repr(align(32))]
struct Slot {
    /// `last_ms << 16 | tag & 0xffff` while the session lives, [`ENDED`] once it ended.
    state: AtomicU64,
    /// The incarnation using the slot (0: never used).
    tag: AtomicU64,
    /// Idle timeout in ms (`u64::MAX`: none).
    idle_ms: AtomicU64,
    /// Absolute deadline in ms since the epoch (`u64::MAX`: none).
    absolute_ms: AtomicU64,
}

/// Which slot a session uses, and which incarnation of it: a slot reused by another session
/// never answers for this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveRef {
    index: u32,
    tag: NonZeroU64,
}

#[derive(Default)]
struct Alloc {
    /// Slots handed out so far (free or not).
    len: u32,
    /// Ended slots, reused oldest first.
    free: VecDeque<u32>,
    /// The last incarnation tag given.
    last_tag: u64,
}

/// The live state of the sessions of an in-process store (`aaa_session::MemoryStore`): per
/// session, the last activity, the idle timeout, the absolute deadline and whether it ended, in
/// slots of 32 bytes kept in a few large chunks that never move.
///
/// The store owns it and is the only writer of ends: it ends a slot ([`end`](Self::end),
/// [`end_if_expired`](Self::end_if_expired)) when it removes the session, and reuses it later
/// under a new incarnation tag. Session managers keep a [`LiveRef`] per cached session and
/// [`check`](Self::check) it: one atomic load when no touch is due, a compare-and-swap when one
/// is. Reads take no lock.
pub struct LiveSlots {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    alloc: Mutex<Alloc>,
}

/// Whether a session with these times has expired at `now_ms` (the rule of
/// `SessionRecord::expiry`, in whole milliseconds).
fn expired(last_ms: u64, idle_ms: u64, absolute_ms: u64, now_ms: u64) -> bool {
    (idle_ms != u64::MAX && last_ms.saturating_add(idle_ms) <= now_ms)
        || (absolute_ms != u64::MAX && absolute_ms <= now_ms)
}

fn pack(last_ms: u64, tag: NonZeroU64) -> u64 {
    (last_ms.min(MAX_MS) << TAG_BITS) | (tag.get() & TAG_MASK)
}

/// (chunk, offset in the chunk, chunk length) of slot `index`.
fn locate(index: u32) -> (usize, usize, usize) {
    let i = index as usize;
    if i < 1 << BASE_BITS {
        return (0, i, 1 << BASE_BITS);
    }
    let bits = usize::BITS - 1 - i.leading_zeros();
    let start = 1usize << bits;
    ((bits + 1 - BASE_BITS) as usize, i - start, start)
}

impl LiveSlots {
    /// No slot yet.
    pub fn new() -> Self {
        Self {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            alloc: Mutex::default(),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let (chunk, offset, _) = locate(index);
        self.chunks.get(chunk)?.get()?.get(offset)
    }

    /// A slot for a new live session. `None` once every `u32` index is taken.
    pub fn insert(&self, last_ms: u64, idle_ms: u64, absolute_ms: u64) -> Option<LiveRef> {
        let mut alloc = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match alloc.free.pop_front() {
            Some(i) => i,
            None => {
                let i = alloc.len;
                alloc.len = i.checked_add(1)?;
                i
            }
        };
        alloc.last_tag += 1;
        let tag = NonZeroU64::new(alloc.last_tag)?;
        let (chunk, offset, len) = locate(index);
        let slot = self
            .chunks
            .get(chunk)?
            .get_or_init(|| (0..len).map(|_| Slot::default()).collect())
            .get(offset)?;
        // The tag first, the state last: a reader that sees the new state sees the new tag.
        slot.tag.store(tag.get(), Ordering::Release);
        slot.idle_ms.store(idle_ms, Ordering::Release);
        slot.absolute_ms.store(absolute_ms, Ordering::Release);
        slot.state.store(pack(last_ms, tag), Ordering::Release);
        Some(LiveRef { index, tag })
    }

    /// Whether the session of `r` is live at `now_ms`. With `touch_granularity_ms`, its last
    /// activity is raised to `now_ms` if it is at least that old (never lowered).
    #[inline]
    pub fn check(&self, r: LiveRef, now_ms: u64, touch_granularity_ms: Option<u64>) -> bool {
        let Some(slot) = self.slot(r.index) else {
            return false;
        };
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if state == ENDED || state & TAG_MASK != r.tag.get() & TAG_MASK {
                return false;
            }
            let last = state >> TAG_BITS;
            let idle = slot.idle_ms.load(Ordering::Acquire);
            let absolute = slot.absolute_ms.load(Ordering::Acquire);
            // Read after the state: a tag still ours means the state was ours too.
            if slot.tag.load(Ordering::Acquire) != r.tag.get()
                || expired(last, idle, absolute, now_ms)
            {
                return false;
            }
            match touch_granularity_ms {
                Some(g) if now_ms > last && now_ms - last >= g => {
                    match slot.state.compare_exchange_weak(
                        state,
                        pack(now_ms, r.tag),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        // The state word holds only 16 bits of the tag: if the slot was reused
                        // between the tag check and the swap by a session whose word happened
                        // to equal ours, the swap went through on the newcomer's state. The
                        // tag (visible: the swap read the newcomer's release) tells; then the
                        // slide is undone, if nothing touched the slot since, and ours is gone.
                        Ok(_) if slot.tag.load(Ordering::Acquire) == r.tag.get() => return true,
                        Ok(_) => {
                            let _ = slot.state.compare_exchange(
                                pack(now_ms, r.tag),
                                state,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            );
                            return false;
                        }
                        Err(now_state) => state = now_state,
                    }
                }
                _ => return true,
            }
        }
    }

    /// The last activity of the session of `r` (ms since the epoch), live or expired; `None` if
    /// it ended.
    pub fn last_ms(&self, r: LiveRef) -> Option<u64> {
        let slot = self.slot(r.index)?;
        let state = slot.state.load(Ordering::Acquire);
        (state != ENDED && slot.tag.load(Ordering::Acquire) == r.tag.get())
            .then_some(state >> TAG_BITS)
    }

    /// Whether the session of `r` has expired at `now_ms` (or ended).
    pub fn expired_at(&self, r: LiveRef, now_ms: u64) -> bool {
        let Some(slot) = self.slot(r.index) else {
            return true;
        };
        self.last_ms(r).is_none_or(|last| {
            expired(
                last,
                slot.idle_ms.load(Ordering::Acquire),
                slot.absolute_ms.load(Ordering::Acquire),
                now_ms,
            )
        })
    }

    /// Ends the session of `r` and frees its slot; its last activity, `None` if it had ended.
    /// Only the store calls it, under its own lock, once per session.
    pub fn end(&self, r: LiveRef) -> Option<u64> {
        let slot = self.slot(r.index)?;
        if slot.tag.load(Ordering::Acquire) != r.tag.get() {
            return None;
        }
        let state = slot.state.swap(ENDED, Ordering::AcqRel);
        if state == ENDED {
            return None;
        }
        self.free(r.index);
        Some(state >> TAG_BITS)
    }

    /// As [`end`](Self::end), only if the session has expired at `now_ms` (atomically with
    /// respect to touches: a session slid meanwhile is kept). Its last activity if it ended here.
    pub fn end_if_expired(&self, r: LiveRef, now_ms: u64) -> Option<u64> {
        let slot = self.slot(r.index)?;
        if slot.tag.load(Ordering::Acquire) != r.tag.get() {
            return None;
        }
        let idle = slot.idle_ms.load(Ordering::Acquire);
        let absolute = slot.absolute_ms.load(Ordering::Acquire);
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if state == ENDED || !expired(state >> TAG_BITS, idle, absolute, now_ms) {
                return None;
            }
            match slot.state.compare_exchange_weak(
                state,
                ENDED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.free(r.index);
                    return Some(state >> TAG_BITS);
                }
                Err(now_state) => state = now_state,
            }
        }
    }

    fn free(&self, index: u32) {
        self.alloc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free
            .push_back(index);
    }
}

impl Default for LiveSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LiveSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alloc = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LiveSlots")
            .field("slots", &alloc.len)
            .field("free", &alloc.free.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_index_once() {
        assert_eq!(locate(0), (0, 0, 1024));
        assert_eq!(locate(1023), (0, 1023, 1024));
        assert_eq!(locate(1024), (1, 0, 1024));
        assert_eq!(locate(2047), (1, 1023, 1024));
        assert_eq!(locate(2048), (2, 0, 2048));
        let (c, o, len) = locate(u32::MAX);
        assert_eq!((c, o + 1, len), (CHUNKS - 1, len, 1 << 31));
    }

    #[test]
    fn check_slides_expires_and_ends() {
        let s = LiveSlots::new();
        let r = s.insert(1_000, 500, 10_000).unwrap();
        assert!(s.check(r, 1_200, Some(1_000)));
        assert_eq!(
            s.last_ms(r),
            Some(1_000),
            "within the granularity: no write"
        );
        assert!(s.check(r, 1_400, Some(100)));
        assert_eq!(s.last_ms(r), Some(1_400));
        assert!(!s.check(r, 1_900, None), "idle deadline 1_900 reached");
        assert!(s.expired_at(r, 1_900));
        assert_eq!(s.end_if_expired(r, 1_899), None);
        assert_eq!(s.end_if_expired(r, 1_900), Some(1_400));
        assert_eq!(s.end(r), None, "ended once");
        assert!(!s.check(r, 1_000, None));
    }

    #[test]
    fn a_reused_slot_never_answers_for_the_old_session() {
        let s = LiveSlots::new();
        let a = s.insert(1_000, u64::MAX, u64::MAX).unwrap();
        assert_eq!(s.end(a), Some(1_000));
        let b = s.insert(1_000, u64::MAX, u64::MAX).unwrap();
        assert_eq!(a.index, b.index);
        assert!(!s.check(a, 2_000, Some(0)));
        assert!(s.check(b, 2_000, None));
        assert_eq!(s.last_ms(b), Some(1_000), "a's check did not touch b");
        assert_eq!(s.end(a), None);
        assert!(s.check(b, 2_000, None));
    }

    #[test]
    fn absolute_deadline_and_many_chunks() {
        let s = LiveSlots::new();
        let refs: Vec<LiveRef> = (0..5_000)
            .map(|i| s.insert(i, u64::MAX, 10_000 + i).unwrap())
            .collect();
        for (i, r) in (0u64..).zip(&refs) {
            assert!(s.check(*r, 10_000 + i - 1, Some(1)));
            assert!(!s.check(*r, 10_000 + i, None));
        }
    }
}
