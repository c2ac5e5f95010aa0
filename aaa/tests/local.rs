//! The facade with local accounts: the embedded default, and local as the fallback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aaa::local::{HashParams, Level, LocalAccounts, LocalConfig};
use aaa::{
    Aaa, Authenticator, Credentials, Decision, Mechanism, RejectReason, SystemClock, async_trait,
};

const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));

/// A stand-in for a RADIUS method: rejects, or is unavailable (no server answers).
#[derive(Debug, Default)]
struct Remote {
    silent: AtomicBool,
}

#[async_trait]
impl Authenticator for Remote {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Radius
    }
    async fn authenticate(&self, _: &Credentials<'_>) -> Decision {
        if self.silent.load(Ordering::SeqCst) {
            Decision::Unavailable("no RADIUS server answered".into())
        } else {
            Decision::Reject(RejectReason::ServerReject)
        }
    }
}

async fn accounts(dir: &std::path::Path) -> LocalAccounts {
    let mut config = LocalConfig::default();
    config.params = HashParams::insecure_for_tests();
    let accounts =
        LocalAccounts::with_config(dir.join("accounts.toml"), config, Arc::new(SystemClock))
            .unwrap();
    accounts
        .add("admin", "admin-password", Level::Admin)
        .await
        .unwrap();
    accounts
        .add("viewer", "viewer-password", Level::User)
        .await
        .unwrap();
    accounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_accounts_alone() {
    let dir = tempfile::tempdir().unwrap();
    let aaa = Aaa::builder()
        .local(accounts(dir.path()).await)
        .build()
        .unwrap();
    let admin = aaa
        .authenticate_user("admin", "admin-password", FROM)
        .await
        .unwrap()
        .unwrap();
    assert!(admin.read_write());
    assert_eq!(admin.mechanism(), &Mechanism::Local);
    let viewer = aaa
        .authenticate_user("viewer", "viewer-password", FROM)
        .await
        .unwrap()
        .unwrap();
    assert!(!viewer.read_write());
    assert!(
        aaa.authenticate_user("viewer", "admin-password", FROM)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        aaa.authenticate_user("ghost", "admin-password", FROM)
            .await
            .unwrap()
            .is_none()
    );
    let cookie = admin.start_session(FROM).await.unwrap();
    let same = aaa
        .validate_session(cookie.expose())
        .await
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&admin, &same));
    assert_eq!(
        aaa.get_sessions().await.unwrap()[0].mechanism,
        Mechanism::Local
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_is_the_fallback_only_when_no_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let local = accounts(dir.path()).await;
    let remote = Arc::new(Remote::default());
    let aaa = Aaa::builder()
        .mechanism(remote.clone())
        .local(local.clone())
        .build()
        .unwrap();

    // The server answers with a reject: final, local accounts are not consulted.
    let before = local.verifications();
    assert!(
        aaa.authenticate_user("admin", "admin-password", FROM)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        local.verifications(),
        before,
        "local accounts were asked after a reject"
    );

    // No server answers: local accounts decide.
    remote.silent.store(true, Ordering::SeqCst);
    let u = aaa
        .authenticate_user("admin", "admin-password", FROM)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.mechanism(), &Mechanism::Local);
    assert!(
        aaa.authenticate_user("admin", "wrong-password", FROM)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_account_file_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let local = accounts(dir.path()).await;
    let aaa = Aaa::builder().local(local).build().unwrap();
    std::fs::write(
        dir.path().join("accounts.toml"),
        "version = 1\n[[account]\n",
    )
    .unwrap();
    let e = aaa
        .authenticate_user("admin", "admin-password", FROM)
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("accounts.toml, line 2"), "{e}");
}
