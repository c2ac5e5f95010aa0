//! `RedisStore`: the connection, the keys, and the `SessionStore` operations.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use aaa_core::{
    AaaError, CookieHash, CreateOutcome, SessionId, SessionLimits, SessionRecord, SessionStore,
    StoreError, StoreErrorKind, async_trait, unix_ms,
};
use rand::TryRng as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion,
    RedisConnectionInfo, RedisFuture, ScriptInvocation, Value,
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::codec::{MAX_MS, decode, encode, key_of};
use crate::config::RedisConfig;
use crate::error::RedisStoreError;
use crate::scripts::{
    CLAIM_SCRIPT, CONTAINS_SCRIPT, CREATE_SCRIPT, LIST_PAGE_SCRIPT, REMOVE_BY_ID_SCRIPT,
    REMOVE_SCRIPT, VALIDATE_SCRIPT,
};
use crate::tracker::{self, Lookup, Read, Reader, Settings, Stored};

/// Buckets per table (of sessions and of the id index alike): a layout constant, the same in
/// every process (the scripts hold it too). With up to 64 sessions in a bucket (a session and
/// its index entry are two fields) every bucket stays a compactly stored hash: all of them,
/// in all likelihood, up to about 150,000 sessions in a table (they spread unevenly).
pub(crate) const BUCKETS: u16 = 4096;
/// The layout's version, after the hash tag in every key name (see `Keys::base`). Version 3:
/// the id index in the session buckets (2: in hashes of its own; 1: a key per session).
const LAYOUT: &str = "v3:";
/// Keys per `contains` script call.
const PAGE: usize = 1000;
/// Session buckets per `list` script call: with 100,000 sessions a page is ~800 of them, a
/// few ms of the server's time.
const LIST_BUCKETS: u16 = 32;
/// `list` script calls in flight at once. Each call's answer must come within the response
/// timeout, counted from when it is sent: with every page sent at once, the last would wait
/// for all the others (0.4 s for 100,000 sessions, past a 500 ms timeout on a busy server),
/// and every other caller's command would wait behind them all.
const LIST_IN_FLIGHT: usize = 4;
/// Operation budgets a whole listing gets.
const LIST_BUDGETS: u32 = 4;
/// How many times the connection manager retries a lost connection before failing the
/// commands that wait for it (the next command starts a new attempt).
const RECONNECT_RETRIES: usize = 2;
/// The shortest time a removed session stays marked removed (see `Shared::gone_ms`).
const GONE_MIN: Duration = Duration::from_secs(10);
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(200);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The key names of one prefix. Every key starts with the hash tag `{prefix}`, so all of a
/// session table lives in one cluster slot and each operation is one script.
#[derive(Debug, Clone)]
struct Keys {
    /// `{P}v3:`: the hash tag, then the layout's version. The scripts build every other name
    /// from it; a change of layout changes the version, so that processes of different
    /// layouts sharing a prefix never read each other's keys as their own.
    base: Vec<u8>,
    /// `{P}v3:due` — sorted set: session bucket number, scored by a lower bound of the earliest
    /// deadline in that bucket (ms). `KEYS[1]` of every script: it routes calls on a cluster.
    due: Vec<u8>,
    /// `{P}v3:s:<b>` for every bucket `b`: hashes of the sessions (32-byte key → value) and of
    /// the id index (8-byte id → 32-byte key).
    buckets: Arc<Vec<Vec<u8>>>,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let base = format!("{{{prefix}}}{LAYOUT}");
        Self {
            due: format!("{base}due").into_bytes(),
            buckets: Arc::new(
                (0..BUCKETS)
                    .map(|b| format!("{base}s:{b}").into_bytes())
                    .collect(),
            ),
            base: base.into_bytes(),
        }
    }
    /// The name of the hash that holds the session under `key`.
    fn bucket(&self, key: &CookieHash) -> &[u8] {
        self.buckets
            .get(usize::from(bucket_of(key)))
            .map_or(&[], Vec::as_slice)
    }
    /// The name of the hash that maps `id` to its session's key (for the ids this store makes,
    /// the bucket of the session itself).
    fn id_bucket(&self, id: SessionId) -> &[u8] {
        self.buckets
            .get(usize::from(id_bucket(id)))
            .map_or(&[], Vec::as_slice)
    }
}

/// The bucket of a session key: its first two bytes, mod `BUCKETS` (as the scripts compute it).
pub(crate) fn bucket_of(key: &CookieHash) -> u16 {
    let &[b0, b1, ..] = key.as_bytes();
    u16::from_be_bytes([b0, b1]) % BUCKETS
}

/// The bucket of a session id: its last two bytes, mod `BUCKETS` (as the scripts compute it).
pub(crate) fn id_bucket(id: SessionId) -> u16 {
    (id.as_u64() % 65536) as u16 % BUCKETS
}

/// A fresh random id for the session under `key`, whose low 12 bits are the key's bucket, so
/// that `id_bucket(id) == bucket_of(key)`: the session and its id's index entry then share one
/// hash, and a create touches one key. (20 random bits within a bucket holding 1/4096 of the
/// sessions: duplicates are as rare as with 32 random bits; `create` refuses them either way.)
pub(crate) fn id_for(key: &CookieHash) -> Result<SessionId, AaaError> {
    let random = SessionId::generate()?.as_u64();
    Ok(SessionId::from_u64(
        (random & !u64::from(BUCKETS - 1)) | u64::from(bucket_of(key)),
    ))
}

/// A standalone connection (reconnecting, multiplexed) or a cluster connection.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What a standalone store needs to replace a connection manager that gave up.
struct Rebuild {
    client: redis::Client,
    manager: ConnectionManagerConfig,
    last: Mutex<Option<Instant>>,
}

/// A [`SessionStore`] on Redis or Redis Cluster, shared by every process that connects with
/// the same prefix. See the [crate documentation](crate) for the key layout, the encoding and
/// the failure behaviour.
pub struct RedisStore {
    shared: Arc<Shared>,
    /// Where validations queue to be sent together (one script call for many); `None` if the
    /// batching tasks could not be started.
    batcher: Option<mpsc::UnboundedSender<Job>>,
    /// Where the read-only first steps of validations queue to be sent together (one pipeline
    /// of `HGET`s for many; on a standalone server, through the client-side cache of
    /// [`tracker`]): one queue, or on a standalone server `READERS` (empty if the batching
    /// tasks could not be started).
    readers: Vec<mpsc::UnboundedSender<Lookup>>,
    /// Where creates queue to be sent together (one script call for many).
    creator: Option<mpsc::UnboundedSender<CreateJob>>,
}

