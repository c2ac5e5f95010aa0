//! The commands, shared by the command line and the shell.

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use aaa::local::AccountInfo;
use aaa::{ExosUser, SessionId, SessionInfo, parse_addr, unix_ms};
use serde_json::json;

use crate::app::{App, StoreKind};
use crate::cli::{ClearCommand, Command, LoginArgs, ShowCommand, UserCommand};
use crate::error::CliError;
use crate::input::Input;

/// What the shell remembers between commands.
#[derive(Debug, Default)]
pub(crate) struct ShellState {
    /// The user logged in in this shell.
    pub(crate) user: Option<Arc<ExosUser>>,
    /// Set by `exit`.
    pub(crate) exit: bool,
}

/// Where a command runs.
pub(crate) struct Ctx<'a> {
    pub(crate) app: &'a App,
    pub(crate) out: &'a mut dyn Write,
    /// Passwords come from here in the shell; `None` for one-shot commands, which pick their
    /// source from `--password-stdin`.
    pub(crate) input: Option<&'a mut Input>,
    /// `Some` in the shell.
    pub(crate) shell: Option<&'a mut ShellState>,
}

macro_rules! outln {
    ($ctx:expr, $($arg:tt)*) => {
        writeln!($ctx.out, $($arg)*).map_err(CliError::Output)
    };
}

impl Ctx<'_> {
    fn password(
        &mut self,
        password_stdin: bool,
        prompt: &str,
        new: bool,
    ) -> Result<String, CliError> {
        let read = |i: &mut Input| {
            if new {
                i.new_password(prompt)
            } else {
                i.password(prompt)
            }
        };
        match self.input.as_deref_mut() {
            Some(i) => read(i),
            None => read(&mut Input::for_command(password_stdin)?),
        }
    }
}

/// Runs one command.
pub(crate) async fn run(ctx: &mut Ctx<'_>, command: Command) -> Result<(), CliError> {
    match command {
        Command::User(u) => user(ctx, u).await,
        Command::Login(args) => login(ctx, args).await,
        Command::Validate { cookie } => validate(ctx, &cookie).await,
        Command::Logout { cookie } => logout(ctx, cookie).await,
        Command::Show(ShowCommand::Session { json }) => show_sessions(ctx, json).await,
        Command::Clear(ClearCommand::Session { id }) => clear_session(ctx, &id).await,
        Command::Whoami => whoami(ctx),
        Command::Exit => {
            if let Some(s) = ctx.shell.as_deref_mut() {
                s.exit = true;
            }
            Ok(())
        }
        // The shell is started by main; inside the shell it is a no-op.
        Command::Shell => Ok(()),
    }
}

async fn user(ctx: &mut Ctx<'_>, cmd: UserCommand) -> Result<(), CliError> {
    let accounts = &ctx.app.accounts;
    match cmd {
        UserCommand::Add {
            name,
            level,
            password_stdin,
        } => {
            let pw = ctx.password(password_stdin, &format!("Password for {name}: "), true)?;
            accounts.add(&name, &pw, level).await?;
            eprintln!("account {name} added ({level})");
        }
        UserCommand::Del { name } => {
            accounts.delete(&name).await?;
            eprintln!("account {name} deleted");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let pw = ctx.password(password_stdin, &format!("New password for {name}: "), true)?;
            accounts.set_password(&name, &pw).await?;
            eprintln!("password of {name} changed");
        }
        UserCommand::Level { name, level } => {
            accounts.set_level(&name, level).await?;
            eprintln!("account {name} is now {level}");
        }
        UserCommand::Enable { name } => {
            accounts.set_enabled(&name, true).await?;
            eprintln!("account {name} enabled");
        }
        UserCommand::Disable { name } => {
            accounts.set_enabled(&name, false).await?;
            eprintln!("account {name} disabled");
        }
        UserCommand::Unlock { name } => {
            accounts.unlock(&name).await?;
            eprintln!("account {name} unlocked");
        }
        UserCommand::List { json } => {
            let list = accounts.list().await?;
            if json {
                outln!(ctx, "{}", accounts_json(&list))?;
            } else {
                write_accounts(ctx, &list)?;
            }
        }
    }
    Ok(())
}

async fn login(ctx: &mut Ctx<'_>, args: LoginArgs) -> Result<(), CliError> {
    if let Some(current) = ctx.shell.as_deref().and_then(|s| s.user.as_ref())
        && current.has_session()
    {
        return Err(CliError::AlreadyLoggedIn(current.username().to_owned()));
    }
    let from = parse_addr(&args.from).map_err(CliError::BadAddress)?;
    let pw = ctx.password(args.password_stdin, "Password: ", false)?;
    let user = ctx
        .app
        .aaa
        .authenticate_user(&args.name, &pw, from)
        .await?
        .ok_or(CliError::Rejected)?;
    drop(pw);
    let cookie = user.start_session(from).await?;
    let id = user.session_id().map(|i| i.to_string()).unwrap_or_default();
    let access = access(user.read_write());
    match ctx.shell.is_some() {
        true => {
            outln!(
                ctx,
                "logged in as {} ({access}), session {id}",
                user.username()
            )?;
            if let Some(s) = ctx.shell.as_deref_mut() {
                s.user = Some(user);
            }
        }
        false => {
            eprintln!("logged in as {} ({access}), session {id}", user.username());
            if ctx.app.store == StoreKind::Memory {
                eprintln!(
                    "note: the memory store lives in this process only; the session ends when it exits \
                     (use `aaa shell`, or a Redis store in the configuration)"
                );
            }
            outln!(ctx, "{}", cookie.expose())?;
        }
    }
    Ok(())
}

