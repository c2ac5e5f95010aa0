//! The validation reads of a standalone Redis, with server-assisted client-side caching.
//!
//! Each reading task of a store (two per store: see `READERS` in `store.rs`) owns a connection
//! of its own (RESP3, `CLIENT TRACKING ON`) and a cache of the session values it read there;
//! everything below holds per task (a task's cache, barriers and pushes are its connection's).
//! The server remembers which buckets the connection read and, when one of them changes (a
//! create, a touch, a removal, an expiry, in any process), pushes an `invalidate` message on
//! that connection, before anything it answers afterwards.
//!
//! **A cached value is never a validation's positive answer on the strength of the cache
//! alone.** Lookups are sent in batches; every batch that answers one from the cache carries a
//! *barrier* sent after each of its lookups began — `CLIENT
//! GETREDIR` (tracking still on) and `EXISTS {P}v3:barrier` (a key never written: a read that
//! the server refuses whenever it refuses reads, on a replica cut from its master or for an ACL
//! that lost the keys) — and the cached answers are given only once the barrier's replies are
//! in, are both good, and the invalidations that came before them are applied. A change that
//! completed before a validation began (a `clear session` in another process, say) was pushed
//! before that barrier's reply, so its bucket is out of the cache by then: revocation is as
//! strict as a read, and a dead
//! Redis fails every lookup, cached or not (fail closed). What the cache saves is the server
//! work and the client's encoding and parsing of one command and one value per validation:
//! a batch of cached lookups is one small command.
//!
//! Invariants (each checked where the cache changes):
//! - an entry is in the cache only if its bucket was read on the current connection while
//!   tracking was on, and no invalidation of that bucket was applied since that read;
//! - a lost connection, a `Disconnection` push, a barrier that says tracking is off, or a
//!   flush-all invalidation empties the whole cache;
//! - a value read in a batch is cached only if no invalidation of its bucket arrived with the
//!   batch's replies (it might have been the one for a change after the read);
//! - a cached answer whose bucket was invalidated by the batch's barrier is read again;
//! - the one exception to the barrier: a cached value that sends its caller to the validate
//!   script whatever the server holds (`Read::needs_script`: a touch due by the caller's time
//!   and granularity, an expired session, one without timeouts, a value that does not decode)
//!   is answered at once, after the pushes received so far are applied. The script reads the
//!   session itself, atomically: the cached value decides only that the script runs, never
//!   what the validation answers (and a dead server fails the script). A lookup answered so
//!   sends no barrier: every batch applies the pushes received so far before anything else.
//!
//! A server that refuses `CLIENT TRACKING` or `CLIENT GETREDIR` (an ACL without them, a
//! Redis-compatible server without them) gets plain batched reads on the same connection,
//! without a cache.
//!
//! Limits, as for any Redis client-side cache: Redis sends no invalidation for `SWAPDB`, so
//! swapping the store's database under running processes is not supported; and a bucket past
//! its TTL but not yet deleted by Redis may still be answered from the cache — harmless, since
//! every value carries its own deadlines, checked against the caller's clock, and a bucket's
//! TTL runs `grace` past them (`grace` must cover the clock differences between hosts).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aaa_core::CookieHash;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ErrorKind, PushInfo, PushKind, RedisError, ServerErrorKind, Value,
};
use tokio::sync::mpsc;

use crate::codec::{Times, peek};
use crate::error::RedisStoreError;
use crate::store::{BUCKETS, Pending, bucket_of, distinct, fail, gather, in_time};

const OP: &str = "validate";
/// Lookups per batch, at most.
const MAX_LOOKUPS: usize = 256;
/// Values a reading task's cache holds, at most (about 150 bytes each; a store has two such
/// caches, and a session validated by tasks of both halves is in both); past it, values are
/// answered and not kept.
const MAX_CACHED: usize = 100_000;
/// After a failed connection attempt, lookups fail with its error for this long before the
/// next attempt (so that a dead server is not dialled once per batch).
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// Whether a refusal of `CLIENT TRACKING` was logged already (once per process).
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// A session value as read (shared by the cache and the answers), with its id and times
/// parsed once when it was read (`None`: it does not decode).
#[derive(Clone)]
pub(crate) struct Stored {
    bytes: Arc<[u8]>,
    times: Option<Times>,
}

