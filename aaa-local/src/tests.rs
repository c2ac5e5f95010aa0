//! Tests of `LocalAccounts` on real files in temporary directories.
//!
//! Most tests use `HashParams::insecure_for_tests()` to stay fast; the re-hash and concurrency
//! tests use the default (OWASP) parameters.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aaa_core::{
    Authenticator, Clock, Credentials, Decision, ManualClock, Mechanism, RejectReason, SystemClock,
};
use argon2::{Algorithm, Argon2, PasswordHasher, Version};
use tempfile::TempDir;

use crate::{HashParams, Level, LocalAccounts, LocalConfig, LocalError};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const PW: &str = "s3cret-password";

fn cheap() -> LocalConfig {
    LocalConfig {
        params: HashParams::insecure_for_tests(),
        ..LocalConfig::default()
    }
}

struct Env {
    dir: TempDir,
    clock: Arc<ManualClock>,
    accounts: LocalAccounts,
}

impl Env {
    fn path(&self) -> PathBuf {
        self.accounts.path().to_path_buf()
    }
    fn reopen(&self) -> LocalAccounts {
        LocalAccounts::with_config(
            self.path(),
            self.accounts.config().clone(),
            self.clock.clone(),
        )
        .unwrap()
    }
}

fn env_with(config: LocalConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(aaa_core::from_unix_ms(1_767_225_600_000)));
    let accounts =
        LocalAccounts::with_config(dir.path().join("etc/accounts.toml"), config, clock.clone())
            .unwrap();
    Env {
        dir,
        clock,
        accounts,
    }
}

fn env() -> Env {
    env_with(cheap())
}

async fn login(a: &LocalAccounts, name: &str, password: &str) -> Decision {
    a.authenticate(&Credentials::new(name, password, FROM).unwrap())
        .await
}

fn accepted(d: &Decision) -> Option<bool> {
    match d {
        Decision::Accept(id) => Some(id.read_write),
        _ => None,
    }
}

fn reason(d: &Decision) -> Option<RejectReason> {
    match d {
        Decision::Reject(r) => Some(*r),
        _ => None,
    }
}

async fn info(a: &LocalAccounts, name: &str) -> crate::AccountInfo {
    a.list()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name == name)
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The argon2id PHC string of `password` at the given parameters.
fn phc(password: &str, m: u32, t: u32) -> String {
    let params = argon2::Params::new(m, t, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn accepts_with_the_right_level() {
    let e = env();
    assert_eq!(e.accounts.mechanism(), Mechanism::Local);
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts
        .add("oper", "another-password", Level::User)
        .await
        .unwrap();
    let d = login(&e.accounts, "admin", PW).await;
    assert_eq!(accepted(&d), Some(true), "{d:?}");
    match d {
        Decision::Accept(id) => assert_eq!(id.username, "admin"),
        _ => unreachable!(),
    }
    assert_eq!(
        accepted(&login(&e.accounts, "oper", "another-password").await),
        Some(false)
    );
    // Names are exact: no case folding.
    assert_eq!(
        reason(&login(&e.accounts, "Admin", PW).await),
        Some(RejectReason::UnknownUser)
    );
}

#[tokio::test]
async fn rejects_wrong_password_unknown_and_disabled_alike() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    e.accounts.set_enabled("bob", false).await.unwrap();
    let cases = [
        ("admin", "wrong-password", RejectReason::BadCredentials),
        ("nobody", PW, RejectReason::UnknownUser),
        ("bob", PW, RejectReason::Disabled),
    ];
    for (name, pw, why) in cases {
        let d = login(&e.accounts, name, pw).await;
        // The client sees the same answer: a Reject. Only the log reason differs.
        assert_eq!(reason(&d), Some(why), "{name}: {d:?}");
    }
    // Re-enabled, bob logs in.
    e.accounts.set_enabled("bob", true).await.unwrap();
    assert_eq!(accepted(&login(&e.accounts, "bob", PW).await), Some(false));
}

#[tokio::test]
async fn every_login_costs_exactly_one_verification() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts.add("off", PW, Level::User).await.unwrap();
    e.accounts.set_enabled("off", false).await.unwrap();
    let mut config = cheap();
    config.lockout_threshold = 1;
    let locking = LocalAccounts::with_config(e.path(), config, e.clock.clone()).unwrap();
    e.accounts.add("locked", PW, Level::User).await.unwrap();
    assert_eq!(
        reason(&login(&locking, "locked", "bad-password").await),
        Some(RejectReason::BadCredentials)
    );
    assert_eq!(
        reason(&login(&locking, "locked", PW).await),
        Some(RejectReason::LockedOut)
    );

    let cases: [(&str, &str, Option<RejectReason>); 5] = [
        ("no-such-user", PW, Some(RejectReason::UnknownUser)),
        ("off", PW, Some(RejectReason::Disabled)),
        ("locked", PW, Some(RejectReason::LockedOut)),
        ("admin", "bad-password", Some(RejectReason::BadCredentials)),
        ("admin", PW, None),
    ];
    for (name, pw, why) in cases {
        let before = e.accounts.verifications();
        let d = login(&e.accounts, name, pw).await;
        assert_eq!(reason(&d), why, "{name}");
        assert_eq!(
            e.accounts.verifications() - before,
            1,
            "{name}: exactly one argon2 verification"
        );
    }
    // The dummy hash was made once, on the first login of this instance.
    let hashes = e.accounts.hashes();
    login(&e.accounts, "no-such-user-2", PW).await;
    assert_eq!(e.accounts.hashes(), hashes);
}

