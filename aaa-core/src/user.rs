//! `ExosUser`: an authenticated user and its session.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{AaaError, CookieHash, Identity, Mechanism, SessionCookie, SessionId};

/// A session as its user holds it in this process.
#[derive(Clone, Debug)]
pub struct ActiveSession {
    /// The cookie (redacted in `Debug`).
    pub cookie: SessionCookie,
    /// SHA-256 of the cookie.
    pub key: CookieHash,
    /// The public id.
    pub id: SessionId,
    /// When it started.
    pub start: SystemTime,
    /// Where it was started from.
    pub src_addr: IpAddr,
}

/// What starts and ends sessions for an [`ExosUser`]: implemented by `aaa_session::SessionManager`.
#[async_trait]
pub trait SessionControl: fmt::Debug + Send + Sync {
    /// Creates a session for `user` in the store.
    async fn start_session(
        &self,
        user: &Arc<ExosUser>,
        src_addr: IpAddr,
    ) -> Result<ActiveSession, AaaError>;
    /// Removes `session` from the store. `SessionDoesNotExist` if it was gone already.
    async fn end_session(&self, user: &ExosUser, session: &ActiveSession) -> Result<(), AaaError>;
}

#[derive(Debug)]
enum State {
    None,
    Starting,
    Active(ActiveSession),
    Ending(ActiveSession),
}

