//! RADIUS accounting (RFC 2866): an Accounting-Request Start when a session starts and a Stop
//! when it ends, for every session, whatever mechanism authenticated it; nothing lost, nothing
//! blocking.
//!
//! [`Accounting`] is an [`aaa_core::SessionObserver`]: register it with the session manager
//! (`AaaBuilder::accounting` in the facade). The manager reports each start and each end
//! exactly once, in the process that decided it — the one whose logout, `clear session` or
//! reaper claim removed the record from the store — so each Start and each Stop is sent by
//! exactly one process, even with many processes on one store.
//!
//! - **Never blocking.** An observer call builds the record and pushes it onto a bounded
//!   in-memory queue; a background task (on the tokio runtime current at construction) sends
//!   it through its own [`Client`] to the accounting servers — the same
//!   transport as authentication: multiplexed identifiers, byte-identical retransmissions,
//!   failover in order, every Accounting-Response verified (Response Authenticator,
//!   identifier, source; a Message-Authenticator verified when present and required only if
//!   the server's flag says so — see [`RadiusServer::accounting`]). Anything else is ignored
//!   like any hostile reply.
//! - **Retried until acknowledged.** When no server acknowledges a record, the task waits
//!   (`retry_initial`, doubling up to `retry_max`, ±10 % jitter), sends one record at a time
//!   until a server answers again, and resends it with an updated Acct-Delay-Time — hence with
//!   a new identifier and Request Authenticator. Records of one session are sent in order
//!   (Start, Interim-Updates, Stop: one at a time); different sessions' records are sent
//!   concurrently, up to `max_in_flight`.
//! - **Bounded, never silent.** At most `queue_capacity` records wait in memory. With a spool
//!   directory ([`SpoolConfig`]), each record is written to disk (write-ahead: temporary file,
//!   fsync, rename; 0600 in a 0700 directory) before it is sent and deleted when acknowledged,
//!   so unacknowledged records survive a crash and are sent by the next process to start
//!   (first, in order). A record that finds the memory queue full is refused with an error
//!   log and counted in [`AccountingStats::dropped`]; a spool that is full or failing is an
//!   error log and [`AccountingStats::spool_errors`] (the record stays in memory). A record
//!   reaches the disk milliseconds after the observer call (the writes are batched off the
//!   caller's path): a crash in between loses it. Delivery is at least once, as in RADIUS: a
//!   record whose Accounting-Response was lost, or whose file was not yet deleted when the
//!   process died, is sent again (with the same Acct-Session-Id and Event-Timestamp).
//! - **Interim-Updates** (optional, `interim_interval`): for each session started in this
//!   process, every interval while it lives; they stop with its Stop, at its absolute
//!   deadline, or when the session store (given with [`AccountingBuilder::sessions`]) no
//!   longer has it (ended by another process).
//!
//! # The records
//!
//! | attribute | value |
//! |---|---|
//! | Acct-Status-Type | Start (1), Stop (2), Interim-Update (3) |
//! | Acct-Session-Id | [`session_id`]: `<id as 8 hex digits>-<start in ms since the epoch, hex>`, the same on Start and Stop |
//! | User-Name | the user |
//! | NAS-Identifier / NAS-IP-Address / NAS-IPv6-Address | as configured in [`AccountingConfig::radius`] |
//! | Calling-Station-Id | the session's source address as text |
//! | Acct-Authentic | RADIUS (1) for a RADIUS login, Local (2) otherwise |
//! | Event-Timestamp | Start: the session start; Stop: the end (for a timeout, the deadline); Interim: now |
//! | Acct-Session-Time | Stop and Interim-Update: whole seconds since the start |
//! | Acct-Terminate-Cause | Stop: User-Request (1) logout, Admin-Reset (6) `clear session`, Idle-Timeout (4), Session-Timeout (5) absolute timeout |
//! | Acct-Delay-Time | whole seconds since the record was queued (0 on the first attempt) |
//!
//! No Message-Authenticator and no EAP-Message; the Request Authenticator is
//! MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret) (RFC 2866 §3).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, UdpSocket};
//! use std::time::{Duration, SystemTime};
//! use aaa_core::{CookieHash, EndCause, Mechanism, SessionId, SessionObserver, SessionRecord};
//! use aaa_radius::RadiusServer;
//! use aaa_radius::accounting::{Accounting, AccountingConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! // An accounting "server" that never answers.
//! let silent = UdpSocket::bind("127.0.0.1:0")?;
//! let mut config = AccountingConfig::new(vec![RadiusServer::accounting(
//!     silent.local_addr()?,
//!     "a long random shared secret",
//! )]);
//! config.radius.nas_identifier = Some("switch-1".to_owned());
//! let accounting = Accounting::new(config)?;
//!
//! // What the session manager does when a session starts and ends.
//! let start = SystemTime::now();
//! let record = SessionRecord {
//!     key: CookieHash::from_bytes([7; 32]),
//!     id: SessionId::from_u64(0xc0ffee),
//!     username: "admin".to_owned(),
//!     read_write: true,
//!     mechanism: Mechanism::Local,
//!     src_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
//!     start,
//!     last_activity: start,
//!     idle_timeout: None,
//!     absolute_deadline: None,
//! };
//! accounting.session_started(&record);
//! accounting.session_ended(&record, EndCause::Logout, start + Duration::from_secs(42));
//! assert!(aaa_radius::accounting::session_id(&record).starts_with("00c0ffee-"));
//!
//! // Queued, not lost: nobody acknowledged them.
//! let e = accounting.flush(Duration::from_millis(50)).await.unwrap_err();
//! assert!(matches!(e, aaa_radius::RadiusError::FlushTimedOut { pending: 2, .. }));
//! assert_eq!(accounting.stats().queued, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | servers | [`RadiusServer::accounting`]: no Message-Authenticator required |
//! | `radius.retransmit` | per server: first wait 1 s, doubling up to 4 s, 3 retransmissions, 5 s |
//! | `queue_capacity` | 10,000 records |
//! | `max_in_flight` | 128 records sent at once |
//! | `retry_initial` / `retry_max` | 1 s / 30 s between rounds while no server acknowledges |
//! | `interim_interval` | off |
//! | spool | none; [`SpoolConfig`]: 100,000 records, 64 MiB per process |

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aaa_core::{
    Clock, CookieHash, EndCause, SessionObserver, SessionRecord, SessionStore, SystemClock,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::accounting_record::AcctRecord;
pub use crate::accounting_record::session_id;
use crate::accounting_spool::{Spool, SpoolLock};
use crate::accounting_worker::Worker;
use crate::util::{AbortOnDrop, LogLimit, lock};
use crate::{Client, RadiusConfig, RadiusError, RadiusServer};

/// Where unacknowledged accounting records are kept on disk.
///
/// Each process has its own directory under `dir` (see the module documentation); the
/// limits apply to it. Several processes may share one `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolConfig {
    /// The spool directory: created (0700) if missing.
    pub dir: PathBuf,
    /// At most this many records on disk per process (default 100,000).
    pub max_records: usize,
    /// At most this many bytes of records on disk per process (default 64 MiB; a record takes
    /// about 200 bytes).
    pub max_bytes: u64,
}