/// What the store and its batching task share.
struct Shared {
    config: RedisConfig,
    keys: Keys,
    conn: RwLock<Conn>,
    rebuild: Option<Rebuild>,
    /// The random half of this store's call nonces (see `Shared::nonce`).
    nonce_base: [u8; 8],
    /// The calls that took a nonce so far: the other half.
    nonces: AtomicU64,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.shared.config;
        f.debug_struct("RedisStore")
            .field("url", c.url())
            .field("prefix", &c.prefix())
            .field("connect_timeout", &c.connect_timeout())
            .field("response_timeout", &c.response_timeout())
            .finish_non_exhaustive()
    }
}

/// A job of a batching task: what to send, when its caller stops waiting, and where its
/// answer goes.
pub(crate) struct Pending<I, A> {
    pub(crate) item: I,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<Result<A, RedisStoreError>>,
}

impl<I, A> Pending<I, A> {
    /// Whether its caller gave up waiting (it timed out): such a job is not sent.
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
    /// Hands the caller its answer.
    pub(crate) fn answer(self, answer: Result<A, RedisStoreError>) {
        let _ = self.reply.send(answer);
    }
}

/// One validation waiting to be sent: its 49-byte item of the validate script.
type Job = Pending<[u8; ITEM], Value>;
/// A create waiting to be sent: its item of the create script's argument.
type CreateJob = Pending<CreateItem, u8>;

/// Answers the jobs whose deadline passed while they waited with a timeout (they are not
/// sent); the others, and the time until the latest of their deadlines (the batch's budget:
/// each caller stops waiting at its own). `None` if none is left.
pub(crate) fn in_time<I, A>(
    jobs: Vec<Pending<I, A>>,
    operation: &'static str,
    budget: Duration,
) -> Option<(Vec<Pending<I, A>>, Duration)> {
    let now = Instant::now();
    let mut jobs = jobs;
    // In place: the late ones are rare, and their vector is empty (no allocation) without them.
    let late: Vec<_> = jobs.extract_if(.., |j| j.deadline <= now).collect();
    fail(
        late,
        &RedisStoreError::Timeout {
            operation,
            timeout: budget,
        },
    );
    let last = jobs.iter().map(|j| j.deadline).max()?;
    Some((jobs, last.saturating_duration_since(now)))
}

/// A batch's result, its timeout (if any) reported with the operation's own budget.
fn with_budget<T>(r: Result<T, RedisStoreError>, budget: Duration) -> Result<T, RedisStoreError> {
    match r {
        Err(RedisStoreError::Timeout { operation, .. }) => Err(RedisStoreError::Timeout {
            operation,
            timeout: budget,
        }),
        other => other,
    }
}

/// Hands each job its entry of a batch's replies (one per job), or the batch's error.
fn deliver<I, A>(
    jobs: Vec<Pending<I, A>>,
    replies: Result<Vec<A>, RedisStoreError>,
    operation: &'static str,
) {
    match replies {
        Ok(replies) if replies.len() == jobs.len() => {
            for (job, reply) in jobs.into_iter().zip(replies) {
                job.answer(Ok(reply));
            }
        }
        Ok(_) => fail(jobs, &RedisStoreError::UnexpectedReply { operation }),
        Err(e) => fail(jobs, &e),
    }
}