/// An authenticated management user (the seed's `exos.api.ExosUser`).
///
/// Obtained from `Aaa::authenticate_user` or `Aaa::validate_session`, shared as `Arc<ExosUser>`;
/// applications do not construct it. Within one process, `validate_session` returns the same
/// instance for a session while it lives, so [`extensions`](Self::extensions) is a place to
/// keep per-user data.
pub struct ExosUser {
    username: String,
    read_write: bool,
    mechanism: Mechanism,
    auth_src_addr: Option<IpAddr>,
    control: Arc<dyn SessionControl>,
    state: Mutex<State>,
    extensions: Mutex<Extensions>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ExosUser {
    #[doc(hidden)]
    /// Not part of the API: used by `aaa-session` and the facade.
    pub fn __new(
        identity: Identity,
        mechanism: Mechanism,
        auth_src_addr: Option<IpAddr>,
        session: Option<ActiveSession>,
        control: Arc<dyn SessionControl>,
    ) -> Arc<Self> {
        Arc::new(Self {
            username: identity.username,
            read_write: identity.read_write,
            mechanism,
            auth_src_addr,
            control,
            state: Mutex::new(session.map_or(State::None, State::Active)),
            extensions: Mutex::new(Extensions::default()),
        })
    }

    #[doc(hidden)]
    /// Not part of the API: the manager learned that session `id` ended (cleared or expired).
    pub fn __session_gone(&self, id: SessionId) {
        let mut st = lock(&self.state);
        if matches!(&*st, State::Active(s) | State::Ending(s) if s.id == id) {
            *st = State::None;
        }
    }

    /// The user's name.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// True if the user has read/write privileges.
    pub fn read_write(&self) -> bool {
        self.read_write
    }
    /// Which mechanism authenticated the user.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }
    /// The session's source address if a session is active, else the login's.
    pub fn src_addr(&self) -> Option<IpAddr> {
        match &*lock(&self.state) {
            State::Active(s) | State::Ending(s) => Some(s.src_addr),
            _ => self.auth_src_addr,
        }
    }
    /// The session cookie, if a session has been started. Treat it as a password.
    pub fn session_cookie(&self) -> Option<SessionCookie> {
        self.active().map(|s| s.cookie)
    }
    /// When the session started, if one has.
    pub fn session_start(&self) -> Option<SystemTime> {
        self.active().map(|s| s.start)
    }
    /// The session's public id, if a session has been started.
    pub fn session_id(&self) -> Option<SessionId> {
        self.active().map(|s| s.id)
    }
    /// Whether a session is active (as far as this process knows; the store is the authority).
    pub fn has_session(&self) -> bool {
        self.active().is_some()
    }
    fn active(&self) -> Option<ActiveSession> {
        match &*lock(&self.state) {
            State::Active(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The application's per-user data: a map from type to value.
    ///
    /// ```
    /// # fn demo(user: &aaa_core::ExosUser) {
    /// #[derive(Clone)]
    /// struct Theme(&'static str);
    /// user.extensions().insert(Theme("dark"));
    /// assert_eq!(user.extensions().get::<Theme>().map(|t| t.0), Some("dark"));
    /// # }
    /// ```
    pub fn extensions(&self) -> MutexGuard<'_, Extensions> {
        lock(&self.extensions)
    }

    /// Starts a session from `src_addr` and returns its cookie.
    ///
    /// `AaaError::SessionExists` if this user has a session already (or one is being started).
    pub async fn start_session(
        self: &Arc<Self>,
        src_addr: IpAddr,
    ) -> Result<SessionCookie, AaaError> {
        {
            let mut st = lock(&self.state);
            if !matches!(*st, State::None) {
                return Err(AaaError::SessionExists);
            }
            *st = State::Starting;
        }
        // Put the state back if this future is dropped half-way.
        let mut guard = Restore {
            user: self,
            to: Some(State::None),
        };
        let result = self.control.start_session(self, src_addr).await;
        match result {
            Ok(session) => {
                let cookie = session.cookie.clone();
                guard.to = Some(State::Active(session));
                Ok(cookie)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends the session.
    ///
    /// `AaaError::SessionDoesNotExist` if there is none, including when it was cleared or expired
    /// elsewhere (the user's local state is reset either way). If the store fails, the session is
    /// kept and the error returned, so the call can be retried.
    pub async fn end_session(&self) -> Result<(), AaaError> {
        let session = {
            let mut st = lock(&self.state);
            match std::mem::replace(&mut *st, State::None) {
                State::Active(s) => {
                    *st = State::Ending(s.clone());
                    s
                }
                other => {
                    *st = other;
                    return Err(AaaError::SessionDoesNotExist);
                }
            }
        };
        let mut guard = Restore {
            user: self,
            to: Some(State::Active(session.clone())),
        };
        let result = self.control.end_session(self, &session).await;
        match &result {
            Ok(()) | Err(AaaError::SessionDoesNotExist) => guard.to = Some(State::None),
            Err(_) => {}
        }
        result
    }
}

struct Restore<'a> {
    user: &'a ExosUser,
    to: Option<State>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            *lock(&self.user.state) = to;
        }
    }
}

impl fmt::Debug for ExosUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExosUser")
            .field("username", &self.username)
            .field("read_write", &self.read_write)
            .field("mechanism", &self.mechanism)
            .field("session_id", &self.session_id())
            .finish_non_exhaustive()
    }
}

/// A map from type to one value of that type.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b| *b))
    }
    /// A copy of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.get_ref::<T>().cloned()
    }
    /// The value of type `T`.
    pub fn get_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }
    /// The value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| b.downcast_mut())
    }
    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast().ok().map(|b| *b))
    }
    /// How many values.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct Fake {
        fail_end: AtomicBool,
    }

    #[async_trait]
    impl SessionControl for Fake {
        async fn start_session(
            &self,
            _: &Arc<ExosUser>,
            src_addr: IpAddr,
        ) -> Result<ActiveSession, AaaError> {
            let cookie = SessionCookie::generate()?;
            Ok(ActiveSession {
                key: cookie.hash(),
                cookie,
                id: SessionId::from_u64(7),
                start: SystemTime::now(),
                src_addr,
            })
        }
        async fn end_session(&self, _: &ExosUser, _: &ActiveSession) -> Result<(), AaaError> {
            if self.fail_end.load(Ordering::SeqCst) {
                Err(crate::StoreError::bare(crate::StoreErrorKind::Unreachable, "remove").into())
            } else {
                Ok(())
            }
        }
    }

    fn user(fake: Arc<Fake>) -> Arc<ExosUser> {
        ExosUser::__new(
            Identity::new("alice", true),
            Mechanism::Local,
            None,
            None,
            fake,
        )
    }

    const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    #[tokio::test]
    async fn start_twice_is_session_exists_and_end_twice_does_not_exist() {
        let u = user(Arc::default());
        assert!(u.session_cookie().is_none());
        assert!(
            u.end_session()
                .await
                .unwrap_err()
                .is_session_does_not_exist()
        );
        let c = u.start_session(ADDR).await.unwrap();
        assert_eq!(u.session_cookie(), Some(c));
        assert_eq!(u.src_addr(), Some(ADDR));
        assert!(u.start_session(ADDR).await.unwrap_err().is_session_exists());
        u.end_session().await.unwrap();
        assert!(u.session_cookie().is_none());
        assert!(
            u.end_session()
                .await
                .unwrap_err()
                .is_session_does_not_exist()
        );
        // A new session can start after the end.
        u.start_session(ADDR).await.unwrap();
    }

    #[tokio::test]
    async fn failed_end_keeps_the_session() {
        let fake = Arc::new(Fake::default());
        let u = user(fake.clone());
        u.start_session(ADDR).await.unwrap();
        fake.fail_end.store(true, Ordering::SeqCst);
        assert!(u.end_session().await.unwrap_err().is_store());
        assert!(u.has_session());
        fake.fail_end.store(false, Ordering::SeqCst);
        u.end_session().await.unwrap();
        assert!(!u.has_session());
    }

    #[tokio::test]
    async fn debug_hides_the_cookie() {
        let u = user(Arc::default());
        let c = u.start_session(ADDR).await.unwrap();
        let dbg = format!("{u:?}");
        assert!(!dbg.contains(c.expose()));
        assert!(dbg.contains("alice"));
    }

    #[test]
    fn extensions_are_typed() {
        let u = user(Arc::default());
        #[derive(Clone, Debug, PartialEq)]
        struct Counter(u32);
        assert_eq!(u.extensions().insert(Counter(1)), None);
        u.extensions().get_mut::<Counter>().unwrap().0 += 1;
        assert_eq!(u.extensions().get::<Counter>(), Some(Counter(2)));
        assert_eq!(u.extensions().insert(Counter(5)), Some(Counter(2)));
        assert_eq!(u.extensions().remove::<Counter>(), Some(Counter(5)));
        assert!(u.extensions().is_empty());
    }
}