impl Stored {
    /// The value's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<Vec<u8>> for Stored {
    fn from(bytes: Vec<u8>) -> Self {
        let times = peek(&bytes).ok();
        Self {
            bytes: bytes.into(),
            times,
        }
    }
}

/// One validation's read: its item, when its caller stops waiting, and where the value goes.
pub(crate) type Lookup = Pending<Read, Option<Stored>>;

/// What a validation reads: the session's key, and what its caller will do with the value —
/// which values send it to the validate script whatever the server holds now (see
/// [`Read::needs_script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Read {
    pub(crate) key: CookieHash,
    /// The caller's time, in ms.
    pub(crate) now_ms: u64,
    /// Whether the caller touches, and its granularity in ms.
    pub(crate) touch: bool,
    pub(crate) granularity_ms: u64,
}

impl Read {
    /// Whether `value` sends this validation to the validate script rather than answering it
    /// (a touch is due, the session has expired or has no timeouts, the value does not decode):
    /// the script reads the session itself, atomically, so such a value, even cached and not
    /// yet confirmed by a barrier, may be answered at once.
    pub(crate) fn needs_script(&self, value: &Stored) -> bool {
        self.answerable(value).is_none()
    }

    /// The times of `value` if the read answers this validation by itself (a live session
    /// with timeouts and nothing to write); `None` if it goes to the validate script.
    pub(crate) fn answerable(&self, value: &Stored) -> Option<Times> {
        let times = value.times?;
        let script = (times.idle_ms == 0 && times.absolute_ms == 0)
            || times.expired_at(self.now_ms)
            || (self.touch
                && self.now_ms > times.last_ms
                && self.now_ms - times.last_ms >= self.granularity_ms);
        (!script).then_some(times)
    }
}

/// What the reading task needs to open its connections.
pub(crate) struct Settings {
    pub(crate) client: redis::Client,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    /// The operation budget (reported in timeouts).
    pub(crate) budget: Duration,
    /// `{P}v3:s:` — the names of the session buckets start with it.
    pub(crate) bucket_prefix: Vec<u8>,
    /// `{P}v3:barrier`: a key never written, read by every barrier.
    pub(crate) barrier_key: Vec<u8>,
    /// The bucket names, by number.
    pub(crate) buckets: Arc<Vec<Vec<u8>>>,
}

/// The session values read on the current connection and not invalidated since, by bucket.
struct Cache {
    buckets: Vec<Vec<(CookieHash, Stored)>>,
    len: usize,
}

impl Cache {
    fn new() -> Self {
        Self {
            buckets: vec![Vec::new(); usize::from(BUCKETS)],
            len: 0,
        }
    }

    fn get(&self, key: &CookieHash) -> Option<Stored> {
        self.buckets
            .get(usize::from(bucket_of(key)))?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn insert(&mut self, key: CookieHash, value: Stored) {
        let Some(bucket) = self.buckets.get_mut(usize::from(bucket_of(&key))) else {
            return;
        };
        if let Some(slot) = bucket.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else if self.len < MAX_CACHED {
            bucket.push((key, value));
            self.len += 1;
        }
    }

    fn clear_bucket(&mut self, b: u16) {
        if let Some(bucket) = self.buckets.get_mut(usize::from(b)) {
            self.len -= bucket.len();
            bucket.clear();
        }
    }

    fn clear(&mut self) {
        for b in &mut self.buckets {
            b.clear();
        }
        self.len = 0;
    }
}

/// The buckets invalidated by the pushes applied in one batch.
struct Invalidated {
    bits: [u64; BUCKETS as usize / 64],
    all: bool,
}

impl Invalidated {
    fn none() -> Self {
        Self {
            bits: [0; BUCKETS as usize / 64],
            all: false,
        }
    }
    fn add(&mut self, b: u16) {
        if let Some(w) = self.bits.get_mut(usize::from(b / 64)) {
            *w |= 1 << (b % 64);
        }
    }
    fn contains(&self, b: u16) -> bool {
        self.all
            || self
                .bits
                .get(usize::from(b / 64))
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

/// The reading task's connection.
struct Link {
    conn: MultiplexedConnection,
    /// The server's pushes on `conn`, in the order they came with its replies.
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// Whether `CLIENT TRACKING` is on (else: plain reads, no cache).
    tracking: bool,
}

/// The reading task's state.
pub(crate) struct Reader {
    settings: Settings,
    link: Option<Link>,
    cache: Cache,
    /// The last failed connection attempt: when, and its error.
    failed: Option<(Instant, RedisStoreError)>,
}

impl Reader {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            link: None,
            cache: Cache::new(),
            failed: None,
        }
    }

