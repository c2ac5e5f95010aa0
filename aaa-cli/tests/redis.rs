//! The `aaa` command on a shared Redis: several processes, one session table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use testkit::redis::{RedisServer, unique_prefix};

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    /// A configuration on `redis_url` with its own key prefix and account file.
    fn new(redis_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("aaa.toml");
        std::fs::write(
            &config,
            format!(
                "[local]\naccounts = \"{}\"\n[session]\nstore = \"{redis_url}\"\nprefix = \"{}\"\n",
                dir.path().join("accounts.toml").display(),
                unique_prefix("cli")
            ),
        )
        .unwrap();
        Self { dir, config }
    }
    fn aaa(&self) -> Command {
        let mut c = Command::cargo_bin("aaa").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("AAA_CONFIG", &self.config)
            .timeout(Duration::from_secs(60));
        c
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8(o.stdout.clone()).unwrap(),
        String::from_utf8(o.stderr.clone()).unwrap(),
    )
}

fn add_admin(site: &Site) {
    site.aaa()
        .args([
            "user",
            "add",
            "admin",
            "--level",
            "admin",
            "--password-stdin",
        ])
        .write_stdin("admin-password\n")
        .assert()
        .success();
}

#[test]
fn login_validate_show_clear_across_processes() {
    let redis = RedisServer::shared();
    let site = Site::new(&redis.url());
    add_admin(&site);

    let o = site
        .aaa()
        .args([
            "login",
            "admin",
            "--from",
            "198.51.100.20",
            "--password-stdin",
        ])
        .write_stdin("admin-password\n")
        .output()
        .unwrap();
    let (cookie, err) = out(&o);
    assert!(o.status.success(), "{err}");
    let cookie = cookie.trim().to_owned();
    assert_eq!(cookie.len(), 43);
    assert!(
        !err.contains("memory store"),
        "no memory-store note with Redis: {err}"
    );

    // Another process validates it.
    let o = site.aaa().args(["validate", &cookie]).output().unwrap();
    let (text, err) = out(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        text.contains("user admin access read-write session "),
        "{text}"
    );
    let id = text.split_whitespace().nth(5).unwrap().to_owned();

    // A third lists it, never with the cookie.
    let o = site
        .aaa()
        .args(["show", "session", "--json"])
        .output()
        .unwrap();
    let (text, _) = out(&o);
    assert!(!text.contains(&cookie));
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["src_addr"], "198.51.100.20");
    let o = site.aaa().args(["show", "session"]).output().unwrap();
    assert!(out(&o).0.contains(&id));

    // A fourth clears it; validation then fails with exit 1.
    site.aaa()
        .args(["clear", "session", &id])
        .assert()
        .success();
    site.aaa().args(["validate", &cookie]).assert().code(1);
    site.aaa().args(["clear", "session", &id]).assert().code(1);
    site.aaa().args(["logout", &cookie]).assert().code(1);
}

#[test]
fn logout_ends_the_session_everywhere() {
    let redis = RedisServer::shared();
    let site = Site::new(&redis.url());
    add_admin(&site);
    let o = site
        .aaa()
        .args(["login", "admin", "--password-stdin"])
        .write_stdin("admin-password\n")
        .output()
        .unwrap();
    let cookie = out(&o).0.trim().to_owned();
    site.aaa().args(["logout", &cookie]).assert().success();
    site.aaa().args(["validate", &cookie]).assert().code(1);
}

#[test]
fn two_shells_see_each_others_sessions() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::Stdio;

    let redis = RedisServer::shared();
    let site = Site::new(&redis.url());
    add_admin(&site);
    site.aaa()
        .args(["user", "add", "oper", "--password-stdin"])
        .write_stdin("oper-password\n")
        .assert()
        .success();
    let spawn = || {
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("aaa"))
            .arg("shell")
            .env_clear()
            .env("HOME", site.path())
            .env("AAA_CONFIG", &site.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        common::watchdog(&child, Duration::from_secs(60));
        child
    };
    let mut a = spawn();
    let mut b = spawn();
    let mut a_in = a.stdin.take().unwrap();
    let mut b_in = b.stdin.take().unwrap();
    let mut a_out = BufReader::new(a.stdout.take().unwrap()).lines();
    let mut b_out = BufReader::new(b.stdout.take().unwrap()).lines();
    let wait_for = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
                    needle: &str| loop {
        let line = lines.next().expect("the shell answers").unwrap();
        if line.contains(needle) {
            return line;
        }
    };
    a_in.write_all(b"login admin --from 192.0.2.1\nadmin-password\n")
        .unwrap();
    let a_login = wait_for(&mut a_out, "logged in as admin");
    b_in.write_all(b"login oper --from 192.0.2.2\noper-password\n")
        .unwrap();
    wait_for(&mut b_out, "logged in as oper");
    let a_id = a_login.rsplit(' ').next().unwrap().to_owned();

    // Each sees both sessions.
    for (input, output) in [(&mut a_in, &mut a_out), (&mut b_in, &mut b_out)] {
        input.write_all(b"show session --json\n").unwrap();
        let json = wait_for(output, "[");
        let list: serde_json::Value = serde_json::from_str(&json).unwrap();
        let users: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["user"].as_str().unwrap())
            .collect();
        assert!(
            users.contains(&"admin") && users.contains(&"oper"),
            "{json}"
        );
    }
    // B clears A's session; A's shell no longer has it.
    b_in.write_all(format!("clear session {a_id}\n").as_bytes())
        .unwrap();
    b_in.write_all(b"show session --json\n").unwrap();
    let json = wait_for(&mut b_out, "[");
    assert!(!json.contains("\"admin\""), "{json}");
    a_in.write_all(b"show session --json\nexit\n").unwrap();
    drop(a_in);
    b_in.write_all(b"exit\n").unwrap();
    drop(b_in);
    let a_rest: Vec<String> = a_out.map(Result::unwrap).collect();
    assert!(
        a_rest
            .iter()
            .any(|l| l.starts_with('[') && !l.contains("\"admin\"")),
        "{a_rest:?}"
    );
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
}

#[test]
fn a_redis_with_nothing_listening_exits_3_quickly() {
    let port = testkit::closed_port();
    let site = Site::new(&format!("redis://127.0.0.1:{port}/"));
    let started = Instant::now();
    let o = site.aaa().args(["show", "session"]).output().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o).1);
    let err = out(&o).1;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("session store"), "{err}");
    // "Quickly": within the store's connect timeout (1 s) plus process start-up, generously.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn accounts_are_managed_while_redis_is_down() {
    // `aaa user …` touches only the account file: no session store is opened for it.
    let port = testkit::closed_port();
    let site = Site::new(&format!("redis://127.0.0.1:{port}/"));
    add_admin(&site);
    let o = site.aaa().args(["user", "list"]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    assert!(out(&o).0.contains("admin"), "{}", out(&o).0);
    // A session command still needs the store: exit 3.
    let o = site.aaa().args(["show", "session"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o).1);
}

#[test]
fn a_redis_url_password_is_never_printed() {
    let port = testkit::closed_port();
    let site = Site::new(&format!("redis://:sup3r-s3cret@127.0.0.1:{port}/"));
    let o = site.aaa().args(["show", "session"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(!out(&o).1.contains("sup3r-s3cret"), "{}", out(&o).1);
    let site = Site::new("redis://:sup3r-s3cret@127.0.0.1:notaport/");
    let o = site.aaa().args(["show", "session"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o).1);
    assert!(!out(&o).1.contains("sup3r-s3cret"), "{}", out(&o).1);
}
