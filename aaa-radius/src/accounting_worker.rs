//! The accounting task: takes queued records, writes them to the spool, sends them (in order
//! per session, up to `max_in_flight` at once), retries them until acknowledged, deletes their
//! spool files, and generates Interim-Updates.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use aaa_core::{Clock, SessionStore};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use crate::accounting::{AccountingConfig, Intake, InterimSeed, Shared};
use crate::accounting_record::{AcctRecord, Status};
use crate::accounting_spool::{Adopted, Spool};
use crate::backoff::{random_jitter, scale};
use crate::util::{LogLimit, lock};
use crate::{Client, RadiusError};

/// How often a running process looks for the spooled records of processes that are gone.
const ADOPT_INTERVAL: Duration = Duration::from_secs(60);
/// How many queued records one scheduling pass looks at, at most, besides those in flight.
const SCAN_LIMIT: usize = 4096;
/// How many records are written to the spool at a time.
const SPOOL_BATCH: usize = 256;

/// One record waiting to be acknowledged.
#[derive(Debug)]
struct Entry {
    record: AcctRecord,
    session: Arc<str>,
    /// Rounds that ended unacknowledged.
    attempts: u32,
    /// Its spool file and size.
    file: Option<(PathBuf, u64)>,
    in_flight: bool,
    /// The outage generation when it was last sent.
    generation: u64,
}

/// The Interim-Updates of one session started in this process.
#[derive(Debug)]
struct Interim {
    seed: InterimSeed,
    start: AcctRecord,
    due: Instant,
}

/// The spool and what is in it.
#[derive(Debug)]
struct SpoolState {
    spool: Arc<Spool>,
    max_records: usize,
    max_bytes: u64,
    records: usize,
    bytes: u64,
    next_file: u64,
    next_adopt: Instant,
    errors: LogLimit,
}

/// How a send ended.
#[derive(Debug)]
enum Outcome {
    Acknowledged,
    /// No server acknowledged (or the round could not run): try again later.
    Unanswered(Option<RadiusError>),
    /// It can never be sent.
    Failed(RadiusError),
}

/// What woke the task.
#[derive(Debug)]
enum Wake {
    Notified,
    Finished(Result<(Id, Outcome), JoinError>),
    Timer,
}