#[tokio::test]
async fn weak_hash_is_rehashed_at_login() {
    // Default (OWASP) policy; the stored hash is m=8192,t=1.
    let e = env_with(LocalConfig::default());
    let weak = phc(PW, 8192, 1);
    fs::create_dir_all(e.path().parent().unwrap()).unwrap();
    fs::write(
        e.path(),
        format!(
            "version = 1\n[[account]]\nname = \"admin\"\nlevel = \"admin\"\nhash = \"{weak}\"\n"
        ),
    )
    .unwrap();
    let stored = |p: &Path| {
        let text = fs::read_to_string(p).unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap();
        v["account"].as_array().unwrap()[0]["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A wrong password does not re-hash.
    assert!(reason(&login(&e.accounts, "admin", "wrong-password").await).is_some());
    assert_eq!(stored(&e.path()), weak);
    // The right one does, to the policy.
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
    let new = stored(&e.path());
    assert_ne!(new, weak);
    assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
    assert_eq!(mode(&e.path()), 0o600);
    // The new hash works, and is not re-hashed again.
    let hashes = e.accounts.hashes();
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
    assert_eq!(stored(&e.path()), new);
    assert_eq!(e.accounts.hashes(), hashes);
    // New accounts get the policy's parameters.
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    assert!(
        fs::read_to_string(e.path())
            .unwrap()
            .matches("m=19456,t=2,p=1")
            .count()
            == 2
    );
}

#[tokio::test]
async fn lockout_after_threshold_and_release_after_the_period() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    for i in 1..=5 {
        let d = login(&e.accounts, "admin", "wrong-password").await;
        assert_eq!(
            reason(&d),
            Some(RejectReason::BadCredentials),
            "attempt {i}"
        );
        assert_eq!(info(&e.accounts, "admin").await.failures, i);
    }
    let i = info(&e.accounts, "admin").await;
    let now = e.clock.now();
    assert!(i.is_locked_at(now));
    assert_eq!(i.locked_until, Some(now + Duration::from_secs(300)));
    // Locked: even the right password is rejected, during the whole period.
    assert_eq!(
        reason(&login(&e.accounts, "admin", PW).await),
        Some(RejectReason::LockedOut)
    );
    e.clock.advance(Duration::from_secs(299));
    assert_eq!(
        reason(&login(&e.accounts, "admin", PW).await),
        Some(RejectReason::LockedOut)
    );
    // Attempts during the lockout did not extend it, nor count.
    assert_eq!(
        info(&e.accounts, "admin").await.locked_until,
        Some(now + Duration::from_secs(300))
    );
    assert_eq!(info(&e.accounts, "admin").await.failures, 5);
    // Another process sees the lockout (it lives in the file).
    assert_eq!(
        reason(&login(&e.reopen(), "admin", PW).await),
        Some(RejectReason::LockedOut)
    );
    // After the period the admin logs in again, and the count is reset.
    e.clock.advance(Duration::from_secs(1));
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
    let i = info(&e.accounts, "admin").await;
    assert_eq!((i.failures, i.locked_until), (0, None));
}

#[tokio::test]
async fn counting_restarts_after_a_lockout_ends() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    for _ in 0..5 {
        login(&e.accounts, "admin", "wrong-password").await;
    }
    e.clock.advance(Duration::from_secs(300));
    // One failure after the lockout: a new count, not a new lockout.
    assert_eq!(
        reason(&login(&e.accounts, "admin", "wrong-password").await),
        Some(RejectReason::BadCredentials)
    );
    let i = info(&e.accounts, "admin").await;
    assert_eq!((i.failures, i.locked_until), (1, None));
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
}

