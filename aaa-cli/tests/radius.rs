//! The `aaa` command with RADIUS servers in its configuration (a real FreeRADIUS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use testkit::radius::{ADMIN, FreeRadius, OPER, SilentRadius};

mod common;
use common::aaa;

fn login(dir: &std::path::Path, config: &str, user: &str, password: &str) -> std::process::Output {
    aaa(dir, config)
        .args(["login", user, "--password-stdin"])
        .write_stdin(format!("{password}\n"))
        .output()
        .unwrap()
}

#[test]
fn logins_through_freeradius_with_privileges() {
    let radius = FreeRadius::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[radius.server]]\naddress = \"{}\"\nsecret = \"{}\"\n",
        radius.addr(),
        radius.secret()
    );
    let o = login(dir.path(), &config, ADMIN.name, ADMIN.password);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("read-write"), "{err}");
    let o = login(dir.path(), &config, OPER.name, OPER.password);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("read-only"), "{err}");
    // A RADIUS reject is final: exit 1, and a local account of the same name is not consulted.
    aaa(dir.path(), &config)
        .args([
            "user",
            "add",
            "admin",
            "--level",
            "admin",
            "--password-stdin",
        ])
        .write_stdin("local-admin-pw\n")
        .assert()
        .success();
    assert_eq!(
        login(dir.path(), &config, "admin", "local-admin-pw")
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_accounts_when_no_radius_server_answers() {
    let silent = SilentRadius::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[radius]\ntimeout = \"100ms\"\nretries = 1\nserver_timeout = \"300ms\"\n\
         [[radius.server]]\naddress = \"{}\"\nsecret = \"shared-secret-16b\"\n",
        silent.addr()
    );
    let d = dir.path().to_owned();
    let c = config.clone();
    tokio::task::spawn_blocking(move || {
        aaa(&d, &c)
            .args([
                "user",
                "add",
                "admin",
                "--level",
                "admin",
                "--password-stdin",
            ])
            .write_stdin("local-admin-pw\n")
            .assert()
            .success();
        let o = login(&d, &c, "admin", "local-admin-pw");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("read-write"), "{err}");
        assert_eq!(
            login(&d, &c, "admin", "wrong-pw-123").status.code(),
            Some(1)
        );
    })
    .await
    .unwrap();
}

#[test]
fn bad_radius_configs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (config, needle) in [
        (
            "[[radius.server]]\naddress = \"192.0.2.1:1812\"\nsecret = \"\"\n",
            "RADIUS",
        ),
        (
            "[[radius.server]]\naddress = \"radius.example\"\nsecret = \"x\"\n",
            "line 4",
        ),
        ("[radius]\ntimeout = \"soon\"\n", "line 4"),
    ] {
        let o = aaa(dir.path(), config)
            .args(["show", "session"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{config}: {err}");
        assert!(err.contains(needle), "{config}: {err}");
    }
}
