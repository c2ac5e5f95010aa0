//! argon2id hashing and verification, with counters. Runs on blocking threads only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, PasswordHasher, Version};
use subtle::ConstantTimeEq as _;

use crate::HashParams;
use crate::error::{HashError, LocalError};

/// The password the dummy hash is made of. Its value does not matter: nobody can log in with
/// it, since the dummy hash belongs to no account.
const DUMMY_PASSWORD: &[u8] = b"aaa-local: no such account";

/// Shortest salt of a hash at policy (bytes); shorter ones are re-hashed.
const POLICY_SALT_BYTES: usize = 16;
/// Shortest output of a hash at policy (bytes); shorter ones are re-hashed.
const POLICY_OUTPUT_BYTES: usize = 32;

/// argon2's working memory, reused across verifications.
///
/// Every login verifies a hash, and each verification needs `m_kib` KiB (19 MiB by default).
/// Allocated and freed per login, such blocks fragment glibc's heap once its mmap threshold has
/// risen past them: a process's RSS then climbs to many times the bound. Reusing at most one
/// buffer per concurrent hash (the semaphore's bound) keeps the memory at
/// `max_concurrent_hashes × m_kib`, whatever the allocator does.
#[derive(Debug, Default)]
struct BlockPool {
    free: Mutex<Vec<Vec<Block>>>,
}

/// More than the semaphore ever lets run at once; a guard against unbounded growth only.
const MAX_POOLED_BUFFERS: usize = 256;

impl BlockPool {
    /// A buffer of at least `count` blocks.
    fn take(&self, count: usize) -> Result<Vec<Block>, LocalError> {
        let mut buf = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if buf.len() < count {
            buf.try_reserve_exact(count - buf.len())
                .map_err(|_| LocalError::Hash(HashError::params(argon2::Error::OutOfMemory)))?;
            buf.resize(count, Block::default());
        }
        Ok(buf)
    }