#[tokio::test]
async fn success_resets_the_count() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    for _ in 0..4 {
        login(&e.accounts, "admin", "wrong-password").await;
    }
    assert_eq!(info(&e.accounts, "admin").await.failures, 4);
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
    assert_eq!(info(&e.accounts, "admin").await.failures, 0);
    for _ in 0..4 {
        login(&e.accounts, "admin", "wrong-password").await;
    }
    // 4 + 4 failures, but not consecutive: not locked.
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
}

#[tokio::test]
async fn unlock_by_an_administrator() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    for _ in 0..5 {
        login(&e.accounts, "bob", "wrong-password").await;
    }
    assert_eq!(
        reason(&login(&e.accounts, "bob", PW).await),
        Some(RejectReason::LockedOut)
    );
    e.accounts.unlock("bob").await.unwrap();
    let i = info(&e.accounts, "bob").await;
    assert_eq!((i.failures, i.locked_until), (0, None));
    assert_eq!(accepted(&login(&e.accounts, "bob", PW).await), Some(false));
    assert!(
        matches!(e.accounts.unlock("nobody").await, Err(LocalError::NoSuchAccount(n)) if n == "nobody")
    );
}

#[tokio::test]
async fn a_lockout_is_never_longer_than_the_configured_duration() {
    // A lockout stored far in the future (clock set back, or a hand edit) is capped when seen.
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let text = fs::read_to_string(e.path()).unwrap();
    let far = aaa_core::unix_ms(e.clock.now() + Duration::from_secs(10 * 365 * 86_400));
    fs::write(
        e.path(),
        text.replace(
            "failures = 0\n",
            &format!("failures = 5\nlocked_until_unix_ms = {far}\n"),
        ),
    )
    .unwrap();
    assert_eq!(
        reason(&login(&e.accounts, "admin", PW).await),
        Some(RejectReason::LockedOut)
    );
    assert_eq!(
        info(&e.accounts, "admin").await.locked_until,
        Some(e.clock.now() + Duration::from_secs(300))
    );
    e.clock.advance(Duration::from_secs(300));
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
}