impl SpoolConfig {
    /// A spool in `dir` with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_records: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

/// The configuration of [`Accounting`]. Build it with [`AccountingConfig::new`] and change
/// what differs from the defaults (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountingConfig {
    /// The accounting servers (in order: primary first), the NAS identity the records carry,
    /// the retransmission to one server, dead-server handling. Its `privilege` is not used.
    pub radius: RadiusConfig,
    /// How many records may wait in memory (not yet acknowledged, nor written to the spool).
    /// Default 10,000.
    pub queue_capacity: usize,
    /// How many records may be outstanding at once (different sessions). Default 128.
    ///
    /// Identifiers are reused least recently used first, so with `n` outstanding an identifier
    /// comes back after about `256 - n` others. Keep room: a server may still be finishing the
    /// previous request with an identifier when it is reused (FreeRADIUS then gives up one of
    /// the two, and the record waits for a retransmission); at 255 outstanding FreeRADIUS 3.2
    /// with its `detail` writer acknowledges about ten times fewer records per second than at
    /// 128.
    pub max_in_flight: usize,
    /// The wait after a round in which no server acknowledged a record. Default 1 s.
    pub retry_initial: Duration,
    /// The longest wait between rounds (the wait doubles after each unacknowledged round).
    /// Default 30 s.
    pub retry_max: Duration,
    /// Send an Interim-Update this often for each live session started in this process.
    /// Default `None` (off).
    pub interim_interval: Option<Duration>,
    /// Keep unacknowledged records on disk. Default `None`: in memory only.
    pub spool: Option<SpoolConfig>,
}