    fn give(&self, buf: Vec<Block>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < MAX_POOLED_BUFFERS {
            free.push(buf);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Hasher {
    policy: HashParams,
    pool: BlockPool,
    params: argon2::Params,
    /// A hash of `DUMMY_PASSWORD` at the policy parameters, made once, on first use.
    dummy: OnceLock<String>,
    verifications: AtomicU64,
    hashes: AtomicU64,
    #[cfg(test)]
    pub(crate) concurrency: test_support::Concurrency,
}

impl Hasher {
    pub(crate) fn new(policy: HashParams, params: argon2::Params) -> Self {
        Self {
            policy,
            pool: BlockPool::default(),
            params,
            dummy: OnceLock::new(),
            verifications: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            #[cfg(test)]
            concurrency: test_support::Concurrency::default(),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// How many verifications (real and dummy) were run.
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How many hashes were made (new passwords, re-hashes, the dummy hash).
    pub(crate) fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// A new PHC string for `password` at the policy parameters, with a random 16-byte salt.
    pub(crate) fn hash(&self, password: &[u8]) -> Result<String, LocalError> {
        #[cfg(test)]
        let _busy = self.concurrency.enter();
        self.hashes.fetch_add(1, Ordering::Relaxed);
        self.argon2()
            .hash_password(password)
            .map(|h| h.to_string())
            .map_err(|e| LocalError::Hash(HashError::hash(e)))
    }

    /// Whether `password` matches the PHC string `phc` (with the parameters stored in it).
    /// The comparison is constant-time; argon2's memory comes from the pool.
    pub(crate) fn verify(&self, password: &[u8], phc: &str) -> Result<bool, LocalError> {
        #[cfg(test)]
        let _busy = self.concurrency.enter();
        let fail = |e: argon2::password_hash::Error| LocalError::Hash(HashError::hash(e));
        let parsed = PasswordHash::new(phc).map_err(|e| fail(e.into()))?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(fail)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| fail(e.into()))?
            .unwrap_or_default();
        let params = argon2::Params::try_from(&parsed).map_err(fail)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = [0u8; 64];
        let expected: &[u8] = expected.as_ref();
        let Some(out) = out.get_mut(..expected.len()) else {
            return Ok(false);
        };
        let count = params.block_count();
        let mut blocks = self.pool.take(count)?;
        let result = match blocks.get_mut(..count) {
            Some(memory) => argon2.hash_password_into_with_memory(password, salt, out, memory),
            None => Err(argon2::Error::OutOfMemory),
        };
        // A stored hash stronger than the policy (rare) does not pin its larger buffer.
        if blocks.len() <= self.params.block_count() {
            self.pool.give(blocks);
        }
        result.map_err(|e| fail(e.into()))?;
        Ok(bool::from(out.ct_eq(expected)))
    }

    /// Makes the dummy hash if it does not exist yet.
    pub(crate) fn ensure_dummy(&self) -> Result<(), LocalError> {
        self.dummy().map(drop)
    }

    fn dummy(&self) -> Result<&str, LocalError> {
        if let Some(d) = self.dummy.get() {
            return Ok(d);
        }
        let made = self.hash(DUMMY_PASSWORD)?;
        // Two threads may race to make it; either hash will do.
        Ok(self.dummy.get_or_init(|| made))
    }

    /// One verification of `password` against the dummy hash: the cost of checking a real
    /// account, for a login that must fail without revealing why. The result is ignored.
    pub(crate) fn dummy_verify(&self, password: &[u8]) -> Result<(), LocalError> {
        let dummy = self.dummy()?;
        self.verify(password, dummy).map(drop)
    }

    /// Whether a stored hash is weaker than the policy (so it is re-hashed at the next successful
    /// login): not argon2id version 19, memory or time cost below the policy's, or a salt or
    /// output shorter than this library makes.
    pub(crate) fn is_weak(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = argon2::Params::try_from(&parsed) else {
            return true;
        };
        let stored = HashParams::new(params.m_cost(), params.t_cost(), params.p_cost());
        parsed.algorithm != argon2::ARGON2ID_IDENT
            || parsed.version != Some(u32::from(Version::V0x13))
            || !stored.at_least(&self.policy)
            || parsed
                .salt
                .as_ref()
                .is_none_or(|s| s.len() < POLICY_SALT_BYTES)
            || parsed
                .hash
                .as_ref()
                .is_none_or(|h| h.len() < POLICY_OUTPUT_BYTES)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts argon2 computations in flight and the peak.
    #[derive(Debug, Default)]
    pub(crate) struct Concurrency {
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Concurrency {
        pub(crate) fn enter(&self) -> Busy<'_> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            Busy(self)
        }
        pub(crate) fn peak(&self) -> usize {
            self.peak.load(Ordering::SeqCst)
        }
    }

    pub(crate) struct Busy<'a>(&'a Concurrency);

    impl Drop for Busy<'_> {
        fn drop(&mut self) {
            self.0.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(p: HashParams) -> Hasher {
        Hasher::new(p, p.to_argon2().unwrap())
    }

    #[test]
    fn hash_verify_and_salts() {
        let h = hasher(HashParams::insecure_for_tests());
        let a = h.hash(b"password").unwrap();
        let b = h.hash(b"password").unwrap();
        assert_ne!(
            a, b,
            "the same password twice gives different hashes (random salts)"
        );
        assert!(a.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{a}");
        assert!(h.verify(b"password", &a).unwrap());
        assert!(!h.verify(b"passwore", &a).unwrap());
        assert_eq!(h.verifications(), 2);
        assert_eq!(h.hashes(), 2);
        assert!(!h.is_weak(&a));
        // A change in the 65th character fails (no truncation).
        let long = "x".repeat(64) + "a";
        let hl = h.hash(long.as_bytes()).unwrap();
        assert!(!h.verify(("x".repeat(64) + "b").as_bytes(), &hl).unwrap());
        assert!(!h.verify("x".repeat(64).as_bytes(), &hl).unwrap());
    }

    /// The pooled verifier agrees with the argon2 crate's own verifier on hashes of every
    /// variant, salt length, output length and memory size (buffers are reused across sizes).
    #[test]
    fn pooled_verify_matches_the_reference() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher(HashParams::insecure_for_tests());
        let cases = [
            (Algorithm::Argon2id, 256, 1, 1, 32, &b"saltsaltsaltsalt"[..]),
            (Algorithm::Argon2i, 512, 2, 1, 32, b"saltsalt"),
            (Algorithm::Argon2d, 128, 1, 2, 16, b"somesaltsomesaltsome"),
            (Algorithm::Argon2id, 1024, 1, 1, 64, b"anothersalt"),
            (Algorithm::Argon2id, 256, 3, 1, 24, b"saltsaltsaltsalt"),
        ];
        for (alg, m, t, p, out, salt) in cases {
            let params = argon2::Params::new(m, t, p, Some(out)).unwrap();
            let reference = Argon2::new(alg, Version::V0x13, params);
            let phc = reference
                .hash_password_with_salt(b"pa55word", salt)
                .unwrap()
                .to_string();
            for (pw, ok) in [(&b"pa55word"[..], true), (b"pa55worD", false), (b"", false)] {
                let want = reference.verify_password(pw, phc.as_str()).is_ok();
                assert_eq!(want, ok, "{phc}");
                assert_eq!(h.verify(pw, &phc).unwrap(), ok, "{phc}");
            }
        }
        // Version 0x10 hashes verify too.
        let params = argon2::Params::new(256, 1, 1, None).unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x10, params);
        let phc = old
            .hash_password_with_salt(b"pw-old", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$v=16$"), "{phc}");
        assert!(h.verify(b"pw-old", &phc).unwrap(), "{phc}");
        assert!(!h.verify(b"pw-new", &phc).unwrap());
        assert!(h.pool.free.lock().unwrap().len() <= 2, "buffers are reused");
    }

    #[test]
    fn weakness() {
        let policy = hasher(HashParams::new(512, 2, 1));
        let weak_m = hasher(HashParams::new(256, 2, 1)).hash(b"pw").unwrap();
        let weak_t = hasher(HashParams::new(512, 1, 1)).hash(b"pw").unwrap();
        let strong = hasher(HashParams::new(1024, 3, 1)).hash(b"pw").unwrap();
        let other_p = hasher(HashParams::new(512, 2, 2)).hash(b"pw").unwrap();
        assert!(policy.is_weak(&weak_m));
        assert!(policy.is_weak(&weak_t));
        assert!(!policy.is_weak(&strong));
        assert!(!policy.is_weak(&other_p));
        let argon2i = weak_m.replace("$argon2id$", "$argon2i$");
        assert!(policy.is_weak(&argon2i));
        assert!(policy.is_weak("garbage"));
    }

    #[test]
    fn dummy_is_made_once() {
        let h = hasher(HashParams::insecure_for_tests());
        h.dummy_verify(b"a").unwrap();
        h.dummy_verify(b"b").unwrap();
        assert_eq!(h.hashes(), 1);
        assert_eq!(h.verifications(), 2);
    }
}
