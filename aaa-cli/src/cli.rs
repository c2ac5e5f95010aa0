//! The command line, and the shell's command lines (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// aaa: authentication and login sessions for the management plane.
///
/// Exit codes: 0 ok; 1 rejected, invalid or not found; 2 usage or configuration error;
/// 3 a backend unavailable (RADIUS silent, Redis down).
#[derive(Debug, Parser)]
#[command(name = "aaa", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The configuration file (TOML). Without one: local accounts in the user's data directory
    /// and sessions in memory.
    #[arg(
        long,
        short = 'c',
        env = "AAA_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands of both the command line and the shell.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage local accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Log in through the configured mechanisms and start a session; prints the cookie.
    Login(LoginArgs),
    /// Show the user, privilege and session id of a session cookie.
    Validate {
        /// The session cookie.
        // A cookie is base64url: one in 64 begins with '-'.
        #[arg(allow_hyphen_values = true)]
        cookie: String,
    },
    /// End the session of a cookie (in the shell, without a cookie: the shell's own session).
    Logout {
        /// The session cookie.
        #[arg(allow_hyphen_values = true)]
        cookie: Option<String>,
    },
    /// Show sessions.
    #[command(subcommand)]
    Show(ShowCommand),
    /// Clear sessions.
    #[command(subcommand)]
    Clear(ClearCommand),
    /// An interactive shell with the same commands (reads commands from standard input when it
    /// is not a terminal).
    Shell,
    /// Show who is logged in in this shell.
    Whoami,
    /// Leave the shell.
    #[command(alias = "quit")]
    Exit,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The username.
    pub(crate) name: String,
    /// The source address recorded for the session (IPv4 or IPv6).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub(crate) from: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account (prompts for its password).
    Add {
        /// The account name.
        name: String,
        /// Its level: admin (read/write) or user (read only).
        #[arg(long, default_value = "user", value_parser = parse_level)]
        level: aaa::local::Level,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account.
    #[command(alias = "delete")]
    Del {
        /// The account name.
        name: String,
    },
    /// Set an account's password (prompts for it).
    Passwd {
        /// The account name.
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's level.
    Level {
        /// The account name.
        name: String,
        /// admin (read/write) or user (read only).
        #[arg(value_parser = parse_level)]
        level: aaa::local::Level,
    },
    /// Enable an account.
    Enable {
        /// The account name.
        name: String,
    },
    /// Disable an account.
    Disable {
        /// The account name.
        name: String,
    },
    /// Clear an account's failed-login lockout.
    Unlock {
        /// The account name.
        name: String,
    },
    /// List the accounts (never a password hash).
    List {
        /// JSON output (see the README for the fields).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShowCommand {
    /// The live sessions of every process sharing the store (never a cookie).
    #[command(alias = "sessions")]
    Session {
        /// JSON output (see the README for the fields).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClearCommand {
    /// End a session by its id, wherever it was started.
    Session {
        /// The session id (as `show session` prints it).
        id: String,
    },
}

fn parse_level(s: &str) -> Result<aaa::local::Level, String> {
    s.parse()
        .map_err(|_| format!("invalid level {s:?}: expected admin or user"))
}

/// One line of the shell.
#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    help_template = "{subcommands}"
)]
pub(crate) struct ShellLine {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The shell's words, for completion.
pub(crate) const SHELL_WORDS: &[&str] = &[
    "login",
    "logout",
    "whoami",
    "validate",
    "show session",
    "clear session",
    "user add",
    "user del",
    "user passwd",
    "user level",
    "user enable",
    "user disable",
    "user unlock",
    "user list",
    "help",
    "exit",
];

/// Splits a shell line into words: whitespace separates, double or single quotes group.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote");
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        ShellLine::command().debug_assert();
    }

    #[test]
    fn a_cookie_may_begin_with_a_hyphen() {
        // Found by CI: one cookie in 64 begins with '-', and was taken for an option.
        let cookie = "-As3c-OKAZbJozNWL8AdCesTzE3-6RUK65ZRuF7K9HU";
        let cli = Cli::try_parse_from(["aaa", "validate", cookie]).unwrap();
        assert!(matches!(cli.command, Command::Validate { cookie: c } if c == cookie));
        let cli = Cli::try_parse_from(["aaa", "-c", "x.toml", "logout", cookie]).unwrap();
        assert!(matches!(cli.command, Command::Logout { cookie: Some(c) } if c == cookie));
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        let line = ShellLine::try_parse_from(["logout", cookie]).unwrap();
        assert!(matches!(line.command, Command::Logout { cookie: Some(c) } if c == cookie));
        // Options are still options.
        let e = Cli::try_parse_from(["aaa", "validate", "--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        let cli = Cli::try_parse_from(["aaa", "validate", "-c", "z.toml", cookie]).unwrap();
        assert!(matches!(cli.command, Command::Validate { cookie: c } if c == cookie));
        assert_eq!(cli.config, Some(PathBuf::from("z.toml")));
        let cli = Cli::try_parse_from(["aaa", "logout", "--config", "y.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Logout { cookie: None }));
        assert_eq!(cli.config, Some(PathBuf::from("y.toml")));
    }

    #[test]
    fn words() {
        assert_eq!(
            split_words("  show   session ").unwrap(),
            ["show", "session"]
        );
        assert_eq!(
            split_words(r#"user add "j doe" --level admin"#).unwrap(),
            ["user", "add", "j doe", "--level", "admin"]
        );
        assert_eq!(split_words("login ''").unwrap(), ["login", ""]);
        assert!(split_words("login \"x").is_err());
    }
}