#[derive(Debug)]
pub(crate) struct Worker {
    shared: Arc<Shared>,
    client: Client,
    clock: Arc<dyn Clock>,
    sessions: Option<Arc<dyn SessionStore>>,
    spool: Option<SpoolState>,
    max_in_flight: usize,
    retry_initial: Duration,
    retry_max: Duration,
    interim_interval: Option<Duration>,
    /// Every record not yet acknowledged, by sequence number (the order they are sent in).
    pending: BTreeMap<u64, Entry>,
    tasks: JoinSet<Outcome>,
    task_seq: HashMap<Id, u64>,
    /// Sessions with a record in flight.
    busy: HashSet<Arc<str>>,
    interims: HashMap<Arc<str>, Interim>,
    interim_due: BTreeSet<(Instant, Arc<str>)>,
    /// Unacknowledged rounds in a row (0: servers answer).
    failures: u32,
    /// Incremented at each counted failure: sends started before it do not count again.
    generation: u64,
    paused_until: Option<Instant>,
    /// Spool files of acknowledged or abandoned records, to delete (their records still count
    /// in `State::spooled` until then).
    removals: Vec<PathBuf>,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        client: Client,
        clock: Arc<dyn Clock>,
        sessions: Option<Arc<dyn SessionStore>>,
        config: &AccountingConfig,
        spool: Option<(Spool, usize, u64)>,
    ) -> Self {
        Self {
            shared,
            client,
            clock,
            sessions,
            spool: spool.map(|(spool, max_records, max_bytes)| SpoolState {
                spool: Arc::new(spool),
                max_records,
                max_bytes,
                records: 0,
                bytes: 0,
                next_file: 0,
                next_adopt: Instant::now() + ADOPT_INTERVAL,
                errors: LogLimit::new(),
            }),
            max_in_flight: config.max_in_flight,
            retry_initial: config.retry_initial,
            retry_max: config.retry_max,
            interim_interval: config.interim_interval,
            pending: BTreeMap::new(),
            tasks: JoinSet::new(),
            task_seq: HashMap::new(),
            busy: HashSet::new(),
            interims: HashMap::new(),
            interim_due: BTreeSet::new(),
            failures: 0,
            generation: 0,
            paused_until: None,
            removals: Vec::new(),
        }
    }

    /// Takes over the spooled records of processes that are gone, now (blocking file I/O:
    /// at construction).
    pub(crate) fn adopt(&mut self) {
        let Some(sp) = &mut self.spool else {
            return;
        };
        let mut next = sp.next_file;
        let adopted = sp.spool.adopt_orphans(&mut next);
        sp.next_file = next;
        self.take_adopted(adopted);
    }

    /// Queues taken-over records after everything queued so far.
    fn take_adopted(&mut self, adopted: Adopted) {
        let shared = self.shared.clone();
        shared
            .counters
            .spool_errors
            .fetch_add(adopted.errors, Ordering::Relaxed);
        if adopted.records.is_empty() {
            return;
        }
        let Some(sp) = &mut self.spool else {
            return;
        };
        let count = adopted.records.len();
        let mut state = lock(&shared.state);
        for spooled in adopted.records {
            let seq = state.next_seq;
            state.next_seq = seq.wrapping_add(1);
            state.spooled += 1;
            sp.records += 1;
            sp.bytes = sp.bytes.saturating_add(spooled.bytes);
            self.pending.insert(
                seq,
                Entry {
                    session: Arc::from(spooled.record.session_id.as_str()),
                    record: spooled.record,
                    attempts: 0,
                    file: Some((spooled.path, spooled.bytes)),
                    in_flight: false,
                    generation: 0,
                },
            );
        }
        drop(state);
        shared
            .counters
            .loaded
            .fetch_add(count as u64, Ordering::Relaxed);
        tracing::info!(
            target: "aaa::radius",
            records = count,
            dir = %sp.spool.dir().display(),
            "took over spooled accounting records of a process that is gone"
        );
        shared.wake.notify_one();
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.take_new().await;
            self.remove_files().await;
            self.adopt_periodically().await;
            self.schedule();
            match self.wait().await {
                Wake::Notified | Wake::Timer => {}
                Wake::Finished(joined) => {
                    self.finished(joined);
                    while let Some(joined) = self.tasks.try_join_next_with_id() {
                        self.finished(joined);
                    }
                }
            }
        }
    }

    async fn wait(&mut self) -> Wake {
        let timer = [
            self.paused_until,
            self.interim_due.first().map(|(at, _)| *at),
            self.spool.as_ref().map(|s| s.next_adopt),
        ]
        .into_iter()
        .flatten()
        .min();
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            () = self.shared.wake.notified() => Wake::Notified,
            Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                Wake::Finished(joined)
            }
            () = tokio::time::sleep_until(timer.unwrap_or(far)), if timer.is_some() => Wake::Timer,
        }
    }

    /// Moves queued records (and due Interim-Updates) into `pending`, through the spool.
    async fn take_new(&mut self) {
        let due = self.due_interims().await;
        let shared = self.shared.clone();
        let mut batch: Vec<(u64, AcctRecord)> = Vec::new();
        let mut refused = Vec::new();
        {
            let mut state = lock(&shared.state);
            // With a spool, a batch is written before anything else happens: keep it short
            // so that sending and acknowledging go on between batches.
            let take = if self.spool.is_some() {
                state.intake.len().min(SPOOL_BATCH)
            } else {
                state.intake.len()
            };
            let intake: Vec<Intake> = state.intake.drain(..take).collect();
            for item in intake {
                self.note(&item);
                batch.push((item.seq, item.record));
            }
            let now = Instant::now();
            if !state.intake.is_empty() {
                // More to take: come back at once. Interim-Updates wait until the intake is
                // empty, so that one is never numbered after a Stop still in it.
                shared.wake.notify_one();
                for session in &due {
                    if let Some(interim) = self.interims.get(session) {
                        self.interim_due.insert((interim.due, session.clone()));
                    }
                }
            }
            let due = if state.intake.is_empty() {
                due
            } else {
                Vec::new()
            };
            // After the intake: a Stop queued meanwhile has ended its Interim-Updates.
            let clock_now = self.clock.now();
            for session in due {
                let Some(interval) = self.interim_interval else {
                    break;
                };
                let Some(interim) = self.interims.get_mut(&session) else {
                    continue;
                };
                let record = AcctRecord::interim(&interim.start, interim.seed.start, clock_now);
                interim.due = now + interval;
                self.interim_due.insert((interim.due, session));
                if state.memory >= shared.capacity {
                    refused.push(record);
                    continue;
                }
                let seq = state.next_seq;
                state.next_seq = seq.wrapping_add(1);
                state.memory += 1;
                shared.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                batch.push((seq, record));
            }
        }
        for record in refused {
            shared.refuse(
                &record,
                &RadiusError::QueueFull {
                    capacity: shared.capacity,
                },
            );
        }
        if batch.is_empty() {
            return;
        }
        let files = self.spool_batch(&batch).await;
        for ((seq, record), file) in batch.into_iter().zip(files) {
            self.pending.insert(
                seq,
                Entry {
                    session: Arc::from(record.session_id.as_str()),
                    record,
                    attempts: 0,
                    file,
                    in_flight: false,
                    generation: 0,
                },
            );
        }
    }

    /// Interim-Update bookkeeping for a record taken from the intake.
    fn note(&mut self, item: &Intake) {
        let Some(interval) = self.interim_interval else {
            return;
        };
        match (&item.record.status, &item.interim) {
            (Status::Start, Some(seed)) => {
                let session: Arc<str> = Arc::from(item.record.session_id.as_str());
                let due = Instant::now() + interval;
                self.interim_due.insert((due, session.clone()));
                self.interims.insert(
                    session,
                    Interim {
                        seed: seed.clone(),
                        start: item.record.clone(),
                        due,
                    },
                );
            }
            (Status::Stop(_), _) => {
                self.interims.remove(item.record.session_id.as_str());
            }
            _ => {}
        }
    }

    /// The sessions whose Interim-Update is due and that still live.
    async fn due_interims(&mut self) -> Vec<Arc<str>> {
        let Some(interval) = self.interim_interval else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((at, session)) = self.interim_due.first().cloned() {
            if at > now {
                break;
            }
            self.interim_due.pop_first();
            let Some(interim) = self.interims.get(&session) else {
                continue;
            };
            if interim.due != at {
                continue;
            }
            let clock_now = self.clock.now();
            if interim
                .seed
                .absolute_deadline
                .is_some_and(|d| d <= clock_now)
            {
                self.interims.remove(&session);
                continue;
            }
            if let Some(store) = &self.sessions {
                match store.contains(&[interim.seed.key], clock_now).await {
                    Ok(live) if live.first() == Some(&true) => {}
                    Ok(_) => {
                        // Ended elsewhere (its Stop comes from there) or expired.
                        self.interims.remove(&session);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(target: "aaa::radius", %error, acct_session_id = %session,
                            "cannot check the session for its Interim-Update: skipped this time");
                        let next = now + interval;
                        if let Some(interim) = self.interims.get_mut(&session) {
                            interim.due = next;
                        }
                        self.interim_due.insert((next, session));
                        continue;
                    }
                }
            }
            due.push(session);
        }
        due
    }

    /// Writes the records of `batch` to the spool (if any, and not full); their files.
    async fn spool_batch(&mut self, batch: &[(u64, AcctRecord)]) -> Vec<Option<(PathBuf, u64)>> {
        let mut files = vec![None; batch.len()];
        let Some(sp) = &mut self.spool else {
            return files;
        };
        let shared = self.shared.clone();
        let mut jobs = Vec::new();
        let (mut records, mut bytes) = (sp.records, sp.bytes);
        for (i, (_, record)) in batch.iter().enumerate() {
            let text = record.to_spool_text();
            let size = text.len() as u64;
            if records >= sp.max_records || bytes.saturating_add(size) > sp.max_bytes {
                spool_error(
                    &shared,
                    &sp.errors,
                    &RadiusError::SpoolFull {
                        dir: sp.spool.dir().to_path_buf(),
                        records,
                        bytes,
                        max_records: sp.max_records,
                        max_bytes: sp.max_bytes,
                    },
                );
                continue;
            }
            records += 1;
            bytes += size;
            jobs.push((i, sp.next_file, text));
            sp.next_file = sp.next_file.saturating_add(1);
        }
        if jobs.is_empty() {
            return files;
        }
        let spool = sp.spool.clone();
        let written = tokio::task::spawn_blocking(move || {
            let results: Vec<_> = jobs
                .into_iter()
                .map(|(i, seq, text)| (i, text.len() as u64, spool.write(seq, &text)))
                .collect();
            (results, spool.sync())
        })
        .await;
        let (results, synced) = match written {
            Ok(w) => w,
            Err(e) => {
                let error = RadiusError::Spool {
                    action: "write spool files (the writing thread failed)",
                    path: sp.spool.dir().to_path_buf(),
                    source: std::io::Error::other(e),
                };
                spool_error(&shared, &sp.errors, &error);
                return files;
            }
        };
        if let Err(error) = synced {
            spool_error(&shared, &sp.errors, &error);
        }
        let mut ok = 0;
        for (i, size, result) in results {
            match result {
                Ok(path) => {
                    sp.records += 1;
                    sp.bytes = sp.bytes.saturating_add(size);
                    if let Some(slot) = files.get_mut(i) {
                        *slot = Some((path, size));
                        ok += 1;
                    }
                }
                Err(error) => spool_error(&shared, &sp.errors, &error),
            }
        }
        if ok > 0 {
            let mut state = lock(&shared.state);
            state.memory = state.memory.saturating_sub(ok);
            state.spooled += ok;
            drop(state);
            shared.changed.notify_waiters();
        }
        files
    }

    /// Deletes the spool files of acknowledged records.
    async fn remove_files(&mut self) {
        if self.removals.is_empty() {
            return;
        }
        let paths = std::mem::take(&mut self.removals);
        let count = paths.len();
        let Some(sp) = &self.spool else {
            return;
        };
        let spool = sp.spool.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let errors: Vec<RadiusError> =
                paths.iter().filter_map(|p| spool.remove(p).err()).collect();
            (errors, spool.sync())
        })
        .await;
        match removed {
            Ok((errors, synced)) => {
                for error in errors.iter().chain(synced.as_ref().err()) {
                    spool_error(&self.shared, &sp.errors, error);
                }
            }
            Err(e) => spool_error(
                &self.shared,
                &sp.errors,
                &RadiusError::Spool {
                    action: "delete spool files (the deleting thread failed)",
                    path: sp.spool.dir().to_path_buf(),
                    source: std::io::Error::other(e),
                },
            ),
        }
        let mut state = lock(&self.shared.state);
        state.spooled = state.spooled.saturating_sub(count);
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// Every `ADOPT_INTERVAL`, takes over the spooled records of processes that are gone.
    async fn adopt_periodically(&mut self) {
        let Some(sp) = &mut self.spool else {
            return;
        };
        if Instant::now() < sp.next_adopt {
            return;
        }
        sp.next_adopt = Instant::now() + ADOPT_INTERVAL;
        let spool = sp.spool.clone();
        let mut next = sp.next_file;
        let scanned = tokio::task::spawn_blocking(move || {
            let adopted = spool.adopt_orphans(&mut next);
            (adopted, next)
        })
        .await;
        match scanned {
            Ok((adopted, next)) => {
                sp.next_file = next;
                self.take_adopted(adopted);
            }
            Err(e) => spool_error(
                &self.shared,
                &sp.errors,
                &RadiusError::Spool {
                    action: "scan the spool (the scanning thread failed)",
                    path: sp.spool.dir().to_path_buf(),
                    source: std::io::Error::other(e),
                },
            ),
        }
    }

    /// Starts sending the next records that may go: in order, one at a time per session, up
    /// to `max_in_flight` (one while no server answers), none while paused.
    fn schedule(&mut self) {
        if self.paused_until.is_some_and(|t| t > Instant::now()) {
            return;
        }
        self.paused_until = None;
        let limit = if self.failures > 0 {
            1
        } else {
            self.max_in_flight
        };
        if self.tasks.len() >= limit {
            return;
        }
        let mut chosen = Vec::new();
        let mut seen: HashSet<Arc<str>> = HashSet::new();
        let mut looked = 0usize;
        for (seq, entry) in &self.pending {
            if self.tasks.len() + chosen.len() >= limit || looked >= SCAN_LIMIT {
                break;
            }
            if entry.in_flight {
                continue;
            }
            looked += 1;
            // The first waiting record of a session goes, if none of its records is in flight.
            if self.busy.contains(&entry.session) || !seen.insert(entry.session.clone()) {
                continue;
            }
            chosen.push(*seq);
        }
        for seq in chosen {
            self.start(seq);
        }
    }

    fn start(&mut self, seq: u64) {
        let Some(entry) = self.pending.get_mut(&seq) else {
            return;
        };
        let delay = entry.record.delay_at(SystemTime::now());
        let request = match entry.record.to_request(self.client.nas_attributes(), delay) {
            Ok(r) => r,
            Err(error) => {
                if let Some(entry) = self.pending.remove(&seq) {
                    self.give_up(entry, &error);
                }
                return;
            }
        };
        entry.in_flight = true;
        entry.generation = self.generation;
        let counters = &self.shared.counters;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        if entry.attempts > 0 {
            counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        self.busy.insert(entry.session.clone());
        let client = self.client.clone();
        let handle = self.tasks.spawn(async move {
            match client.send(&request).await {
                Ok(_) => Outcome::Acknowledged,
                Err(e @ (RadiusError::Entropy(_) | RadiusError::Socket { .. })) => {
                    Outcome::Unanswered(Some(e))
                }
                Err(e) if e.is_no_answer() => Outcome::Unanswered(Some(e)),
                Err(e) => Outcome::Failed(e),
            }
        });
        self.task_seq.insert(handle.id(), seq);
    }

    fn finished(&mut self, joined: Result<(Id, Outcome), JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Outcome::Unanswered(None)),
        };
        let Some(seq) = self.task_seq.remove(&id) else {
            return;
        };
        let Some(entry) = self.pending.get_mut(&seq) else {
            return;
        };
        entry.in_flight = false;
        self.busy.remove(&entry.session);
        match outcome {
            Outcome::Acknowledged => {
                if let Some(entry) = self.pending.remove(&seq) {
                    self.acknowledged(entry);
                }
            }
            Outcome::Unanswered(error) => {
                entry.attempts = entry.attempts.saturating_add(1);
                if entry.generation == self.generation {
                    self.unanswered(error.as_ref());
                }
            }
            Outcome::Failed(error) => {
                if let Some(entry) = self.pending.remove(&seq) {
                    self.give_up(entry, &error);
                }
            }
        }
    }

    fn acknowledged(&mut self, entry: Entry) {
        let shared = self.shared.clone();
        shared.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
        self.forget(entry);
        if self.failures > 0 {
            tracing::info!(
                target: "aaa::radius",
                pending = self.pending.len(),
                "an accounting server acknowledges again: sending the queued records"
            );
            self.failures = 0;
            self.paused_until = None;
            lock(&shared.state).outage = false;
        }
        shared.changed.notify_waiters();
    }

    /// A round without acknowledgement: pause (doubling), then one record at a time.
    fn unanswered(&mut self, error: Option<&RadiusError>) {
        self.generation = self.generation.wrapping_add(1);
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff();
        self.paused_until = Some(Instant::now() + wait);
        let first = self.failures == 1;
        lock(&self.shared.state).outage = true;
        if first {
            tracing::warn!(
                target: "aaa::radius",
                pending = self.pending.len(),
                retry_in_ms = wait.as_millis(),
                error = error.map(|e| e.to_string()).unwrap_or_default(),
                "no accounting server acknowledged: records are kept and retried until one does"
            );
        } else {
            tracing::debug!(
                target: "aaa::radius",
                pending = self.pending.len(),
                retry_in_ms = wait.as_millis(),
                failures = self.failures,
                "accounting servers still silent"
            );
        }
        self.shared.changed.notify_waiters();
    }

    /// `retry_initial` doubled per failure after the first, at most `retry_max`, ±10 %.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(30);
        let base = self
            .retry_initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.retry_max)
            .min(self.retry_max);
        scale(base, 1.0 + random_jitter()).unwrap_or(base)
    }

    /// A record that can never be sent: logged, counted, forgotten.
    fn give_up(&mut self, entry: Entry, error: &RadiusError) {
        let record = entry.record.clone();
        self.forget(entry);
        self.shared.refuse(&record, error);
    }

    /// Removes a record that left the queue from the counts (and its file).
    fn forget(&mut self, entry: Entry) {
        let mut state = lock(&self.shared.state);
        match (entry.file, &mut self.spool) {
            // Still counted as spooled until its file is deleted (`remove_files`), so that a
            // flush returns with the spool clean.
            (Some((path, size)), Some(sp)) => {
                sp.records = sp.records.saturating_sub(1);
                sp.bytes = sp.bytes.saturating_sub(size);
                self.removals.push(path);
            }
            _ => state.memory = state.memory.saturating_sub(1),
        }
    }
}

/// A spool failure: counted, and logged at a limited rate.
fn spool_error(shared: &Shared, limit: &LogLimit, error: &RadiusError) {
    shared.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = limit.permit() {
        tracing::error!(target: "aaa::radius", %error, suppressed, "accounting spool");
    }
}
