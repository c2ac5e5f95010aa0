//! The store conformance suite on `MemoryStore`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::sync::Arc;

use aaa_session::MemoryStore;

testkit::store_conformance!(async { Arc::new(MemoryStore::new()) });

/// A slot ended by someone other than the store (the slots are reachable through the trait)
/// never strands its record: the next claim takes it, and the store forgets it.
#[tokio::test]
async fn a_slot_ended_outside_the_store_is_claimed() {
    use aaa_core::{CreateOutcome, SessionLimits, SessionStore};
    let store = MemoryStore::new();
    let now = testkit::conformance::base_time();
    let r = testkit::conformance::record("alice", now, None, None);
    assert_eq!(
        store.create(&r, &SessionLimits::default()).await.unwrap(),
        CreateOutcome::Created
    );
    let (_, live) = store.live_ref(&r.key, now).unwrap();
    let slots = store.live_slots().unwrap();
    assert!(slots.end(live).is_some());
    let claimed = store.claim_expired(now, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, r.id);
    assert!(store.is_empty());
    assert!(store.remove_by_id(r.id).await.unwrap().is_none());
}
