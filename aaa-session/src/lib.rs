//! The session manager of **aaa** and its in-memory store.
//!
//! [`SessionManager`] creates sessions with fresh cookies (32 bytes from the OS CSPRNG), files
//! them in a [`SessionStore`](aaa_core::SessionStore) under `SHA-256(cookie)` only, validates
//! them (sliding the idle deadline, checking both deadlines on every read), and keeps a
//! per-process cache so that `validate_session` returns the *same* `Arc<ExosUser>` for a session
//! while it lives. A reaper claims each expired session exactly once, even with many managers on
//! one store. [`MemoryStore`] is the embedded default store.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::Arc;
//! use aaa_core::{Identity, Mechanism};
//! use aaa_session::{MemoryStore, SessionManager};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::builder(Arc::new(MemoryStore::new())).build()?;
//! let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
//! let user = manager.new_user(Identity::new("admin", true), Mechanism::Local, from);
//! let cookie = user.start_session(from).await?;
//!
//! let again = manager.validate_session(cookie.expose()).await?.expect("live");
//! assert!(Arc::ptr_eq(&user, &again));
//! assert_eq!(manager.get_sessions().await?.len(), 1);
//!
//! user.end_session().await?;
//! assert!(manager.validate_session(cookie.expose()).await?.is_none());
//! # Ok::<(), aaa_core::AaaError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod manager;
mod memory;

pub use manager::{ReaperHandle, SessionConfig, SessionManager, SessionManagerBuilder};
pub use memory::MemoryStore;
