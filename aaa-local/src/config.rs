//! The configuration: argon2id cost parameters, password policy, throttling, hashing concurrency.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::error::{HashError, LocalError};

/// Argon2id cost parameters.
///
/// The policy of a [`LocalAccounts`](crate::LocalAccounts): new hashes are made with these
/// parameters, and a stored hash whose memory cost (`m_kib`) or time cost (`t`) is lower, or
/// that is not argon2id version 19, is re-hashed at its owner's next successful login.
/// Parallelism (`p`) is not a strength parameter and is not compared.
///
/// The default is OWASP's recommendation, [`HashParams::OWASP`]: m = 19456 KiB, t = 2, p = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashParams {
    /// Memory cost in KiB (argon2's `m`).
    pub m_kib: u32,
    /// Time cost: the number of passes (argon2's `t`).
    pub t: u32,
    /// Parallelism: the number of lanes (argon2's `p`).
    pub p: u32,
}

impl HashParams {
    /// OWASP's recommended minimum for argon2id: m = 19456 KiB (19 MiB), t = 2, p = 1.
    pub const OWASP: Self = Self {
        m_kib: 19_456,
        t: 2,
        p: 1,
    };

    /// The largest memory cost accepted, in KiB (2 GiB), in the configuration and in stored
    /// hashes: a corrupt file or configuration must not exhaust the device's memory.
    pub const MAX_M_KIB: u32 = 2 * 1024 * 1024;
    /// The largest time cost accepted, in the configuration and in stored hashes.
    pub const MAX_T: u32 = 64;
    /// The largest parallelism accepted, in the configuration and in stored hashes.
    pub const MAX_P: u32 = 64;

    /// The OWASP table of equivalent argon2id settings (memory KiB, passes), all with p = 1.
    const OWASP_EQUIVALENTS: [(u32, u32); 5] = [
        (47_104, 1),
        (19_456, 2),
        (12_288, 3),
        (9_216, 4),
        (7_168, 5),
    ];

    /// Parameters `m_kib` KiB, `t` passes, `p` lanes. They are checked when the configuration
    /// is used ([`LocalAccounts::with_config`](crate::LocalAccounts::with_config)).
    pub const fn new(m_kib: u32, t: u32, p: u32) -> Self {
        Self { m_kib, t, p }
    }

    /// Cheap parameters (m = 256 KiB, t = 1, p = 1) **for tests only**: they make a hash take
    /// well under a millisecond, and offer no protection to a stolen account file.
    ///
    /// A configuration below the OWASP minimum is accepted (so tests, and devices too small for
    /// the default, can run) but [`LocalAccounts::with_config`](crate::LocalAccounts::with_config)
    /// logs a warning for it.
    pub const fn insecure_for_tests() -> Self {
        Self {
            m_kib: 256,
            t: 1,
            p: 1,
        }
    }

    /// Whether these parameters are at or above one of OWASP's equivalent argon2id settings
    /// (46 MiB/t=1, 19 MiB/t=2, 12 MiB/t=3, 9 MiB/t=4, 7 MiB/t=5).
    pub fn meets_owasp_minimum(&self) -> bool {
        Self::OWASP_EQUIVALENTS
            .iter()
            .any(|&(m, t)| self.m_kib >= m && self.t >= t)
    }

    /// Whether a hash made with these parameters is at least as strong as `policy` (memory and
    /// time cost both at or above the policy's).
    pub fn at_least(&self, policy: &Self) -> bool {
        self.m_kib >= policy.m_kib && self.t >= policy.t
    }

    /// Whether the parameters are within the sanity limits (`MAX_*`).
    pub(crate) fn within_limits(&self) -> bool {
        self.m_kib <= Self::MAX_M_KIB && self.t <= Self::MAX_T && self.p <= Self::MAX_P
    }

    /// The argon2 parameters, checked against argon2's own limits and ours.
    pub(crate) fn to_argon2(self) -> Result<argon2::Params, LocalError> {
        if !self.within_limits() {
            return Err(LocalError::InvalidConfig {
                setting: "params",
                reason: "exceed the limits (m_kib <= 2097152, t <= 64, p <= 64)",
            });
        }
        argon2::Params::new(self.m_kib, self.t, self.p, None).map_err(|e| {
            LocalError::InvalidHashParams {
                params: self,
                source: HashError::params(e),
            }
        })
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP
    }
}

impl fmt::Display for HashParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

