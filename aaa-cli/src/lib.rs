//! The `aaa` command (the binary is a thin wrapper around [`main`]): account management,
//! logins, `show session`, `clear session <id>`, and an interactive shell. See the README for
//! the configuration file, the JSON output and the exit codes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod cli;
mod commands;
mod config;
mod error;
mod input;
mod shell;

use std::process::ExitCode;

use clap::Parser as _;

use crate::app::{App, Scope};
use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::config::Config;
use crate::error::{CliError, code};

/// Runs the command with the process's arguments; returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() {
                code::USAGE
            } else {
                code::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aaa: cannot start the runtime: {e}");
            return ExitCode::from(code::UNAVAILABLE);
        }
    };
    let code = runtime.block_on(run(cli));
    ExitCode::from(code)
}

/// Logs go to stderr; `AAA_LOG` sets the filter (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AAA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> u8 {
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aaa: {}", e.line());
            e.exit_code()
        }
    }
}

async fn execute(cli: Cli) -> Result<u8, CliError> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let scope = match cli.command {
        Command::User(_) => Scope::Accounts,
        _ => Scope::All,
    };
    let app = App::open(&config, scope).await?;
    if let Command::Shell = cli.command {
        return Ok(shell::run(&app).await);
    }
    let mut out = std::io::stdout().lock();
    let mut ctx = Ctx {
        app: &app,
        out: &mut out,
        input: None,
        shell: None,
    };
    commands::run(&mut ctx, cli.command).await?;
    Ok(code::OK)
}

/// Entry points for the fuzzers and property tests (`fuzz/`); not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    /// Parses `text` as a configuration file; `Err` carries the one-line message. Never panics.
    pub fn parse_config(text: &str) -> Result<(), String> {
        crate::config::Config::parse(text, std::path::Path::new("fuzz.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