    /// The bucket a pushed key name is, if it is one of this table's session buckets.
    fn bucket_named(&self, name: &[u8]) -> Option<u16> {
        let digits = name.strip_prefix(self.settings.bucket_prefix.as_slice())?;
        let b: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (b < BUCKETS && self.settings.buckets.get(usize::from(b))?.as_slice() == name).then_some(b)
    }

    /// Drops the connection and everything cached from it.
    fn drop_link(&mut self) {
        self.link = None;
        self.cache.clear();
    }

    /// Applies the pushes received so far: drops the invalidated buckets from the cache (all
    /// of it for a flush, a lost connection or a form this code does not know); which buckets
    /// they were.
    fn apply_pushes(&mut self) -> Invalidated {
        let mut pushes = Vec::new();
        if let Some(link) = &mut self.link {
            while let Ok(push) = link.pushes.try_recv() {
                pushes.push(push);
            }
        }
        let mut out = Invalidated::none();
        for push in pushes {
            match (push.kind, push.data.first()) {
                (PushKind::Invalidate, Some(Value::Array(names))) => {
                    for name in names {
                        let name = match name {
                            Value::BulkString(n) => Some(n.as_slice()),
                            Value::SimpleString(n) => Some(n.as_bytes()),
                            _ => None,
                        };
                        match name {
                            Some(n) => {
                                if let Some(b) = self.bucket_named(n) {
                                    out.add(b);
                                    self.cache.clear_bucket(b);
                                }
                            }
                            None => out.all = true,
                        }
                    }
                }
                // A flush of the whole database (no names), or a form this code does not know.
                (PushKind::Invalidate, _) => out.all = true,
                (PushKind::Disconnection, _) => {
                    out.all = true;
                    self.link = None;
                }
                _ => {}
            }
        }
        if out.all {
            self.cache.clear();
        }
        out
    }

    /// Opens a connection and turns tracking on, by `deadline`.
    async fn connect(&mut self, deadline: Instant) -> Result<(), RedisStoreError> {
        if let Some((at, e)) = &self.failed
            && at.elapsed() < RECONNECT_PAUSE
        {
            return Err(e.clone());
        }
        self.drop_link();
        // A timeout because the batch's time ran out says nothing about the server: it is
        // the lookups' timeout, and the next batch tries again at once.
        let cut =
            deadline.saturating_duration_since(Instant::now()) < self.settings.connect_timeout;
        match self.open(deadline).await {
            Ok(link) => {
                self.failed = None;
                self.link = Some(link);
                Ok(())
            }
            Err(RedisStoreError::Timeout { .. }) if cut => Err(RedisStoreError::Timeout {
                operation: OP,
                timeout: self.settings.budget,
            }),
            Err(e) => {
                self.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    async fn open(&self, deadline: Instant) -> Result<Link, RedisStoreError> {
        let s = &self.settings;
        let (tx, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.response_timeout))
            .set_push_sender(tx);
        let budget = s
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let timeout = || RedisStoreError::Timeout {
            operation: "connect",
            timeout: s.connect_timeout,
        };
        let mut conn = tokio::time::timeout(
            budget,
            s.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| timeout())?
        .map_err(|source| RedisStoreError::Redis {
            operation: "connect",
            source,
        })?;
        // Tracking on, and the barrier's first command answered as it must be.
        let mut on = redis::pipe();
        on.cmd("CLIENT").arg("TRACKING").arg("ON").ignore();
        on.cmd("CLIENT").arg("GETREDIR");
        let on = on.query_async::<(i64,)>(&mut conn);
        let tracking = match tokio::time::timeout_at(deadline.into(), on).await {
            Err(_) => return Err(timeout()),
            Ok(Ok((0,))) => true,
            Ok(Ok(_)) => {
                return Err(RedisStoreError::UnexpectedReply {
                    operation: "connect",
                });
            }
            Ok(Err(e)) if refused(&e) => {
                if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target: "aaa::store::redis", error = %e, "the server refused CLIENT TRACKING or CLIENT GETREDIR: validations read every value (no client-side cache)");
                }
                false
            }
            Ok(Err(source)) => {
                return Err(RedisStoreError::Redis {
                    operation: "connect",
                    source,
                });
            }
        };
        Ok(Link {
            conn,
            pushes,
            tracking,
        })
    }

