//! The facade end to end on the memory store, with in-test mechanisms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aaa::{
    Aaa, AaaError, Authenticator, ConfigError, Credentials, Decision, Identity, InvalidInput,
    Mechanism, OnReject, RejectReason, async_trait,
};
use testkit::observe::capture_logs;
use tokio::sync::Notify;

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4));
const PASSWORD: &str = "Tr0ub4dor&3-horse";

/// Accepts `admin` (read/write) and `guest` (read-only) with `PASSWORD`; can be made to wait
/// for a signal, or to be unavailable.
#[derive(Debug, Default)]
struct Toy {
    gate: Option<Arc<Notify>>,
    down: AtomicBool,
}

#[async_trait]
impl Authenticator for Toy {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Custom("toy".into())
    }
    async fn authenticate(&self, c: &Credentials<'_>) -> Decision {
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Decision::Unavailable("toy server down".into());
        }
        match (c.username(), c.password() == PASSWORD) {
            ("admin", true) => Decision::Accept(Identity::new("admin", true)),
            ("guest", true) => Decision::Accept(Identity::new("guest", false)),
            ("admin" | "guest", false) => Decision::Reject(RejectReason::BadCredentials),
            _ => Decision::Reject(RejectReason::UnknownUser),
        }
    }
}

#[tokio::test]
async fn login_session_validate_logout() {
    let aaa = Aaa::builder()
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    let admin = aaa
        .authenticate_user("admin", PASSWORD, FROM)
        .await
        .unwrap()
        .unwrap();
    assert!(admin.read_write());
    assert_eq!(admin.username(), "admin");
    assert_eq!(admin.mechanism().as_str(), "toy");
    assert!(admin.session_cookie().is_none());
    assert!(admin.session_start().is_none());
    let guest = aaa
        .authenticate_user("guest", PASSWORD, FROM)
        .await
        .unwrap()
        .unwrap();
    assert!(!guest.read_write());
    assert!(
        aaa.authenticate_user("admin", "nope", FROM)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        aaa.authenticate_user("nobody", PASSWORD, FROM)
            .await
            .unwrap()
            .is_none()
    );

    let cookie = admin.start_session(FROM).await.unwrap();
    assert!(admin.session_start().is_some());
    let same = aaa
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&admin, &same));
    let sessions = aaa.get_sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].username, "admin");
    admin.end_session().await.unwrap();
    assert!(
        aaa.validate_session(cookie.expose())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_variant_returns_before_its_callback_runs() {
    let gate = Arc::new(Notify::new());
    let toy = Toy {
        gate: Some(gate.clone()),
        ..Toy::default()
    };
    let aaa = Aaa::builder().mechanism(Arc::new(toy)).build().unwrap();
    let called = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flag = called.clone();
    let handle = aaa.authenticate_user_async(
        move |result| {
            flag.store(true, Ordering::SeqCst);
            let _ = tx.send(result);
        },
        "admin",
        PASSWORD,
        FROM,
    );
    // The call has returned; the mechanism is still waiting, so the callback cannot have run.
    assert!(!called.load(Ordering::SeqCst));
    gate.notify_one();
    handle.await.unwrap();
    assert!(called.load(Ordering::SeqCst));
    let user = rx.await.unwrap().unwrap().unwrap();
    assert_eq!(user.username(), "admin");
}

#[tokio::test]
async fn the_callback_gets_rejects_and_errors_too() {
    let aaa = Aaa::builder()
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    aaa.authenticate_user_async(move |r| drop(tx.send(r)), "admin", "bad", FROM)
        .await
        .unwrap();
    assert!(rx.await.unwrap().unwrap().is_none());
    let (tx, rx) = tokio::sync::oneshot::channel();
    aaa.authenticate_user_async(move |r| drop(tx.send(r)), "", "bad", FROM)
        .await
        .unwrap();
    assert!(rx.await.unwrap().unwrap_err().is_invalid_input());
}

#[tokio::test]
async fn every_mechanism_unavailable_is_an_error_naming_each() {
    let a = Toy::default();
    a.down.store(true, Ordering::SeqCst);
    let b = Toy::default();
    b.down.store(true, Ordering::SeqCst);
    let aaa = Aaa::builder()
        .mechanism(Arc::new(a))
        .mechanism(Arc::new(b))
        .build()
        .unwrap();
    let e = aaa
        .authenticate_user("admin", PASSWORD, FROM)
        .await
        .unwrap_err();
    match &e {
        AaaError::Unavailable(u) => assert_eq!(u.causes().len(), 2),
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "no authentication mechanism could decide: toy: toy server down; toy: toy server down"
    );
}

#[tokio::test]
async fn fail_through_on_reject_when_configured() {
    #[derive(Debug)]
    struct RejectAll;
    #[async_trait]
    impl Authenticator for RejectAll {
        fn mechanism(&self) -> Mechanism {
            Mechanism::Custom("reject-all".into())
        }
        async fn authenticate(&self, _: &Credentials<'_>) -> Decision {
            Decision::Reject(RejectReason::ServerReject)
        }
    }
    let strict = Aaa::builder()
        .mechanism(Arc::new(RejectAll))
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    assert!(
        strict
            .authenticate_user("admin", PASSWORD, FROM)
            .await
            .unwrap()
            .is_none()
    );
    let lenient = Aaa::builder()
        .mechanism_with(Arc::new(RejectAll), OnReject::Next)
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    let u = lenient
        .authenticate_user("admin", PASSWORD, FROM)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.mechanism().as_str(), "toy");
}

