//! A [`SessionStore`](aaa_core::SessionStore) on **Redis** or **Redis Cluster**: one session
//! table shared by many processes and hosts. A session started in one process is valid in all;
//! `clear session` in one ends it everywhere; each expired session is claimed by exactly one
//! reaper.
//!
//! ```
//! use std::time::Duration;
//! use aaa_store_redis::{RedisConfig, RedisStoreError};
//!
//! let config = RedisConfig::from_url("redis://aaa:s3cret@10.0.0.5:6379/2")?
//!     .with_prefix("chassis-1")?
//!     .with_response_timeout(Duration::from_millis(250));
//! assert_eq!(config.url().db(), 2);
//! assert_eq!(config.prefix(), "chassis-1");
//! // A store call never takes longer than this (a reconnection plus an answer).
//! assert_eq!(config.operation_timeout(), Duration::from_millis(1250));
//! // The password never shows.
//! assert_eq!(config.url().to_string(), "redis://aaa:***@10.0.0.5:6379/2");
//! assert!(!format!("{config:?}").contains("s3cret"));
//!
//! let cluster = RedisConfig::from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")?;
//! assert!(cluster.url().is_cluster());
//!
//! // Malformed URLs are typed errors that name what is wrong, and never echo a password.
//! let err = RedisConfig::from_url("redis://admin:s3cret").unwrap_err();
//! assert!(matches!(err, RedisStoreError::UrlPort { index: 1 }));
//! assert!(!err.to_string().contains("s3cret"));
//! # Ok::<(), RedisStoreError>(())
//! ```
//!
//! Then `RedisStore::connect(config).await?` gives a store to hand to the session manager
//! (`aaa_session::SessionManager::builder(Arc::new(store))`).
//!
//! # Keys: one hash tag per prefix
//!
//! Every key of a prefix `P` (default `aaa`) starts with the hash tag `{P}`, then the version
//! of the layout below (`v3:`), so a whole session table lives in one cluster slot and
//! **every operation is one Lua script**, atomic on Redis and on Redis Cluster alike. Insert-if-absent on both key and id, the per-user and total limits,
//! and exactly-once claims of expired sessions must each be one atomic step, and Redis Cluster
//! has no transaction across slots. One device group's management sessions (even 100,000 of
//! them) fit one master easily; a cluster spreads device groups (prefixes) over its masters and
//! gives failover. Listing a table therefore covers every master that holds it: the one.
//!
//! Sessions are stored **bucketed**: as fields of 4,096 small hashes rather than one key each,
//! so that Redis keeps each bucket as a compact listpack (about 150 bytes per session in all,
//! 163 with the user index, measured at 100,000 sessions of 1,000 users, against about 550
//! with a key per session and a sorted set of deadlines).
//!
//! | key | type | content |
//! |---|---|---|
//! | `{P}v3:s:<b>` | hash | bucket `b` of the sessions, `b` = the key's first two bytes mod 4096: 32 bytes of `SHA-256(cookie)` → the record, encoded (below); and of the id index, `b` = the id mod 4096: 8-byte big-endian id → 32-byte key |
//! | `{P}v3:u:` + username | hash | that user's 8-byte ids, with empty values: the user index, kept only once a create has asked for a per-user limit (below) |
//! | `{P}v3:due` | sorted set | each session bucket `b`, scored by a lower bound of the earliest deadline in it (ms since the epoch); the member `n`, whose score is 2^50 + the number of sessions; `r`, 2^51 + when that number was last made exact; and `p` (2^51) while the user index is kept |
//! | `{P}v3:g:` + 32-byte key | string | the 8-byte id of a session removed a moment ago (a removal mark, below): expires 2 × the operation timeout (at least 10 s) after the removal |
//! | `{P}v3:r:` + 16-byte nonce + subject | string | what a `remove`, `remove_by_id` or `claim_expired` call removed (subject: the 32-byte key, the 8-byte id, or the claim's time in decimal), kept as long as a removal mark, for the call sent again (below) |
//! | `{P}v3:barrier` | — | never written: every batch of cached validation reads reads it (below), so that a server refusing reads fails them all |
//!
//! **A session and its id's index entry share a bucket.** The ids the store makes
//! ([`SessionStore::new_id`](aaa_core::SessionStore::new_id), which the session manager uses)
//! are 20 random bits above the 12 bits of the key's bucket, so a create writes one hash: the
//! record and the entry (`id` → key), both insert-if-absent. Ids made elsewhere work as well:
//! their entry goes to the bucket of the id, a second hash. Knowing an id tells 12 bits of
//! `SHA-256(cookie)`, which grants nothing (the cookie has 256 random bits).
//!
//! Only the hash of a cookie is stored, never the cookie. The raw 32 bytes (not hex) keep the
//! memory per session low. With up to 64 sessions in a bucket (a session and its index entry
//! are two fields) a bucket stays a listpack with Redis' default `hash-max-listpack-entries
//! 128` and `hash-max-listpack-value 64` — all of them, in all likelihood, up to about 150,000
//! sessions in a table (sessions spread unevenly; a value is 49 bytes for an IPv4 address and
//! a 10-character name). A bigger bucket, or a longer value, makes its bucket a regular hash:
//! correct, only bigger.
//!
//! **Every key has a TTL.** Every key a create or a touch writes lives at least `grace`
//! (default 60 s) past the deadline of the session written (a minute more when extended, so a
//! busy key is not extended on every call), and is never shortened; so Redis drops a bucket
//! whose sessions all ended long ago even when no reaper runs. TTLs are set relative to the
//! caller's `now`, so they are right even when the host's clock and the server's differ;
//! `grace` must cover the clock differences between the hosts sharing a table. A session with
//! neither an idle nor an absolute timeout gets a backstop deadline of `max_idle_backstop`
//! (default 7 days) after its last activity, moved by its validations once less than half of
//! it is left: unused for that long, it expires and is reaped like any other.
//!
//! **The user index costs only the tables that use it.** Only a per-user limit reads it, and
//! keeping it is a fifth of a create's cost, so a table whose creates never ask for one has
//! none. The first create with a per-user limit builds it from the sessions there are, in one
//! pass over the table inside that create's script, and marks `{P}v3:due` with `p`; from then on
//! every create keeps it, with or without a limit of its own. Should `{P}v3:due` be lost, the next
//! create with a per-user limit builds the index again. The build blocks the server while it
//! runs (measured 0.3–0.5 s per 100,000 sessions; nothing for an empty table): a table that
//! may use per-user limits should have one from its first session. Past the response timeout
//! the creates sent with it fail with a timeout, though Redis completes them (then undoes
//! them: below), and the next ones proceed; past `busy-reply-threshold` (5 s, about a million
//! sessions) other clients get `BUSY` meanwhile. A process of an earlier version of this store
//! (which kept the index always, and knows no mark) undercounts a user's sessions created by
//! this one before the mark: upgrade the processes of a prefix together.
//!
//! The server must not evict the table's keys (`maxmemory-policy noeviction`, Redis' default):
//! an evicted bucket loses sessions, an evicted `{P}v3:due` leaves its buckets' expired sessions
//! unclaimed until their TTL. The layout is version 3 of the store, and its version is in
//! every key's name: processes of an earlier version (a key per session; or the id index in
//! hashes of its own, under unversioned names) never read this table's keys nor write them, so
//! they cannot damage it — nor see its sessions: upgrade all processes of a prefix together.
//!
//! # Operations
//!
//! - `create`: one script checks that neither the key nor the id exists, counts the user's live
//!   sessions and, at the limit by the count, the live sessions in total exactly (a session past
//!   its deadline does not count, even before it is claimed), then writes the session, its
//!   index entries and its bucket's score. Concurrent creates are sent together: one script
//!   call carries many (packed in one argument), each still one atomic step; the bucket-index
//!   writes and the TTL extensions of the users' hashes and of `{P}v3:due` are made once at its
//!   end (a session's buckets are extended as it is written). A create whose connection
//!   dropped before its answer came is sent once more: it finds its own value and answers
//!   "created". Should the session have been removed between the two sends (listed and cleared
//!   from another process in that moment), the removal's mark (`{P}v3:g:<key>`, which
//!   `remove` and `remove_by_id` leave with the session's id) answers "created" and writes
//!   nothing: revocation stays final (a claim leaves the same mark on each session it claims).
//!   Every create looks for the mark (the cluster client also resends a command by itself
//!   when its connection drops; the look costs nothing measurable), so a create of the very
//!   record (key and id) removed less than the mark's life ago answers "created" and creates
//!   nothing — only ever a resend, since a key is the hash of a fresh random cookie. A create
//!   that fails once sent (timed out, connection lost: whether Redis ran it is unknown) is
//!   **undone** in the background: one `remove` script removes its session if Redis made it
//!   and marks its key either way, so the create, should it reach Redis only then (however
//!   late, within the mark's life), makes nothing. A caller told "failed" leaves no session
//!   behind to be listed, or to count against its user's limit until its idle deadline —
//!   unless the undo fails too (Redis down throughout: logged). So a record must not be
//!   created again after an error: a retry takes a fresh cookie (the session manager always
//!   does).
//! - `validate`: first a read, and when the value says the session is live and no touch is
//!   due (or `touch` is off), that is the answer: a read writes and recreates nothing.
//!   Otherwise one script reads the value and decides from its deadlines; absent or past its
//!   deadline is "no session" (an expired session stays for the reaper, a removed one is never
//!   recreated). A touch rewrites the last-activity field and extends the TTLs; deadlines only
//!   move later, so the bucket's score stays a lower bound. `validate_id` answers the 8-byte id
//!   only. Concurrent script validations are sent together: up to 64 in one call, up to 4
//!   calls in flight. Both steps of a validation share one operation budget.
//! - The reads of `validate` (standalone server): concurrent reads go out together on a
//!   connection of their own — two, each serving its own half of the calling tasks (while one
//!   half's batch is out, the other half's answers are being used), each with its own cache —
//!   with **server-assisted client-side caching** (`CLIENT TRACKING ON`, RESP3): the store
//!   keeps the values it read, and the server pushes an invalidation on the connection
//!   whenever a bucket read there changes — in any process, by a create, a
//!   touch, a removal, an expiry or a flush. A cached value is never a validation's positive
//!   answer on the strength of the cache alone (it may send the validation to the validate
//!   script at once — a touch due, an expired session, one without timeouts — as the script
//!   reads the session itself): every batch of reads carries a round trip to the server
//!   (`CLIENT GETREDIR`, tracking still on, and `EXISTS {P}v3:barrier`, a read the server
//!   refuses when it refuses reads) sent after each of its reads began, and the cached answers
//!   wait for its replies and for the invalidations that came before them. So a `clear
//!   session` that completed in another process before a validation began always makes it
//!   "no session" (the same guarantee as a read), and a server that is down fails every
//!   validation (fail closed); what the cache saves is reading and decoding a value per validation
//!   (validations at 50 concurrent tasks: 145–180k/s → 270–400k/s on one 2-core machine). A
//!   lost reading connection empties the cache. If the server refuses `CLIENT TRACKING` or
//!   `CLIENT GETREDIR` (an ACL without them), the reads are plain pipelined `HGET`s, without
//!   a cache (logged once). On a cluster, reads are plain pipelined `HGET`s. Redis sends no
//!   invalidation for `SWAPDB`:
//!   swapping the store's database under running processes is not supported.
//! - `remove`, `remove_by_id`: one script deletes the session and its index entries and returns
//!   the record, live or expired.
//! - `claim_expired`: one script reads the buckets whose score is at or before `now` whole,
//!   deletes their expired sessions and sets each bucket's score to its earliest remaining
//!   deadline, so each expired session is returned to exactly one caller across all processes.
//! - `list`: 128 script calls of 32 buckets each, four in flight at a time (so that each
//!   answer comes within the response timeout, and other callers' commands do not wait behind
//!   the whole listing), return the live sessions (100,000 sessions: 0.3 s), all within four
//!   operation budgets. Values that cannot be
//!   decoded are skipped (and logged) rather than hiding every other session from the
//!   operator.
//! - `contains`: one script call per 1,000 keys.
//!
//! # Values
//!
//! A compact, versioned, big-endian encoding (version 2): version byte; id; last activity (a
//! touch rewrites it); start; idle timeout (0: none); absolute deadline (0: none), times in 48
//! bits; flags (read/write, IPv6, the mechanism when it is `local` or `radius`); the address;
//! a named mechanism and the username, each with a length byte. Decoding is strict: another
//! version, a short or long value, unknown flags or text that is not UTF-8 is
//! [`RedisStoreError::Corrupt`], which reaches the session manager as
//! [`StoreErrorKind::Corrupt`](aaa_core::StoreErrorKind::Corrupt): the session is refused
//! (fail closed), nothing panics.
//!
//! # Connections and failures
//!
//! A standalone server is reached through the `redis` crate's `ConnectionManager` (one
//! multiplexed connection, reconnecting), a cluster through its async cluster connection; both
//! speak RESP3, so a connection the server closes (idle `timeout`, restart) is replaced at once.
//! Every call is bounded by `connect_timeout + response_timeout` (defaults 1 s + 500 ms, well
//! inside a login's budget). A call whose connection was lost under it is sent once more
//! (on Redis Cluster the client may resend it by itself too), and every call answers the same
//! the second time: `remove`, `remove_by_id` and `claim_expired` send a nonce (16 bytes: 8
//! random, drawn when the store is made, then a count) and their script keeps what it removed
//! under it and what it was asked (`{P}v3:r:<nonce><key, id or time>`, as long as a removal
//! mark lives), so a call that ran before its answer was lost reports the sessions it ended,
//! not "nothing". A session's end is reported at most once, and exactly once when the call
//! that ended it succeeds (a call that times out is not resent: its outcome is unknown). Redis
//! down means an error — [`StoreErrorKind::Unreachable`](aaa_core::StoreErrorKind::Unreachable)
//! or [`Timeout`](aaa_core::StoreErrorKind::Timeout) — from every call, never a session and
//! never a hang; Redis back means the next calls succeed, without restarting the process.
//!
//! URLs: `redis://[user:password@]host[:port][/db]`; `rediss://…` over TLS (cargo feature
//! `tls`: rustls, trusting the system's root certificates or the CAs given to
//! `RedisConfig::with_tls_root_ca`); `redis+cluster://host:port,host:port` (and
//! `rediss+cluster://`). Needs Redis 7.0 or later (RESP3, `ZADD … LT`, `struct` and
//! `cmsgpack` in Lua). A standalone store opens up to three connections per process: the
//! connection manager's, and two reading connections (each opened at the first validation
//! that needs it).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod config;
mod error;
mod scripts;
mod store;
mod tracker;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE, DEFAULT_MAX_IDLE_BACKSTOP, DEFAULT_PREFIX,
    DEFAULT_RESPONSE_TIMEOUT, MAX_PREFIX_LEN, RedisConfig, RedisUrl,
};
pub use error::{CorruptReason, RedisStoreError};
pub use store::RedisStore;

/// Entry points for the fuzzers and property tests (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    /// Decodes `value` as a stored session value; never panics.
    pub fn decode_value(value: &[u8]) -> Result<aaa_core::SessionRecord, crate::RedisStoreError> {
        crate::codec::decode(aaa_core::CookieHash::from_bytes([0; 32]), value)
    }
}