async fn validate(ctx: &mut Ctx<'_>, cookie: &str) -> Result<(), CliError> {
    let user = ctx
        .app
        .aaa
        .validate_session(cookie.trim())
        .await?
        .ok_or(CliError::NoSuchSession)?;
    let id = user.session_id().map(|i| i.to_string()).unwrap_or_default();
    outln!(
        ctx,
        "user {} access {} session {id} via {}",
        user.username(),
        access(user.read_write()),
        user.mechanism()
    )
}

async fn logout(ctx: &mut Ctx<'_>, cookie: Option<String>) -> Result<(), CliError> {
    let user = match cookie {
        Some(c) => ctx
            .app
            .aaa
            .validate_session(c.trim())
            .await?
            .ok_or(CliError::NoSuchSession)?,
        None => match ctx.shell.as_deref_mut().and_then(|s| s.user.take()) {
            Some(u) => u,
            None => return Err(CliError::NotLoggedIn),
        },
    };
    match user.end_session().await {
        Ok(()) => {}
        Err(e) if e.is_session_does_not_exist() => return Err(CliError::NoSuchSession),
        Err(e) => {
            // Keep the shell's login so the logout can be retried.
            if let Some(s) = ctx.shell.as_deref_mut()
                && s.user.is_none()
                && user.has_session()
            {
                s.user = Some(user);
            }
            return Err(e.into());
        }
    }
    eprintln!("{} logged out", user.username());
    Ok(())
}

fn whoami(ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let user = ctx
        .shell
        .as_deref()
        .and_then(|s| s.user.clone())
        .filter(|u| u.has_session())
        .ok_or(CliError::NotLoggedIn)?;
    let id = user.session_id().map(|i| i.to_string()).unwrap_or_default();
    outln!(
        ctx,
        "{} ({}) via {}, session {id}",
        user.username(),
        access(user.read_write()),
        user.mechanism()
    )
}

async fn show_sessions(ctx: &mut Ctx<'_>, json: bool) -> Result<(), CliError> {
    let sessions = ctx.app.aaa.get_sessions().await?;
    let now = SystemTime::now();
    if json {
        outln!(ctx, "{}", sessions_json(&sessions, now))
    } else {
        write_sessions(ctx, &sessions, now)
    }
}

async fn clear_session(ctx: &mut Ctx<'_>, id: &str) -> Result<(), CliError> {
    let id: SessionId = id.trim().parse().map_err(aaa::AaaError::from)?;
    match ctx.app.aaa.clear_session(id).await {
        Ok(info) => {
            eprintln!("session {} of {} cleared", info.id, info.username);
            Ok(())
        }
        Err(e) if e.is_session_does_not_exist() => Err(CliError::NoSuchSession),
        Err(e) => Err(e.into()),
    }
}

fn access(read_write: bool) -> &'static str {
    if read_write {
        "read-write"
    } else {
        "read-only"
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn idle(now: SystemTime, last: SystemTime) -> String {
    let secs = now.duration_since(last).unwrap_or_default().as_secs();
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// Writes rows as an aligned table.
fn table(ctx: &mut Ctx<'_>, header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    outln!(ctx, "{}", line(header.to_vec()))?;
    for row in rows {
        outln!(ctx, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn write_sessions(
    ctx: &mut Ctx<'_>,
    sessions: &[SessionInfo],
    now: SystemTime,
) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.username.clone(),
                if s.read_write { "rw" } else { "ro" }.to_owned(),
                s.mechanism.to_string(),
                s.src_addr.to_string(),
                time(s.start),
                idle(now, s.last_activity),
            ]
        })
        .collect();
    table(
        ctx,
        &["Id", "User", "Access", "Via", "From", "Started", "Idle"],
        &rows,
    )?;
    outln!(ctx, "{} session(s)", sessions.len())
}

fn sessions_json(sessions: &[SessionInfo], now: SystemTime) -> serde_json::Value {
    json!(
        sessions
            .iter()
            .map(|s| json!({
                "id": s.id.to_string(),
                "user": s.username,
                "read_write": s.read_write,
                "mechanism": s.mechanism.as_str(),
                "src_addr": s.src_addr.to_string(),
                "started": time(s.start),
                "started_unix_ms": unix_ms(s.start),
                "last_activity_unix_ms": unix_ms(s.last_activity),
                "idle_seconds": now.duration_since(s.last_activity).unwrap_or_default().as_secs(),
                "idle_deadline_unix_ms": s.idle_deadline.map(unix_ms),
                "absolute_deadline_unix_ms": s.absolute_deadline.map(unix_ms),
            }))
            .collect::<Vec<_>>()
    )
}

fn write_accounts(ctx: &mut Ctx<'_>, list: &[AccountInfo]) -> Result<(), CliError> {
    let now = SystemTime::now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.level.to_string(),
                if a.enabled { "enabled" } else { "disabled" }.to_owned(),
                a.failures.to_string(),
                match a.locked_until {
                    Some(t) if a.is_locked_at(now) => format!("until {}", time(t)),
                    _ => "no".to_owned(),
                },
            ]
        })
        .collect();
    table(
        ctx,
        &["Name", "Level", "State", "Failures", "Locked"],
        &rows,
    )
}

fn accounts_json(list: &[AccountInfo]) -> serde_json::Value {
    let now = SystemTime::now();
    json!(
        list.iter()
            .map(|a| json!({
                "name": a.name,
                "level": a.level.as_str(),
                "enabled": a.enabled,
                "failures": a.failures,
                "locked": a.is_locked_at(now),
                "locked_until_unix_ms": a.locked_until.map(unix_ms),
            }))
            .collect::<Vec<_>>()
    )
}