#[tokio::test]
async fn bad_input_is_typed() {
    let aaa = Aaa::builder()
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    let cases: Vec<(String, String, InvalidInput)> = vec![
        (String::new(), PASSWORD.into(), InvalidInput::UsernameEmpty),
        (
            "a".repeat(65),
            PASSWORD.into(),
            InvalidInput::UsernameTooLong { len: 65 },
        ),
        (
            "ad\tmin".into(),
            PASSWORD.into(),
            InvalidInput::UsernameControlChar,
        ),
        (
            "admin".into(),
            "p".repeat(129),
            InvalidInput::PasswordTooLong { len: 129 },
        ),
        (
            "admin".into(),
            "pass\0word".into(),
            InvalidInput::PasswordNul,
        ),
    ];
    for (u, p, want) in cases {
        match aaa.authenticate_user(&u, &p, FROM).await {
            Err(AaaError::InvalidInput(got)) => assert_eq!(got, want),
            other => panic!("{u:?}: {other:?}"),
        }
    }
    // A password of exactly 128 bytes is not truncated: it is simply wrong here.
    assert!(
        aaa.authenticate_user(
            "admin",
            &format!("{PASSWORD}{}", "x".repeat(128 - PASSWORD.len())),
            FROM
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(matches!(
        aaa.validate_session("not-a-cookie").await,
        Err(AaaError::InvalidInput(InvalidInput::CookieMalformed { .. }))
    ));
    assert!(matches!(
        aaa::parse_addr("192.0.2.300"),
        Err(InvalidInput::AddressMalformed(_))
    ));
    assert!(matches!(
        "zz".parse::<aaa::SessionId>(),
        Err(InvalidInput::SessionIdMalformed)
    ));
}

#[test]
fn config_errors() {
    // No runtime.
    let e = Aaa::builder()
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap_err();
    assert!(matches!(e, AaaError::Config(ConfigError::NoRuntime)), "{e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let e = Aaa::builder().build().unwrap_err();
    assert!(
        matches!(e, AaaError::Config(ConfigError::NoMechanism)),
        "{e}"
    );
}

#[tokio::test]
async fn blocking_api_inside_a_runtime_is_refused() {
    let e =
        aaa::blocking::Aaa::new(Aaa::builder().mechanism(Arc::new(Toy::default()))).unwrap_err();
    assert!(matches!(e, AaaError::DeadlockDetected), "{e}");
}

#[test]
fn blocking_api_end_to_end() {
    let aaa = aaa::blocking::Aaa::new(Aaa::builder().mechanism(Arc::new(Toy::default()))).unwrap();
    let user = aaa
        .authenticate_user("admin", PASSWORD, "2001:db8::1")
        .unwrap()
        .unwrap();
    let cookie = aaa.start_session(&user, "2001:db8::1").unwrap();
    assert!(
        aaa.start_session(&user, "2001:db8::1")
            .unwrap_err()
            .is_session_exists()
    );
    let sessions = aaa.get_sessions().unwrap();
    let id = sessions[0].id.to_string();
    assert!(aaa.clear_session("nothex").unwrap_err().is_invalid_input());
    aaa.clear_session(&id).unwrap();
    assert!(
        aaa.clear_session(&id)
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert!(aaa.validate_session(cookie.expose()).unwrap().is_none());
    assert!(
        aaa.end_session(&user)
            .unwrap_err()
            .is_session_does_not_exist()
    );
    assert!(matches!(
        aaa.start_session(&user, "300.1.1.1"),
        Err(AaaError::InvalidInput(InvalidInput::AddressMalformed(_)))
    ));
}

#[tokio::test]
async fn the_aaa_log_has_each_outcome_and_no_secret() {
    let (logs, _guard) = capture_logs();
    let aaa = Aaa::builder()
        .mechanism(Arc::new(Toy::default()))
        .build()
        .unwrap();
    let user = aaa
        .authenticate_user("admin", PASSWORD, FROM)
        .await
        .unwrap()
        .unwrap();
    aaa.authenticate_user("admin", "wrong-password-42", FROM)
        .await
        .unwrap();
    let _ = aaa.authenticate_user("bad\nname", PASSWORD, FROM).await;
    let cookie = user.start_session(FROM).await.unwrap();
    aaa.clear_session(user.session_id().unwrap()).await.unwrap();
    let text = logs.text();
    for needle in [
        "login accepted",
        "result=\"accept\"",
        "login rejected",
        "reason=\"bad-credentials\"",
        "result=\"invalid-input\"",
        "mechanism=toy",
        "src=198.51.100.4",
        "session started",
        "cause=cleared",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    for secret in [PASSWORD, "wrong-password-42", cookie.expose()] {
        assert!(!text.contains(secret), "secret in the log:\n{text}");
    }
    // A control character in a username is escaped, not written raw into the log.
    assert!(!text.contains("bad\nname"));
}