impl AccountingConfig {
    /// The default configuration for `servers` (make them with
    /// [`RadiusServer::accounting`], port 1813).
    pub fn new(servers: Vec<RadiusServer>) -> Self {
        Self {
            radius: RadiusConfig::new(servers),
            queue_capacity: 10_000,
            max_in_flight: 128,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            interim_interval: None,
            spool: None,
        }
    }

    /// Checks that the configuration can work: [`RadiusConfig::validate`], and every count and
    /// duration greater than zero.
    pub fn validate(&self) -> Result<(), RadiusError> {
        self.radius.validate()?;
        let zero = |setting| Err(RadiusError::ZeroLimit { setting });
        if self.queue_capacity == 0 {
            return zero("queue_capacity");
        }
        if self.max_in_flight == 0 {
            return zero("max_in_flight");
        }
        if let Some(spool) = &self.spool {
            if spool.max_records == 0 {
                return zero("spool.max_records");
            }
            if spool.max_bytes == 0 {
                return zero("spool.max_bytes");
            }
        }
        for (setting, value) in [
            ("retry_initial", Some(self.retry_initial)),
            ("retry_max", Some(self.retry_max)),
            ("interim_interval", self.interim_interval),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(RadiusError::ZeroDuration { setting });
            }
        }
        Ok(())
    }
}

/// What accounting did so far. Gauges (`queued`, `spooled`) are the current values; the rest
/// count since construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AccountingStats {
    /// Records accepted and not yet acknowledged (in memory or in the spool; a spooled record
    /// leaves the count once its file is deleted).
    pub queued: usize,
    /// Of those, the ones in the spool.
    pub spooled: usize,
    /// Records accepted from observer calls and Interim-Update timers.
    pub enqueued: u64,
    /// Records taken over from the spool at startup or later (of processes that are gone).
    pub loaded: u64,
    /// Accounting-Requests handed to the transport (one per round; the transport's own
    /// retransmissions are not counted).
    pub sent: u64,
    /// Of those, resends after an unacknowledged round (each with a new identifier and
    /// Acct-Delay-Time).
    pub retried: u64,
    /// Records acknowledged by a server (an Accounting-Response that passed every check).
    pub acknowledged: u64,
    /// Records refused (queue full) or given up (they cannot be encoded). Each is logged at
    /// error level.
    pub dropped: u64,
    /// Spool failures: full, a write, sync, delete or take-over that failed, a corrupt file.
    /// Each is logged at error level.
    pub spool_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) loaded: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) acknowledged: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) spool_errors: AtomicU64,
}

/// What a Start needs for the Interim-Updates of its session.
#[derive(Debug, Clone)]
pub(crate) struct InterimSeed {
    pub(crate) key: CookieHash,
    pub(crate) start: SystemTime,
    pub(crate) absolute_deadline: Option<SystemTime>,
}

/// A record handed over by an observer call.
#[derive(Debug)]
pub(crate) struct Intake {
    pub(crate) seq: u64,
    pub(crate) record: AcctRecord,
    pub(crate) interim: Option<InterimSeed>,
}

