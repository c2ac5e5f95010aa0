//! The bad-input table (library side): every row is refused with a typed error and a clear
//! message, and nothing is lost or changed. The README's reliability section lists the same
//! rows; the command and configuration rows are in `aaa-cli/tests/bad_input.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use aaa::local::{HashParams, Level, LocalAccounts, LocalConfig, LocalError};
use aaa::radius::{RadiusAuthenticator, RadiusConfig, RadiusServer};
use aaa::store_redis::{RedisConfig, RedisStore};
use aaa::{
    Aaa, AaaError, InvalidInput, SessionConfig, SessionId, SessionManager, StoreErrorKind,
    SystemClock,
};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// The rows of the table below.
const ROWS: usize = 44;

/// Checks one row: the result is an error, of the expected shape, whose message (with its
/// causes) contains `needle`, and which never repeats a secret.
fn row<T: std::fmt::Debug, E: std::error::Error>(
    n: &mut usize,
    label: &str,
    result: Result<T, E>,
    shape: impl Fn(&E) -> bool,
    needle: &str,
) {
    *n += 1;
    let e = match result {
        Ok(v) => panic!("row {n} ({label}): accepted: {v:?}"),
        Err(e) => e,
    };
    assert!(shape(&e), "row {n} ({label}): wrong error type: {e:?}");
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    assert!(
        text.contains(needle),
        "row {n} ({label}): {text:?} lacks {needle:?}"
    );
    for secret in ["hunter2-secret", "sup3r-s3cret"] {
        assert!(
            !text.contains(secret),
            "row {n} ({label}): secret in {text:?}"
        );
    }
}

fn invalid(want: InvalidInput) -> impl Fn(&AaaError) -> bool {
    move |e| matches!(e, AaaError::InvalidInput(got) if *got == want)
}

fn cookie_malformed(e: &AaaError) -> bool {
    matches!(
        e,
        AaaError::InvalidInput(InvalidInput::CookieMalformed { .. })
    )
}