/// The configuration of a [`LocalAccounts`](crate::LocalAccounts).
///
/// `#[non_exhaustive]`: start from [`LocalConfig::default`] and change the fields you need.
///
/// ```
/// use std::time::Duration;
/// use aaa_local::{HashParams, LocalConfig};
///
/// let mut config = LocalConfig::default();
/// config.params = HashParams::new(47_104, 1, 1); // OWASP's 46 MiB, one pass
/// config.lockout_threshold = 10;
/// config.lockout_duration = Duration::from_secs(15 * 60);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalConfig {
    /// The argon2id parameters of new hashes, and the policy stored hashes are compared with.
    /// Default: [`HashParams::OWASP`].
    pub params: HashParams,
    /// The shortest password accepted when setting one, in characters (Unicode scalar values),
    /// 1 to 128. Default: 8. The longest is always 128 bytes
    /// ([`aaa_core::MAX_PASSWORD_BYTES`]).
    pub min_password_chars: usize,
    /// How many consecutive failed logins lock an account, 1 to 100. Default: 5.
    pub lockout_threshold: u32,
    /// How long a lockout lasts, more than zero and at most
    /// [`LocalConfig::MAX_LOCKOUT_DURATION`]. Default: 5 minutes.
    pub lockout_duration: Duration,
    /// How many argon2 computations (hashes or verifications) may run at once in this process,
    /// 1 to tokio's `Semaphore::MAX_PERMITS`; further logins wait their turn. Bounds the memory
    /// a login storm can take (`max_concurrent_hashes × m_kib`). Default: the number of CPUs
    /// ([`std::thread::available_parallelism`]).
    pub max_concurrent_hashes: usize,
}

impl LocalConfig {
    /// The longest lockout that can be configured: 24 hours. Lockouts are always finite.
    pub const MAX_LOCKOUT_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
    /// The largest lockout threshold (NIST SP 800-63B §5.2.2: at most 100 consecutive failures).
    pub const MAX_LOCKOUT_THRESHOLD: u32 = 100;

    /// Checks every setting; returns the argon2 parameters.
    pub(crate) fn validate(&self) -> Result<argon2::Params, LocalError> {
        let params = self.params.to_argon2()?;
        if self.min_password_chars == 0 || self.min_password_chars > aaa_core::MAX_PASSWORD_BYTES {
            return Err(LocalError::InvalidConfig {
                setting: "min_password_chars",
                reason: "must be between 1 and 128",
            });
        }
        if self.lockout_threshold == 0 || self.lockout_threshold > Self::MAX_LOCKOUT_THRESHOLD {
            return Err(LocalError::InvalidConfig {
                setting: "lockout_threshold",
                reason: "must be between 1 and 100",
            });
        }
        if self.lockout_duration.is_zero() || self.lockout_duration > Self::MAX_LOCKOUT_DURATION {
            return Err(LocalError::InvalidConfig {
                setting: "lockout_duration",
                reason: "must be more than zero and at most 24 hours",
            });
        }
        if self.max_concurrent_hashes == 0
            || self.max_concurrent_hashes > tokio::sync::Semaphore::MAX_PERMITS
        {
            return Err(LocalError::InvalidConfig {
                setting: "max_concurrent_hashes",
                reason: "must be between 1 and tokio's Semaphore::MAX_PERMITS (usize::MAX >> 3)",
            });
        }
        Ok(params)
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            params: HashParams::OWASP,
            min_password_chars: 8,
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(5 * 60),
            max_concurrent_hashes: std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owasp_floor() {
        assert!(HashParams::OWASP.meets_owasp_minimum());
        assert!(HashParams::new(47_104, 1, 1).meets_owasp_minimum());
        assert!(HashParams::new(7_168, 5, 1).meets_owasp_minimum());
        assert!(!HashParams::new(19_455, 2, 1).meets_owasp_minimum());
        assert!(!HashParams::new(19_456, 1, 1).meets_owasp_minimum());
        assert!(!HashParams::insecure_for_tests().meets_owasp_minimum());
        assert_eq!(HashParams::default().to_string(), "m=19456,t=2,p=1");
    }

    #[test]
    fn config_limits() {
        assert!(LocalConfig::default().validate().is_ok());
        let bad: [fn(&mut LocalConfig); 9] = [
            |c| c.min_password_chars = 0,
            |c| c.min_password_chars = 129,
            |c| c.lockout_threshold = 0,
            |c| c.lockout_threshold = 101,
            |c| c.lockout_duration = Duration::ZERO,
            |c| c.lockout_duration = Duration::from_secs(24 * 3600 + 1),
            |c| c.max_concurrent_hashes = 0,
            |c| c.max_concurrent_hashes = tokio::sync::Semaphore::MAX_PERMITS + 1,
            |c| c.params = HashParams::new(HashParams::MAX_M_KIB + 1, 1, 1),
        ];
        for (i, change) in bad.iter().enumerate() {
            let mut c = LocalConfig::default();
            change(&mut c);
            assert!(
                matches!(c.validate(), Err(LocalError::InvalidConfig { .. })),
                "case {i}"
            );
        }
        let c = LocalConfig {
            max_concurrent_hashes: 0,
            ..LocalConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("max_concurrent_hashes must be between 1 and"),
            "{e}"
        );
        // argon2's own limits: memory must be at least 8 KiB per lane.
        let c = LocalConfig {
            params: HashParams::new(4, 1, 1),
            ..LocalConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(matches!(e, LocalError::InvalidHashParams { .. }), "{e}");
        assert!(e.to_string().contains("m=4,t=1,p=1"));
    }
}