/// The state shared by the observer side and the task.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_seq: u64,
    /// Records not yet taken by the task, in order.
    pub(crate) intake: VecDeque<Intake>,
    /// Records held in memory only (intake included): bounded by the queue capacity.
    pub(crate) memory: usize,
    /// Records in the spool, not yet acknowledged.
    pub(crate) spooled: usize,
    /// No server acknowledged the last round.
    pub(crate) outage: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the task: new intake.
    pub(crate) wake: Notify,
    /// Wakes `flush`/`shutdown`: the counts changed.
    pub(crate) changed: Notify,
    pub(crate) counters: Counters,
    pub(crate) capacity: usize,
    pub(crate) interim: bool,
    pub(crate) spool: bool,
    refusals: LogLimit,
}

impl Shared {
    /// Queues `record` unless the memory queue is full (then: error log, `dropped`).
    pub(crate) fn push(&self, record: AcctRecord, interim: Option<InterimSeed>) {
        let mut state = lock(&self.state);
        if state.memory >= self.capacity {
            drop(state);
            self.refuse(
                &record,
                &RadiusError::QueueFull {
                    capacity: self.capacity,
                },
            );
            return;
        }
        let seq = state.next_seq;
        state.next_seq = seq.wrapping_add(1);
        state.memory += 1;
        state.intake.push_back(Intake {
            seq,
            record,
            interim,
        });
        drop(state);
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// A record that will never be sent: counted and logged (at a limited rate).
    pub(crate) fn refuse(&self, record: &AcctRecord, error: &RadiusError) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.refusals.permit() {
            tracing::error!(
                target: "aaa::radius",
                user = %record.username,
                acct_session_id = %record.session_id,
                status = ?record.status,
                %error,
                suppressed,
                "accounting record dropped"
            );
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn stats(&self) -> AccountingStats {
        let (memory, spooled) = {
            let s = lock(&self.state);
            (s.memory, s.spooled)
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        AccountingStats {
            queued: memory + spooled,
            spooled,
            enqueued: get(&c.enqueued),
            loaded: get(&c.loaded),
            sent: get(&c.sent),
            retried: get(&c.retried),
            acknowledged: get(&c.acknowledged),
            dropped: get(&c.dropped),
            spool_errors: get(&c.spool_errors),
        }
    }
}

/// RADIUS accounting for every session: see the [module documentation](self).
///
/// Dropping it stops its task: records not yet acknowledged are lost unless spooled (they
/// are then sent by the next process using the spool). Call [`shutdown`](Self::shutdown)
/// first for a graceful end.
pub struct Accounting {
    shared: Arc<Shared>,
    client: Client,
    spool_dir: Option<PathBuf>,
    /// Dropped first: the task stops, then the spool directory is released.
    _task: AbortOnDrop,
    _spool_lock: Option<SpoolLock>,
}

/// Builds an [`Accounting`] with a clock or a session store of its own.
#[derive(Debug)]
pub struct AccountingBuilder {
    config: AccountingConfig,
    clock: Option<Arc<dyn Clock>>,
    sessions: Option<Arc<dyn SessionStore>>,
}

impl AccountingBuilder {
    /// The clock of the session manager (for the Event-Timestamp and Acct-Session-Time of
    /// Interim-Updates and the absolute deadline that ends them; a `ManualClock` in tests).
    /// Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The session store: before each Interim-Update the session is looked up, and its
    /// Interim-Updates end if the store no longer has it live (ended by another process).
    /// Without it, Interim-Updates of a session end with its Stop in this process or at its
    /// absolute deadline.
    pub fn sessions(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.sessions = Some(store);
        self
    }

    /// Validates the configuration, opens the client's sockets and the spool (taking over the
    /// records of processes that are gone), and starts the task. Must be called inside a tokio
    /// runtime ([`RadiusError::NoRuntime`] otherwise). Reads and writes the spool directory
    /// (blocking file I/O) when one is configured.
    pub fn build(self) -> Result<Accounting, RadiusError> {
        let config = self.config;
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(RadiusError::NoRuntime)?;
        let client = Client::new_accounting(&config.radius)?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            changed: Notify::new(),
            counters: Counters::default(),
            capacity: config.queue_capacity,
            interim: config.interim_interval.is_some(),
            spool: config.spool.is_some(),
            refusals: LogLimit::new(),
        });
        let (spool, spool_lock) = match &config.spool {
            Some(s) => {
                let (spool, lock) = Spool::open(&s.dir)?;
                (Some((spool, s.max_records, s.max_bytes)), Some(lock))
            }
            None => (None, None),
        };
        let spool_dir = spool.as_ref().map(|(s, _, _)| s.dir().to_path_buf());
        let mut worker = Worker::new(
            shared.clone(),
            client.clone(),
            clock,
            self.sessions,
            &config,
            spool,
        );
        worker.adopt();
        let task = runtime.spawn(worker.run());
        Ok(Accounting {
            shared,
            client,
            spool_dir,
            _task: AbortOnDrop(task),
            _spool_lock: spool_lock,
        })
    }
}

impl Accounting {
    /// Accounting with `config`, the system clock and no session store (see
    /// [`AccountingBuilder::build`]).
    pub fn new(config: AccountingConfig) -> Result<Self, RadiusError> {
        Self::builder(config).build()
    }

