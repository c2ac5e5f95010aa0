//! The bad-input table (command and configuration side): each row exits with the documented
//! code and one clear line on stderr, and changes nothing. The library rows are in
//! `aaa/tests/bad_input.rs`; the README's reliability section lists both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::time::Duration;

use assert_cmd::Command;

struct Row {
    label: &'static str,
    config: Option<&'static str>,
    args: &'static [&'static str],
    stdin: &'static [u8],
    code: i32,
    needle: &'static str,
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { label: "unknown config key", config: Some("[session]\nstore = \"memory\"\ncolour = \"red\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "line 3" },
    Row { label: "bad duration", config: Some("[session]\nidle_timeout = \"20 minutes please\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "invalid duration" },
    Row { label: "zero duration", config: Some("[session]\nabsolute_timeout = \"0s\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "greater than zero" },
    Row { label: "config type error", config: Some("[session]\nmax_sessions = \"ten\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "invalid type" },
    Row { label: "negative limit", config: Some("[session]\nmax_sessions_per_user = -1\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "line 2" },
    Row { label: "bad store URL", config: Some("[session]\nstore = \"mysql://db\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "invalid session store" },
    Row { label: "config not TOML", config: Some("[session\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "line 1" },
    Row { label: "config not UTF-8", config: Some("\u{0}"), args: &["show", "session"], stdin: b"", code: 2, needle: "aaa.toml" },
    Row { label: "RADIUS address without port", config: Some("[[radius.server]]\naddress = \"192.0.2.1\"\nsecret = \"x\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "line 2" },
    Row { label: "empty RADIUS secret", config: Some("[[radius.server]]\naddress = \"192.0.2.1:1812\"\nsecret = \"\"\n"), args: &["show", "session"], stdin: b"", code: 2, needle: "RADIUS" },
    Row { label: "unknown command", config: None, args: &["frobnicate"], stdin: b"", code: 2, needle: "frobnicate" },
    Row { label: "missing argument", config: None, args: &["clear", "session"], stdin: b"", code: 2, needle: "<ID>" },
    Row { label: "bad level", config: None, args: &["user", "level", "admin", "root"], stdin: b"", code: 2, needle: "admin or user" },
    Row { label: "session id not hex", config: None, args: &["clear", "session", "zz-top"], stdin: b"", code: 1, needle: "hexadecimal" },
    Row { label: "cookie of the wrong length", config: None, args: &["validate", "abc"], stdin: b"", code: 1, needle: "43 characters" },
    Row { label: "cookie with a bad alphabet", config: None, args: &["logout", "*******************************************"], stdin: b"", code: 1, needle: "base64url" },
    Row { label: "malformed --from", config: None, args: &["login", "admin", "--from", "10.0.0.256", "--password-stdin"], stdin: b"pw\n", code: 1, needle: "source address" },
    Row { label: "empty account name", config: None, args: &["user", "add", "", "--password-stdin"], stdin: b"long-enough\n", code: 1, needle: "invalid account name" },
    Row { label: "control character in name", config: None, args: &["user", "add", "a\u{1b}b", "--password-stdin"], stdin: b"long-enough\n", code: 1, needle: "invalid account name" },
    Row { label: "password not UTF-8", config: None, args: &["user", "add", "bob", "--password-stdin"], stdin: b"\xff\xfe\xfd\n", code: 1, needle: "UTF-8" },
    Row { label: "no password on stdin", config: None, args: &["user", "add", "bob", "--password-stdin"], stdin: b"", code: 1, needle: "no password" },
    Row { label: "130-byte password", config: None, args: &["login", "admin", "--password-stdin"], stdin: &[b'p'; 130], code: 1, needle: "130 bytes" },
    Row { label: "no terminal for a prompt", config: None, args: &["user", "passwd", "bob"], stdin: b"", code: 2, needle: "--password-stdin" },
];

#[test]
fn the_command_refuses_bad_input_with_one_clear_line() {
    for (i, row) in ROWS.iter().enumerate() {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::cargo_bin("aaa").unwrap();
        cmd.env_clear()
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .timeout(Duration::from_secs(30));
        if let Some(text) = row.config {
            let path = home.path().join("aaa.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let out = cmd.args(row.args).write_stdin(row.stdin).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(row.code),
            "row {i} ({}): {err}",
            row.label
        );
        assert!(
            err.contains(row.needle),
            "row {i} ({}): {err:?} lacks {:?}",
            row.label,
            row.needle
        );
        if row.code == 1 || row.config.is_some() {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "row {i} ({}): one line: {err}",
                row.label
            );
        }
        assert!(
            out.stdout.is_empty(),
            "row {i} ({}): nothing on stdout",
            row.label
        );
        // Nothing was created by a refused command.
        assert!(
            !home.path().join("data/aaa/accounts.toml").exists(),
            "row {i} ({})",
            row.label
        );
    }
}
