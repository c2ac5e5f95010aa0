//! Shared by the `aaa` command's integration tests.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

/// `aaa` with a configuration of `dir` (its own account file) followed by `config`, and a
/// clean environment.
#[allow(dead_code)] // not every test binary uses it
pub(crate) fn aaa(dir: &Path, config: &str) -> Command {
    let path = dir.join("aaa.toml");
    std::fs::write(
        &path,
        format!(
            "[local]\naccounts = \"{}\"\n{config}",
            dir.join("accounts.toml").display()
        ),
    )
    .unwrap();
    let mut c = Command::cargo_bin("aaa").unwrap();
    c.env_clear()
        .env("HOME", dir)
        .env("AAA_CONFIG", &path)
        .timeout(Duration::from_secs(60));
    c
}

/// Kills the process `child` after `after` (a shell a test drives through pipes, whose reads
/// have no timeout of their own): a shell that stops answering then fails the test, whose next
/// read finds the pipe closed, instead of hanging it.
#[allow(dead_code)] // not every test binary drives a shell
pub(crate) fn watchdog(child: &std::process::Child, after: Duration) {
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
    });
}