    /// A builder, for a clock or a session store.
    pub fn builder(config: AccountingConfig) -> AccountingBuilder {
        AccountingBuilder {
            config,
            clock: None,
            sessions: None,
        }
    }

    /// The counters.
    pub fn stats(&self) -> AccountingStats {
        self.shared.stats()
    }

    /// The transport to the accounting servers, e.g. for [`Client::stats`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This process's spool directory, if a spool is configured.
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.spool_dir.as_deref()
    }

    /// Waits until every record accepted so far is acknowledged (and its spool file deleted),
    /// for at most `timeout`. [`RadiusError::FlushTimedOut`] (with the counts) if some are
    /// still waiting.
    pub async fn flush(&self, timeout: Duration) -> Result<(), RadiusError> {
        self.wait_until(timeout, |s| s.memory + s.spooled == 0)
            .await
    }

    /// For a graceful end: waits until every record is acknowledged — or, with a spool, until
    /// every record not acknowledged is in the spool while no server answers (they will be
    /// sent by the next process) — for at most `timeout`. [`RadiusError::FlushTimedOut`] says
    /// how many are left and how many of those are in memory only (lost when the process
    /// ends). The task keeps running.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), RadiusError> {
        let spool = self.shared.spool;
        self.wait_until(timeout, |s| {
            s.memory + s.spooled == 0 || (spool && s.memory == 0 && s.outage)
        })
        .await
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), RadiusError> {
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        loop {
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            let (memory, spooled) = {
                let state = lock(&self.shared.state);
                if done(&state) {
                    return Ok(());
                }
                (state.memory, state.spooled)
            };
            let expired = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, changed).await.is_err(),
                None => {
                    changed.await;
                    false
                }
            };
            if expired {
                return Err(RadiusError::FlushTimedOut {
                    pending: memory + spooled,
                    unspooled: memory,
                    waited: started.elapsed(),
                });
            }
        }
    }
}

impl SessionObserver for Accounting {
    fn session_started(&self, record: &SessionRecord) {
        let interim = self.shared.interim.then_some(InterimSeed {
            key: record.key,
            start: record.start,
            absolute_deadline: record.absolute_deadline,
        });
        self.shared.push(AcctRecord::start(record), interim);
    }

    fn session_ended(&self, record: &SessionRecord, cause: EndCause, at: SystemTime) {
        self.shared.push(AcctRecord::stop(record, cause, at), None);
    }
}

impl fmt::Debug for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounting")
            .field("servers", &self.client.servers())
            .field("spool_dir", &self.spool_dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
