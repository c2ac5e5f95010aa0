//! The retransmission timeouts of RFC 5080 §2.2.1.

use std::time::Duration;

use rand::TryRng as _;

use crate::Retransmit;

/// The largest jitter factor: RAND is uniform in [-0.1, +0.1].
pub(crate) const JITTER: f64 = 0.1;

/// The successive timeouts of one exchange:
///
/// ```text
/// RT = IRT + RAND*IRT                       (first)
/// RT = 2*RTprev + RAND*RTprev               (then)
/// if RT > MRT: RT = MRT + RAND*MRT
/// ```
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: Retransmit,
    previous: Option<Duration>,
}

impl Backoff {
    pub(crate) fn new(policy: Retransmit) -> Self {
        Self {
            policy,
            previous: None,
        }
    }

    /// The next timeout, with `rand` in [-0.1, 0.1] (clamped).
    pub(crate) fn next_with(&mut self, rand: f64) -> Duration {
        let rand = if rand.is_finite() {
            rand.clamp(-JITTER, JITTER)
        } else {
            0.0
        };
        let mrt = self.policy.max_interval;
        let rt = match self.previous {
            None => scale(self.policy.initial, 1.0 + rand),
            Some(previous) => scale(previous, 2.0 + rand),
        };
        let rt = match rt {
            Some(rt) if rt <= mrt => rt,
            _ => scale(mrt, 1.0 + rand).unwrap_or(mrt),
        };
        self.previous = Some(rt);
        rt
    }

    /// The next timeout, with jitter from the OS random generator (none if it fails).
    pub(crate) fn next(&mut self) -> Duration {
        self.next_with(random_jitter())
    }
}

/// `d * factor`, if that is a valid duration.
pub(crate) fn scale(d: Duration, factor: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).ok()
}

/// A uniform value in [-0.1, 0.1] (0 if the OS random generator fails).
pub(crate) fn random_jitter() -> f64 {
    match rand::rngs::SysRng.try_next_u32() {
        Ok(r) => (f64::from(r) / f64::from(u32::MAX) * 2.0 - 1.0) * JITTER,
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubling_capped_with_jitter_bounds() {
        let policy = Retransmit::new(ms(1000), 10, ms(4000), ms(30_000));
        // No jitter: 1, 2, 4, 4, 4 s.
        let mut b = Backoff::new(policy);
        let got: Vec<_> = (0..5).map(|_| b.next_with(0.0)).collect();
        assert_eq!(got, [ms(1000), ms(2000), ms(4000), ms(4000), ms(4000)]);
        // Extreme jitter stays within ±10 % of each step.
        let mut lo = Backoff::new(policy);
        let mut hi = Backoff::new(policy);
        assert_eq!(lo.next_with(-0.1), ms(900));
        assert_eq!(hi.next_with(0.1), ms(1100));
        assert_eq!(lo.next_with(-0.1), ms(1710));
        assert_eq!(hi.next_with(0.1), ms(2310));
        // 1.71 * 1.9 = 3.249 ≤ 4; 2.31 * 2.1 = 4.851 > 4: capped to MRT*(1.1).
        assert_eq!(lo.next_with(-0.1), Duration::from_secs_f64(3.249));
        assert_eq!(hi.next_with(0.1), ms(4400));
        assert_eq!(hi.next_with(-0.1), ms(3600));
        // Out-of-range and non-finite jitter is clamped.
        let mut b = Backoff::new(policy);
        assert_eq!(b.next_with(5.0), ms(1100));
        let mut b = Backoff::new(policy);
        assert_eq!(b.next_with(f64::NAN), ms(1000));
    }

    #[test]
    fn random_jitter_in_range() {
        let policy = Retransmit::default();
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-JITTER..=JITTER).contains(&j), "{j}");
            let rt = Backoff::new(policy).next();
            assert!(rt >= ms(900) && rt <= ms(1100), "{rt:?}");
        }
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let policy = Retransmit::new(Duration::MAX, 3, Duration::MAX, Duration::MAX);
        let mut b = Backoff::new(policy);
        for _ in 0..4 {
            let _ = b.next();
        }
    }
}