/// The distinct ones of `keys`, in order of first appearance, and for each key the index of
/// its distinct one: jobs with the same key share one request and its answer.
pub(crate) fn distinct<K: Copy + Eq + Hash>(keys: impl Iterator<Item = K>) -> (Vec<K>, Vec<usize>) {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut distinct = Vec::new();
    let at = keys
        .map(|k| {
            *index.entry(k).or_insert_with(|| {
                distinct.push(k);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, at)
}

/// Answers each job with the reply to its key: `sent` keys were sent, and `at` gives each
/// job's (what `distinct` gave); a reply of another length answers none.
fn deliver_shared<I, A: Clone>(
    jobs: Vec<Pending<I, A>>,
    replies: Result<Vec<A>, RedisStoreError>,
    sent: usize,
    at: &[usize],
    operation: &'static str,
) {
    match replies {
        Ok(replies) if replies.len() == sent && jobs.len() == at.len() => {
            for (job, &i) in jobs.into_iter().zip(at) {
                match replies.get(i) {
                    Some(reply) => job.answer(Ok(reply.clone())),
                    None => job.answer(Err(RedisStoreError::UnexpectedReply { operation })),
                }
            }
        }
        Ok(_) => fail(jobs, &RedisStoreError::UnexpectedReply { operation }),
        Err(e) => fail(jobs, &e),
    }
}

/// Answers every job with `e`.
pub(crate) fn fail<I, A>(jobs: Vec<Pending<I, A>>, e: &RedisStoreError) {
    for job in jobs {
        job.answer(Err(e.clone()));
    }
}

/// Bytes per validation item: member 32, now 8, granularity 8, flags 1.
const ITEM: usize = 49;
/// Validations per script call, at most.
const MAX_BATCH: usize = 64;
/// Script calls of validations in flight at once; while they are, new validations queue and
/// go out together in the next call.
const MAX_IN_FLIGHT: usize = 4;
/// Script calls of creates in flight at once: fewer than for reads, as a create costs the
/// server more than the call around it, so that creates gather into larger calls.
const CREATES_IN_FLIGHT: usize = 2;

fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

fn connection_info(
    config: &RedisConfig,
    host: &str,
    port: u16,
) -> Result<ConnectionInfo, RedisStoreError> {
    let url = config.url();
    let addr = if url.is_tls() {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    };
    let mut redis = RedisConnectionInfo::default()
        .set_protocol(ProtocolVersion::RESP3)
        .set_db(i64::from(url.db()));
    if let Some(user) = url.username() {
        redis = redis.set_username(user);
    }
    if let Some(password) = url.password() {
        redis = redis.set_password(password);
    }
    let info = addr
        .into_connection_info()
        .map_err(|source| RedisStoreError::Connect {
            target: url.to_string(),
            source,
        })?;
    Ok(info
        .set_tcp_settings(tcp_settings())
        .set_redis_settings(redis))
}

#[cfg(feature = "tls")]
fn tls_certificates(root_ca_pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_ca_pem.to_vec()),
    }
}

#[cfg(feature = "tls")]
fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RedisStore {
    /// Connects to the Redis server or cluster of `config`.
    ///
    /// Fails within `connect_timeout` if no connection can be made: `RedisStoreError::Connect`
    /// (refused, authentication failed, …) or `RedisStoreError::Timeout`; either way
    /// [`kind`](RedisStoreError::kind) tells whether the server was unreachable. After this
    /// returns, the store reconnects by itself whenever the connection is lost. Must be called
    /// within a tokio runtime, which then carries the store's connection.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisStoreError> {
        config.check()?;
        #[cfg(feature = "tls")]
        install_crypto_provider();
        let budget = config.connect_timeout();
        let (conn, rebuild) = match tokio::time::timeout(budget, open(&config)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(RedisStoreError::Timeout {
                    operation: "connect",
                    timeout: budget,
                });
            }
        };
        tracing::debug!(target: "aaa::store::redis", url = %config.url(), prefix = config.prefix(), "connected");
        let mut nonce_base = [0u8; 8];
        rand::rngs::SysRng
            .try_fill_bytes(&mut nonce_base)
            .map_err(RedisStoreError::Entropy)?;
        let shared = Arc::new(Shared {
            keys: Keys::new(config.prefix()),
            config,
            conn: RwLock::new(conn),
            rebuild,
            nonce_base,
            nonces: AtomicU64::new(0),
        });
        let (batcher, readers, creator) = match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let s = shared.clone();
                rt.spawn(batches(rx, MAX_IN_FLIGHT, move |jobs| {
                    validate_jobs(s.clone(), jobs)
                }));
                let readers = match &shared.rebuild {
                    Some(rebuild) => (0..READERS)
                        .map(|_| {
                            let (read_tx, read_rx) = mpsc::unbounded_channel();
                            let c = &shared.config;
                            let reader = Reader::new(Settings {
                                client: rebuild.client.clone(),
                                connect_timeout: c.connect_timeout(),
                                response_timeout: c.response_timeout(),
                                budget: c.operation_timeout(),
                                bucket_prefix: [shared.keys.base.as_slice(), b"s:"].concat(),
                                barrier_key: [shared.keys.base.as_slice(), b"barrier"].concat(),
                                buckets: shared.keys.buckets.clone(),
                            });
                            rt.spawn(tracker::run(read_rx, reader));
                            read_tx
                        })
                        .collect(),
                    None => {
                        let (read_tx, read_rx) = mpsc::unbounded_channel();
                        let s = shared.clone();
                        rt.spawn(batches(read_rx, MAX_IN_FLIGHT, move |jobs| {
                            read_jobs(s.clone(), jobs)
                        }));
                        vec![read_tx]
                    }
                };
                let (create_tx, create_rx) = mpsc::unbounded_channel();
                let s = shared.clone();
                rt.spawn(batches(create_rx, CREATES_IN_FLIGHT, move |jobs| {
                    create_jobs(s.clone(), jobs)
                }));
                (Some(tx), readers, Some(create_tx))
            }
            Err(_) => (None, Vec::new(), None),
        };
        Ok(Self {
            shared,
            batcher,
            readers,
            creator,
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// Checks that Redis answers (on the node that serves this prefix, for a cluster).
    pub async fn ping(&self) -> Result<(), RedisStoreError> {
        // A keyed command, so that on a cluster it reaches the node of this prefix.
        let cmd = redis::cmd("EXISTS").arg(&self.shared.keys.due).clone();
        let _: i64 = self.shared.query("ping", &cmd).await?;
        Ok(())
    }

    /// A validation, within one operation budget whether it needs one call or two.
    async fn validate_inner(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        granularity: Duration,
        id_only: bool,
    ) -> Result<Option<Validated>, RedisStoreError> {
        let budget = self.shared.config.operation_timeout();
        let deadline = Instant::now() + budget;
        // Fast path: a read (sent with the other reads waiting on its reading task, in one
        // pipeline) answers
        // most validations: those that need no write because the session was touched less
        // than `granularity` ago (or `touch` is off) and whose deadlines are in the value
        // itself. Anything else — a touch due, no timeouts, an expired or missing session, a
        // value that does not decode — goes through the validate script, which decides
        // atomically. A read never recreates anything. Both steps share one time budget: the
        // read's batch is sent only within it, the script within what is left.
        if let Some(answer) = self
            .validate_read_only(key, deadline, now, touch, granularity, id_only)
            .await?
        {
            return Ok(Some(answer));
        }
        // Boxed: the script is the rare path, and its future would otherwise make every
        // validation's future (boxed by the trait on each call) three times as large.
        match tokio::time::timeout_at(
            deadline.into(),
            Box::pin(self.validate_steps(key, now, touch, granularity, id_only)),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RedisStoreError::Timeout {
                operation: "validate",
                timeout: budget,
            }),
        }
    }

    async fn validate_steps(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        granularity: Duration,
        id_only: bool,
    ) -> Result<Option<Validated>, RedisStoreError> {
        const OP: &str = "validate";
        let mut item = [0u8; ITEM];
        let (member, rest) = item.split_at_mut(32);
        member.copy_from_slice(key.as_bytes());
        let (now_bytes, rest) = rest.split_at_mut(8);
        now_bytes.copy_from_slice(&unix_ms(now).min(MAX_MS).to_be_bytes());
        let (gran_bytes, flags) = rest.split_at_mut(8);
        gran_bytes.copy_from_slice(&ms(granularity).to_be_bytes());
        if let Some(f) = flags.first_mut() {
            *f = u8::from(touch) | (u8::from(id_only) << 1);
        }
        let reply = self.validation(item).await?;
        match reply {
            Value::Nil => Ok(None),
            Value::BulkString(id) if id_only => {
                let id = <[u8; 8]>::try_from(id.as_slice())
                    .map_err(|_| RedisStoreError::UnexpectedReply { operation: OP })?;
                Ok(Some(Validated::Id(SessionId::from_u64(
                    u64::from_be_bytes(id),
                ))))
            }
            Value::BulkString(v) => {
                let record = decode(*key, &v)?;
                // The script said live; the decoded record must agree.
                Ok(record.is_live(now).then_some(Validated::Record(record)))
            }
            // A value the script found malformed: decoding says how.
            Value::Array(items) => match items.as_slice() {
                [Value::BulkString(v)] => {
                    decode(*key, v)?;
                    Err(RedisStoreError::UnexpectedReply { operation: OP })
                }
                _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
            },
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    /// The read-only part of a validation: `Some` when a plain `HGET` settles it as live with
    /// nothing to write; `None` when the script must decide.
    async fn validate_read_only(
        &self,
        key: &CookieHash,
        deadline: Instant,
        now: SystemTime,
        touch: bool,
        granularity: Duration,
        id_only: bool,
    ) -> Result<Option<Validated>, RedisStoreError> {
        let read = Read {
            key: *key,
            now_ms: unix_ms(now).min(MAX_MS),
            touch,
            granularity_ms: ms(granularity),
        };
        let value = self.read(read, deadline).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        // Anything but a live session with nothing to write is for the script to decide (and
        // a value that does not decode for the script, and then `decode`, to report).
        let Some(times) = read.answerable(&value) else {
            return Ok(None);
        };
        Ok(Some(if id_only {
            Validated::Id(times.id)
        } else {
            Validated::Record(decode(*key, value.bytes())?)
        }))
    }

    /// The reading queue of the calling task: always the same one for a task (each reading
    /// task batches the lookups of its own set of tasks; see `READERS`); the first one
    /// outside a task.
    fn reader(&self) -> Option<&mpsc::UnboundedSender<Lookup>> {
        let n = self.readers.len();
        let i = match tokio::task::try_id() {
            Some(id) if n > 1 => {
                let mut h = TaskIdHasher(0);
                id.hash(&mut h);
                usize::try_from(h.finish() % n as u64).unwrap_or(0)
            }
            _ => 0,
        };
        self.readers.get(i)
    }

    /// The value under the key of `read`, read with whichever other reads are waiting (one
    /// pipeline); or, when the value cached says that the validation goes to the script
    /// anyway, that value at once (see `Read::needs_script`).
    async fn read(&self, read: Read, deadline: Instant) -> Result<Option<Stored>, RedisStoreError> {
        const OP: &str = "validate";
        let key = &read.key;
        if let Some(tx) = self.reader() {
            let (reply, answer) = oneshot::channel();
            let job = Lookup {
                item: read,
                deadline,
                reply,
            };
            // The batching task sends a read only while there is time left; the caller waits
            // for its answer until its own deadline (the batch may run longer for others).
            if tx.send(job).is_ok() {
                return within(deadline, OP, self.shared.config.operation_timeout(), answer).await;
            }
        }
        let cmd = redis::cmd("HGET")
            .arg(self.shared.keys.bucket(key))
            .arg(key.as_bytes().as_slice())
            .clone();
        // Boxed: without a reading task (a store connected outside a runtime) only.
        match tokio::time::timeout_at(deadline.into(), Box::pin(self.shared.query(OP, &cmd))).await
        {
            Ok(r) => r.map(|v: Option<Vec<u8>>| v.map(Stored::from)),
            Err(_) => Err(RedisStoreError::Timeout {
                operation: OP,
                timeout: self.shared.config.operation_timeout(),
            }),
        }
    }

    /// One validation, sent with whichever others are waiting; its entry of the script's reply.
    async fn validation(&self, item: [u8; ITEM]) -> Result<Value, RedisStoreError> {
        const OP: &str = "validate";
        let budget = self.shared.config.operation_timeout();
        if let Some(tx) = &self.batcher {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                item,
                deadline: Instant::now() + budget,
                reply,
            };
            if tx.send(job).is_ok() {
                return match tokio::time::timeout(budget, answer).await {
                    Ok(Ok(r)) => r,
                    // The batching task is gone (its runtime shut down): no answer will come.
                    Ok(Err(_)) => Err(RedisStoreError::UnexpectedReply { operation: OP }),
                    Err(_) => Err(RedisStoreError::Timeout {
                        operation: OP,
                        timeout: budget,
                    }),
                };
            }
        }
        let mut replies = self.shared.validate_batch(&item).await?.into_iter();
        match (replies.next(), replies.next()) {
            (Some(v), None) => Ok(v),
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    /// A create, and should it fail once sent (timed out, connection lost, any error: whether
    /// Redis ran it is unknown), its undoing: a session its caller was told was not made
    /// would otherwise be listed, and count against the limits, until its idle deadline.
    async fn create_inner(
        &self,
        record: &SessionRecord,
        limits: &SessionLimits,
    ) -> Result<CreateOutcome, RedisStoreError> {
        let item = CreateItem::new(record, limits, &self.shared)?;
        let result = self.send_create(item).await;
        if result.is_err() {
            let shared = self.shared.clone();
            let (key, id) = (record.key, record.id);
            // Sending took the runtime's timers: there is one.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                drop(rt.spawn(async move { shared.undo_create(key, id).await }));
            }
        }
        result
    }

    async fn send_create(&self, item: CreateItem) -> Result<CreateOutcome, RedisStoreError> {
        const OP: &str = "create";
        let budget = self.shared.config.operation_timeout();
        let deadline = Instant::now() + budget;
        let item = match &self.creator {
            Some(tx) => {
                let (reply, answer) = oneshot::channel();
                let job = CreateJob {
                    item,
                    deadline,
                    reply,
                };
                // The batching task answers within the deadline, as for reads.
                match tx.send(job) {
                    Ok(()) => {
                        return outcome(within(deadline, OP, budget, answer).await?);
                    }
                    Err(mpsc::error::SendError(job)) => job.item,
                }
            }
            None => item,
        };
        let mut answers = self.shared.create_batch(&[&item], budget).await?;
        outcome(
            answers
                .pop()
                .ok_or(RedisStoreError::UnexpectedReply { operation: OP })?,
        )
    }

    async fn remove_inner(
        &self,
        key: &CookieHash,
    ) -> Result<Option<SessionRecord>, RedisStoreError> {
        const OP: &str = "remove";
        match self.shared.remove(OP, key, None).await? {
            Value::Nil => Ok(None),
            Value::BulkString(v) => decode(*key, &v).map(Some),
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    async fn remove_by_id_inner(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, RedisStoreError> {
        const OP: &str = "remove_by_id";
        let keys = &self.shared.keys;
        let mut inv = REMOVE_BY_ID_SCRIPT.prepare_invoke();
        inv.key(&keys.due)
            .arg(&keys.base)
            .arg(id.as_u64().to_be_bytes().as_slice())
            .arg(self.shared.gone_ms())
            .arg(self.shared.nonce().as_slice());
        match self.shared.invoke(OP, &inv).await? {
            Value::Nil => Ok(None),
            Value::Array(items) => match items.as_slice() {
                [Value::BulkString(m), Value::BulkString(v)] => decode(key_of(m)?, v).map(Some),
                _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
            },
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    /// Every live session: the pages of buckets are read `LIST_IN_FLIGHT` at a time (one
    /// script call each), within one deadline: `LIST_BUDGETS` operation budgets, as a listing
    /// reads the whole table (100,000 sessions: 0.3 s).
    async fn list_inner(&self, now: SystemTime) -> Result<Vec<SessionRecord>, RedisStoreError> {
        const OP: &str = "list";
        let budget = self.shared.config.operation_timeout() * LIST_BUDGETS;
        let deadline = Instant::now() + budget;
        let now_ms = unix_ms(now).min(MAX_MS);
        let mut pages = tokio::task::JoinSet::new();
        let mut froms = (0..BUCKETS).step_by(usize::from(LIST_BUCKETS));
        let spawn_next = |pages: &mut tokio::task::JoinSet<_>, froms: &mut std::iter::StepBy<_>| {
            if let Some(from) = froms.next() {
                let shared = self.shared.clone();
                pages.spawn(async move { shared.list_page(from, now_ms, deadline).await });
            }
        };
        for _ in 0..LIST_IN_FLIGHT {
            spawn_next(&mut pages, &mut froms);
        }
        let mut out = Vec::new();
        let mut corrupt = 0usize;
        while let Some(page) = pages.join_next().await {
            spawn_next(&mut pages, &mut froms);
            let page = page.map_err(|_| RedisStoreError::UnexpectedReply { operation: OP })?;
            let (records, bad) = records_of(page?, OP)?;
            // The script said live; the decoded record must agree.
            out.extend(records.into_iter().filter(|r| r.is_live(now)));
            corrupt += bad;
        }
        if corrupt > 0 {
            tracing::warn!(target: "aaa::store::redis", prefix = self.shared.config.prefix(), corrupt, "list skipped session values that cannot be decoded");
        }
        Ok(out)
    }

    async fn claim_inner(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<SessionRecord>, RedisStoreError> {
        const OP: &str = "claim_expired";
        if max == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.shared.keys;
        let mut inv = CLAIM_SCRIPT.prepare_invoke();
        inv.key(&keys.due)
            .arg(&keys.base)
            .arg(unix_ms(now).min(MAX_MS))
            .arg(max)
            .arg(self.shared.backstop_ms())
            .arg(self.shared.gone_ms())
            .arg(self.shared.nonce().as_slice());
        let Value::Array(items) = self.shared.invoke(OP, &inv).await? else {
            return Err(RedisStoreError::UnexpectedReply { operation: OP });
        };
        let (out, corrupt) = records_of(items, OP)?;
        if corrupt > 0 {
            // Claimed and removed like the others, but nothing can be reported about them.
            tracing::warn!(target: "aaa::store::redis", prefix = self.shared.config.prefix(), corrupt, "claimed expired session values that cannot be decoded");
        }
        Ok(out)
    }

    async fn contains_inner(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, RedisStoreError> {
        const OP: &str = "contains";
        // However many keys, one deadline (as for a listing).
        let budget = self.shared.config.operation_timeout() * LIST_BUDGETS;
        match tokio::time::timeout(budget, self.contains_steps(keys, now)).await {
            Ok(r) => r,
            Err(_) => Err(RedisStoreError::Timeout {
                operation: OP,
                timeout: budget,
            }),
        }
    }

    async fn contains_steps(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, RedisStoreError> {
        const OP: &str = "contains";
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PAGE) {
            let mut packed = Vec::with_capacity(chunk.len() * 32);
            for k in chunk {
                packed.extend_from_slice(k.as_bytes());
            }
            let mut inv = CONTAINS_SCRIPT.prepare_invoke();
            inv.key(&self.shared.keys.due)
                .arg(&self.shared.keys.base)
                .arg(unix_ms(now).min(MAX_MS))
                .arg(self.shared.backstop_ms())
                .arg(packed);
            let live: Vec<i64> = match self.shared.invoke(OP, &inv).await? {
                Value::Array(v) => v
                    .into_iter()
                    .map(|x| match x {
                        Value::Int(i) => Ok(i),
                        _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(RedisStoreError::UnexpectedReply { operation: OP }),
            };
            if live.len() != chunk.len() {
                return Err(RedisStoreError::UnexpectedReply { operation: OP });
            }
            out.extend(live.into_iter().map(|l| l == 1));
        }
        Ok(out)
    }
}

/// The records of a script's `{key, value, key, value, …}` reply, and how many values did not
/// decode (skipped: the caller reports them).
fn records_of(
    items: Vec<Value>,
    operation: &'static str,
) -> Result<(Vec<SessionRecord>, usize), RedisStoreError> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut corrupt = 0;
    let mut items = items.into_iter();
    while let (Some(m), Some(v)) = (items.next(), items.next()) {
        let (Value::BulkString(m), Value::BulkString(v)) = (m, v) else {
            return Err(RedisStoreError::UnexpectedReply { operation });
        };
        match key_of(&m).and_then(|k| decode(k, &v)) {
            Ok(r) => out.push(r),
            Err(_) => corrupt += 1,
        }
    }
    Ok((out, corrupt))
}

/// The answer a batching task sends on `answer`, awaited until `deadline`: a timeout after it
/// (the job may still run, for a create as for any call whose answer did not come in time).
async fn within<T>(
    deadline: Instant,
    operation: &'static str,
    budget: Duration,
    answer: oneshot::Receiver<Result<T, RedisStoreError>>,
) -> Result<T, RedisStoreError> {
    match tokio::time::timeout_at(deadline.into(), answer).await {
        Ok(Ok(r)) => r,
        // The batching task is gone (its runtime shut down): no answer will come.
        Ok(Err(_)) => Err(RedisStoreError::UnexpectedReply { operation }),
        Err(_) => Err(RedisStoreError::Timeout {
            operation,
            timeout: budget,
        }),
    }
}

/// What the create script answered for one session.
fn outcome(answer: u8) -> Result<CreateOutcome, RedisStoreError> {
    match answer {
        b'o' => Ok(CreateOutcome::Created),
        b'k' => Ok(CreateOutcome::KeyTaken),
        b'i' => Ok(CreateOutcome::IdTaken),
        b'u' => Ok(CreateOutcome::UserLimit),
        b't' => Ok(CreateOutcome::TotalLimit),
        _ => Err(RedisStoreError::UnexpectedReply {
            operation: "create",
        }),
    }
}

/// One session to create: its item of the create script's argument (see `CREATE`).
struct CreateItem {
    packed: Vec<u8>,
    /// When the session expires (ms since the epoch).
    deadline: u64,
}

impl CreateItem {
    fn new(
        record: &SessionRecord,
        limits: &SessionLimits,
        shared: &Shared,
    ) -> Result<Self, RedisStoreError> {
        let now = unix_ms(record.start).min(MAX_MS);
        let deadline = match record.deadline() {
            Some(d) => unix_ms(d).min(MAX_MS),
            None => now.saturating_add(shared.backstop_ms()).min(MAX_MS),
        };
        let ttl = deadline
            .saturating_sub(now)
            .saturating_add(shared.grace_ms())
            .clamp(1, MAX_MS);
        let value = encode(record)?;
        let keys = &shared.keys;
        let bucket = bucket_of(&record.key);
        let mut packed = Vec::with_capacity(120 + value.len());
        packed.extend_from_slice(record.key.as_bytes());
        packed.extend_from_slice(&record.id.as_u64().to_be_bytes());
        packed.extend_from_slice(&now.to_be_bytes());
        packed.extend_from_slice(&ttl.to_be_bytes());
        packed.extend_from_slice(&limits.per_user.unwrap_or(0).to_be_bytes());
        packed.extend_from_slice(&limits.total.unwrap_or(0).to_be_bytes());
        // The names and decimal text the script uses as they are: building them in Lua costs
        // the server more (each string operation is a call, formatting a number a printf).
        // A value is at most about 560 bytes (`encode` limits the username and a named
        // mechanism to 255 bytes each): no length overflows its field (checked all the same).
        let mut digits = itoa::Buffer::new();
        let id_bucket_name: &[u8] = if id_bucket(record.id) == bucket {
            &[]
        } else {
            keys.id_bucket(record.id)
        };
        let fields: [(&[u8], &'static str); 4] = [
            (keys.bucket(&record.key), "session bucket"),
            (id_bucket_name, "id bucket"),
            (digits.format(bucket).as_bytes(), "bucket number"),
            (&value, "value"),
        ];
        for (field, name) in fields {
            let len = u16::try_from(field.len()).map_err(|_| RedisStoreError::FieldTooLong {
                field: name,
                len: field.len(),
            })?;
            packed.extend_from_slice(&len.to_be_bytes());
            packed.extend_from_slice(field);
        }
        Ok(Self { packed, deadline })
    }
}

/// Opens the connection of `config`: the cluster connection, or the standalone connection
/// manager with what it takes to replace it.
async fn open(config: &RedisConfig) -> Result<(Conn, Option<Rebuild>), RedisStoreError> {
    let target = config.url().to_string();
    let connect_error = |source| RedisStoreError::Connect {
        target: target.clone(),
        source,
    };
    if config.url().is_cluster() {
        let nodes = config
            .url()
            .nodes()
            .map(|(h, p)| connection_info(config, h, p))
            .collect::<Result<Vec<_>, _>>()?;
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(config.connect_timeout())
            .response_timeout(config.response_timeout())
            .retries(u32::try_from(RECONNECT_RETRIES).unwrap_or(2))
            .min_retry_wait(ms(RECONNECT_MIN_DELAY))
            .max_retry_wait(ms(RECONNECT_MAX_DELAY));
        #[cfg(feature = "tls")]
        let client = match config.tls_root_ca() {
            Some(pem) => client.certs(tls_certificates(pem)),
            None => client,
        };
        let client = client.build().map_err(connect_error)?;
        let mut conn = client.get_async_connection().await.map_err(connect_error)?;
        // The slot of this prefix must be served: ask its node.
        redis::cmd("EXISTS")
            .arg(Keys::new(config.prefix()).due)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(connect_error)?;
        Ok((Conn::Cluster(conn), None))
    } else {
        let (host, port) = config
            .url()
            .nodes()
            .next()
            .ok_or(RedisStoreError::UrlMissingHost)?;
        let info = connection_info(config, host, port)?;
        #[cfg(feature = "tls")]
        let client = match config.tls_root_ca() {
            Some(pem) => redis::Client::build_with_tls(info, tls_certificates(pem)),
            None => redis::Client::open(info),
        };
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(info);
        let client = client.map_err(connect_error)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_with_config(client.clone(), manager.clone())
            .await
            .map_err(connect_error)?;
        Ok((
            Conn::Single(conn),
            Some(Rebuild {
                client,
                manager,
                last: Mutex::new(None),
            }),
        ))
    }
}

/// A batching task: takes the jobs waiting, sends up to `MAX_BATCH` of them at once with
/// `send`, with up to `in_flight` batches in flight; while they are, new jobs queue and go
/// out together in the next batch. Ends when the store (the sender) is dropped.
async fn batches<I, A, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<Pending<I, A>>,
    in_flight: usize,
    send: F,
) where
    F: Fn(Vec<Pending<I, A>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot lets the next jobs gather into this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let jobs = gather(first, &mut rx, MAX_BATCH).await;
        if jobs.is_empty() {
            continue;
        }
        let batch = send(jobs);
        tokio::spawn(async move {
            batch.await;
            drop(slot);
        });
    }
}

/// Reading tasks of a store on a standalone server, each with its own connection, cache and
/// barriers. A validation waits for a round trip that began after it (its barrier): with one
/// reading task, every concurrent validation joins one batch, and the client waits idle while
/// that batch is out. With two, each serving its own half of the calling tasks, one half's
/// batch is out while the other half's answers are being used (measured with 50 concurrent
/// validations: ~10–20 % more validations per second; three or more: slower, more round trips).
const READERS: usize = 2;

/// Spreads tokio's task ids (consecutive numbers, hashed as one `u64`) over the reading tasks:
/// a multiplicative hash, its high bits (a keyed hash would cost several times as much, for
/// nothing: the ids are no secret and no input of a client).
struct TaskIdHasher(u64);

impl Hasher for TaskIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 >> 32
    }
}

/// The room a batch starts with.
const GATHER_CAPACITY: usize = 64;

/// Times a batching task lets the other tasks run while their jobs keep joining the batch.
const GATHER_YIELDS: usize = 4;

/// A batch: `first` and the jobs waiting after it (up to `max` in all), once the tasks that
/// were ready have run (their jobs join it) — again while they keep coming, up to
/// `GATHER_YIELDS` times (under load, fuller batches: fewer round trips, each costing the client
/// more than a lookup; alone, one yield); without the jobs whose caller gave up.
pub(crate) async fn gather<I, A>(
    first: Pending<I, A>,
    rx: &mut mpsc::UnboundedReceiver<Pending<I, A>>,
    max: usize,
) -> Vec<Pending<I, A>> {
    // Not sized for `max` (that would be a large allocation for each batch, most of them
    // far smaller); it grows as jobs join.
    let mut jobs = Vec::with_capacity(GATHER_CAPACITY.min(max));
    jobs.push(first);
    for _ in 0..GATHER_YIELDS {
        tokio::task::yield_now().await;
        let before = jobs.len();
        while jobs.len() < max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if jobs.len() == before || jobs.len() == max {
            break;
        }
    }
    jobs.retain(|j| !j.abandoned());
    jobs
}

/// Sends validations in one call of the validate script, and each its answer.
async fn validate_jobs(shared: Arc<Shared>, jobs: Vec<Job>) {
    // Identical validations (one session validated by several requests in the same
    // millisecond: all of them see the same touch due) are sent once.
    let (distinct, at) = distinct(jobs.iter().map(|j| j.item));
    let mut items = Vec::with_capacity(distinct.len() * ITEM);
    for item in &distinct {
        items.extend_from_slice(item);
    }
    let replies = shared.validate_batch(&items).await;
    deliver_shared(jobs, replies, distinct.len(), &at, "validate");
}

/// Sends reads in one pipeline of `HGET`s (resent once if the connection dropped: a read's
/// answer is the same), within the latest deadline among them; each gets its value. (A
/// pipeline costs the server less than a script doing the same reads, measured.)
async fn read_jobs(shared: Arc<Shared>, jobs: Vec<Lookup>) {
    const OP: &str = "validate";
    let budget = shared.config.operation_timeout();
    let Some((jobs, time_left)) = in_time(jobs, OP, budget) else {
        return;
    };
    // One read per distinct key: concurrent validations of one session share it.
    let (keys, at) = distinct(jobs.iter().map(|j| j.item.key));
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("HGET")
            .arg(shared.keys.bucket(key))
            .arg(key.as_bytes().as_slice());
    }
    let pipe = &pipe;
    let values = shared
        .run_within(OP, time_left, |mut conn| async move {
            pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                .await
                .map_err(|source| RedisStoreError::Redis {
                    operation: OP,
                    source,
                })
        })
        .await
        .map(|values| values.into_iter().map(|v| v.map(Stored::from)).collect());
    deliver_shared(jobs, with_budget(values, budget), keys.len(), &at, OP);
}

/// Sends creates in one call of the create script (resent once if the connection dropped:
/// the script recognises its own value, and its removal mark should its session have been
/// removed meanwhile), within the latest deadline among them; each gets its answer.
async fn create_jobs(shared: Arc<Shared>, jobs: Vec<CreateJob>) {
    const OP: &str = "create";
    let budget = shared.config.operation_timeout();
    let Some((jobs, time_left)) = in_time(jobs, OP, budget) else {
        return;
    };
    let items: Vec<&CreateItem> = jobs.iter().map(|j| &j.item).collect();
    let answers = shared.create_batch(&items, time_left).await;
    drop(items);
    deliver(jobs, with_budget(answers, budget), OP);
}

impl Shared {
    /// The live sessions (and the values that do not parse) of the buckets from `from`, one
    /// page of the listing, by `deadline`.
    async fn list_page(
        &self,
        from: u16,
        now_ms: u64,
        deadline: Instant,
    ) -> Result<Vec<Value>, RedisStoreError> {
        const OP: &str = "list";
        let mut inv = LIST_PAGE_SCRIPT.prepare_invoke();
        inv.key(&self.keys.due)
            .arg(&self.keys.base)
            .arg(from)
            .arg(from.saturating_add(LIST_BUCKETS).min(BUCKETS))
            .arg(now_ms)
            .arg(self.backstop_ms());
        let budget = deadline.saturating_duration_since(Instant::now());
        let reply = self.invoke_within(OP, budget, &inv).await;
        match with_budget(reply, self.config.operation_timeout() * LIST_BUDGETS)? {
            Value::Array(items) => Ok(items),
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    /// One call of the create script for `items`, within `budget`; one answer per item.
    async fn create_batch(
        &self,
        items: &[&CreateItem],
        budget: Duration,
    ) -> Result<Vec<u8>, RedisStoreError> {
        const OP: &str = "create";
        let mut packed = Vec::with_capacity(items.iter().map(|i| i.packed.len()).sum());
        for item in items {
            packed.extend_from_slice(&item.packed);
        }
        let earliest = items.iter().map(|i| i.deadline).min().unwrap_or(0);
        let mut inv = CREATE_SCRIPT.prepare_invoke();
        inv.key(&self.keys.due)
            .arg(&self.keys.base)
            .arg(self.backstop_ms())
            .arg(packed)
            .arg(itoa::Buffer::new().format(earliest));
        let reply = self.invoke_within(OP, budget, &inv).await?;
        // One byte per session.
        match reply {
            Value::BulkString(answers) if answers.len() == items.len() => Ok(answers),
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }

    fn conn(&self) -> Conn {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The grace in ms, capped (as every time the store keeps) at 48 bits.
    fn grace_ms(&self) -> u64 {
        ms(self.config.grace()).min(MAX_MS)
    }

    /// A nonce no other call of any store makes (with overwhelming likelihood): 8 random bytes
    /// drawn when the store was made, then a count. A removing call (remove, remove by id,
    /// claim) sends one, and the script keeps its answer under it: the call sent again, after
    /// its answer was lost, answers the same.
    fn nonce(&self) -> [u8; 16] {
        let n = self.nonces.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.nonce_base);
        out[8..].copy_from_slice(&n.to_be_bytes());
        out
    }

    /// Undoes a create that failed once sent: removes its session, if Redis made it, and
    /// marks its key removed either way, in one script, so that the create, should it reach
    /// Redis only later (still queued, or resent by a cluster client), makes nothing —
    /// whichever comes first, no session is left. Nobody waits for it; it is logged (a failure
    /// while Redis is unreachable at debug level: the create then most likely never ran, and
    /// every create of an outage would log one).
    async fn undo_create(&self, key: CookieHash, id: SessionId) {
        match self.remove("undo_create", &key, Some(id)).await {
            Ok(Value::Nil) => {
                tracing::debug!(target: "aaa::store::redis", session = %id, "a failed create made no session; its key is marked removed");
            }
            Ok(_) => {
                tracing::info!(target: "aaa::store::redis", session = %id, "a failed create had made its session: removed");
            }
            Err(e) if e.kind() == StoreErrorKind::Unreachable => {
                tracing::debug!(target: "aaa::store::redis", session = %id, error = %e, "could not undo a failed create (Redis unreachable): its session, if Redis made it, lasts until its deadline");
            }
            Err(e) => {
                tracing::warn!(target: "aaa::store::redis", session = %id, error = %e, "could not undo a failed create: its session, if Redis made it, lasts until its deadline");
            }
        }
    }

    /// One call of the remove script for `key`; with `undo`, the id of a create that failed
    /// (see `undo_create`).
    async fn remove(
        &self,
        operation: &'static str,
        key: &CookieHash,
        undo: Option<SessionId>,
    ) -> Result<Value, RedisStoreError> {
        let mut inv = REMOVE_SCRIPT.prepare_invoke();
        inv.key(&self.keys.due)
            .arg(&self.keys.base)
            .arg(key.as_bytes().as_slice())
            .arg(self.gone_ms())
            .arg(self.nonce().as_slice());
        if let Some(id) = undo {
            inv.arg(id.as_u64().to_be_bytes().as_slice());
        }
        self.invoke(operation, &inv).await
    }

    /// How long a removed session's mark lasts, in ms: its create, sent again after a lost
    /// answer, arrives within the creator's operation budget (resends on a fresh connection
    /// included); twice this process's, and at least `GONE_MIN`, covers processes of one
    /// table configured alike.
    fn gone_ms(&self) -> u64 {
        ms(self
            .config
            .operation_timeout()
            .saturating_mul(2)
            .max(GONE_MIN))
        .min(MAX_MS)
    }

    /// The backstop in ms, capped at 48 bits.
    fn backstop_ms(&self) -> u64 {
        ms(self.config.max_idle_backstop()).min(MAX_MS)
    }

    /// Replaces a connection manager stuck on a failure it does not retry by itself (an
    /// authentication error while reconnecting); at most once per connect timeout.
    fn renew(&self) {
        let Some(rebuild) = &self.rebuild else { return };
        let mut last = rebuild.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < self.config.connect_timeout()) {
            return;
        }
        *last = Some(Instant::now());
        match ConnectionManager::new_lazy_with_config(
            rebuild.client.clone(),
            rebuild.manager.clone(),
        ) {
            Ok(m) => {
                *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Conn::Single(m);
                tracing::warn!(target: "aaa::store::redis", url = %self.config.url(), "replaced the Redis connection after an authentication failure");
            }
            Err(e) => {
                tracing::warn!(target: "aaa::store::redis", error = %e, "could not replace the Redis connection");
            }
        }
    }

    /// Runs `f` within `budget`. An operation whose connection dropped is sent once more on a
    /// fresh one (the connection manager reconnects meanwhile), as every operation answers
    /// the same the second time: reads and validations by nature; a create recognises its own
    /// value (and its session's removal mark); a remove or a claim finds its answer kept under
    /// its nonce (without which it would answer "nothing", and the end it made would never be
    /// reported).
    async fn run_within<T, F, Fut>(
        &self,
        operation: &'static str,
        budget: Duration,
        f: F,
    ) -> Result<T, RedisStoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisStoreError>>,
    {
        let attempt = async {
            match f(self.conn()).await {
                Err(e) if e.is_connection_lost() => {
                    tracing::debug!(target: "aaa::store::redis", operation, error = %e, "connection lost; sending again");
                    f(self.conn()).await
                }
                other => other,
            }
        };
        let result = match tokio::time::timeout(budget, attempt).await {
            Ok(r) => r,
            Err(_) => Err(RedisStoreError::Timeout {
                operation,
                timeout: budget,
            }),
        };
        if let Err(e) = &result
            && e.needs_new_connection()
        {
            self.renew();
        }
        result
    }

    /// One plain command, resent once if its connection dropped (only for commands whose answer
    /// is the same the second time: reads).
    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> Result<T, RedisStoreError> {
        let budget = self.config.operation_timeout();
        self.run_within(operation, budget, |mut conn| async move {
            cmd.query_async(&mut conn)
                .await
                .map_err(|source| RedisStoreError::Redis { operation, source })
        })
        .await
    }

    async fn invoke(
        &self,
        operation: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<Value, RedisStoreError> {
        let budget = self.config.operation_timeout();
        self.invoke_within(operation, budget, inv).await
    }

    /// One script call within `budget` (see `run_within`).
    async fn invoke_within(
        &self,
        operation: &'static str,
        budget: Duration,
        inv: &ScriptInvocation<'_>,
    ) -> Result<Value, RedisStoreError> {
        self.run_within(operation, budget, |mut conn| async move {
            inv.invoke_async::<Value>(&mut conn)
                .await
                .map_err(|source| RedisStoreError::Redis { operation, source })
        })
        .await
    }

    /// One call of the validate script for `items` (each `ITEM` bytes); one reply per item.
    async fn validate_batch(&self, items: &[u8]) -> Result<Vec<Value>, RedisStoreError> {
        const OP: &str = "validate";
        let mut inv = VALIDATE_SCRIPT.prepare_invoke();
        inv.key(&self.keys.due)
            .arg(&self.keys.base)
            .arg(self.grace_ms())
            .arg(self.backstop_ms())
            .arg(items);
        match self.invoke(OP, &inv).await? {
            Value::Array(replies) => Ok(replies),
            _ => Err(RedisStoreError::UnexpectedReply { operation: OP }),
        }
    }
}

enum Validated {
    Record(SessionRecord),
    Id(SessionId),
}

fn result<T>(r: Result<T, RedisStoreError>, operation: &'static str) -> Result<T, StoreError> {
    r.map_err(|e| e.into_store_error(operation))
}

#[async_trait]
impl SessionStore for RedisStore {
    fn new_id(&self, key: &CookieHash) -> Result<SessionId, AaaError> {
        id_for(key)
    }

    async fn create(
        &self,
        record: &SessionRecord,
        limits: &SessionLimits,
    ) -> Result<CreateOutcome, StoreError> {
        result(self.create_inner(record, limits).await, "create")
    }

    async fn validate(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let r = self
            .validate_inner(key, now, touch, touch_granularity, false)
            .await;
        match result(r, "validate")? {
            Some(Validated::Record(r)) => Ok(Some(r)),
            Some(Validated::Id(_)) | None => Ok(None),
        }
    }

    async fn validate_id(
        &self,
        key: &CookieHash,
        now: SystemTime,
        touch: bool,
        touch_granularity: Duration,
    ) -> Result<Option<SessionId>, StoreError> {
        let r = self
            .validate_inner(key, now, touch, touch_granularity, true)
            .await;
        Ok(match result(r, "validate")? {
            Some(Validated::Id(id)) => Some(id),
            Some(Validated::Record(r)) => Some(r.id),
            None => None,
        })
    }

    async fn remove(&self, key: &CookieHash) -> Result<Option<SessionRecord>, StoreError> {
        result(self.remove_inner(key).await, "remove")
    }

    async fn remove_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        result(self.remove_by_id_inner(id).await, "remove_by_id")
    }

    async fn list(&self, now: SystemTime) -> Result<Vec<SessionRecord>, StoreError> {
        result(self.list_inner(now).await, "list")
    }

    async fn claim_expired(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        result(self.claim_inner(now, max).await, "claim_expired")
    }

    async fn contains(
        &self,
        keys: &[CookieHash],
        now: SystemTime,
    ) -> Result<Vec<bool>, StoreError> {
        result(self.contains_inner(keys, now).await, "contains")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_spread_over_the_reading_tasks() {
        // Consecutive ids, and ids with a stride (tasks spawned in pairs, say): both halves
        // get about half of them.
        for stride in [1u64, 2, 3, 4, 8] {
            let mut first = 0;
            for k in 1..=1000u64 {
                let mut h = TaskIdHasher(0);
                h.write_u64(k * stride);
                if h.finish().is_multiple_of(2) {
                    first += 1;
                }
            }
            assert!(
                (400..=600).contains(&first),
                "stride {stride}: {first} of 1000"
            );
        }
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("dev1");
        assert_eq!(k.base, b"{dev1}v3:");
        assert_eq!(k.due, b"{dev1}v3:due");
        // 0xabcd % 4096 = 0xbcd = 3021
        let mut raw = [0u8; 32];
        raw[0] = 0xab;
        raw[1] = 0xcd;
        let h = CookieHash::from_bytes(raw);
        assert_eq!(bucket_of(&h), 3021);
        assert_eq!(k.bucket(&h), b"{dev1}v3:s:3021");
        assert_eq!(k.buckets.len(), usize::from(BUCKETS));
        // The id bucket is the id mod 4096, as the scripts' `ib` computes it (the create
        // script takes the names from the client): 0x1234 % 4096 = 0x234.
        let id = SessionId::from_u64(0x1234);
        assert_eq!(id_bucket(id), 564);
        assert_eq!(k.id_bucket(id), b"{dev1}v3:s:564");
    }

    #[test]
    fn the_ids_the_store_makes_share_their_sessions_bucket() {
        let mut ids = std::collections::HashSet::new();
        for i in 0..200u8 {
            let mut raw = [i; 32];
            raw[1] = i.wrapping_mul(37);
            let key = CookieHash::from_bytes(raw);
            let id = id_for(&key).unwrap();
            assert_eq!(id_bucket(id), bucket_of(&key));
            // 32 bits at most (8 hex digits), the high 20 random.
            assert!(id.as_u64() <= u64::from(u32::MAX));
            ids.insert(id.as_u64() >> 12);
        }
        assert!(ids.len() > 190, "random high bits: {}", ids.len());
    }
}