    /// Answers `jobs` within `time_left`: a cached value that sends its caller to the script
    /// at once, the other cached values once a barrier confirms them, the others read; a
    /// lookup whose connection was lost is sent once more on a new one.
    async fn serve(&mut self, mut jobs: Vec<Lookup>, time_left: Duration) {
        let deadline = Instant::now() + time_left;
        let mut resent = false;
        loop {
            // The invalidations come so far first: a cached value answered at once (below)
            // must be the latest this connection has been told of. (Lookups answered at once
            // send no barrier, so without this the pushes of their own touches would wait.)
            self.apply_pushes();
            if self.link.is_none()
                && let Err(e) = self.connect(deadline).await
            {
                fail(jobs, &e);
                return;
            }
            let Some(link) = &mut self.link else {
                fail(jobs, &RedisStoreError::UnexpectedReply { operation: OP });
                return;
            };
            let tracking = link.tracking;
            // A cached value that sends its caller to the validate script anyway (a touch is
            // due, typically) is answered at once: no barrier is needed for it.
            let mut hits: Vec<Option<Stored>> = Vec::with_capacity(jobs.len());
            let mut waiting = Vec::with_capacity(jobs.len());
            for job in jobs {
                match tracking.then(|| self.cache.get(&job.item.key)).flatten() {
                    Some(v) if job.item.needs_script(&v) => job.answer(Ok(Some(v))),
                    hit => {
                        hits.push(hit);
                        waiting.push(job);
                    }
                }
            }
            jobs = waiting;
            if jobs.is_empty() {
                return;
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            if tracking {
                pipe.cmd("CLIENT").arg("GETREDIR");
                pipe.cmd("EXISTS").arg(self.settings.barrier_key.as_slice());
            }
            // One read per distinct key of the lookups not cached (concurrent validations of
            // one session share it); `reads` gives each such lookup, in order, its read.
            let (keys, reads) = distinct(
                jobs.iter()
                    .zip(&hits)
                    .filter(|(_, hit)| hit.is_none())
                    .map(|(job, _)| job.item.key),
            );
            for key in &keys {
                let name = self
                    .settings
                    .buckets
                    .get(usize::from(bucket_of(key)))
                    .map_or(&[][..], Vec::as_slice);
                pipe.cmd("HGET").arg(name).arg(key.as_bytes().as_slice());
            }
            let sent = tokio::time::timeout_at(
                deadline.into(),
                pipe.query_async::<Vec<Value>>(&mut link.conn),
            )
            .await;
            let values = match sent {
                Err(_) => {
                    // The connection may only be slow: it stays, and so does the cache (its
                    // pushes still come in order).
                    let e = RedisStoreError::Timeout {
                        operation: OP,
                        timeout: self.settings.budget,
                    };
                    fail(jobs, &e);
                    return;
                }
                Ok(Err(source)) => {
                    let e = RedisStoreError::Redis {
                        operation: OP,
                        source,
                    };
                    self.drop_link();
                    if e.is_connection_lost() && !resent {
                        resent = true;
                        tracing::debug!(target: "aaa::store::redis", error = %e, "reading connection lost; sending again");
                        continue;
                    }
                    fail(jobs, &e);
                    return;
                }
                Ok(Ok(values)) => values,
            };
            let mut values = values.into_iter();
            if tracking {
                let barrier = match (values.next(), values.next()) {
                    (Some(Value::Int(0)), Some(Value::Int(_))) => Ok(()),
                    // The server refused a read (a replica cut from its master, an ACL, a busy
                    // script…): so does every lookup; the cache stays (its pushes still come).
                    (Some(Value::ServerError(e)), _) | (_, Some(Value::ServerError(e))) => {
                        Err(RedisStoreError::Redis {
                            operation: OP,
                            source: e.into(),
                        })
                    }
                    // Tracking is off (or redirected) on this connection: nothing cached can
                    // be trusted. A new connection turns it on again.
                    _ => {
                        self.drop_link();
                        if !resent {
                            resent = true;
                            continue;
                        }
                        Err(RedisStoreError::UnexpectedReply { operation: OP })
                    }
                };
                if let Err(e) = barrier {
                    fail(jobs, &e);
                    return;
                }
            }
            let invalidated = self.apply_pushes();
            // A link dropped by a `Disconnection` push: what was read is still an answer, but
            // nothing more is cached.
            let caching = tracking && self.link.is_some();
            // Each read's answer, in the order of `keys`.
            let mut answers: Vec<Result<Option<Stored>, RedisStoreError>> = values
                .by_ref()
                .take(keys.len())
                .map(|value| match value {
                    Value::BulkString(v) => Ok(Some(v.into())),
                    Value::Nil => Ok(None),
                    Value::ServerError(e) => Err(RedisStoreError::Redis {
                        operation: OP,
                        source: e.into(),
                    }),
                    _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
                })
                .collect();
            answers.resize_with(keys.len(), || {
                Err(RedisStoreError::UnexpectedReply { operation: OP })
            });
            if caching {
                for (key, answer) in keys.iter().zip(&answers) {
                    if let Ok(Some(v)) = answer
                        && !invalidated.contains(bucket_of(key))
                    {
                        self.cache.insert(*key, v.clone());
                    }
                }
            }
            let mut reads = reads.into_iter();
            let mut again = Vec::new();
            for (job, hit) in jobs.into_iter().zip(hits) {
                let answer = match hit {
                    Some(_) if invalidated.contains(bucket_of(&job.item.key)) => {
                        again.push(job);
                        continue;
                    }
                    Some(v) => Ok(Some(v)),
                    None => reads
                        .next()
                        .and_then(|i| answers.get(i).cloned())
                        .unwrap_or(Err(RedisStoreError::UnexpectedReply { operation: OP })),
                };
                job.answer(answer);
            }
            if again.is_empty() {
                return;
            }
            // Their buckets are out of the cache now: the next round reads them.
            jobs = again;
        }
    }
}

/// Whether the server refuses a command for good (no permission, unknown command), as
/// opposed to a failed connection or a passing state (loading, busy).
fn refused(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::NoPerm) => true,
        ErrorKind::Server(ServerErrorKind::ResponseError) => e
            .detail()
            .is_some_and(|d| d.to_ascii_lowercase().contains("unknown")),
        _ => false,
    }
}

/// The reading task: takes the lookups waiting (up to `MAX_LOOKUPS`), answers them (`serve`:
/// a pipeline, or none when the cache answers them all at once; another when a connection
/// was lost), then the next ones. Ends when the store (the sender) is dropped.
pub(crate) async fn run(mut rx: mpsc::UnboundedReceiver<Lookup>, mut reader: Reader) {
    while let Some(first) = rx.recv().await {
        let jobs = gather(first, &mut rx, MAX_LOOKUPS).await;
        let budget = reader.settings.budget;
        let Some((jobs, time_left)) = in_time(jobs, OP, budget) else {
            continue;
        };
        reader.serve(jobs, time_left).await;
    }
}
