//! What a worker reports at the end (`report-<i>.json`), and the latency histogram.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets of the latency histogram: four per power of two of microseconds, up to 2^32 µs.
const BUCKETS: usize = 4 * 33;

fn bucket(us: u64) -> usize {
    if us < 4 {
        return usize::try_from(us).unwrap_or(0);
    }
    let log = 63 - u64::from(us.leading_zeros());
    let sub = (us >> (log - 2)) & 3;
    usize::try_from(log * 4 + sub)
        .unwrap_or(BUCKETS - 1)
        .min(BUCKETS - 1)
}

/// The largest value (µs) that falls into bucket `index`.
fn bucket_top(index: usize) -> u64 {
    if index < 4 {
        return index as u64;
    }
    if index < 8 {
        return 3; // unused buckets
    }
    let log = (index / 4) as u64;
    let sub = (index % 4) as u64;
    ((4 + sub + 1) << (log - 2)).saturating_sub(1)
}

/// The calls of one kind: outcomes and latencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OpStats {
    /// Calls made.
    pub(crate) calls: u64,
    /// Calls that returned `Ok` with something (a user, a session, a list).
    pub(crate) ok: u64,
    /// Calls that returned `Ok` with nothing (a reject, a validation of no live session).
    pub(crate) none: u64,
    /// Errors by kind (`store`, `unavailable`, `does-not-exist`, …).
    pub(crate) errors: BTreeMap<String, u64>,
    /// Calls still running after the hang bound (abandoned).
    pub(crate) hung: u64,
    /// The slowest call, µs.
    pub(crate) max_us: u64,
    /// Latency histogram (see `bucket`).
    pub(crate) histogram: Vec<u64>,
}

impl OpStats {
    pub(crate) fn record_latency(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.calls += 1;
        self.max_us = self.max_us.max(us);
        if self.histogram.len() < BUCKETS {
            self.histogram.resize(BUCKETS, 0);
        }
        if let Some(b) = self.histogram.get_mut(bucket(us)) {
            *b += 1;
        }
    }

    pub(crate) fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_insert(0) += 1;
    }

    /// The latency under which `q` (0..1) of the calls fell, in ms (bucket precision: 19 %).
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (bucket_top(i).min(self.max_us)) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.ok += other.ok;
        self.none += other.none;
        self.hung += other.hung;
        self.max_us = self.max_us.max(other.max_us);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        if self.histogram.len() < other.histogram.len() {
            self.histogram.resize(other.histogram.len(), 0);
        }
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
    }
}

/// How the logins ended, against what they had to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LoginStats {
    /// Accepted as expected, by mechanism (`radius`, `local`).
    pub(crate) accepted: BTreeMap<String, u64>,
    /// Rejected as they had to be (wrong password, unknown user, disabled account).
    pub(crate) rejected_expected: u64,
    /// Rejected although the password was right (e.g. RADIUS unanswered, so only the local
    /// accounts were asked, which do not know the user). Not a failure; reported.
    pub(crate) rejected_unexpected: u64,
    /// Attempts with a wrong password.
    pub(crate) wrong_password: u64,
    /// Attempts as a user that exists nowhere.
    pub(crate) unknown_user: u64,
}

/// Lines written to the journal.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct JournalCounts {
    pub(crate) started: u64,
    pub(crate) ended: u64,
    pub(crate) cleared: u64,
    pub(crate) gone: u64,
    pub(crate) end_failed: u64,
    pub(crate) clear_failed: u64,
}

/// The counters of one RADIUS server at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RadiusCounters {
    pub(crate) requests: u64,
    pub(crate) retransmissions: u64,
    pub(crate) replies: u64,
    pub(crate) no_reply: u64,
    pub(crate) discarded: u64,
}

/// The RADIUS counters of every server, sampled at `t_ms` (Unix ms).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RadiusSample {
    pub(crate) t_ms: u64,
    pub(crate) servers: Vec<RadiusCounters>,
}

/// Everything a worker reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WorkerReport {
    pub(crate) index: usize,
    pub(crate) seed: u64,
    /// How long the load ran, s.
    pub(crate) ran_s: f64,
    pub(crate) ops: BTreeMap<String, OpStats>,
    pub(crate) logins: LoginStats,
    pub(crate) journal: JournalCounts,
    /// Accepts that had to be rejects, wrong privileges, a cookie that found another session.
    pub(crate) security_failures: u64,
    /// The first few security failures, described.
    pub(crate) security_notes: Vec<String>,
    /// Sessions this process had seen end (or knew ended) found valid again.
    pub(crate) revived: u64,
    /// Own sessions validated to another `Arc<ExosUser>` than the one that started them.
    pub(crate) identity_mismatches: u64,
    /// Client tasks still running past the deadline plus the hang bound.
    pub(crate) clients_unfinished: u64,
    /// Own sessions still live when the load stopped.
    pub(crate) live_at_end: usize,
    /// Users in this process's session cache at the end.
    pub(crate) cached_users: usize,
    /// `VmHWM`, KiB.
    pub(crate) peak_rss_kib: u64,
    /// (`t_ms`, `VmRSS` KiB), every 5 s.
    pub(crate) rss_samples: Vec<(u64, u64)>,
    /// RADIUS counters, every 500 ms.
    pub(crate) radius_samples: Vec<RadiusSample>,
    /// Discarded RADIUS datagrams by reason, all servers, at the end.
    pub(crate) radius_discards: BTreeMap<String, u64>,
}

impl WorkerReport {
    pub(crate) fn hung(&self) -> u64 {
        self.ops.values().map(|o| o.hung).sum::<u64>() + self.clients_unfinished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for us in [0, 1, 3, 4, 5, 7, 8, 100, 999, 1000, 65_535, 10_000_000] {
            let b = bucket(us);
            assert!(bucket_top(b) >= us, "{us} in {b}, top {}", bucket_top(b));
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us}");
            }
        }
        let mut s = OpStats::default();
        for ms in 1..=100 {
            s.record_latency(Duration::from_millis(ms));
        }
        let p50 = s.quantile_ms(0.5);
        assert!((45.0..=62.0).contains(&p50), "{p50}");
        assert!((s.quantile_ms(1.0) - 100.0).abs() < 1e-9);
        let mut t = OpStats::default();
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.calls, 200);
    }
}
