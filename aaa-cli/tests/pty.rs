//! The shell on a real pseudo-terminal: the first-run offer, and passwords read without echo.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::process::Command;
use std::time::Duration;

use expectrl::{Expect as _, Session};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shell_on_a_terminal_never_echoes_a_password() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("aaa"));
    cmd.arg("shell")
        .env_clear()
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("TERM", "dumb");
    let mut p = Session::spawn(cmd).unwrap();
    p.set_expect_timeout(Some(Duration::from_secs(30)));

    // First run: no account, the shell offers to create the admin account.
    p.expect("Create an admin account now? [Y/n]").unwrap();
    p.send_line("y").unwrap();
    p.expect("Account name [admin]:").unwrap();
    p.send_line("").unwrap();
    p.expect("Password for admin:").unwrap();
    p.send_line("pty-secret-pw").unwrap();
    let typed = p.expect("Retype the password:").unwrap();
    assert!(
        !text(typed.before()).contains("pty-secret-pw"),
        "echoed: {:?}",
        text(typed.before())
    );
    p.send_line("pty-secret-pw").unwrap();
    let created = p.expect("Admin account admin created").unwrap();
    assert!(!text(created.before()).contains("pty-secret-pw"));

    // A login prompts for the password, without echo.
    p.expect("aaa> ").unwrap();
    p.send_line("login admin --from 192.0.2.77").unwrap();
    p.expect("Password:").unwrap();
    p.send_line("pty-secret-pw").unwrap();
    let shown = p.expect("logged in as admin (read-write)").unwrap();
    assert!(
        !text(shown.before()).contains("pty-secret-pw"),
        "echoed: {:?}",
        text(shown.before())
    );
    // The prompt shows who is logged in, `#` for read/write.
    p.expect("admin# ").unwrap();
    p.send_line("show session").unwrap();
    p.expect("192.0.2.77").unwrap();
    p.send_line("exit").unwrap();
    p.expect("admin logged out").unwrap();
    p.expect(expectrl::Eof).unwrap();

    // The account file was created with mode 0600, and the history has no password.
    use std::os::unix::fs::PermissionsExt as _;
    let accounts = home.path().join("data/aaa/accounts.toml");
    assert_eq!(
        std::fs::metadata(&accounts).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let history =
        std::fs::read_to_string(home.path().join("data/aaa/shell_history")).unwrap_or_default();
    assert!(!history.contains("pty-secret-pw"));
    assert!(history.contains("show session"), "{history}");
}