#[derive(Debug)]
struct Ok1;
#[aaa::async_trait]
impl aaa::Authenticator for Ok1 {
    fn mechanism(&self) -> aaa::Mechanism {
        aaa::Mechanism::Custom("ok".into())
    }
    async fn authenticate(&self, c: &aaa::Credentials<'_>) -> aaa::Decision {
        aaa::Decision::Accept(aaa::Identity::new(c.username(), true))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_refuses_bad_input_with_typed_errors() {
    let aaa = Aaa::builder().mechanism(Arc::new(Ok1)).build().unwrap();
    let good = aaa::SessionCookie::generate().unwrap();
    let good = good.expose();
    let mut n = 0;

    // Usernames (DESIGN §2: 1–64 bytes of UTF-8, no control characters).
    row(
        &mut n,
        "empty username",
        aaa.authenticate_user("", "pw", FROM).await,
        invalid(InvalidInput::UsernameEmpty),
        "username is empty",
    );
    row(
        &mut n,
        "65-byte username",
        aaa.authenticate_user(&"u".repeat(65), "pw", FROM).await,
        invalid(InvalidInput::UsernameTooLong { len: 65 }),
        "65 bytes",
    );
    row(
        &mut n,
        "33 two-byte characters",
        aaa.authenticate_user(&"é".repeat(33), "pw", FROM).await,
        invalid(InvalidInput::UsernameTooLong { len: 66 }),
        "at most 64",
    );
    row(
        &mut n,
        "newline in username",
        aaa.authenticate_user("ad\nmin", "pw", FROM).await,
        invalid(InvalidInput::UsernameControlChar),
        "control character",
    );
    row(
        &mut n,
        "NUL in username",
        aaa.authenticate_user("ad\0min", "pw", FROM).await,
        invalid(InvalidInput::UsernameControlChar),
        "control character",
    );
    row(
        &mut n,
        "DEL in username",
        aaa.authenticate_user("ad\u{7f}min", "pw", FROM).await,
        invalid(InvalidInput::UsernameControlChar),
        "control character",
    );
    row(
        &mut n,
        "C1 control in username",
        aaa.authenticate_user("ad\u{9b}min", "pw", FROM).await,
        invalid(InvalidInput::UsernameControlChar),
        "control character",
    );
    // Passwords (at most 128 bytes, never truncated; no NUL).
    row(
        &mut n,
        "129-byte password",
        aaa.authenticate_user("admin", &"p".repeat(129), FROM).await,
        invalid(InvalidInput::PasswordTooLong { len: 129 }),
        "at most 128",
    );
    row(
        &mut n,
        "65 two-byte characters",
        aaa.authenticate_user("admin", &"é".repeat(65), FROM).await,
        invalid(InvalidInput::PasswordTooLong { len: 130 }),
        "130 bytes",
    );
    row(
        &mut n,
        "NUL in password",
        aaa.authenticate_user("admin", "hunter2-secret\0", FROM)
            .await,
        invalid(InvalidInput::PasswordNul),
        "NUL",
    );
    // Cookies (43 characters of canonical base64url).
    row(
        &mut n,
        "empty cookie",
        aaa.validate_session("").await,
        cookie_malformed,
        "43 characters",
    );
    row(
        &mut n,
        "42-character cookie",
        aaa.validate_session(&good[1..]).await,
        cookie_malformed,
        "43 characters",
    );
    row(
        &mut n,
        "44-character cookie",
        aaa.validate_session(&format!("{good}A")).await,
        cookie_malformed,
        "43 characters",
    );
    row(
        &mut n,
        "standard-base64 '+' in cookie",
        aaa.validate_session(&format!("+{}", &good[1..])).await,
        cookie_malformed,
        "base64url",
    );
    row(
        &mut n,
        "padding in cookie",
        aaa.validate_session(&format!("{}=", &good[1..])).await,
        cookie_malformed,
        "base64url",
    );
    row(
        &mut n,
        "non-canonical last character",
        aaa.validate_session(&format!("{}B", "A".repeat(42))).await,
        cookie_malformed,
        "base64url",
    );
    row(
        &mut n,
        "non-ASCII cookie",
        aaa.validate_session(&format!("é{}", &good[2..])).await,
        cookie_malformed,
        "base64url",
    );
    row(
        &mut n,
        "space inside cookie",
        aaa.validate_session(&format!("{} {}", &good[..20], &good[21..]))
            .await,
        cookie_malformed,
        "base64url",
    );
    // Session ids and source addresses given as text.
    row(
        &mut n,
        "session id not hex",
        "xyz".parse::<SessionId>(),
        |e| *e == InvalidInput::SessionIdMalformed,
        "hexadecimal",
    );
    row(
        &mut n,
        "session id of 17 digits",
        "1".repeat(17).parse::<SessionId>(),
        |e| *e == InvalidInput::SessionIdMalformed,
        "hexadecimal",
    );
    row(
        &mut n,
        "empty session id",
        "".parse::<SessionId>(),
        |e| *e == InvalidInput::SessionIdMalformed,
        "hexadecimal",
    );
    row(
        &mut n,
        "IPv4 octet over 255",
        aaa::parse_addr("192.0.2.300"),
        |e| matches!(e, InvalidInput::AddressMalformed(_)),
        "IPv4 or IPv6",
    );
    row(
        &mut n,
        "bad IPv6",
        aaa::parse_addr("2001:db8::g"),
        |e| matches!(e, InvalidInput::AddressMalformed(_)),
        "IPv4 or IPv6",
    );
    row(
        &mut n,
        "host name as address",
        aaa::parse_addr("switch.example"),
        |e| matches!(e, InvalidInput::AddressMalformed(_)),
        "IPv4 or IPv6",
    );

    // Session settings: every zero duration or limit.
    type Setting = fn(&mut SessionConfig);
    let zeros: [(&str, Setting); 6] = [
        ("zero absolute timeout", |c| {
            c.absolute_timeout = Some(std::time::Duration::ZERO);
        }),
        ("zero idle timeout", |c| {
            c.idle_timeout = Some(std::time::Duration::ZERO);
        }),
        ("zero per-user limit", |c| c.limits.per_user = Some(0)),
        ("zero total limit", |c| c.limits.total = Some(0)),
        ("zero reap interval", |c| {
            c.reap_interval = std::time::Duration::ZERO;
        }),
        ("zero cache check interval", |c| {
            c.cache_check_interval = std::time::Duration::ZERO;
        }),
    ];
    for (label, set) in zeros {
        let mut zero = SessionConfig::default();
        set(&mut zero);
        row(
            &mut n,
            label,
            SessionManager::builder(Arc::new(aaa::MemoryStore::new()))
                .config(zero)
                .build(),
            |e| matches!(e, AaaError::Config(_)),
            "greater than zero",
        );
    }
    row(
        &mut n,
        "no mechanism",
        Aaa::builder().build(),
        |e| matches!(e, AaaError::Config(_)),
        "no authentication mechanism",
    );

    // Local accounts.
    let dir = tempfile::tempdir().unwrap();
    let mut lc = LocalConfig::default();
    lc.params = HashParams::insecure_for_tests();
    let accounts =
        LocalAccounts::with_config(dir.path().join("accounts.toml"), lc, Arc::new(SystemClock))
            .unwrap();
    row(
        &mut n,
        "7-character password (14 bytes)",
        accounts.add("admin", "ééééééé", Level::Admin).await,
        |e| matches!(e, LocalError::PasswordTooShort { min: 8, got: 7 }),
        "at least 8",
    );
    row(
        &mut n,
        "control character in account name",
        accounts
            .add("ad\tmin", "long-enough-pw", Level::Admin)
            .await,
        |e| matches!(e, LocalError::InvalidName(_)),
        "invalid account name",
    );
    accounts
        .add("admin", "long-enough-pw", Level::Admin)
        .await
        .unwrap();
    row(
        &mut n,
        "account added twice",
        accounts.add("admin", "long-enough-pw", Level::Admin).await,
        |e| matches!(e, LocalError::AccountExists(_)),
        "already exists",
    );
    row(
        &mut n,
        "last admin deleted",
        accounts.delete("admin").await,
        |e| matches!(e, LocalError::LastAdmin { .. }),
        "last enabled admin",
    );
    let file = dir.path().join("accounts.toml");
    let before = std::fs::read(&file).unwrap();
    std::fs::write(
        &file,
        b"version = 1\n[[account]]\nname = \"x\"\nlevel = \"root\"\n",
    )
    .unwrap();
    let corrupt = std::fs::read(&file).unwrap();
    row(
        &mut n,
        "account file with an unknown level",
        accounts.list().await,
        |e| matches!(e, LocalError::Parse { line: 4, .. }),
        "accounts.toml, line 4",
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        corrupt,
        "a corrupt file is left as it is"
    );
    std::fs::write(&file, b"version = 99\n").unwrap();
    row(
        &mut n,
        "account file from a future version",
        accounts.list().await,
        |e| matches!(e, LocalError::UnsupportedVersion { found: 99, .. }),
        "unsupported account file version 99",
    );
    std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
    row(
        &mut n,
        "account file not UTF-8",
        accounts.list().await,
        |e| matches!(e, LocalError::Parse { .. }),
        "malformed account file",
    );
    std::fs::write(&file, &before).unwrap();

    // RADIUS configuration.
    let mut rc = RadiusConfig::new(vec![RadiusServer::new(
        "127.0.0.1:1812".parse().unwrap(),
        "",
    )]);
    rc.nas_identifier = Some("sw1".into());
    row(
        &mut n,
        "empty RADIUS secret",
        RadiusAuthenticator::new(rc),
        |_| true,
        "secret",
    );
    row(
        &mut n,
        "no RADIUS server",
        RadiusAuthenticator::new(RadiusConfig::new(vec![])),
        |_| true,
        "server",
    );

    // Redis URLs and prefixes (never echoing a password).
    row(
        &mut n,
        "Redis port not a number",
        RedisConfig::from_url("redis://:sup3r-s3cret@127.0.0.1:notaport/"),
        |_| true,
        "port",
    );
    row(
        &mut n,
        "unknown URL scheme",
        RedisConfig::from_url("http://127.0.0.1:6379/"),
        |_| true,
        "scheme",
    );
    row(
        &mut n,
        "Redis prefix with a brace",
        RedisConfig::from_url("redis://127.0.0.1:6379/")
            .unwrap()
            .with_prefix("a{b"),
        |_| true,
        "prefix",
    );

    // A Redis value from a future version: the session is refused (fail closed), not a user.
    let redis = testkit::redis::RedisServer::shared();
    let prefix = testkit::redis::unique_prefix("badinput");
    let config = RedisConfig::from_url(&redis.url())
        .unwrap()
        .with_prefix(&prefix)
        .unwrap();
    let store = Arc::new(RedisStore::connect(config).await.unwrap());
    let aaa = Aaa::builder()
        .mechanism(Arc::new(Ok1))
        .store(store)
        .build()
        .unwrap();
    let user = aaa
        .authenticate_user("admin", "pw", FROM)
        .await
        .unwrap()
        .unwrap();
    let cookie = user.start_session(FROM).await.unwrap();
    // A value of an unknown encoding version (3) under the session's field of its bucket.
    let hash = cookie.hash();
    let bucket = testkit::redis::session_bucket(&prefix, &hash);
    redis.cli_bytes(&[
        b"HSET",
        &bucket,
        hash.as_bytes(),
        b"\x03 from a newer build",
    ]);
    let fresh = Aaa::builder()
        .mechanism(Arc::new(Ok1))
        .store(Arc::new(
            RedisStore::connect(
                RedisConfig::from_url(&redis.url())
                    .unwrap()
                    .with_prefix(&prefix)
                    .unwrap(),
            )
            .await
            .unwrap(),
        ))
        .build()
        .unwrap();
    row(
        &mut n,
        "Redis value of an unknown version (3)",
        fresh.validate_session(cookie.expose()).await,
        |e| matches!(e, AaaError::Store(s) if s.kind() == StoreErrorKind::Corrupt),
        "corrupt",
    );

    // Every row ran (a row skipped by mistake changes the count).
    assert_eq!(n, ROWS, "the table has {n} rows");
}
