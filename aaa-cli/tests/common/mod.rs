//! Shared by the `aaa` command's integration tests.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

/// `aaa` with a configuration of `dir` (its own account file) followed by `config`, and a
/// clean environment.
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
