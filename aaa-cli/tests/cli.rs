//! The `aaa` command end to end, on the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

/// A scratch home: data dir and config file of its own.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn accounts(&self) -> PathBuf {
        self.path().join("data/aaa/accounts.toml")
    }
    /// `aaa` with this home's data directory and no configuration file.
    fn aaa(&self) -> Command {
        let mut c = Command::cargo_bin("aaa").unwrap();
        c.env_clear()
            .env("HOME", self.path())
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .timeout(Duration::from_secs(60));
        c
    }
    fn config(&self, text: &str) -> PathBuf {
        let p = self.path().join("aaa.toml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn user_management() {
    let h = Home::new();
    h.aaa()
        .args([
            "user",
            "add",
            "admin",
            "--level",
            "admin",
            "--password-stdin",
        ])
        .write_stdin("first-admin-pw\n")
        .assert()
        .success();
    h.aaa()
        .args(["user", "add", "oper", "--password-stdin"])
        .write_stdin("oper-password\n")
        .assert()
        .success();
    // The embedded default keeps accounts in the data directory.
    assert!(h.accounts().is_file());

    let out = h.aaa().args(["user", "list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["name"], "admin");
    assert_eq!(list[0]["level"], "admin");
    assert_eq!(list[1]["name"], "oper");
    assert_eq!(list[1]["level"], "user");
    assert_eq!(list[1]["enabled"], true);
    assert_eq!(list[1]["failures"], 0);
    assert!(!stdout(&out).contains("argon2"), "no hash in a listing");

    // passwd, then the new password works and the old one does not.
    h.aaa()
        .args(["user", "passwd", "oper", "--password-stdin"])
        .write_stdin("oper-password-2\n")
        .assert()
        .success();
    h.aaa()
        .args(["login", "oper", "--password-stdin"])
        .write_stdin("oper-password\n")
        .assert()
        .code(1);
    let out = h
        .aaa()
        .args(["login", "oper", "--password-stdin"])
        .write_stdin("oper-password-2\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only"));

    // level
    h.aaa()
        .args(["user", "level", "oper", "admin"])
        .assert()
        .success();
    let out = h
        .aaa()
        .args(["login", "oper", "--password-stdin"])
        .write_stdin("oper-password-2\n")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("read-write"), "{}", stderr(&out));
    h.aaa()
        .args(["user", "level", "oper", "root"])
        .assert()
        .code(2);

    // disable / enable
    h.aaa().args(["user", "disable", "oper"]).assert().success();
    h.aaa()
        .args(["login", "oper", "--password-stdin"])
        .write_stdin("oper-password-2\n")
        .assert()
        .code(1);
    h.aaa().args(["user", "enable", "oper"]).assert().success();

    // del; deleting again is "not found" (1); the last admin is kept (1).
    h.aaa().args(["user", "del", "oper"]).assert().success();
    let out = h.aaa().args(["user", "del", "oper"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no account named `oper`"),
        "{}",
        stderr(&out)
    );
    let out = h.aaa().args(["user", "del", "admin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("last enabled admin"),
        "{}",
        stderr(&out)
    );

    // A too-short and a too-long password: clear errors, exit 1.
    let out = h
        .aaa()
        .args(["user", "add", "x", "--password-stdin"])
        .write_stdin("short\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at least 8"), "{}", stderr(&out));
    let long = format!("{}\n", "p".repeat(129));
    let out = h
        .aaa()
        .args(["user", "add", "x", "--password-stdin"])
        .write_stdin(long)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("129 bytes"), "{}", stderr(&out));
}

#[test]
fn lockout_and_unlock() {
    let h = Home::new();
    h.aaa()
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
    for _ in 0..5 {
        h.aaa()
            .args(["login", "admin", "--password-stdin"])
            .write_stdin("wrong-password\n")
            .assert()
            .code(1);
    }
    // Locked: even the right password is rejected; every run of the command sees the lock.
    h.aaa()
        .args(["login", "admin", "--password-stdin"])
        .write_stdin("admin-password\n")
        .assert()
        .code(1);
    let out = h.aaa().args(["user", "list", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["locked"], true);
    h.aaa().args(["user", "unlock", "admin"]).assert().success();
    h.aaa()
        .args(["login", "admin", "--password-stdin"])
        .write_stdin("admin-password\n")
        .assert()
        .success();
}

#[test]
fn login_prints_the_cookie_alone_and_never_the_password() {
    let h = Home::new();
    h.aaa()
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
    let out = h
        .aaa()
        .args([
            "login",
            "admin",
            "--from",
            "2001:db8::7",
            "--password-stdin",
        ])
        .write_stdin("admin-password\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    let cookie = stdout(&out);
    assert_eq!(cookie.trim_end().len(), 43, "{cookie:?}");
    assert_eq!(cookie.lines().count(), 1);
    assert!(!stderr(&out).contains("admin-password"));
    assert!(!stderr(&out).contains(cookie.trim_end()));
    // A malformed source address: exit 1 with a clear line.
    let out = h
        .aaa()
        .args(["login", "admin", "--from", "300.1.1.1", "--password-stdin"])
        .write_stdin("admin-password\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("source address"), "{}", stderr(&out));
}

#[test]
fn no_terminal_and_no_password_stdin_is_a_usage_error() {
    let h = Home::new();
    let out = h
        .aaa()
        .args(["login", "admin"])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_configs_exit_2_naming_the_line() {
    let h = Home::new();
    let cases = [
        (
            "[session]\nstore = \"memory\"\nidle_timeout = \"soon\"\n",
            "line 3",
        ),
        ("[local]\naccounts = \"x\"\n\n[sesion]\n", "line 4"),
        ("[session]\nstore = \"mysql://db\"\n", "line 2"),
        ("[session]\nmax_sessions = -1\n", "line 2"),
    ];
    for (text, line) in cases {
        let cfg = h.config(text);
        let out = h
            .aaa()
            .arg("--config")
            .arg(&cfg)
            .args(["user", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains("aaa.toml") && err.contains(line),
            "{text}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    }
    // The config path may come from AAA_CONFIG.
    let cfg = h.config("[session]\nidle_timeout = \"x\"\n");
    h.aaa()
        .env("AAA_CONFIG", &cfg)
        .args(["user", "list"])
        .assert()
        .code(2);
    // A missing config file.
    h.aaa()
        .args(["--config", "/nonexistent/aaa.toml", "user", "list"])
        .assert()
        .code(2);
    // Usage errors.
    h.aaa().args(["frobnicate"]).assert().code(2);
    h.aaa().args(["clear", "session"]).assert().code(2);
}

#[test]
fn a_corrupt_account_file_is_a_clear_error_and_is_kept() {
    let h = Home::new();
    std::fs::create_dir_all(h.accounts().parent().unwrap()).unwrap();
    std::fs::write(h.accounts(), "version = 1\n[[account]]\nname = 7\n").unwrap();
    let out = h
        .aaa()
        .args(["user", "add", "x", "--password-stdin"])
        .write_stdin("password-x\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("accounts.toml, line 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(h.accounts()).unwrap(),
        "version = 1\n[[account]]\nname = 7\n"
    );
}

#[test]
fn the_shell_through_stdin_runs_a_whole_flow() {
    let h = Home::new();
    let script = "\
user add admin --level admin
admin-password
user add viewer
viewer-password
login viewer --from 192.0.2.8
viewer-password
whoami
show session --json
logout
login admin --from 192.0.2.9
admin-password
show session
whoami
exit
";
    let out = h.aaa().arg("shell").write_stdin(script).output().unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{o}\n{e}");
    assert!(o.contains("logged in as viewer (read-only)"), "{o}");
    assert!(o.contains("viewer (read-only) via local"), "{o}");
    let json_line = o.lines().find(|l| l.starts_with('[')).unwrap();
    let sessions: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(sessions[0]["user"], "viewer");
    assert_eq!(sessions[0]["src_addr"], "192.0.2.8");
    assert_eq!(sessions[0]["read_write"], false);
    assert!(sessions[0]["id"].as_str().unwrap().len() >= 8);
    assert!(e.contains("viewer logged out"), "{e}");
    assert!(o.contains("logged in as admin (read-write)"), "{o}");
    // The table: header, admin's row, count.
    assert!(
        o.contains("Id") && o.contains("Access") && o.contains("Idle"),
        "{o}"
    );
    assert!(o.contains("192.0.2.9"));
    assert!(o.contains("1 session(s)"), "{o}");
    // Leaving the shell ends its session.
    assert!(e.contains("admin logged out"), "{e}");
    assert!(!o.contains("admin-password") && !e.contains("admin-password"));
}

#[test]
fn the_shell_clears_a_session_by_id() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::Stdio;

    let h = Home::new();
    h.aaa()
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
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("aaa"))
        .arg("shell")
        .env_clear()
        .env("HOME", h.path())
        .env("XDG_DATA_HOME", h.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::watchdog(&child, Duration::from_secs(60));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin
        .write_all(b"login admin\nadmin-password\nwhoami\n")
        .unwrap();
    // "admin (read-write) via local, session 1a2b3c4d"
    let id = loop {
        let line = lines.next().expect("the shell answers").unwrap();
        if line.contains(" via local, session ") {
            break line.rsplit(' ').next().unwrap().to_owned();
        }
    };
    stdin
        .write_all(
            format!("clear session {id}\nclear session {id}\nwhoami\nshow session --json\nexit\n")
                .as_bytes(),
        )
        .unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        err.contains(&format!("session {id} of admin cleared")),
        "{err}"
    );
    // Clearing it again: not found; whoami: the shell's own session is gone.
    assert!(err.contains("no such session"), "{err}");
    assert!(err.contains("not logged in"), "{err}");
    let json = rest.iter().find(|l| l.starts_with('[')).unwrap();
    assert_eq!(json, "[]");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failed commands show in the exit code"
    );
}

#[test]
fn the_shell_hints_at_creating_an_admin_when_there_is_none() {
    let h = Home::new();
    let out = h
        .aaa()
        .arg("shell")
        .write_stdin("show session\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stderr(&out).contains("user add"), "{}", stderr(&out));
}