#[tokio::test]
async fn malformed_file_is_an_error_with_file_and_line_and_is_never_overwritten() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let good = fs::read_to_string(e.path()).unwrap();
    // Break line 8 (the `hash` line becomes a syntax error).
    let lines: Vec<&str> = good.lines().collect();
    let hash_line = lines.iter().position(|l| l.starts_with("hash = ")).unwrap() + 1;
    let corrupt = good.replace("hash = \"", "hash = ");
    fs::write(e.path(), &corrupt).unwrap();

    let check = |err: LocalError| {
        let msg = err.to_string();
        assert!(msg.contains(&e.path().display().to_string()), "{msg}");
        assert!(msg.contains(&format!("line {hash_line}")), "{msg}");
        match &err {
            LocalError::Parse { line, .. } => assert_eq!(*line, hash_line),
            other => panic!("{other:?}"),
        }
        // Neither the message nor its sources quote the hash.
        let mut chain = format!("{err:?}");
        let mut src = std::error::Error::source(&err);
        while let Some(s) = src {
            chain.push_str(&s.to_string());
            src = s.source();
        }
        assert!(!chain.contains("argon2id$v=19"), "{chain}");
    };
    check(LocalAccounts::open(e.path()).unwrap_err());
    check(e.accounts.add("bob", PW, Level::User).await.unwrap_err());
    check(e.accounts.delete("admin").await.unwrap_err());
    check(
        e.accounts
            .set_password("admin", "new-password")
            .await
            .unwrap_err(),
    );
    check(e.accounts.unlock("admin").await.unwrap_err());
    check(e.accounts.list().await.unwrap_err());
    // Logins: no decision, so the method list moves on (or fails closed).
    for (name, pw) in [("admin", PW), ("admin", "wrong-password"), ("nobody", PW)] {
        match login(&e.accounts, name, pw).await {
            Decision::Unavailable(err) => assert!(err.to_string().contains("line"), "{err}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        fs::read_to_string(e.path()).unwrap(),
        corrupt,
        "left byte for byte"
    );

    // A file from a newer version is refused and left alone too.
    let newer = "version = 2\n[[user]]\nname = \"x\"\n";
    fs::write(e.path(), newer).unwrap();
    assert!(matches!(
        e.accounts.add("bob", PW, Level::User).await,
        Err(LocalError::UnsupportedVersion { found: 2, .. })
    ));
    assert_eq!(fs::read_to_string(e.path()).unwrap(), newer);

    // Fixed by hand, it works again.
    fs::write(e.path(), &good).unwrap();
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_write_failing_before_the_rename_leaves_the_previous_file() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let before = fs::read(e.path()).unwrap();
    e.accounts.inject_failure_before_rename();
    let err = e.accounts.add("bob", PW, Level::User).await.unwrap_err();
    assert!(matches!(err, LocalError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("accounts.toml"), "{err}");
    assert_eq!(fs::read(e.path()).unwrap(), before);
    // No temporary file is left behind.
    assert_eq!(
        dir_entries(e.path().parent().unwrap()),
        ["accounts.toml", "accounts.toml.lock"]
    );
    // At login, a failed write of the failure count still rejects.
    e.accounts.inject_failure_before_rename();
    assert_eq!(
        reason(&login(&e.accounts, "admin", "wrong-password").await),
        Some(RejectReason::BadCredentials)
    );
    assert_eq!(fs::read(e.path()).unwrap(), before);
    // The next write works.
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    assert_eq!(e.accounts.list().await.unwrap().len(), 2);
}

const RO_CHILD_FILE: &str = "AAA_LOCAL_TEST_READ_ONLY_FILE";

/// With a read-only directory, a change fails (the temporary file cannot be created) and the
/// previous file is left as it was.
async fn change_in_read_only_dir_fails(path: &Path) {
    let accounts = LocalAccounts::with_config(path, cheap(), Arc::new(SystemClock)).unwrap();
    let before = fs::read(path).unwrap();
    let err = accounts.add("bob", PW, Level::User).await.unwrap_err();
    match &err {
        LocalError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{err}")
        }
        other => panic!("{other:?}"),
    }
    let err = accounts
        .set_password("admin", "another-password")
        .await
        .unwrap_err();
    assert!(matches!(err, LocalError::Io { .. }), "{err:?}");
    assert_eq!(fs::read(path).unwrap(), before);
    // Logins still work (recording them fails, which is logged).
    assert_eq!(accepted(&login(&accounts, "admin", PW).await), Some(true));
    assert_eq!(
        reason(&login(&accounts, "admin", "wrong-password").await),
        Some(RejectReason::BadCredentials)
    );
    assert_eq!(fs::read(path).unwrap(), before);
}

/// Runs [`change_in_read_only_dir_fails`] in a child process as an unprivileged user, when
/// the tests run as root (which ignores permission bits).
#[test]
fn child_read_only_dir() {
    let Some(path) = std::env::var_os(RO_CHILD_FILE) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(change_in_read_only_dir_fails(Path::new(&path)));
}

#[tokio::test]
async fn a_write_into_a_read_only_directory_leaves_the_previous_file() {
    use std::os::unix::process::CommandExt;
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let dir = e.path().parent().unwrap().to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    let probe = dir.join("probe");
    let privileged = fs::write(&probe, b"").is_ok();
    if privileged {
        // Root ignores the mode: hand the directory to `nobody` and run the check as `nobody`.
        fs::remove_file(&probe).unwrap();
        const NOBODY: u32 = 65_534;
        fs::set_permissions(e.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(e.dir.path().join("etc"), fs::Permissions::from_mode(0o500)).unwrap();
        for p in [dir.clone(), e.path(), dir.join("accounts.toml.lock")] {
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::child_read_only_dir",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RO_CHILD_FILE, e.path())
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    } else {
        change_in_read_only_dir_fails(&e.path()).await;
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(dir_entries(&dir), ["accounts.toml", "accounts.toml.lock"]);
    assert_eq!(e.accounts.list().await.unwrap().len(), 1);
}

const MP_CHILD_FILE: &str = "AAA_LOCAL_TEST_MP_FILE";
const MP_CHILD_PREFIX: &str = "AAA_LOCAL_TEST_MP_PREFIX";

/// In a child process: adds 50 accounts named `<prefix>0` … `<prefix>49`.
#[test]
fn child_adds_accounts() {
    let (Some(path), Some(prefix)) = (
        std::env::var_os(MP_CHILD_FILE),
        std::env::var(MP_CHILD_PREFIX).ok(),
    ) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let accounts =
            LocalAccounts::with_config(PathBuf::from(path), cheap(), Arc::new(SystemClock))
                .unwrap();
        for i in 0..50 {
            accounts
                .add(&format!("{prefix}{i}"), PW, Level::User)
                .await
                .unwrap();
        }
    });
}

#[tokio::test]
async fn two_processes_adding_50_accounts_each_lose_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.toml");
    let exe = std::env::current_exe().unwrap();
    let spawn = |prefix: &str| {
        Command::new(&exe)
            .args([
                "--exact",
                "tests::child_adds_accounts",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MP_CHILD_FILE, &path)
            .env(MP_CHILD_PREFIX, prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn("a"), spawn("b")];
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
    let accounts = LocalAccounts::with_config(&path, cheap(), Arc::new(SystemClock)).unwrap();
    let mut names: Vec<String> = accounts
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    let mut expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|p| (0..50).map(move |i| format!("{p}{i}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn file_and_directory_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/nested/accounts.toml");
    let a = LocalAccounts::with_config(&path, cheap(), Arc::new(SystemClock)).unwrap();
    // Reading and failed changes create nothing.
    assert!(a.is_empty().await.unwrap());
    assert!(a.list().await.unwrap().is_empty());
    assert!(matches!(
        a.delete("x").await,
        Err(LocalError::NoSuchAccount(_))
    ));
    assert_eq!(
        reason(&login(&a, "x", PW).await),
        Some(RejectReason::UnknownUser)
    );
    assert!(!dir.path().join("new").exists());
    // The first add creates the directories (0700) and the file (0600).
    a.add("admin", PW, Level::Admin).await.unwrap();
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/nested")), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        mode(&dir.path().join("new/nested/accounts.toml.lock")),
        0o600
    );
    // Every rewrite keeps 0600, even if the mode was widened by hand.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    a.add("bob", PW, Level::User).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::metadata(&path).unwrap().nlink(), 1);
    assert!(!a.is_empty().await.unwrap());
}

#[tokio::test]
async fn password_policy() {
    let e = env();
    let too_long = "p".repeat(129);
    match e.accounts.add("admin", &too_long, Level::Admin).await {
        Err(LocalError::PasswordTooLong { max: 128, got: 129 }) => {}
        other => panic!("{other:?}"),
    }
    let err = e
        .accounts
        .add("admin", &too_long, Level::Admin)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("128"), "{err}");
    assert!(!err.to_string().contains(&too_long));
    // 7 characters (14 bytes) is too short; 8 characters is enough.
    match e.accounts.add("admin", "ééééééé", Level::Admin).await {
        Err(LocalError::PasswordTooShort { min: 8, got: 7 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.accounts.add("admin", "short", Level::Admin).await,
        Err(LocalError::PasswordTooShort { min: 8, got: 5 })
    ));
    assert!(matches!(
        e.accounts
            .add("admin", "with\0nul-inside", Level::Admin)
            .await,
        Err(LocalError::InvalidPassword(_))
    ));
    e.accounts
        .add("admin", "éééééééé", Level::Admin)
        .await
        .unwrap();
    let max = "€".repeat(42) + "pp"; // 128 bytes
    assert_eq!(max.len(), 128);
    e.accounts.set_password("admin", &max).await.unwrap();
    assert_eq!(
        accepted(&login(&e.accounts, "admin", &max).await),
        Some(true)
    );
    // Never truncated: the 128-byte password minus its last character is wrong.
    assert!(reason(&login(&e.accounts, "admin", &max[..127]).await).is_some());
    assert!(matches!(
        e.accounts.set_password("admin", "short").await,
        Err(LocalError::PasswordTooShort { .. })
    ));
    // At login a 129-byte password never reaches the hasher: Credentials refuses it.
    let before = e.accounts.verifications();
    assert!(Credentials::new("admin", &too_long, FROM).is_err());
    assert_eq!(e.accounts.verifications(), before);
    // A policy of 12 characters.
    let mut config = cheap();
    config.min_password_chars = 12;
    let strict = LocalAccounts::with_config(e.path(), config, e.clock.clone()).unwrap();
    assert!(matches!(
        strict.add("bob", "elevenchars", Level::User).await,
        Err(LocalError::PasswordTooShort { min: 12, got: 11 })
    ));
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_be_deleted_disabled_or_demoted() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    for (action, r) in [
        ("delete", e.accounts.delete("admin").await),
        ("disable", e.accounts.set_enabled("admin", false).await),
        ("demote", e.accounts.set_level("admin", Level::User).await),
    ] {
        match r {
            Err(LocalError::LastAdmin { name, action: a }) => {
                assert_eq!((name.as_str(), a), ("admin", action));
            }
            other => panic!("{action}: {other:?}"),
        }
    }
    // Users are free to go.
    e.accounts.set_enabled("bob", false).await.unwrap();
    e.accounts.delete("bob").await.unwrap();
    // A disabled admin does not count as a way in.
    e.accounts.add("root2", PW, Level::Admin).await.unwrap();
    e.accounts.set_enabled("root2", false).await.unwrap();
    assert!(matches!(
        e.accounts.delete("admin").await,
        Err(LocalError::LastAdmin { .. })
    ));
    // With a second enabled admin, the first may be demoted, then the second is the last.
    e.accounts.set_enabled("root2", true).await.unwrap();
    e.accounts.set_level("admin", Level::User).await.unwrap();
    assert_eq!(
        accepted(&login(&e.accounts, "admin", PW).await),
        Some(false)
    );
    assert!(matches!(
        e.accounts.delete("root2").await,
        Err(LocalError::LastAdmin { .. })
    ));
    e.accounts.set_level("admin", Level::Admin).await.unwrap();
    e.accounts.delete("root2").await.unwrap();
    assert_eq!(e.accounts.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_succeed_within_the_hashing_bound() {
    let config = LocalConfig {
        max_concurrent_hashes: 2,
        ..LocalConfig::default() // OWASP parameters
    };
    let e = env_with(config);
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let a = e.accounts.clone();
            tokio::spawn(async move { login(&a, "admin", PW).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(accepted(&t.await.unwrap()), Some(true));
    }
    let peak = e.accounts.peak_concurrent_hashes();
    assert!((1..=2).contains(&peak), "peak {peak}");
    assert_eq!(e.accounts.verifications(), 20);
}

#[tokio::test]
async fn management() {
    let e = env();
    assert!(e.accounts.is_empty().await.unwrap());
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    assert!(matches!(
        e.accounts.add("admin", PW, Level::User).await,
        Err(LocalError::AccountExists(n)) if n == "admin"
    ));
    for bad in ["", "a\nb", &"x".repeat(65)] {
        assert!(
            matches!(
                e.accounts.add(bad, PW, Level::User).await,
                Err(LocalError::InvalidName(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            e.accounts.delete(bad).await,
            Err(LocalError::InvalidName(_))
        ));
    }
    for r in [
        e.accounts.delete("ghost").await,
        e.accounts.set_password("ghost", PW).await,
        e.accounts.set_level("ghost", Level::Admin).await,
        e.accounts.set_enabled("ghost", true).await,
    ] {
        assert!(
            matches!(r, Err(LocalError::NoSuchAccount(ref n)) if n == "ghost"),
            "{r:?}"
        );
    }
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    e.accounts.set_level("bob", Level::Admin).await.unwrap();
    assert_eq!(accepted(&login(&e.accounts, "bob", PW).await), Some(true));
    e.accounts
        .set_password("bob", "new-password")
        .await
        .unwrap();
    assert_eq!(
        reason(&login(&e.accounts, "bob", PW).await),
        Some(RejectReason::BadCredentials)
    );
    assert_eq!(
        accepted(&login(&e.accounts, "bob", "new-password").await),
        Some(true)
    );

    let list = e.accounts.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0].name.as_str(), list[0].level, list[0].enabled),
        ("admin", Level::Admin, true)
    );
    assert_eq!(
        (list[1].name.as_str(), list[1].level),
        ("bob", Level::Admin)
    );
    // No hash in any listing or Debug output.
    let dbg = format!("{list:?} {:?}", e.accounts);
    assert!(!dbg.contains("argon2"), "{dbg}");
    assert!(fs::read_to_string(e.path()).unwrap().contains("$argon2id$"));
}

#[tokio::test]
async fn changes_by_other_instances_and_by_hand_are_seen() {
    let e = env();
    let other = e.reopen();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    assert_eq!(accepted(&login(&other, "admin", PW).await), Some(true));
    other.add("bob", PW, Level::User).await.unwrap();
    assert_eq!(accepted(&login(&e.accounts, "bob", PW).await), Some(false));
    other.delete("bob").await.unwrap();
    assert_eq!(
        reason(&login(&e.accounts, "bob", PW).await),
        Some(RejectReason::UnknownUser)
    );
    // A hand edit: disable admin... after adding carol as an admin.
    e.accounts.add("carol", PW, Level::Admin).await.unwrap();
    let text = fs::read_to_string(e.path()).unwrap();
    fs::write(
        e.path(),
        text.replacen("enabled = true", "enabled = false", 1),
    )
    .unwrap();
    assert_eq!(
        reason(&login(&e.accounts, "admin", PW).await),
        Some(RejectReason::Disabled)
    );
    assert_eq!(accepted(&login(&e.accounts, "carol", PW).await), Some(true));
}

#[tokio::test]
async fn a_file_that_cannot_be_read_makes_logins_unavailable() {
    let e = env();
    fs::create_dir_all(e.path()).unwrap(); // a directory where the file should be
    match login(&e.accounts, "admin", PW).await {
        Decision::Unavailable(err) => assert!(err.to_string().contains("accounts.toml"), "{err}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.accounts.list().await,
        Err(LocalError::Io { .. })
    ));
    assert!(LocalAccounts::open(e.path()).is_err());
}

#[tokio::test]
async fn the_written_file_is_the_documented_format() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    e.accounts.add("bob", PW, Level::User).await.unwrap();
    for _ in 0..5 {
        login(&e.accounts, "bob", "wrong-password").await;
    }
    let v: toml::Table = toml::from_str(&fs::read_to_string(e.path()).unwrap()).unwrap();
    assert_eq!(v["version"].as_integer(), Some(1));
    let accounts = v["account"].as_array().unwrap();
    let admin = accounts[0].as_table().unwrap();
    assert_eq!(admin["name"].as_str(), Some("admin"));
    assert_eq!(admin["level"].as_str(), Some("admin"));
    assert_eq!(admin["enabled"].as_bool(), Some(true));
    assert_eq!(admin["failures"].as_integer(), Some(0));
    assert!(
        admin["hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$")
    );
    assert!(!admin.contains_key("locked_until_unix_ms"));
    let bob = accounts[1].as_table().unwrap();
    assert_eq!(bob["level"].as_str(), Some("user"));
    assert_eq!(bob["failures"].as_integer(), Some(5));
    let until = bob["locked_until_unix_ms"].as_integer().unwrap();
    assert_eq!(
        aaa_core::from_unix_ms(u64::try_from(until).unwrap()),
        e.clock.now() + Duration::from_secs(300)
    );
}

#[tokio::test]
async fn file_work_per_login() {
    let e = env();
    e.accounts.add("admin", PW, Level::Admin).await.unwrap();
    let ino = || fs::metadata(e.path()).unwrap().ino();
    let bytes = fs::read(e.path()).unwrap();
    // A success with nothing to reset does not write.
    let before = ino();
    assert_eq!(accepted(&login(&e.accounts, "admin", PW).await), Some(true));
    assert_eq!(ino(), before);
    // Every rejection rewrites the file (so the cases cost the same), unchanged when nothing
    // is to be recorded.
    for (name, pw) in [("ghost", PW), ("admin", "wrong-password")] {
        let before = ino();
        assert!(reason(&login(&e.accounts, name, pw).await).is_some());
        assert_ne!(ino(), before, "{name}");
        assert_eq!(mode(&e.path()), 0o600);
    }
    assert_eq!(info(&e.accounts, "admin").await.failures, 1);
    // The unknown user's rewrite left the bytes as they were: reset and compare.
    e.accounts.unlock("admin").await.unwrap();
    assert_eq!(fs::read(e.path()).unwrap(), bytes);
    login(&e.accounts, "ghost", PW).await;
    assert_eq!(fs::read(e.path()).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_process_lose_no_change() {
    // Separate instances share no in-process lock: the file lock alone serialises them.
    let e = env();
    let other = e.reopen();
    let mut tasks = Vec::new();
    for (prefix, a) in [("x", e.accounts.clone()), ("y", other.clone())] {
        for i in 0..20 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                a.add(&format!("{prefix}{i}"), PW, Level::User).await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(e.accounts.list().await.unwrap().len(), 40);
    // Concurrent failures on one account are all counted.
    let mut tasks = Vec::new();
    for a in [e.accounts.clone(), other.clone()] {
        for _ in 0..2 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                login(&a, "x0", "wrong-password").await
            }));
        }
    }
    for t in tasks {
        assert_eq!(
            reason(&t.await.unwrap()),
            Some(RejectReason::BadCredentials)
        );
    }
    assert_eq!(info(&other, "x0").await.failures, 4);
}
